-- A deleted webhook endpoint is gone from the admin API; its row stays for the deliveries that refer to it.
ALTER TABLE webhook_endpoints ADD COLUMN deleted_at INTEGER;
UPDATE webhook_endpoints SET deleted_at = updated_at WHERE disabled_reason = 'deleted';
