-- Tenants and their API keys. Keys are stored only as SHA-256 hashes; `display_prefix` (sk-...abcd) is all
-- that may be shown again. Timestamps are unix seconds, as in OpenAI's API objects.
CREATE TABLE tenants (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
  id              TEXT PRIMARY KEY,
  tenant_id       TEXT NOT NULL REFERENCES tenants (id),
  name            TEXT,
  display_prefix  TEXT NOT NULL,
  key_hash        TEXT NOT NULL UNIQUE,
  models          TEXT,              -- JSON array of allowed model ids; NULL = every model
  expires_at      INTEGER,           -- NULL = never
  status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
  created_at      INTEGER NOT NULL,
  last_used_at    INTEGER,
  revoked_at      INTEGER,
  rotated_from    TEXT REFERENCES api_keys (id)
);

CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);
