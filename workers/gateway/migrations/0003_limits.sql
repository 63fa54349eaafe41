-- Rate limits per tenant and per key: JSON {rpm?, tpm?, max_concurrent?}; NULL = unlimited.
ALTER TABLE tenants ADD COLUMN limits TEXT;
ALTER TABLE api_keys ADD COLUMN limits TEXT;
