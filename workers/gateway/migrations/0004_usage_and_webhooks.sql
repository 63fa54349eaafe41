-- The usage ledger: one row per request (event_id = request id, so a redelivered record changes nothing),
-- hourly aggregates per tenant and model, and billing webhooks with their deliveries.
CREATE TABLE usage_events (
  event_id          TEXT PRIMARY KEY,
  tenant_id         TEXT NOT NULL,
  key_id            TEXT NOT NULL,
  model             TEXT NOT NULL,
  region            TEXT,
  pod               TEXT,
  status            TEXT NOT NULL,
  stream            INTEGER NOT NULL,
  prompt_tokens     INTEGER NOT NULL,
  cached_tokens     INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  estimated         INTEGER NOT NULL,
  cost_micros       INTEGER NOT NULL,
  started_at        INTEGER NOT NULL,
  ended_at          INTEGER NOT NULL,
  recorded_at       INTEGER NOT NULL,
  webhook_batch     TEXT                -- the usage.recorded delivery batch that carried it (outbox claim)
);
CREATE INDEX usage_events_by_tenant_time ON usage_events (tenant_id, ended_at);
CREATE INDEX usage_events_by_batch ON usage_events (webhook_batch);

CREATE TABLE usage_hourly (
  tenant_id         TEXT NOT NULL,
  model             TEXT NOT NULL,
  hour              INTEGER NOT NULL,   -- unix seconds at the start of the hour
  requests          INTEGER NOT NULL,
  prompt_tokens     INTEGER NOT NULL,
  cached_tokens     INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  cost_micros       INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, model, hour)
);

CREATE TABLE webhook_endpoints (
  id              TEXT PRIMARY KEY,
  tenant_id       TEXT NOT NULL REFERENCES tenants (id),
  url             TEXT NOT NULL,
  events          TEXT NOT NULL,          -- JSON array of event types
  secret          TEXT NOT NULL,          -- whsec_…
  previous_secret TEXT,                   -- still signed with until previous_until (rotation overlap)
  previous_until  INTEGER,
  status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  disabled_reason TEXT,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id);

CREATE TABLE webhook_deliveries (
  id              TEXT PRIMARY KEY,       -- the webhook-id: the same for every attempt
  endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id),
  tenant_id       TEXT NOT NULL,
  event_type      TEXT NOT NULL,
  payload         TEXT NOT NULL,
  status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead', 'cancelled')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  last_status     INTEGER,
  last_error      TEXT,
  created_at      INTEGER NOT NULL,
  delivered_at    INTEGER,
  dead_at         INTEGER
);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, created_at);
