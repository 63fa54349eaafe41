import type { Context } from "hono";
import type { z } from "zod";
import { readValidBody } from "../../src/http/request-body.js";
import { validateBody } from "../../src/openai/validate.js";
import type { AppEnv } from "./env.js";

/** The request's JSON body, validated against `schema` (admin routes). */
export async function bodyOf<S extends z.ZodType>(c: Context<AppEnv>, schema: S): Promise<z.infer<S>> {
  return (await readValidBody(c.req.raw, c.get("settings").maxBodyBytes, schema)).parsed;
}

/** Like `bodyOf`, for routes where an empty body means "all defaults". */
export async function optionalBodyOf<S extends z.ZodType>(c: Context<AppEnv>, schema: S): Promise<z.infer<S>> {
  const empty = c.req.header("content-length") === "0" || !c.req.raw.body;
  return empty ? validateBody(schema, {}) : bodyOf(c, schema);
}
