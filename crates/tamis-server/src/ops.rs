//! Operations: `/health` (the process is up), `/ready` (database and artifact
//! directory reachable), `/metrics` (Prometheus), `/api/openapi.json` (made
//! from the handlers' annotations) and `/docs` (Swagger UI, vendored in the
//! binary: nothing is fetched at run time).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::{AppState, json_status};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(SwaggerUi::new("/docs").url("/api/openapi.json", ApiDoc::openapi()))
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A session token from POST /api/v1/auth/login, or an API key",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "tamis", description = "Data-quality workbench API: datasets, profiles, plans, cleaning and dedup jobs, live logs."),
    modifiers(&Security),
    security(("bearer" = []), ("api_key" = [])),
    paths(
        crate::admin::login, crate::admin::me, crate::admin::list_users, crate::admin::create_user, crate::admin::update_user,
        crate::admin::list_keys, crate::admin::create_key, crate::admin::revoke_key, crate::admin::audit,
        crate::datasets::upload, crate::datasets::upload_version, crate::datasets::ingest,
        crate::datasets::list, crate::datasets::one, crate::datasets::versions, crate::datasets::profile,
        crate::datasets::issues, crate::datasets::download, crate::datasets::suggest,
        crate::datasets::suggestions, crate::datasets::save_plan, crate::datasets::list_plans,
        crate::datasets::one_plan,
        crate::jobs::create, crate::jobs::list, crate::jobs::one, crate::jobs::cancel, crate::jobs::logs,
        crate::jobs::logs_txt, crate::jobs::report, crate::jobs::artifacts, crate::jobs::artifact,
        crate::jobs::provenance, crate::jobs::lineage, crate::jobs::audit,
        crate::vault::detokenize, crate::vault::rekey, crate::vault::import,
        health, ready, metrics,
    ),
    tags(
        (name = "auth", description = "Log in; who am I"),
        (name = "admin", description = "Users, API keys, audit log (admin)"),
        (name = "datasets", description = "Uploads, versions, profiles, issues, downloads"),
        (name = "plans", description = "Suggested and saved cleaning plans"),
        (name = "jobs", description = "Profile, suggest, clean, dedup and PII-scan jobs; logs and outputs"),
        (name = "privacy", description = "The token vault: detokenize, rekey after a key rotation, import a CLI vault (admin)"),
        (name = "ops", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// The process is up.
#[utoipa::path(get, path = "/health", tag = "ops", security(), responses((status = 200, description = "ok")))]
pub async fn health() -> Response {
    json_status(StatusCode::OK, json!({"status": "ok"}))
}

/// The database and the artifact store answer, and the data directory (scratch
/// space for uploads and jobs) is writable.
#[utoipa::path(get, path = "/ready", tag = "ops", security(),
    responses((status = 200, description = "ready"), (status = 503, description = "not ready, with what failed")))]
pub async fn ready(State(st): State<AppState>) -> Response {
    let db = st.store().ping().await.map_err(|e| e.to_string());
    let store = st.artifacts().check().await.map_err(|e| e.to_string());
    let dir = st.config().data_dir.clone();
    let scratch = tokio::task::spawn_blocking(move || {
        let probe = dir.join(".ready-probe");
        std::fs::write(&probe, b"ok").and_then(|_| std::fs::remove_file(&probe))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    let ok = db.is_ok() && store.is_ok() && scratch.is_ok();
    if !ok {
        tracing::warn!(?db, ?store, ?scratch, "not ready");
    }
    let state = |r: &Result<(), String>| if r.is_ok() { "ok" } else { "unreachable" };
    let body = json!({"status": if ok { "ready" } else { "not_ready" },
        "checks": {"database": state(&db), "artifact_store": state(&store), "data_dir": state(&scratch)}});
    if ok {
        json_status(StatusCode::OK, body)
    } else {
        let mut r = crate::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the database, the artifact store or the data directory is unreachable",
        )
        .with_details(body["checks"].clone());
        r.retry_after = Some(5);
        r.into_response()
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", security(), responses((status = 200, description = "text exposition")))]
pub async fn metrics(State(st): State<AppState>) -> Response {
    exposition(st.store(), st.metrics()).await
}

/// The text exposition, with the queue depth read now.
async fn exposition(store: &tamis_store::Store, metrics: &crate::Metrics) -> Response {
    let depth = store.queue_depth().await.unwrap_or(-1);
    let mut r = metrics.render(depth).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

/// `/metrics` and `/health` for a process that runs workers only (`tamis
/// worker --metrics-addr`): its jobs' counters and the shared queue's depth,
/// for Prometheus to scrape beside the servers'.
pub async fn serve_worker_metrics(
    listener: tokio::net::TcpListener,
    store: tamis_store::Store,
    metrics: std::sync::Arc<crate::Metrics>,
) -> std::io::Result<()> {
    let router = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let (store, metrics) = (store.clone(), metrics.clone());
                async move { exposition(&store, &metrics).await }
            }),
        )
        .route("/health", axum::routing::get(health));
    axum::serve(listener, router).await
}
