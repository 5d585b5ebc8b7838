-- tamis metadata, SQLite. Times are milliseconds since the Unix epoch; flags are 0/1;
-- JSON documents are text. The PostgreSQL migration of the same number has the same
-- tables and columns.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    max_concurrent_jobs BIGINT NOT NULL DEFAULT 2,
    rows_per_month BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    tier TEXT NOT NULL DEFAULT 'free',
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT
);

CREATE TABLE datasets (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE dataset_versions (
    id TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL REFERENCES datasets(id),
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    version BIGINT NOT NULL,
    artifact TEXT NOT NULL,
    checksum TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    schema_json TEXT,
    profile_json TEXT,
    rows BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (dataset_id, version)
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    dataset_id TEXT,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    pass TEXT,
    progress DOUBLE PRECISION NOT NULL DEFAULT 0,
    eta_ms BIGINT,
    metrics TEXT NOT NULL DEFAULT '{}',
    result TEXT,
    error TEXT,
    idempotency_key TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_after BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX jobs_queue ON jobs (state, run_after, created_at);
CREATE INDEX jobs_tenant ON jobs (tenant_id, created_at);

CREATE TABLE job_logs (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE artifacts (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    job_id TEXT,
    dataset_id TEXT,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL,
    ts BIGINT NOT NULL
);
CREATE INDEX audit_tenant ON audit (tenant_id, id);

CREATE TABLE usage (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    month TEXT NOT NULL,
    rows BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, month)
);
