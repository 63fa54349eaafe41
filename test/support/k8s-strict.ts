import { createRequire } from "node:module";

/**
 * Unknown-field check against the Kubernetes API models (@kubernetes/client-node's generated attribute maps):
 * a misspelt field (`readinesProbe`) is an error here, as it is for `kubectl apply --validate=strict`.
 */
const require = createRequire(import.meta.url);
type Attr = { baseName: string; type: string };
const cache = new Map<string, Attr[] | null>();

function attributes(type: string): Attr[] | null {
  if (!cache.has(type)) {
    try {
      const mod = require(`@kubernetes/client-node/dist/gen/models/${type}.js`) as Record<string, { getAttributeTypeMap?: () => Attr[] }>;
      cache.set(type, mod[type]?.getAttributeTypeMap?.() ?? null);
    } catch {
      cache.set(type, null); // primitives and free-form types
    }
  }
  return cache.get(type)!;
}

export function unknownFields(value: unknown, type: string, path = ""): string[] {
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, arr[1]!, `${path}[${i}]`)) : [];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return value && typeof value === "object" ? Object.entries(value).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}.${k}`)) : [];
  const attrs = /^V\d|^Core|^Apps|^Authentication|^Discovery|^Events|^Flowcontrol|^Storage/.test(type) ? attributes(type) : null;
  if (!attrs || !value || typeof value !== "object") return [];
  const known = new Map(attrs.map((a) => [a.baseName, a.type]));
  return Object.entries(value).flatMap(([k, v]) => (known.has(k) ? unknownFields(v, known.get(k)!, `${path}.${k}`) : [`${path}.${k}`]));
}

/** The model class of a manifest, e.g. apps/v1 Deployment → V1Deployment, autoscaling/v2 HPA → V2HorizontalPodAutoscaler. */
export function modelType(apiVersion: string, kind: string): string {
  const version = apiVersion.split("/").pop()!;
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
}
