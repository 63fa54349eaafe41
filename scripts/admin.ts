import { parseArgs } from "node:util";

/**
 * `npm run admin -- <command>`: a thin CLI over the gateway's admin API. Prints the API's JSON (a list: every
 * page of it, as one list).
 *   tenants create <name> [limits] | tenants list [--name N] | tenants get <id> | tenants suspend|activate <id>
 *   tenants limit <id> [limits]
 *   keys create <tenant> [--name N] [--models a,b] [--expires-at <unix seconds | ISO date>] [limits]
 *   keys list <tenant> | keys revoke <key-id> | keys rotate <key-id> [--grace-seconds N] | keys limit <key-id> [limits]
 *   limits: [--rpm N] [--tpm N] [--max-concurrent N] (none given with "limit" = unlimited)
 * Environment: GATEWAY_URL (default http://127.0.0.1:8787), GATEWAY_ADMIN_TOKEN (required).
 */
const USAGE = `usage: npm run admin -- <command>
  tenants create <name> [--rpm N] [--tpm N] [--max-concurrent N]
  tenants list [--name <name>]
  tenants get <tenant-id>
  tenants suspend <tenant-id> | tenants activate <tenant-id>
  tenants limit <tenant-id> [--rpm N] [--tpm N] [--max-concurrent N]     (no limit flags: unlimited)
  keys create <tenant-id> [--name <name>] [--models a,b] [--expires-at <unix seconds | ISO date>] [--rpm N] [--tpm N] [--max-concurrent N]
  keys list <tenant-id>
  keys revoke <key-id>
  keys rotate <key-id> [--grace-seconds <n>]
  keys limit <key-id> [--rpm N] [--tpm N] [--max-concurrent N]
environment: GATEWAY_URL (default http://127.0.0.1:8787), GATEWAY_ADMIN_TOKEN`;

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    name: { type: "string" },
    models: { type: "string" },
    "expires-at": { type: "string" },
    "grace-seconds": { type: "string" },
    rpm: { type: "string" },
    tpm: { type: "string" },
    "max-concurrent": { type: "string" },
  },
});

/** The limit flags as an API `limits` object; null when none is given. */
function limits(): Record<string, number> | null {
  const out: Record<string, number> = {};
  if (values.rpm) out.rpm = Number(values.rpm);
  if (values.tpm) out.tpm = Number(values.tpm);
  if (values["max-concurrent"]) out.max_concurrent = Number(values["max-concurrent"]);
  return Object.keys(out).length ? out : null;
}

function expiry(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = /^\d+$/.test(v) ? Number(v) : Math.floor(Date.parse(v) / 1000);
  if (!Number.isFinite(n)) throw new Error(`--expires-at: cannot read '${v}' as unix seconds or a date`);
  return n;
}

async function main(): Promise<number> {
  const base = (process.env.GATEWAY_URL ?? "http://127.0.0.1:8787").replace(/\/$/, "");
  const token = process.env.GATEWAY_ADMIN_TOKEN;
  if (!token) {
    console.error("GATEWAY_ADMIN_TOKEN is not set (npm start prints it)");
    return 2;
  }
  const [group, cmd, arg] = positionals;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    (res.ok ? console.log : console.error)(text);
    return res.ok ? 0 : 1;
  };
  /** Every page of a list, printed as one list. */
  const listAll = async (path: string, query: Record<string, string> = {}) => {
    const data: unknown[] = [];
    for (let after: string | null = null; ; ) {
      const qs = new URLSearchParams({ ...query, limit: "1000", ...(after ? { after } : {}) });
      const res = await fetch(`${base}/admin${path}?${qs}`, { headers: { authorization: `Bearer ${token}` } });
      const text = await res.text();
      if (!res.ok) {
        console.error(text);
        return 1;
      }
      const page = JSON.parse(text) as { data: unknown[]; has_more: boolean; last_id: string | null };
      data.push(...page.data);
      if (!page.has_more || !page.last_id) break;
      after = page.last_id;
    }
    console.log(JSON.stringify({ object: "list", data }));
    return 0;
  };
  const need = (what: string) => {
    if (!arg) throw new Error(`missing <${what}>\n${USAGE}`);
    return encodeURIComponent(arg);
  };
  switch (`${group} ${cmd}`) {
    case "tenants create":
      return call("POST", "/tenants", { name: arg ?? values.name, ...(limits() ? { limits: limits() } : {}) });
    case "tenants limit":
      return call("PATCH", `/tenants/${need("tenant-id")}`, { limits: limits() });
    case "tenants list":
      return listAll("/tenants", values.name ? { name: values.name } : {});
    case "tenants get":
      return call("GET", `/tenants/${need("tenant-id")}`);
    case "tenants suspend":
      return call("PATCH", `/tenants/${need("tenant-id")}`, { status: "suspended" });
    case "tenants activate":
      return call("PATCH", `/tenants/${need("tenant-id")}`, { status: "active" });
    case "keys create":
      return call("POST", `/tenants/${need("tenant-id")}/keys`, {
        ...(values.name ? { name: values.name } : {}),
        ...(values.models ? { models: values.models.split(",").map((m) => m.trim()).filter(Boolean) } : {}),
        ...(values["expires-at"] ? { expires_at: expiry(values["expires-at"]) } : {}),
        ...(limits() ? { limits: limits() } : {}),
      });
    case "keys limit":
      return call("PATCH", `/keys/${need("key-id")}`, { limits: limits() });
    case "keys list":
      return listAll(`/tenants/${need("tenant-id")}/keys`);
    case "keys revoke":
      return call("DELETE", `/keys/${need("key-id")}`);
    case "keys rotate":
      return call("POST", `/keys/${need("key-id")}/rotate`, values["grace-seconds"] ? { grace_seconds: Number(values["grace-seconds"]) } : {});
    default:
      console.error(USAGE);
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(2);
  },
);
