-- The admin API lists tenants page by page in (created_at, id) order, optionally by name.
CREATE INDEX tenants_by_created ON tenants (created_at, id);
CREATE INDEX tenants_by_name ON tenants (name, created_at, id);
-- The hourly sweep looks for deliveries never attempted; the partial index holds only those.
CREATE INDEX webhook_deliveries_unattempted ON webhook_deliveries (created_at) WHERE status = 'pending' AND attempts = 0;
-- Retention deletes finished deliveries by age.
CREATE INDEX webhook_deliveries_by_age ON webhook_deliveries (created_at);
