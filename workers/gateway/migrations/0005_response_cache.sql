-- Per-tenant edge response cache settings: JSON {enabled, ttl_seconds}; NULL = the defaults (on, 1 hour).
ALTER TABLE tenants ADD COLUMN response_cache TEXT;
