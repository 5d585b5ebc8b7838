//! `tamis-store`: the metadata repository and the job queue.
//!
//! One [`Store`] over SQLite (the zero-setup default, `sqlite://./tamis-data/tamis.db`)
//! or PostgreSQL (`postgres://…`), through sqlx's `Any` driver: every statement is
//! written once in the SQL both accept (`$N` parameters, BIGINT milliseconds, 0/1
//! flags, JSON as text), and only what differs is per backend: the embedded
//! migrations and the queue's lease statement (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, where many workers share one queue; SQLite serialises writers).
//!
//! Every read of tenant data takes the tenant id and filters on it: a row of
//! another tenant is "not found", never returned.

pub mod artifacts;
mod jobs;
pub mod secret;

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use artifacts::{Artifacts, Download, LocalCopy, Put};
pub use jobs::{
    Completion, Heartbeat, Job, JobFilter, JobState, LogLine, NewJob, Progress, backoff_ms,
};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one tamis reads.
    #[error("database URL `{0}`: use sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    BadUrl(String),
    /// The database refused or failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// No such row (or it belongs to another tenant).
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name is taken, or a state change is not allowed.
    #[error("{0}")]
    Conflict(String),
    /// The queue holds its maximum of queued jobs.
    #[error("the queue is full ({0} jobs waiting); retry later")]
    QueueFull(i64),
    /// A worker acted on a job it no longer holds (its lease expired and the job moved on).
    #[error("job {0}: this worker no longer holds its lease")]
    LeaseLost(String),
    /// A stored document is not valid JSON (a bug or a hand edit).
    #[error("stored JSON in {0}: {1}")]
    Json(String, serde_json::Error),
    /// The artifact store's URL is not one tamis reads.
    #[error("artifact store `{0}`: use a directory, file:///DIR or s3://BUCKET[/PREFIX]")]
    BadArtifactsUrl(String),
    /// The artifact store refused or failed.
    #[error("artifact store, `{key}`: {source}")]
    Artifact {
        /// The object (or the store's URL).
        key: String,
        /// Why.
        #[source]
        source: object_store::Error,
    },
    /// A local file on its way to or from the artifact store.
    #[error("`{path}`: {source}")]
    ArtifactFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// `NotFound(what)` when an update touched no row (missing, or another tenant's).
fn found(rows: u64, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The `usage` table's key for this calendar month (UTC): `YYYY-MM`. Workers
/// add to it and quota checks read it.
pub fn current_month() -> String {
    chrono::Utc::now().format("%Y-%m").to_string()
}

/// A new random id with a readable prefix (`job_…`, `ds_…`): 128 random bits in hex.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", secret::random_hex(16))
}

/// A new id that sorts in creation order within this process (then by time
/// across processes): milliseconds and a counter in hex, then 48 random bits.
/// Jobs get these, so the queue's `ORDER BY created_at, id` is first in, first
/// out even for jobs submitted in the same millisecond.
pub fn new_ordered_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff;
    format!(
        "{prefix}_{:012x}{n:04x}{}",
        now_ms().max(0),
        secret::random_hex(6)
    )
}

/// A tenant: the unit of isolation, limits and quotas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Jobs it may run at once.
    pub max_concurrent_jobs: i64,
    /// Rows it may process per calendar month (`None`: unlimited).
    pub rows_per_month: Option<i64>,
    /// Created (ms).
    pub created_at: i64,
}

/// The five roles, least to most powerful in what they may change.
pub const ROLES: [&str; 5] = ["viewer", "analyst", "reviewer", "engineer", "admin"];

/// A user of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Login (unique over all tenants).
    pub email: String,
    /// One of [`ROLES`].
    pub role: String,
    /// Whether login is refused.
    pub disabled: bool,
    /// Created (ms).
    pub created_at: i64,
    /// The argon2 hash (PHC string); never serialised.
    #[serde(skip)]
    pub password_hash: String,
    /// Session tokens issued before this instant (ms) are refused: set when
    /// the password changes. Never serialised.
    #[serde(skip)]
    pub tokens_valid_after: i64,
}

/// An API key (the secret itself is shown once, at creation, and stored hashed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// The user it acts as.
    pub user_id: String,
    /// Label.
    pub name: String,
    /// The key's public prefix (how it is looked up).
    pub prefix: String,
    /// What it may do: `dataset:ID` / `action:NAME` entries, or `*`.
    pub scopes: Vec<String>,
    /// Rate-limit tier.
    pub tier: String,
    /// Created (ms).
    pub created_at: i64,
    /// Expiry (ms), if any.
    pub expires_at: Option<i64>,
    /// Revoked (ms), if it was.
    pub revoked_at: Option<i64>,
}

/// A dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Name (unique in the tenant).
    pub name: String,
    /// Who created it.
    pub created_by: String,
    /// Created (ms).
    pub created_at: i64,
}

/// One version of a dataset: an artifact with its checksum, schema and profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// Id.
    pub id: String,
    /// Dataset.
    pub dataset_id: String,
    /// 1, 2, …
    pub version: i64,
    /// Where the bytes are (an artifact-store path).
    pub artifact: String,
    /// SHA-256 of the bytes.
    pub checksum: String,
    /// Size.
    pub bytes: i64,
    /// Columns and types, when known.
    pub schema: Option<Value>,
    /// The profile, when computed.
    pub profile: Option<Value>,
    /// Rows, when known.
    pub rows: Option<i64>,
    /// Created (ms).
    pub created_at: i64,
}

/// A stored output, upload or report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// The job that wrote it.
    pub job_id: Option<String>,
    /// The dataset it belongs to.
    pub dataset_id: Option<String>,
    /// upload, output, provenance, report, log, …
    pub kind: String,
    /// Path in the artifact store.
    pub path: String,
    /// Size.
    pub bytes: i64,
    /// SHA-256.
    pub sha256: String,
    /// Created (ms).
    pub created_at: i64,
}

/// A saved cleaning plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// The dataset it was made for, if any.
    pub dataset_id: Option<String>,
    /// Label.
    pub name: String,
    /// The plan document (as `tamis clean --plan` reads it).
    pub plan: Value,
    /// Who saved it.
    pub created_by: String,
    /// Saved (ms).
    pub created_at: i64,
}

/// One audit entry: who did what to what, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence.
    pub id: i64,
    /// Tenant (`None`: a system action).
    pub tenant_id: Option<String>,
    /// User id, API key id or `system`.
    pub actor: String,
    /// e.g. `dataset.download`, `user.create`.
    pub action: String,
    /// What it acted on.
    pub target: String,
    /// Anything else (never secrets).
    pub details: Value,
    /// When (ms).
    pub ts: i64,
}

/// The metadata store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Bumped by every job log line and job state change made through this
    /// store (this process); watchers wake at once instead of polling.
    changes: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// Jobs that may wait in the queue at once (enqueue beyond it is refused).
    pub max_queue_depth: i64,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub(crate) fn json_text(v: &Value) -> String {
    v.to_string()
}

pub(crate) fn parse_json(what: &str, s: &str) -> Result<Value, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Json(what.to_string(), e))
}

fn opt_json(what: &str, s: Option<String>) -> Result<Option<Value>, StoreError> {
    s.map(|s| parse_json(what, &s)).transpose()
}

fn tenant_of(r: &AnyRow) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        max_concurrent_jobs: r.try_get("max_concurrent_jobs")?,
        rows_per_month: r.try_get("rows_per_month")?,
        created_at: r.try_get("created_at")?,
    })
}

fn user_of(r: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        email: r.try_get("email")?,
        role: r.try_get("role")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        created_at: r.try_get("created_at")?,
        password_hash: r.try_get("password_hash")?,
        tokens_valid_after: r.try_get("tokens_valid_after")?,
    })
}

fn key_of(r: &AnyRow) -> Result<ApiKey, StoreError> {
    let scopes: String = r.try_get("scopes")?;
    Ok(ApiKey {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        scopes: serde_json::from_str(&scopes)
            .map_err(|e| StoreError::Json("api_keys.scopes".into(), e))?,
        tier: r.try_get("tier")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn dataset_of(r: &AnyRow) -> Result<Dataset, StoreError> {
    Ok(Dataset {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        name: r.try_get("name")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

/// The columns of `dataset_versions v` that [`version_of`] reads, the
/// profile as `profile` (the column, or [`NO_PROFILE`] for brief versions).
fn version_columns(profile: &str) -> String {
    format!(
        "v.id, v.dataset_id, v.version, v.artifact, v.checksum, v.bytes, v.schema_json, \
         {profile} AS profile_json, v.rows, v.created_at"
    )
}

/// A brief version's profile: none, so no profile is read.
const NO_PROFILE: &str = "CAST(NULL AS TEXT)";

fn version_of(r: &AnyRow) -> Result<Version, StoreError> {
    Ok(Version {
        id: r.try_get("id")?,
        dataset_id: r.try_get("dataset_id")?,
        version: r.try_get("version")?,
        artifact: r.try_get("artifact")?,
        checksum: r.try_get("checksum")?,
        bytes: r.try_get("bytes")?,
        schema: opt_json("dataset_versions.schema_json", r.try_get("schema_json")?)?,
        profile: opt_json("dataset_versions.profile_json", r.try_get("profile_json")?)?,
        rows: r.try_get("rows")?,
        created_at: r.try_get("created_at")?,
    })
}

fn artifact_of(r: &AnyRow) -> Result<Artifact, StoreError> {
    Ok(Artifact {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        job_id: r.try_get("job_id")?,
        dataset_id: r.try_get("dataset_id")?,
        kind: r.try_get("kind")?,
        path: r.try_get("path")?,
        bytes: r.try_get("bytes")?,
        sha256: r.try_get("sha256")?,
        created_at: r.try_get("created_at")?,
    })
}

fn plan_of(r: &AnyRow) -> Result<SavedPlan, StoreError> {
    Ok(SavedPlan {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        dataset_id: r.try_get("dataset_id")?,
        name: r.try_get("name")?,
        plan: parse_json("plans.plan", &r.try_get::<String, _>("plan")?)?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A unique-constraint violation becomes a conflict that names what is taken.
fn unique(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what()),
        _ => StoreError::Db(e),
    }
}

impl Store {
    /// Connects to `url` (`sqlite://PATH`, created if missing, or `postgres://…`).
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(StoreError::BadUrl(url.into()));
            }
            let file = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(file).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::BadUrl(format!("{url}: cannot create {}: {e}", dir.display()))
                })?;
            }
            let sep = if path.contains('?') { '&' } else { '?' };
            (Backend::Sqlite, format!("sqlite://{path}{sep}mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::BadUrl(url.into()));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            // Readers do not wait for the writer; the file survives a crash mid-write.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        Ok(Store {
            pool,
            backend,
            changes: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
            max_queue_depth: 10_000,
        })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool (for health checks).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies the embedded migrations of this backend not yet applied.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Wakes on every job log line or job state change written through this
    /// store in this process (other processes' writes are seen by polling).
    pub fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    // ------------------------------------------------------------ tenants and users

    /// Creates a tenant.
    pub async fn create_tenant(
        &self,
        name: &str,
        max_concurrent_jobs: i64,
        rows_per_month: Option<i64>,
    ) -> Result<Tenant, StoreError> {
        let t = Tenant {
            id: new_id("tn"),
            name: name.to_string(),
            max_concurrent_jobs,
            rows_per_month,
            created_at: now_ms(),
        };
        sqlx::query("INSERT INTO tenants (id, name, max_concurrent_jobs, rows_per_month, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&t.id)
            .bind(&t.name)
            .bind(t.max_concurrent_jobs)
            .bind(t.rows_per_month)
            .bind(t.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| unique(e, || format!("a tenant named `{name}` exists")))?;
        Ok(t)
    }

    /// A tenant by id.
    pub async fn tenant(&self, id: &str) -> Result<Tenant, StoreError> {
        let r = sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("tenant {id}")))?;
        tenant_of(&r)
    }

    /// Every tenant, by name (for operators: the CLI, not the API).
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        sqlx::query("SELECT * FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(tenant_of)
            .collect()
    }

    /// Changes a tenant's limits (each when given; `Some(None)` lifts the row quota).
    pub async fn update_tenant(
        &self,
        id: &str,
        max_concurrent_jobs: Option<i64>,
        rows_per_month: Option<Option<i64>>,
    ) -> Result<Tenant, StoreError> {
        let mut t = self.tenant(id).await?;
        if let Some(n) = max_concurrent_jobs {
            t.max_concurrent_jobs = n;
        }
        if let Some(r) = rows_per_month {
            t.rows_per_month = r;
        }
        let n = sqlx::query(
            "UPDATE tenants SET max_concurrent_jobs = $1, rows_per_month = $2 WHERE id = $3",
        )
        .bind(t.max_concurrent_jobs)
        .bind(t.rows_per_month)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        found(n, || format!("tenant {id}"))?;
        Ok(t)
    }

    /// Creates a user with an argon2 hash of `password`.
    pub async fn create_user(
        &self,
        tenant_id: &str,
        email: &str,
        password: &str,
        role: &str,
    ) -> Result<User, StoreError> {
        if !ROLES.contains(&role) {
            return Err(StoreError::Conflict(format!(
                "role `{role}` is not one of {}",
                ROLES.join(", ")
            )));
        }
        let u = User {
            id: new_id("usr"),
            tenant_id: tenant_id.to_string(),
            email: email.trim().to_lowercase(),
            role: role.to_string(),
            disabled: false,
            created_at: now_ms(),
            password_hash: secret::hash_password(password)?,
            tokens_valid_after: 0,
        };
        sqlx::query("INSERT INTO users (id, tenant_id, email, password_hash, role, disabled, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6)")
            .bind(&u.id)
            .bind(&u.tenant_id)
            .bind(&u.email)
            .bind(&u.password_hash)
            .bind(&u.role)
            .bind(u.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| unique(e, || format!("a user `{}` exists", u.email)))?;
        Ok(u)
    }

    /// The user with this e-mail and password (`None` when either is wrong, or
    /// the user is disabled: the caller cannot tell which). The hash is
    /// verified even for an unknown e-mail, so timing does not say either.
    pub async fn login(&self, email: &str, password: &str) -> Result<Option<User>, StoreError> {
        let r = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        let user = r.as_ref().map(user_of).transpose()?;
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.as_str())
            .unwrap_or(secret::DUMMY_HASH);
        let ok = secret::verify_password(password, hash);
        Ok(user.filter(|u| ok && !u.disabled))
    }

    /// A user of a tenant.
    pub async fn user(&self, tenant_id: &str, id: &str) -> Result<User, StoreError> {
        let r = sqlx::query("SELECT * FROM users WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
        user_of(&r)
    }

    /// Changes a user of the tenant: role, disabled, password (each when
    /// given; the others are left as they are, even if another change lands
    /// at the same time). Returns the user after.
    pub async fn update_user(
        &self,
        tenant_id: &str,
        id: &str,
        role: Option<&str>,
        disabled: Option<bool>,
        password: Option<&str>,
    ) -> Result<User, StoreError> {
        if let Some(role) = role
            && !ROLES.contains(&role)
        {
            return Err(StoreError::Conflict(format!(
                "role `{role}` is not one of {}",
                ROLES.join(", ")
            )));
        }
        // argon2 is slow on purpose: off the async threads.
        let hash = match password {
            Some(p) => {
                let p = p.to_string();
                Some(
                    tokio::task::spawn_blocking(move || secret::hash_password(&p))
                        .await
                        .map_err(|e| StoreError::Conflict(format!("hashing stopped: {e}")))??,
                )
            }
            None => None,
        };
        // A new password ends the sessions the old one opened.
        let valid_after = hash.as_ref().map(|_| now_ms());
        let n = sqlx::query("UPDATE users SET role = COALESCE($1, role), disabled = COALESCE($2, disabled), password_hash = COALESCE($3, password_hash), tokens_valid_after = COALESCE($4, tokens_valid_after) WHERE id = $5 AND tenant_id = $6")
            .bind(role)
            .bind(disabled.map(i64::from))
            .bind(hash)
            .bind(valid_after)
            .bind(id)
            .bind(tenant_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        found(n, || format!("user {id}"))?;
        self.user(tenant_id, id).await
    }

    /// Creates an API key; returns it and the secret, which is not stored and
    /// cannot be shown again.
    pub async fn create_api_key(
        &self,
        user: &User,
        name: &str,
        scopes: &[String],
        tier: &str,
        expires_at: Option<i64>,
    ) -> Result<(ApiKey, String), StoreError> {
        let (prefix, secret_text, hash) = secret::new_api_key();
        let k = ApiKey {
            id: new_id("key"),
            tenant_id: user.tenant_id.clone(),
            user_id: user.id.clone(),
            name: name.to_string(),
            prefix,
            scopes: scopes.to_vec(),
            tier: tier.to_string(),
            created_at: now_ms(),
            expires_at,
            revoked_at: None,
        };
        sqlx::query("INSERT INTO api_keys (id, tenant_id, user_id, name, prefix, key_hash, scopes, tier, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
            .bind(&k.id)
            .bind(&k.tenant_id)
            .bind(&k.user_id)
            .bind(&k.name)
            .bind(&k.prefix)
            .bind(&hash)
            .bind(json_text(&serde_json::json!(k.scopes)))
            .bind(&k.tier)
            .bind(k.created_at)
            .bind(k.expires_at)
            .execute(&self.pool)
            .await?;
        Ok((k, secret_text))
    }

    /// The live key a presented secret belongs to (`None`: unknown, wrong,
    /// revoked or expired), with its user.
    pub async fn find_api_key(
        &self,
        presented: &str,
    ) -> Result<Option<(ApiKey, User)>, StoreError> {
        let Some(prefix) = secret::api_key_prefix(presented) else {
            return Ok(None);
        };
        let Some(r) = sqlx::query("SELECT * FROM api_keys WHERE prefix = $1")
            .bind(prefix)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let hash: String = r.try_get("key_hash")?;
        if !secret::api_key_matches(presented, &hash) {
            return Ok(None);
        }
        let k = key_of(&r)?;
        let now = now_ms();
        if k.revoked_at.is_some() || k.expires_at.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        let user = self.user(&k.tenant_id, &k.user_id).await?;
        if user.disabled {
            return Ok(None);
        }
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&k.id)
            .execute(&self.pool)
            .await?;
        Ok(Some((k, user)))
    }

    /// Revokes a key of the tenant.
    pub async fn revoke_api_key(&self, tenant_id: &str, id: &str) -> Result<(), StoreError> {
        let n = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .bind(tenant_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        found(n, || format!("api key {id}"))
    }

    // ------------------------------------------------------------ datasets

    /// Creates a dataset.
    pub async fn create_dataset(
        &self,
        tenant_id: &str,
        name: &str,
        created_by: &str,
    ) -> Result<Dataset, StoreError> {
        let d = Dataset {
            id: new_id("ds"),
            tenant_id: tenant_id.to_string(),
            name: name.to_string(),
            created_by: created_by.to_string(),
            created_at: now_ms(),
        };
        sqlx::query("INSERT INTO datasets (id, tenant_id, name, created_by, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&d.id)
            .bind(&d.tenant_id)
            .bind(&d.name)
            .bind(&d.created_by)
            .bind(d.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| unique(e, || format!("a dataset named `{name}` exists")))?;
        Ok(d)
    }

    /// A dataset of the tenant.
    pub async fn dataset(&self, tenant_id: &str, id: &str) -> Result<Dataset, StoreError> {
        let r = sqlx::query("SELECT * FROM datasets WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("dataset {id}")))?;
        dataset_of(&r)
    }

    /// The tenant's datasets, newest first.
    pub async fn datasets(&self, tenant_id: &str) -> Result<Vec<Dataset>, StoreError> {
        sqlx::query("SELECT * FROM datasets WHERE tenant_id = $1 ORDER BY created_at DESC, id")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(dataset_of)
            .collect()
    }

    /// The tenant's datasets as [`datasets`](Self::datasets) lists them,
    /// each with its number of versions and its latest version (brief: no
    /// profile), in two queries whatever the number of datasets.
    pub async fn datasets_latest(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<(Dataset, i64, Option<Version>)>, StoreError> {
        let sql = format!(
            "SELECT {}, c.n FROM dataset_versions v JOIN \
             (SELECT dataset_id, MAX(version) AS top, CAST(COUNT(*) AS BIGINT) AS n \
              FROM dataset_versions WHERE tenant_id = $1 GROUP BY dataset_id) c \
             ON v.dataset_id = c.dataset_id AND v.version = c.top \
             WHERE v.tenant_id = $1",
            version_columns(NO_PROFILE)
        );
        let mut latest: HashMap<String, (i64, Version)> = HashMap::new();
        for r in sqlx::query(&sql)
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?
        {
            let v = version_of(&r)?;
            latest.insert(v.dataset_id.clone(), (r.try_get("n")?, v));
        }
        Ok(self
            .datasets(tenant_id)
            .await?
            .into_iter()
            .map(|d| match latest.remove(&d.id) {
                Some((n, v)) => (d, n, Some(v)),
                None => (d, 0, None),
            })
            .collect())
    }

    /// Adds the next version of a dataset of the tenant.
    pub async fn add_version(
        &self,
        tenant_id: &str,
        dataset_id: &str,
        artifact: &str,
        checksum: &str,
        bytes: i64,
    ) -> Result<Version, StoreError> {
        self.dataset(tenant_id, dataset_id).await?;
        // The next number and the insert in one transaction; a concurrent
        // writer that takes the same number fails on the unique key.
        let mut tx = self.pool.begin().await?;
        let next: i64 = sqlx::query(
            "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT) AS v FROM dataset_versions WHERE dataset_id = $1",
        )
        .bind(dataset_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("v")?;
        let v = Version {
            id: new_id("dv"),
            dataset_id: dataset_id.to_string(),
            version: next,
            artifact: artifact.to_string(),
            checksum: checksum.to_string(),
            bytes,
            schema: None,
            profile: None,
            rows: None,
            created_at: now_ms(),
        };
        sqlx::query("INSERT INTO dataset_versions (id, dataset_id, tenant_id, version, artifact, checksum, bytes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&v.id)
            .bind(&v.dataset_id)
            .bind(tenant_id)
            .bind(v.version)
            .bind(&v.artifact)
            .bind(&v.checksum)
            .bind(v.bytes)
            .bind(v.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique(e, || format!("dataset {dataset_id}: version {next} was just added; retry")))?;
        tx.commit().await?;
        Ok(v)
    }

    /// Records a version's schema, profile and row count.
    pub async fn set_profile(
        &self,
        tenant_id: &str,
        version_id: &str,
        schema: &Value,
        profile: &Value,
        rows: i64,
    ) -> Result<(), StoreError> {
        let n = sqlx::query("UPDATE dataset_versions SET schema_json = $1, profile_json = $2, rows = $3 WHERE id = $4 AND tenant_id = $5")
            .bind(json_text(schema))
            .bind(json_text(profile))
            .bind(rows)
            .bind(version_id)
            .bind(tenant_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        found(n, || format!("dataset version {version_id}"))
    }

    /// The versions of a dataset of the tenant, oldest first.
    pub async fn versions(
        &self,
        tenant_id: &str,
        dataset_id: &str,
    ) -> Result<Vec<Version>, StoreError> {
        let d = self.dataset(tenant_id, dataset_id).await?;
        self.versions_of(&d, "v.profile_json").await
    }

    /// The versions of a dataset, oldest first, without their profiles
    /// (`profile` is `None`; `rows` is set once a version is profiled): what
    /// listings need, without reading and parsing every profile. It takes the
    /// dataset as [`Store::dataset`] returned it (scoped to its tenant), so
    /// callers that hold one do not look it up twice.
    pub async fn versions_brief(&self, dataset: &Dataset) -> Result<Vec<Version>, StoreError> {
        self.versions_of(dataset, NO_PROFILE).await
    }

    async fn versions_of(&self, d: &Dataset, profile: &str) -> Result<Vec<Version>, StoreError> {
        let sql = format!(
            "SELECT {} FROM dataset_versions v WHERE v.dataset_id = $1 AND v.tenant_id = $2 ORDER BY v.version",
            version_columns(profile)
        );
        sqlx::query(&sql)
            .bind(&d.id)
            .bind(&d.tenant_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(version_of)
            .collect()
    }

    /// A version's profile as the JSON text it was stored as (`None`: not
    /// profiled yet), for answers that pass it through without parsing.
    pub async fn profile_text(
        &self,
        tenant_id: &str,
        version_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let r = sqlx::query(
            "SELECT profile_json FROM dataset_versions WHERE id = $1 AND tenant_id = $2",
        )
        .bind(version_id)
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("version {version_id}")))?;
        Ok(r.try_get("profile_json")?)
    }

    // ------------------------------------------------------------ artifacts, audit, usage

    /// Records an artifact; recording one with the same id again (a retried
    /// job rewriting its output) updates it rather than adding a second.
    pub async fn add_artifact(&self, a: &Artifact) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO artifacts (id, tenant_id, job_id, dataset_id, kind, path, bytes, sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (id) DO UPDATE SET path = excluded.path, bytes = excluded.bytes, sha256 = excluded.sha256, created_at = excluded.created_at")
            .bind(&a.id)
            .bind(&a.tenant_id)
            .bind(&a.job_id)
            .bind(&a.dataset_id)
            .bind(&a.kind)
            .bind(&a.path)
            .bind(a.bytes)
            .bind(&a.sha256)
            .bind(a.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets a job's artifact records (a run cancelled while its outputs
    /// were stored); returns how many there were. Only the worker holding
    /// the job may: for another, it is [`StoreError::LeaseLost`] and nothing
    /// is removed. The objects are the caller's to delete.
    pub async fn remove_job_artifacts(
        &self,
        tenant_id: &str,
        job_id: &str,
        worker: &str,
    ) -> Result<u64, StoreError> {
        // One statement: the lease is checked where the rows are deleted.
        let n = sqlx::query(
            "DELETE FROM artifacts WHERE tenant_id = $1 AND job_id = $2 AND EXISTS \
             (SELECT 1 FROM jobs WHERE id = $2 AND tenant_id = $1 AND lease_owner = $3 AND state = 'running')",
        )
        .bind(tenant_id)
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            // None recorded yet, or not held: the latter is refused.
            self.cancel_requested(job_id, worker).await?;
        }
        Ok(n)
    }

    /// A job's artifacts (of the tenant).
    pub async fn artifacts(
        &self,
        tenant_id: &str,
        job_id: &str,
    ) -> Result<Vec<Artifact>, StoreError> {
        sqlx::query(
            "SELECT * FROM artifacts WHERE tenant_id = $1 AND job_id = $2 ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(artifact_of)
        .collect()
    }

    /// Appends to the audit log.
    pub async fn audit(
        &self,
        tenant_id: Option<&str>,
        actor: &str,
        action: &str,
        target: &str,
        details: &Value,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO audit (tenant_id, actor, action, target, details, ts) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(tenant_id)
            .bind(actor)
            .bind(action)
            .bind(target)
            .bind(json_text(details))
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The tenant's audit log, newest first, up to `limit` entries.
    pub async fn audit_log(
        &self,
        tenant_id: &str,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM audit WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2")
                .bind(tenant_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let details: String = r.try_get("details")?;
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    tenant_id: r.try_get("tenant_id")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    details: parse_json("audit.details", &details)?,
                    ts: r.try_get("ts")?,
                })
            })
            .collect()
    }

    /// Adds processed rows to the tenant's count for `month` (`YYYY-MM`); returns the new total.
    pub async fn add_usage(
        &self,
        tenant_id: &str,
        month: &str,
        rows: i64,
    ) -> Result<i64, StoreError> {
        sqlx::query("INSERT INTO usage (tenant_id, month, rows) VALUES ($1, $2, $3) ON CONFLICT (tenant_id, month) DO UPDATE SET rows = usage.rows + excluded.rows")
            .bind(tenant_id)
            .bind(month)
            .bind(rows)
            .execute(&self.pool)
            .await?;
        self.usage(tenant_id, month).await
    }

    /// Rows the tenant processed in `month`.
    pub async fn usage(&self, tenant_id: &str, month: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT rows FROM usage WHERE tenant_id = $1 AND month = $2")
                .bind(tenant_id)
                .bind(month)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get::<i64, _>("rows"))
                .transpose()?
                .unwrap_or(0),
        )
    }

    /// The tenant's users, by email.
    pub async fn users(&self, tenant_id: &str) -> Result<Vec<User>, StoreError> {
        sqlx::query("SELECT * FROM users WHERE tenant_id = $1 ORDER BY email")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_of)
            .collect()
    }

    /// The tenant's API keys (never their secrets), newest first.
    pub async fn api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        sqlx::query("SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(key_of)
            .collect()
    }

    /// One artifact of the tenant.
    pub async fn artifact(&self, tenant_id: &str, id: &str) -> Result<Artifact, StoreError> {
        let r = sqlx::query("SELECT * FROM artifacts WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("artifact {id}")))?;
        artifact_of(&r)
    }

    /// Saves a plan.
    pub async fn save_plan(
        &self,
        tenant_id: &str,
        dataset_id: Option<&str>,
        name: &str,
        plan: &Value,
        created_by: &str,
    ) -> Result<SavedPlan, StoreError> {
        if let Some(d) = dataset_id {
            self.dataset(tenant_id, d).await?;
        }
        let p = SavedPlan {
            id: new_id("plan"),
            tenant_id: tenant_id.to_string(),
            dataset_id: dataset_id.map(String::from),
            name: name.to_string(),
            plan: plan.clone(),
            created_by: created_by.to_string(),
            created_at: now_ms(),
        };
        sqlx::query("INSERT INTO plans (id, tenant_id, dataset_id, name, plan, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&p.id)
            .bind(&p.tenant_id)
            .bind(&p.dataset_id)
            .bind(&p.name)
            .bind(json_text(&p.plan))
            .bind(&p.created_by)
            .bind(p.created_at)
            .execute(&self.pool)
            .await?;
        Ok(p)
    }

    /// One saved plan of the tenant.
    pub async fn plan(&self, tenant_id: &str, id: &str) -> Result<SavedPlan, StoreError> {
        let r = sqlx::query("SELECT * FROM plans WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("plan {id}")))?;
        plan_of(&r)
    }

    /// The tenant's saved plans, newest first (of one dataset, if given).
    pub async fn plans(
        &self,
        tenant_id: &str,
        dataset_id: Option<&str>,
    ) -> Result<Vec<SavedPlan>, StoreError> {
        sqlx::query("SELECT * FROM plans WHERE tenant_id = $1 AND ($2 IS NULL OR dataset_id = $2) ORDER BY created_at DESC, id")
            .bind(tenant_id)
            .bind(dataset_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(plan_of)
            .collect()
    }

    // ------------------------------------------------------------ token vault

    /// Adds encrypted vault entries `(token, enc)` of the tenant; a token it
    /// already holds is kept (tokens are keyed hashes of the value, so the same
    /// token always stands for the same value). Returns how many were new.
    pub async fn put_vault_entries(
        &self,
        tenant_id: &str,
        entries: &[(String, String)],
    ) -> Result<u64, StoreError> {
        const CHUNK: usize = 500;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let mut added = 0;
        for chunk in entries.chunks(CHUNK) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    format!(
                        "(${}, ${}, ${}, ${})",
                        4 * i + 1,
                        4 * i + 2,
                        4 * i + 3,
                        4 * i + 4
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO vault (tenant_id, token, enc, created_at) VALUES {} ON CONFLICT (tenant_id, token) DO NOTHING",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (token, enc) in chunk {
                q = q.bind(tenant_id).bind(token).bind(enc).bind(now);
            }
            added += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(added)
    }

    /// The tenant's vault entries `(token, enc)` of these tokens (tokens it
    /// does not hold are left out; another tenant's never show).
    pub async fn vault_entries(
        &self,
        tenant_id: &str,
        tokens: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        const CHUNK: usize = 500;
        let mut out = Vec::new();
        for chunk in tokens.chunks(CHUNK) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT token, enc FROM vault WHERE tenant_id = $1 AND token IN ({}) ORDER BY token",
                marks.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(tenant_id);
            for t in chunk {
                q = q.bind(t);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push((r.try_get("token")?, r.try_get("enc")?));
            }
        }
        Ok(out)
    }

    /// Up to `limit` of the tenant's vault entries `(token, enc)` in token
    /// order, from just after the token `after` ("": from the first). Walks
    /// a vault of any size in pages.
    pub async fn vault_page(
        &self,
        tenant_id: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT token, enc FROM vault WHERE tenant_id = $1 AND token > $2 ORDER BY token LIMIT $3",
        )
        .bind(tenant_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("token")?, r.try_get("enc")?)))
            .collect()
    }

    /// Replaces the encrypted values of tokens the tenant holds (a
    /// re-encryption: the same values under another key), in one
    /// transaction. Tokens it does not hold are not added. Returns how many
    /// entries changed.
    pub async fn set_vault_entries(
        &self,
        tenant_id: &str,
        entries: &[(String, String)],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut changed = 0;
        for (token, enc) in entries {
            changed += sqlx::query("UPDATE vault SET enc = $1 WHERE tenant_id = $2 AND token = $3")
                .bind(enc)
                .bind(tenant_id)
                .bind(token)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }
}
