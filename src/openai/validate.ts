import type { z } from "zod";
import { ApiError, errors } from "./errors.js";

/** `["messages", 0, "content"]` → `messages[0].content`, the form OpenAI uses in `param`. */
export function formatParamPath(path: ReadonlyArray<PropertyKey>): string | null {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out === "" ? null : out;
}

/** The value's own type did not fit this branch of a union (a string where an array was expected, …). */
const wrongTypeOnly = (branch: readonly z.core.$ZodIssue[]) => branch.every((i) => i.code === "invalid_type" && i.path.length === 0);

/**
 * What a failed union most likely means. The branches whose type the value has are the ones the client meant:
 * with one such branch, its own issue names the problem (`stop` with five strings: too many items, not "invalid
 * input"); with none, every expected type is listed.
 */
function unionIssue(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== "invalid_union" || !("errors" in issue) || issue.errors.length === 0) return issue;
  const meant = issue.errors.filter((branch) => !wrongTypeOnly(branch));
  if (meant.length === 1) return mostSpecificIssue(meant[0]!.map((i) => ({ ...i, path: [...issue.path, ...i.path] })) as z.core.$ZodIssue[]);
  if (meant.length > 0) return issue;
  const types = [...new Set(issue.errors.flatMap((branch) => branch.map((i) => ("expected" in i ? String(i.expected) : ""))))].filter(Boolean);
  const received = /received (\w+)/.exec(issue.errors[0]![0]?.message ?? "")?.[1];
  return { ...issue, message: `Invalid input: expected ${types.join(" or ")}${received ? `, received ${received}` : ""}` };
}

/** Deepest path first: a union's own issues (see `unionIssue`) name the field that is really wrong. */
function mostSpecificIssue(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue {
  let best = unionIssue(issues[0]!);
  for (const issue of issues.slice(1)) {
    const candidate = unionIssue(issue);
    if (candidate.path.length > best.path.length) best = candidate;
  }
  return best;
}

/** Whether `path` names a value the client sent (zod 4 issues carry no input unless asked, so look it up). */
function isPresent(body: unknown, path: ReadonlyArray<PropertyKey>): boolean {
  let at: unknown = body;
  for (const seg of path) {
    if (typeof at !== "object" || at === null || !Object.hasOwn(at, seg) || (at as Record<PropertyKey, unknown>)[seg] === undefined) return false;
    at = (at as Record<PropertyKey, unknown>)[seg];
  }
  return true;
}

/** Validates a parsed body against a request schema; the first problem becomes a 400 naming its field. */
export function validateBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw errors.invalidParam(null, "The request body must be a JSON object.", "invalid_type");
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = mostSpecificIssue(result.error.issues);
  const param = formatParamPath(issue.path);
  const absent = (issue.code === "invalid_type" || issue.code === "invalid_union") && !isPresent(body, issue.path);
  // A refinement names its OpenAI code in `params.code`.
  const custom = issue.code === "custom" && typeof issue.params?.code === "string" ? issue.params.code : null;
  const code = absent ? "missing_required_parameter" : (custom ?? issue.code);
  const message =
    code === "missing_required_parameter"
      ? `Missing required parameter: '${param}'.`
      : `Invalid value for '${param ?? "body"}': ${issue.message}`;
  throw new ApiError(400, message, { param, code });
}
