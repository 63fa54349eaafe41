import { Hono } from "hono";
import { modelAllowed } from "../../../src/auth/key-policy.js";
import type { CatalogEntry } from "../../../src/config/catalog.js";
import { errors } from "../../../src/openai/errors.js";
import type { Model, ModelList } from "../../../src/openai/models.js";
import type { AppEnv } from "../env.js";

const toModel = (m: CatalogEntry): Model => ({ id: m.id, object: "model", created: m.created, owned_by: m.owned_by });

/** `GET /v1/models[/{id}]`: only the models this key may use; others do not exist as far as it can tell. */
export const models = new Hono<AppEnv>();

models.get("/", (c) => {
  const auth = c.get("auth");
  const data = c.get("settings").catalog.filter((m) => modelAllowed(auth, m.id)).map(toModel);
  return c.json({ object: "list", data } satisfies ModelList);
});

// Model ids may contain slashes (`deepseek-ai/DeepSeek-V3`), which the SDK sends unescaped.
models.get("/:id{.+}", (c) => {
  const id = decodeURIComponent(c.req.param("id"));
  const entry = c.get("settings").catalog.find((m) => m.id === id);
  if (!entry || !modelAllowed(c.get("auth"), id)) throw errors.modelNotFound(id);
  return c.json(toModel(entry));
});
