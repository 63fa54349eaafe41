import type { z } from "zod";
import { errors } from "../openai/errors.js";
import { validateBody } from "../openai/validate.js";
import { concatBytes } from "./bytes.js";
import { isJsonContentType, parseJsonBody } from "./json-body.js";

/**
 * Reading request bodies with the web-standard Request API, shared by the worker and the pod: a size cap
 * enforced while reading, JSON content-type, UTF-8 and nesting checks, then schema validation.
 */

/** Reads at most `limit` bytes of a request body; a larger body is refused without being read in full. */
export async function readBodyBytes(req: Request, limit: number): Promise<Uint8Array> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw errors.bodyTooLarge(limit);
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      throw errors.bodyTooLarge(limit);
    }
    chunks.push(value);
  }
  return concatBytes(chunks);
}


/** The request's JSON body, or the 4xx that explains why there is none. */
export async function readJsonBody(req: Request, limit: number): Promise<unknown> {
  checkContentType(req.headers.get("content-type"));
  return parseJsonBody(await readBodyBytes(req, limit));
}

export function checkContentType(type: string | null): void {
  if (!isJsonContentType(type)) throw errors.unsupportedMediaType(type ?? "");
}

/** Reads and validates a JSON body; returns the raw value (forwarded as sent) and its typed view. */
export async function readValidBody<S extends z.ZodType>(
  req: Request,
  limit: number,
  schema: S,
): Promise<{ raw: Record<string, unknown>; parsed: z.infer<S> }> {
  const raw = await readJsonBody(req, limit);
  const parsed = validateBody(schema, raw);
  return { raw: raw as Record<string, unknown>, parsed };
}
