import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments, parse } from "yaml";

/**
 * Renders a kustomization the way `kubectl kustomize` does, for the subset of features this repository's
 * manifests use — resources (files and directories), namespace, labels (with includeTemplates), and JSON 6902
 * patches with a kind/name target — so CI can check the rendered manifests without a cluster or binary.
 * Anything else in a kustomization.yaml is an error, so the subset cannot silently drift.
 */
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: Record<string, unknown> } & Record<string, unknown>;

const SUPPORTED = new Set(["apiVersion", "kind", "resources", "namespace", "labels", "patches"]);
const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]);

export function render(dir: string): K8sObject[] {
  const file = join(dir, "kustomization.yaml");
  if (!existsSync(file)) throw new Error(`${dir}: no kustomization.yaml`);
  const k = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  for (const key of Object.keys(k)) if (!SUPPORTED.has(key)) throw new Error(`${file}: '${key}' is not supported by this renderer`);
  const objects: K8sObject[] = [];
  for (const r of (k.resources as string[] | undefined) ?? []) {
    const p = join(dir, r);
    if (existsSync(join(p, "kustomization.yaml"))) objects.push(...render(p));
    else for (const doc of parseAllDocuments(readFileSync(p, "utf8"))) {
      if (doc.errors.length) throw new Error(`${p}: ${doc.errors[0]!.message}`);
      const o = doc.toJS() as K8sObject | null;
      if (o) objects.push(o);
    }
  }
  if (typeof k.namespace === "string") for (const o of objects) o.metadata.namespace = k.namespace;
  for (const l of (k.labels as { pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }[] | undefined) ?? []) {
    if (l.includeSelectors) throw new Error(`${file}: labels.includeSelectors is not supported by this renderer`);
    for (const o of objects) {
      o.metadata.labels = { ...o.metadata.labels, ...l.pairs };
      const template = (o.spec as { template?: { metadata?: { labels?: Record<string, string> } } } | undefined)?.template;
      if (l.includeTemplates && WORKLOADS.has(o.kind) && template) template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, ...l.pairs } };
    }
  }
  for (const p of (k.patches as { path: string; target: { kind: string; name: string } }[] | undefined) ?? []) {
    const ops = parse(readFileSync(join(dir, p.path), "utf8")) as { op: string; path: string; value?: unknown }[];
    const targets = objects.filter((o) => o.kind === p.target.kind && o.metadata.name === p.target.name);
    if (targets.length === 0) throw new Error(`${file}: patch ${p.path} matches no ${p.target.kind}/${p.target.name}`);
    for (const o of targets) for (const op of ops) applyOp(o, op, `${dir}/${p.path}`);
  }
  return objects;
}

/** RFC 6902 add / replace / remove on a JSON pointer. */
function applyOp(root: unknown, op: { op: string; path: string; value?: unknown }, where: string): void {
  const parts = op.path.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  const last = parts.pop()!;
  let node = root as Record<string, unknown> | unknown[];
  for (const seg of parts) {
    const next = Array.isArray(node) ? node[Number(seg)] : node[seg];
    if (next === undefined || next === null || typeof next !== "object") throw new Error(`${where}: path ${op.path} does not exist`);
    node = next as Record<string, unknown>;
  }
  const exists = Array.isArray(node) ? Number(last) < node.length : last in node;
  if (op.op === "replace" || op.op === "remove") {
    if (!exists) throw new Error(`${where}: ${op.op} ${op.path}: no such member`);
  } else if (op.op !== "add") throw new Error(`${where}: op '${op.op}' is not supported`);
  if (op.op === "remove") {
    if (Array.isArray(node)) node.splice(Number(last), 1);
    else delete node[last];
  } else if (Array.isArray(node) && op.op === "add") node.splice(last === "-" ? node.length : Number(last), 0, op.value);
  else (node as Record<string, unknown>)[last] = op.value;
}
