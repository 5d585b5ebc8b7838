//! The platform's store: where metadata lives and how it is brought up to date.

use crate::ServiceError;

pub use tamis_store::{Artifacts, Store};

/// The default metadata database: an SQLite file under the data directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./tamis-data/tamis.db";

/// Connects to the metadata database and applies the migrations it lacks;
/// returns the store, ready for use.
pub async fn open_store(url: &str) -> Result<tamis_store::Store, ServiceError> {
    let store = tamis_store::Store::connect(url).await?;
    store.migrate().await?;
    Ok(store)
}

/// Opens the artifact store at `url` (default: `DATA_DIR/artifacts`), with
/// scratch space under `DATA_DIR/work`, and checks that it answers.
pub async fn open_artifacts(
    url: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<tamis_store::Artifacts, ServiceError> {
    let url = match url {
        Some(u) => u.to_string(),
        None => data_dir.join("artifacts").display().to_string(),
    };
    let a = tamis_store::Artifacts::open(&url, data_dir.join("work"))?;
    a.check().await?;
    Ok(a)
}

/// Every tenant with its rows used this month.
pub async fn tenants(
    store: &tamis_store::Store,
) -> Result<Vec<(tamis_store::Tenant, i64)>, ServiceError> {
    let month = tamis_store::current_month();
    let mut out = Vec::new();
    for t in store.tenants().await? {
        let used = store.usage(&t.id, &month).await?;
        out.push((t, used));
    }
    Ok(out)
}

/// Changes a tenant's limits, found by name or id (audited as a system action).
pub async fn update_tenant(
    store: &tamis_store::Store,
    name_or_id: &str,
    max_concurrent_jobs: Option<i64>,
    rows_per_month: Option<Option<i64>>,
) -> Result<tamis_store::Tenant, ServiceError> {
    if max_concurrent_jobs.is_some_and(|n| n < 1) {
        return Err(ServiceError::BadJob(
            "--max-concurrent-jobs must be at least 1".into(),
        ));
    }
    if rows_per_month.flatten().is_some_and(|n| n < 0) {
        return Err(ServiceError::BadJob(
            "--rows-per-month must be a count of rows or `unlimited`".into(),
        ));
    }
    let t = store
        .tenants()
        .await?
        .into_iter()
        .find(|t| t.name == name_or_id || t.id == name_or_id)
        .ok_or_else(|| tamis_store::StoreError::NotFound(format!("tenant `{name_or_id}`")))?;
    let t = store
        .update_tenant(&t.id, max_concurrent_jobs, rows_per_month)
        .await?;
    store
        .audit(
            Some(&t.id),
            "system",
            "tenant.update",
            &t.id,
            &serde_json::json!({"max_concurrent_jobs": t.max_concurrent_jobs, "rows_per_month": t.rows_per_month}),
        )
        .await?;
    Ok(t)
}

/// Creates a tenant and its first admin (audited as a system action).
pub async fn create_tenant(
    store: &tamis_store::Store,
    name: &str,
    max_concurrent_jobs: i64,
    rows_per_month: Option<i64>,
    admin_email: &str,
    admin_password: &str,
) -> Result<(tamis_store::Tenant, tamis_store::User), ServiceError> {
    if admin_password.chars().count() < 8 {
        return Err(ServiceError::BadJob(
            "the admin password needs at least 8 characters".into(),
        ));
    }
    if max_concurrent_jobs < 1 {
        return Err(ServiceError::BadJob(
            "--max-concurrent-jobs must be at least 1".into(),
        ));
    }
    let t = store
        .create_tenant(name, max_concurrent_jobs, rows_per_month)
        .await?;
    let u = store
        .create_user(&t.id, admin_email, admin_password, "admin")
        .await?;
    store
        .audit(
            Some(&t.id),
            "system",
            "tenant.create",
            &t.id,
            &serde_json::json!({"admin": u.id}),
        )
        .await?;
    Ok((t, u))
}
