import { errors } from "../openai/errors.js";

/** Default nesting bound: far above any real request, far below what would exhaust a stack. */
export const MAX_JSON_DEPTH = 64;

/**
 * The deepest nesting of arrays/objects in a JSON text, stopping early once `limit` is passed.
 * Scans characters so a hostile body is refused before any recursive code (parse, stringify, validation) sees it.
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** Bytes of a request body → a JSON value, or a 400 that says exactly what was wrong. */
export function parseJsonBody(bytes: Uint8Array, maxDepth = MAX_JSON_DEPTH): unknown {
  if (bytes.byteLength === 0) throw errors.invalidJson("the body is empty");
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw errors.invalidJson("the body is not valid UTF-8");
  }
  if (jsonDepthExceeds(text, maxDepth)) throw errors.invalidJson(`nesting deeper than ${maxDepth} levels`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw errors.invalidJson(e instanceof Error ? e.message : "malformed JSON");
  }
}

/** `application/json` with or without parameters; anything else is not a JSON body. */
export function isJsonContentType(value: string | null | undefined): boolean {
  if (!value) return true; // many clients omit it; the body still has to parse as JSON
  const type = value.split(";", 1)[0]!.trim().toLowerCase();
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}
