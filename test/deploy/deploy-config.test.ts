import { execFile, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Deployment } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { PersistentVolumeClaim, Service, ServiceAccount } from "kubernetes-models/v1";
import { parse as parseToml } from "smol-toml";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import { POD_COMMAND } from "../../scripts/pod-process.js";
import { parseCatalog } from "../../src/config/catalog.js";
import { modelType, unknownFields } from "../support/k8s-strict.js";
import { render, type K8sObject } from "../support/kustomize-lite.js";

const run = promisify(execFile);
const OVERLAYS = ["eu-west", "us-east"];

const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "v1/PersistentVolumeClaim": PersistentVolumeClaim,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
};

/** Schema validation (types, required fields) plus a strict unknown-field check. */
function problems(objects: K8sObject[]): string[] {
  return objects.flatMap((o) => {
    const Model = MODELS[`${o.apiVersion}/${o.kind}`];
    if (!Model) return [`${o.kind}/${o.metadata.name}: no schema for ${o.apiVersion} ${o.kind}`];
    const out: string[] = [];
    try {
      new Model(o as never).validate();
    } catch (e) {
      out.push(`${o.kind}/${o.metadata.name}: ${(e as Error).message}`);
    }
    out.push(...unknownFields(o, modelType(o.apiVersion, o.kind)).map((f) => `${o.kind}/${o.metadata.name}: unknown field ${f}`));
    return out;
  });
}

const find = (objs: K8sObject[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name)!;
type Container = { env: { name: string; value?: string; valueFrom?: unknown }[]; readinessProbe: { httpGet: { path: string } }; livenessProbe: { httpGet: { path: string } }; startupProbe: { httpGet: { path: string } }; lifecycle: { preStop: { exec: { command: string[] } } }; resources: { limits: Record<string, string> } };

describe.each(OVERLAYS)("kustomize overlay %s", (region) => {
  const objects = render(`infra/k8s/overlays/${region}`);

  it("renders and validates against the Kubernetes schemas", () => {
    expect(objects.map((o) => o.kind).sort()).toEqual(["Deployment", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget", "Service", "ServiceAccount"]);
    expect(problems(objects)).toEqual([]);
    for (const o of objects) {
      expect(o.metadata.namespace).toBe(`moe-${region}`);
      expect(o.metadata.labels!["moe-edge/region"]).toBe(region);
    }
  });

  it("wires the pod the way the pod behaves", () => {
    const dep = find(objects, "Deployment", "moe-pod") as K8sObject & { spec: { template: { metadata: { labels: Record<string, string> }; spec: { terminationGracePeriodSeconds: number; containers: Container[] } } } };
    const pod = dep.spec.template.spec;
    const c = pod.containers[0]!;
    expect(c.readinessProbe.httpGet.path).toBe("/health");
    expect(c.livenessProbe.httpGet.path).toBe("/livez");
    // /livez answers while the model loads: startup must wait for readiness, or liveness would apply mid-load.
    expect(c.startupProbe.httpGet.path).toBe("/health");
    const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
    const preStop = Number(c.lifecycle.preStop.exec.command.at(-1));
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(Number(env.POD_DRAIN_TIMEOUT_S) + preStop);
    expect(Number(c.resources.limits["nvidia.com/gpu"])).toBeGreaterThanOrEqual(1);
    // Every POD_* variable must be an option the pod understands.
    const flags = readFileSync("gpu-backend/server/options.ts", "utf8");
    expect(c.env.find((e) => e.name === "POD_EDGE_SECRET_PREVIOUS")).toMatchObject({ valueFrom: { secretKeyRef: { name: "moe-pod-edge", optional: true } } });
    for (const name of Object.keys(env).filter((n) => n.startsWith("POD_") && !n.startsWith("POD_EDGE_SECRET"))) {
      expect(flags).toContain(`"--${name.slice(4).toLowerCase().replace(/_/g, "-")}"`);
    }
    const labels = dep.spec.template.metadata.labels;
    const matches = (sel: Record<string, string>) => Object.entries(sel).every(([k, v]) => labels[k] === v);
    expect(matches((find(objects, "Service", "moe-pod").spec as { selector: Record<string, string> }).selector)).toBe(true);
    expect(matches((find(objects, "PodDisruptionBudget", "moe-pod").spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels)).toBe(true);
    expect(matches((find(objects, "NetworkPolicy", "moe-pod-ingress").spec as { podSelector: { matchLabels: Record<string, string> } }).podSelector.matchLabels)).toBe(true);
    const hpa = find(objects, "HorizontalPodAutoscaler", "moe-pod").spec as { metrics: { pods: { metric: { name: string } } }[] };
    // The autoscaling metric is one the pod exports.
    expect(readFileSync("gpu-backend/server/app.ts", "utf8")).toMatch(new RegExp(`(name: |single\\()"${hpa.metrics[0]!.pods.metric.name}"`));
  });
});

/** Where kubectl is installed, the renderer must agree with the real kustomize. */
const hasKubectl = spawnSync("kubectl", ["version", "--client"], { stdio: "ignore" }).status === 0;
describe.skipIf(!hasKubectl)("the renderer agrees with kubectl kustomize", () => {
  it.each(OVERLAYS)("%s", (region) => {
    const real = parseAllDocuments(spawnSync("kubectl", ["kustomize", `infra/k8s/overlays/${region}`], { encoding: "utf8" }).stdout).map((d) => d.toJS() as K8sObject);
    const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
    const sort = (xs: K8sObject[]) => [...xs].sort((a, b) => (key(a) < key(b) ? -1 : 1));
    expect(sort(render(`infra/k8s/overlays/${region}`))).toEqual(sort(real));
  });
});

describe("manifest checks catch broken manifests", () => {
  it("a wrong type, a misspelt field and a bad patch all fail", () => {
    const dir = mkdtempSync(join(tmpdir(), "k8s-"));
    try {
      cpSync("infra/k8s", dir, { recursive: true });
      const dep = join(dir, "base/deployment.yaml");
      const good = readFileSync(dep, "utf8");
      writeFileSync(dep, good.replace("containerPort: 8100", 'containerPort: "eighty"'));
      expect(problems(render(join(dir, "overlays/eu-west"))).join("\n")).toMatch(/containerPort must be integer/);
      writeFileSync(dep, good.replace("readinessProbe:", "readinesProbe:"));
      expect(problems(render(join(dir, "overlays/eu-west"))).join("\n")).toMatch(/unknown field .*readinesProbe/);
      writeFileSync(dep, good);
      writeFileSync(join(dir, "overlays/us-east/pod-settings.yaml"), "- op: replace\n  path: /spec/template/spec/containers/0/nope/0/value\n  value: x\n");
      expect(() => render(join(dir, "overlays/us-east"))).toThrow(/does not exist/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("container image", () => {
  it("starts the pod with the command npm start uses", () => {
    const docker = readFileSync("infra/docker/pod.Dockerfile", "utf8");
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(docker);
    expect(JSON.parse(entry![1]!)).toEqual([...POD_COMMAND]);
    expect(docker).toMatch(/^USER 10001/m);
    for (const copied of [...docker.matchAll(/^COPY (?!--from)(.+) \.\/?\S*$/gm)].flatMap((m) => m[1]!.split(" "))) {
      expect(existsSync(copied), copied).toBe(true);
    }
  });
});

describe("wrangler environments", () => {
  const toml = parseToml(readFileSync("wrangler.toml", "utf8")) as Record<string, unknown> & { env: Record<string, Record<string, unknown>> };

  it.each(["staging", "production"])("%s declares its bindings and a valid model list", (name) => {
    const env = toml.env[name]!;
    const d1 = env.d1_databases as { binding: string; migrations_dir: string }[];
    expect(d1.map((d) => d.binding)).toEqual(["DB"]);
    expect(existsSync(d1[0]!.migrations_dir)).toBe(true);
    expect((env.durable_objects as { bindings: { name: string; class_name: string }[] }).bindings).toEqual([
      { name: "REGION_MONITOR", class_name: "RegionMonitor" },
      { name: "TENANT_LIMITER", class_name: "TenantLimiterObject" },
    ]);
    const queues = env.queues as { producers: { binding: string }[]; consumers: { queue: string; dead_letter_queue?: string }[] };
    expect(queues.producers.map((p) => p.binding).sort()).toEqual(["USAGE_QUEUE", "WEBHOOK_QUEUE"]);
    expect(queues.consumers.filter((q) => q.dead_letter_queue).length).toBe(2);
    const vars = env.vars as Record<string, string>;
    expect(parseCatalog(vars.MODELS).length).toBeGreaterThan(0);
    // Every var the top level sets, the environment sets too (vars are not inherited).
    expect(Object.keys(vars).sort()).toEqual(Object.keys(toml.vars as object).sort());
  });

  it.each(["staging", "production"])("%s builds (wrangler deploy --dry-run)", async (name) => {
    const out = mkdtempSync(join(tmpdir(), "wrangler-"));
    try {
      const { stdout } = await run(process.execPath, ["node_modules/wrangler/bin/wrangler.js", "deploy", "--dry-run", "--env", name, "--outdir", out], {
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
      });
      expect(stdout).toMatch(/env\.REGION_MONITOR/);
      expect(existsSync(join(out, "index.js"))).toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("docs/deploy.md", () => {
  const doc = readFileSync("docs/deploy.md", "utf8");
  it("mentions only npm scripts and repository paths that exist", () => {
    const scripts = (JSON.parse(readFileSync("package.json", "utf8")) as { scripts: Record<string, string> }).scripts;
    for (const m of doc.matchAll(/npm run (?:-s )?([\w:-]+)/g)) expect(Object.keys(scripts), m[0]).toContain(m[1]);
    for (const m of doc.matchAll(/npm (start|test)\b/g)) expect(Object.keys(scripts)).toContain(m[1]);
    for (const m of doc.matchAll(/`((?:infra|gpu-backend|scripts|workers|src|docs)\/[\w./-]+)`/g)) expect(existsSync(m[1]!), m[1]).toBe(true);
    for (const m of doc.matchAll(/kubectl apply -k (\S+)/g)) expect(existsSync(join(m[1]!, "kustomization.yaml")), m[1]).toBe(true);
  });
});
