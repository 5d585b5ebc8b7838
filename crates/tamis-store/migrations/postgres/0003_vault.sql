-- The token vault of each tenant: a token (a keyed hash of the value) and the
-- value encrypted as `enc:<key id>:<hex>`. Only a holder of the key reads it.
CREATE TABLE vault (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    token TEXT NOT NULL,
    enc TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, token)
);
