-- The hourly cron reads each subscribed tenant's aggregates of the last day by hour.
CREATE INDEX usage_hourly_by_tenant_hour ON usage_hourly (tenant_id, hour);
