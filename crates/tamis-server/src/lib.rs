//! `tamis-server`: the REST + WebSocket API, auth, tenants, rate limits,
//! metrics and the web UI.
//!
//! [`app`] builds the whole router over an [`AppState`], so tests drive every
//! handler without a socket; [`serve`] binds it and runs workers beside it.
//! Handlers call the store and the use cases in `tamis-service`, as the CLI
//! does; every query is scoped to the caller's tenant.

pub mod admin;
pub mod auth;
pub mod datasets;
pub mod error;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod ops;
pub mod ui;
pub mod vault;
pub mod ws;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tamis_store::{Artifacts, Store};

pub use crate::auth::{JwtKeys, Principal};
pub use crate::error::ApiError;
pub use crate::limits::{Limiter, Tiers};
pub use crate::metrics::Metrics;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where uploads and job outputs live (absolute).
    pub data_dir: PathBuf,
    /// The largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// How long a session token is valid, in seconds (24 h).
    pub token_ttl_secs: i64,
    /// The rate-limit tier of users logged in with a session token.
    pub user_tier: String,
    /// Directories the server may ingest files from (`POST /datasets/ingest`).
    pub ingest_roots: Vec<PathBuf>,
    /// S3 prefixes (`s3://BUCKET/PREFIX`) the server may ingest objects from.
    pub ingest_urls: Vec<String>,
    /// S3 options (`aws_endpoint`, …) for ingests, over the AWS_* variables.
    pub s3_options: Vec<(String, String)>,
    /// The token vault keys (`TAMIS_PII_KEY` and `TAMIS_ENCRYPTION_KEYS`):
    /// the in-process workers tokenize with them and admins detokenize.
    pub vault_keys: Option<tamis_privacy::anonymize::Keys>,
}

impl ServerConfig {
    /// Defaults for a data directory: 10 GiB uploads, 24 h tokens, `free` users.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            max_upload_bytes: 10 << 30,
            token_ttl_secs: 24 * 3600,
            user_tier: "free".into(),
            ingest_roots: Vec::new(),
            ingest_urls: Vec::new(),
            s3_options: Vec::new(),
            vault_keys: None,
        }
    }
}

struct Inner {
    store: Store,
    artifacts: Artifacts,
    config: ServerConfig,
    keys: JwtKeys,
    limiter: Limiter,
    metrics: Metrics,
    users: auth::UserCache,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.0.config)
            .finish()
    }
}

impl AppState {
    /// The state of one server.
    pub fn new(
        store: Store,
        artifacts: Artifacts,
        config: ServerConfig,
        keys: JwtKeys,
        limiter: Limiter,
    ) -> AppState {
        AppState(Arc::new(Inner {
            store,
            artifacts,
            config,
            keys,
            limiter,
            metrics: Metrics::new(),
            users: auth::UserCache::default(),
        }))
    }

    /// The metadata store.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The artifact store.
    pub fn artifacts(&self) -> &Artifacts {
        &self.0.artifacts
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    /// The token keys.
    pub fn keys(&self) -> &JwtKeys {
        &self.0.keys
    }

    /// The rate limiter.
    pub fn limiter(&self) -> &Limiter {
        &self.0.limiter
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// Recently read users' roles and states (session tokens are checked against them).
    pub(crate) fn users(&self) -> &auth::UserCache {
        &self.0.users
    }

    /// A scratch directory for this server's temporary files (under the data directory).
    pub fn scratch(&self) -> PathBuf {
        self.0.config.data_dir.join("work")
    }
}

/// Removes the data directory from a message, so answers never show where
/// the server keeps files (use cases name their inputs by full path).
pub fn redact(message: &str) -> String {
    let dirs = DATA_DIRS.read().unwrap_or_else(|p| p.into_inner());
    let mut out = message.to_string();
    for d in dirs.iter() {
        out = out.replace(d.as_str(), "");
    }
    out
}

/// The data directories of the apps built in this process (one, outside tests).
static DATA_DIRS: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// The whole application: the API under `/api/v1`, the WebSocket, the
/// operational endpoints, the OpenAPI document and the web UI.
pub fn app(state: AppState) -> Router {
    {
        let d = format!("{}/", state.config().data_dir.display());
        let mut dirs = DATA_DIRS.write().unwrap_or_else(|p| p.into_inner());
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    let api = Router::new()
        .merge(admin::routes())
        .merge(jobs::routes())
        .merge(datasets::routes())
        .merge(vault::routes());
    Router::new()
        .nest("/api/v1", api)
        .merge(ws::routes())
        .merge(ops::routes())
        .merge(ui::routes())
        .fallback(|| async { ApiError::not_found("this route") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_context,
        ))
        // JSON bodies (plans, settings) are buffered: at most 8 MiB.
        .layer(DefaultBodyLimit::max(8 << 20))
        .with_state(state)
}

fn request_id_of(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(String::from)
        .unwrap_or_else(|| tamis_store::new_id("req"))
}

/// Per request: an id (taken from `X-Request-Id` when sane), the error body
/// for answers the framework made on its own, latency metrics and one
/// structured log line (method, route, status, time; never the query string,
/// which may hold a token).
async fn request_context(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let id = request_id_of(&req);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let t = Instant::now();
    let mut resp = error::REQUEST_ID
        .scope(
            id.clone(),
            async move { uniform(next.run(req).await).await },
        )
        .await;
    let secs = t.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    st.metrics().observe_http(&method, &route, status, secs);
    tracing::info!(
        request_id = %id,
        method = %method,
        route = %route,
        status,
        ms = (secs * 1000.0),
        "request"
    );
    resp
}

/// Rewrites an error answer that is not JSON (a rejection of axum's, a body
/// over its limit) into the one error body.
async fn uniform(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() || status.is_server_error() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let e = ApiError::new(status, error::code_of(status), message);
    let mut out = e.into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// Records an action of the caller in the tenant's audit log.
pub(crate) async fn audit(
    st: &AppState,
    p: &Principal,
    action: &str,
    target: &str,
    details: &serde_json::Value,
) -> Result<(), ApiError> {
    st.store()
        .audit(Some(&p.tenant_id), &p.actor, action, target, details)
        .await?;
    Ok(())
}

/// A JSON answer with a status.
pub(crate) fn json_status(status: StatusCode, v: serde_json::Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// A local file streamed as a download.
pub(crate) async fn stream_file(
    path: &Path,
    name: &str,
    content_type: &str,
) -> Result<Response, ApiError> {
    let f = tokio::fs::File::open(path)
        .await
        .map_err(|e| ApiError::internal(format!("open {}: {e}", path.display())))?;
    let len = f.metadata().await.map(|m| m.len()).ok();
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 << 10));
    Ok(attachment(body, len, name, content_type))
}

/// An object of the artifact store streamed as a download.
pub(crate) async fn stream_artifact(
    st: &AppState,
    key: &str,
    name: &str,
    content_type: &str,
) -> Result<Response, ApiError> {
    let d = st.artifacts().get(key).await?;
    Ok(attachment(
        Body::from_stream(d.stream),
        Some(d.size),
        name,
        content_type,
    ))
}

/// A download answer: the body, its length when known, a type and a safe file name.
fn attachment(body: Body, len: Option<u64>, name: &str, content_type: &str) -> Response {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// How to run `tamis serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on.
    pub addr: std::net::SocketAddr,
    /// The metadata database URL.
    pub database_url: String,
    /// Server behaviour.
    pub config: ServerConfig,
    /// In-process workers (0: API only).
    pub workers: usize,
    /// Redis for shared rate-limit counters.
    pub redis_url: Option<String>,
    /// Rate-limit tiers.
    pub tiers: Tiers,
    /// PEM key pair for tokens (default: generated under DATA_DIR/keys).
    pub jwt_keys: Option<(PathBuf, PathBuf)>,
    /// Create a demo tenant, admin and example dataset if there is none.
    pub demo: Option<Demo>,
    /// The artifact store: a directory, `file:///DIR` or `s3://BUCKET[/PREFIX]`
    /// (default: DATA_DIR/artifacts).
    pub artifacts: Option<String>,
}

/// The demo seed.
#[derive(Debug, Clone)]
pub struct Demo {
    /// The admin's login.
    pub email: String,
    /// Their password.
    pub password: String,
    /// A CSV file to upload as the example dataset.
    pub dataset: Option<PathBuf>,
}

/// Errors of starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store failed.
    #[error(transparent)]
    Service(#[from] tamis_service::ServiceError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] tamis_store::StoreError),
    /// The token keys.
    #[error(transparent)]
    Keys(#[from] auth::KeyError),
    /// Redis.
    #[error(transparent)]
    Redis(#[from] limits::RedisError),
    /// Binding or serving failed.
    #[error("cannot serve on {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The data directory.
    #[error("data directory `{path}`: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Builds the state `serve` runs with: the store migrated, keys loaded or
/// generated, the limiter connected, the data directory made absolute.
pub async fn build_state(opts: &ServeOptions) -> Result<AppState, ServeError> {
    let dd = &opts.config.data_dir;
    std::fs::create_dir_all(dd).map_err(|source| ServeError::DataDir {
        path: dd.clone(),
        source,
    })?;
    let data_dir = std::fs::canonicalize(dd).map_err(|source| ServeError::DataDir {
        path: dd.clone(),
        source,
    })?;
    if let Some(path) = opts
        .database_url
        .strip_prefix("sqlite://")
        .map(Path::new)
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(path).map_err(|source| ServeError::DataDir {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let store = tamis_service::platform::open_store(&opts.database_url).await?;
    let keys = match &opts.jwt_keys {
        Some((private, public)) => JwtKeys::from_files(private, public)?,
        None => JwtKeys::load_or_generate(&data_dir.join("keys"))?,
    };
    let limiter = match &opts.redis_url {
        Some(url) => Limiter::redis(url, opts.tiers.clone()).await?,
        None => Limiter::memory(opts.tiers.clone()),
    };
    let artifacts =
        tamis_service::platform::open_artifacts(opts.artifacts.as_deref(), &data_dir).await?;
    let mut config = opts.config.clone();
    config.data_dir = data_dir;
    Ok(AppState::new(store, artifacts, config, keys, limiter))
}

/// Runs the server (and its workers) until Ctrl-C; `ready` is told the bound
/// address once it listens.
pub async fn serve(
    opts: ServeOptions,
    ready: impl FnOnce(std::net::SocketAddr, &AppState),
) -> Result<(), ServeError> {
    let state = build_state(&opts).await?;
    if let Some(demo) = &opts.demo {
        admin::seed_demo(&state, demo).await?;
    }
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|source| ServeError::Io {
            addr: opts.addr.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Io {
        addr: opts.addr.to_string(),
        source,
    })?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for i in 0..opts.workers {
        let mut cfg = tamis_service::worker::WorkerConfig::new(
            format!("serve-{}-{i}", std::process::id()),
            state.config().data_dir.clone(),
            state.artifacts().clone(),
        );
        // Live consoles want progress often; a lease of 30 s, a beat a second.
        cfg.heartbeat_ms = 1_000;
        cfg.poll_ms = 200;
        cfg.vault_keys = state.config().vault_keys.clone();
        let m = state.clone();
        cfg.on_finish = Some(Arc::new(move |j| m.metrics().observe_job(j)));
        workers.push(tokio::spawn(tamis_service::worker::run(
            state.store().clone(),
            cfg,
            stop_rx.clone(),
        )));
    }
    ready(addr, &state);
    let router = app(state);
    // Ctrl-C or SIGTERM (a service manager, a container stop): stop taking
    // requests and jobs, finish the ones in hand, exit 0.
    let shutdown = async move {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError::Io {
            addr: addr.to_string(),
            source,
        })?;
    for w in workers {
        let _ = w.await;
    }
    Ok(())
}
