-- The backend registry: regions (with a location, for nearest-region routing) and the backends serving models
-- in them. Edited through the admin API; cached briefly per isolate at the edge (REGISTRY_CACHE_MS).
CREATE TABLE regions (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL DEFAULT '',
  latitude    REAL NOT NULL,
  longitude   REAL NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

CREATE TABLE pods (
  id          TEXT PRIMARY KEY,
  region_id   TEXT NOT NULL REFERENCES regions (id),
  url         TEXT NOT NULL,
  models      TEXT NOT NULL,                 -- JSON array of model ids
  capacity    INTEGER NOT NULL DEFAULT 64,   -- concurrent sequences
  kind        TEXT NOT NULL DEFAULT 'moe-pod' CHECK (kind IN ('moe-pod', 'openai')),
  enabled     INTEGER NOT NULL DEFAULT 1,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

CREATE INDEX pods_by_region ON pods (region_id);
