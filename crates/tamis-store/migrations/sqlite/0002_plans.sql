-- Saved cleaning plans: a name, the dataset they were made for (if any) and the plan document.
CREATE TABLE plans (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    dataset_id TEXT,
    name TEXT NOT NULL,
    plan TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX plans_tenant ON plans (tenant_id, created_at);
