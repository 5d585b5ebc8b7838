-- The dataset listing reads each dataset's latest version and version count
-- for one tenant in one query (Store::datasets_latest): without this index it
-- would scan every tenant's versions.
CREATE INDEX dataset_versions_tenant ON dataset_versions (tenant_id, dataset_id, version);
