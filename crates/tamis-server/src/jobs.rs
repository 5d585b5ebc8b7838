//! Jobs: submit (a kind, a dataset version, a plan), read, list, cancel,
//! logs, report, outputs, provenance and lineage.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tamis_store::{Job, JobFilter, JobState, NewJob, Version};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::{AppState, Principal, json_status, redact};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(list).post(create))
        .route("/jobs/{id}", get(one))
        .route("/jobs/{id}/cancel", post(cancel))
        .route("/jobs/{id}/logs", get(logs))
        .route("/jobs/{id}/logs.txt", get(logs_txt))
        .route("/jobs/{id}/report", get(report))
        .route("/jobs/{id}/artifacts", get(artifacts))
        .route("/jobs/{id}/artifacts/{kind}", get(artifact))
        .route("/jobs/{id}/provenance", get(provenance))
        .route("/jobs/{id}/lineage", get(lineage))
        .route("/jobs/{id}/audit", get(audit))
}

/// A job as the API shows it: paths inside the data directory are relative.
pub fn view(job: &Job) -> Value {
    let text = serde_json::to_string(job).unwrap_or_default();
    let mut v: Value = serde_json::from_str(&redact(&text)).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("lease_owner");
        m.remove("lease_until");
        if let Some(Value::Object(p)) = m.get_mut("params") {
            p.remove("inputs");
            p.remove("artifacts");
        }
    }
    v
}

/// Checks a plan document as a clean job would read it.
pub fn check_plan(plan: &Value) -> Result<(), ApiError> {
    let text = match plan {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    tamis_service::clean::parse_plan(&text)
        .map(|_| ())
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_plan",
                redact(&e.to_string()),
            )
            .with_details(json!({"field": "plan"}))
        })
}

/// The parameters of every job on a dataset version: its artifact (what
/// workers read), the version's id (where a profile is kept) and its number.
pub(crate) fn version_params(v: &Version) -> Value {
    json!({
        "artifacts": [v.artifact],
        "version_id": v.id,
        "version": v.version,
    })
}

/// Queues a job of `kind` on a dataset version, after the tenant's monthly
/// row quota. Returns the job (as stored) and whether it is new.
pub(crate) async fn submit(
    st: &AppState,
    p: &Principal,
    kind: &str,
    dataset_id: &str,
    v: &Version,
    extra: Value,
    idempotency_key: Option<String>,
) -> Result<(Job, bool), ApiError> {
    let tenant = st.store().tenant(&p.tenant_id).await?;
    if let Some(limit) = tenant.rows_per_month {
        let now = chrono::Utc::now();
        let used = st
            .store()
            .usage(&p.tenant_id, &tamis_store::current_month())
            .await?;
        if used >= limit {
            use chrono::Datelike;
            let (y, m) = if now.month() == 12 {
                (now.year() + 1, 1)
            } else {
                (now.year(), now.month() + 1)
            };
            let next = chrono::NaiveDate::from_ymd_opt(y, m, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc().timestamp() - now.timestamp())
                .unwrap_or(3600);
            return Err(ApiError::too_many(
                "quota_exceeded",
                format!("the tenant's quota of {limit} rows this month is used ({used} rows); it renews on the 1st"),
                next.max(1) as u64,
            )
            .with_details(json!({"rows_per_month": limit, "used": used})));
        }
    }
    let mut params = version_params(v);
    if let (Value::Object(m), Value::Object(x)) = (&mut params, extra) {
        m.extend(x);
    }
    let (job, new) = st
        .store()
        .enqueue(&NewJob {
            tenant_id: p.tenant_id.clone(),
            kind: kind.to_string(),
            dataset_id: Some(dataset_id.to_string()),
            params,
            idempotency_key,
            max_attempts: None,
            created_by: p.actor.clone(),
        })
        .await?;
    if new {
        crate::audit(
            st,
            p,
            "job.create",
            &job.id,
            &json!({"kind": kind, "dataset": dataset_id, "version": v.version}),
        )
        .await?;
    }
    Ok((job, new))
}

/// A job to run.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewJobRequest {
    /// profile, suggest, clean, dedup, pii.or pii (a scan for personal data).
    pub kind: String,
    /// The dataset.
    pub dataset_id: String,
    /// Its version (default: the latest).
    pub version: Option<i64>,
    /// For clean: the plan document.
    pub plan: Option<Value>,
    /// For clean: a saved plan instead.
    pub plan_id: Option<String>,
    /// For dedup: settings (comparisons, blocking, threshold, …).
    pub settings: Option<Value>,
    /// Submitting twice with one key runs the job once (also the `Idempotency-Key` header).
    pub idempotency_key: Option<String>,
}

const ROLE_OF: [(&str, &str); 5] = [
    ("profile", "analyst"),
    ("suggest", "analyst"),
    ("clean", "engineer"),
    ("dedup", "engineer"),
    ("pii", "analyst"),
];

/// Submits a job. `202` with the job; `200` with the first job when the
/// idempotency key was used before; `429` when the queue is full or the
/// tenant's quota is spent.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = NewJobRequest,
    responses((status = 202, description = "queued"), (status = 200, description = "an earlier job with this idempotency key"),
        (status = 422, description = "bad plan or settings"), (status = 429, description = "queue full, quota or rate limit")))]
pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Json(r): Json<NewJobRequest>,
) -> Result<Response, ApiError> {
    let Some((_, role)) = ROLE_OF.iter().find(|(k, _)| *k == r.kind) else {
        return Err(ApiError::bad_request(format!(
            "job kind `{}`: use {}",
            r.kind,
            ROLE_OF.map(|(k, _)| k).join(", ")
        ))
        .with_details(json!({"field": "kind"})));
    };
    p.require(role)?;
    let ds = st.store().dataset(&p.tenant_id, &r.dataset_id).await?;
    p.may_on(&r.kind, &ds.id)?;
    let vs = st.store().versions_brief(&ds).await?;
    let v = match r.version {
        Some(n) => vs.iter().find(|v| v.version == n),
        None => vs.last(),
    }
    .ok_or_else(|| ApiError::not_found("that version"))?;
    let mut extra = json!({});
    if r.kind == "clean" {
        let plan = match (&r.plan, &r.plan_id) {
            (Some(p), _) => p.clone(),
            (None, Some(id)) => st.store().plan(&p.tenant_id, id).await?.plan,
            (None, None) => {
                return Err(
                    ApiError::bad_request("a clean job needs `plan` or `plan_id`")
                        .with_details(json!({"field": "plan"})),
                );
            }
        };
        check_plan(&plan)?;
        extra["plan"] = plan;
    }
    if let Some(s) = &r.settings {
        extra["settings"] = s.clone();
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .or(r.idempotency_key);
    st.limiter().check(&p.actor, &p.tier).await?;
    let (job, new) = submit(&st, &p, &r.kind, &ds.id, v, extra, key).await?;
    let status = if new {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(json_status(status, json!({"job": view(&job)})))
}

/// Job list filters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// queued, running, succeeded, failed or cancelled.
    pub state: Option<String>,
    /// profile, suggest, clean, dedup, pii.
    pub kind: Option<String>,
    /// Only this dataset's jobs.
    pub dataset_id: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Lists the tenant's jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(ListQuery), responses((status = 200, description = "jobs")))]
pub async fn list(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    p.may("read")?;
    let state = match &q.state {
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state `{s}`: use queued, running, succeeded, failed or cancelled"
            ))
        })?),
        None => None,
    };
    let jobs = st
        .store()
        .jobs(
            &p.tenant_id,
            &JobFilter {
                state,
                kind: q.kind,
                dataset_id: q.dataset_id,
                limit: Some(q.limit.unwrap_or(100).clamp(1, 1000)),
            },
        )
        .await?;
    let jobs: Vec<Value> = jobs
        .iter()
        .filter(|j| {
            j.dataset_id
                .as_deref()
                .is_none_or(|d| p.may_use_dataset(d).is_ok())
        })
        .map(view)
        .collect();
    Ok(Json(json!({"jobs": jobs})))
}

/// The job of the tenant, if the caller may see its dataset.
pub(crate) async fn job_of(st: &AppState, p: &Principal, id: &str) -> Result<Job, ApiError> {
    let j = st.store().job(&p.tenant_id, id).await?;
    p.may("read")?;
    if let Some(d) = &j.dataset_id {
        p.may_use_dataset(d)?;
    }
    Ok(j)
}

/// A job: state, pass, progress, ETA, metrics, result, error.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, description = "the job"), (status = 404, description = "no such job in your tenant")))]
pub async fn one(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"job": view(&job_of(&st, &p, &id).await?)})))
}

/// Cancels a job: a queued one at once, a running one at its next heartbeat.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, description = "state after"), (status = 409, description = "already finished")))]
pub async fn cancel(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let j = job_of(&st, &p, &id).await?;
    p.may("cancel")?;
    if j.created_by != p.actor && j.created_by != p.user_id {
        p.require("engineer")?;
    }
    let state = st.store().cancel(&p.tenant_id, &id).await?;
    crate::audit(&st, &p, "job.cancel", &id, &json!({})).await?;
    Ok(Json(json!({"job_id": id, "state": state.name()})))
}

/// Log paging.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LogQuery {
    /// Lines after this sequence number (default 0: from the start).
    pub since: Option<i64>,
    /// At most this many (default 1000, at most 10000).
    pub limit: Option<i64>,
}

async fn log_lines(
    st: &AppState,
    p: &Principal,
    id: &str,
    q: &LogQuery,
) -> Result<Vec<tamis_store::LogLine>, ApiError> {
    job_of(st, p, id).await?;
    let mut lines = st
        .store()
        .logs_since(
            &p.tenant_id,
            id,
            q.since.unwrap_or(0),
            q.limit.unwrap_or(1000).clamp(1, 10_000),
        )
        .await?;
    for l in &mut lines {
        l.message = redact(&l.message);
    }
    Ok(lines)
}

/// A job's log lines as JSON.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/logs", tag = "jobs", params(("id" = String, Path), LogQuery),
    responses((status = 200, description = "lines")))]
pub async fn logs(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Value>, ApiError> {
    let lines = log_lines(&st, &p, &id, &q).await?;
    Ok(Json(json!({"job_id": id, "lines": lines})))
}

/// A job's log as text, one line per entry.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/logs.txt", tag = "jobs", params(("id" = String, Path), LogQuery),
    responses((status = 200, description = "text")))]
pub async fn logs_txt(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let lines = log_lines(&st, &p, &id, &q).await?;
    let mut out = String::new();
    for l in lines {
        let ts = chrono::DateTime::from_timestamp_millis(l.ts)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        out.push_str(&format!("{:>5} {ts} {:<8} {}\n", l.seq, l.level, l.message));
    }
    let mut r = out.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(r)
}

/// A job's report: the job, its result, metrics and outputs.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/report", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, description = "report")))]
pub async fn report(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let j = job_of(&st, &p, &id).await?;
    let arts = artifact_views(&st, &p, &id).await?;
    let secs = match (j.started_at, j.finished_at) {
        (Some(s), Some(f)) => Some((f - s) as f64 / 1000.0),
        _ => None,
    };
    Ok(Json(json!({
        "job": view(&j),
        "seconds": secs,
        "artifacts": arts,
    })))
}

async fn artifact_views(st: &AppState, p: &Principal, id: &str) -> Result<Vec<Value>, ApiError> {
    Ok(st
        .store()
        .artifacts(&p.tenant_id, id)
        .await?
        .iter()
        .map(|a| {
            json!({
                "kind": a.kind, "bytes": a.bytes, "sha256": a.sha256, "created_at": a.created_at,
                "download": format!("/api/v1/jobs/{id}/artifacts/{}", a.kind),
            })
        })
        .collect())
}

/// A job's outputs.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/artifacts", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, description = "artifacts")))]
pub async fn artifacts(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    job_of(&st, &p, &id).await?;
    Ok(Json(
        json!({"artifacts": artifact_views(&st, &p, &id).await?}),
    ))
}

/// Output format.
#[derive(Debug, Deserialize, IntoParams)]
pub struct FormatQuery {
    /// `parquet`, `csv` or `original` (default).
    pub format: Option<String>,
}

/// A job's output of `kind`: the job and the output's artifact key.
async fn artifact_key(
    st: &AppState,
    p: &Principal,
    id: &str,
    kind: &str,
) -> Result<(Job, String), ApiError> {
    let j = job_of(st, p, id).await?;
    let a = st
        .store()
        .artifact(&p.tenant_id, &format!("art_{id}_{kind}"))
        .await
        .map_err(|_| ApiError::not_found(format!("output `{kind}` of job {id}")))?;
    Ok((j, a.path))
}

/// A job's output for a request that reads its data (a download, a
/// provenance query, a lineage check): the job and the output's key, for an
/// analyst whose scope allows downloads from the job's dataset.
async fn readable_output(
    st: &AppState,
    p: &Principal,
    id: &str,
    kind: &str,
) -> Result<(Job, String), ApiError> {
    p.require("analyst")?;
    let (j, key) = artifact_key(st, p, id, kind).await?;
    if let Some(d) = &j.dataset_id {
        p.may_on("download", d)?;
    }
    Ok((j, key))
}

/// A clean job's output with its sidecar (provenance, audit, lineage) as
/// local files, for the queries that read them.
async fn local_output(
    st: &AppState,
    p: &Principal,
    id: &str,
) -> Result<tamis_store::LocalCopy, ApiError> {
    let (_, key) = readable_output(st, p, id, "output").await?;
    Ok(st
        .artifacts()
        .fetch_with_sidecar(&key, tamis_clean::SIDECAR_SUFFIX)
        .await?)
}

/// Downloads one output of a job (streamed; tables convertible to CSV or Parquet).
#[utoipa::path(get, path = "/api/v1/jobs/{id}/artifacts/{kind}", tag = "jobs",
    params(("id" = String, Path), ("kind" = String, Path), FormatQuery), responses((status = 200, description = "the file")))]
pub async fn artifact(
    State(st): State<AppState>,
    p: Principal,
    Path((id, kind)): Path<(String, String)>,
    Query(q): Query<FormatQuery>,
) -> Result<Response, ApiError> {
    let (j, key) = readable_output(&st, &p, &id, &kind).await?;
    crate::audit(
        &st,
        &p,
        "artifact.download",
        &format!("{id}/{kind}"),
        &json!({"format": q.format}),
    )
    .await?;
    let stem = format!("{}-{kind}", j.kind);
    crate::datasets::send_as(&st, &key, q.format.as_deref(), &stem).await
}

/// Provenance filters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ProvenanceQuery {
    /// Only this input row.
    pub row: Option<u64>,
    /// Only this column.
    pub column: Option<String>,
    /// Only this step (id, type or 1-based position).
    pub step: Option<String>,
    /// At most this many changed cells (default 1000).
    pub limit: Option<usize>,
}

/// What a clean job changed: cells (before, after, step, confidence) and dropped rows.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/provenance", tag = "jobs",
    params(("id" = String, Path), ProvenanceQuery), responses((status = 200, description = "cells and dropped rows")))]
pub async fn provenance(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<ProvenanceQuery>,
) -> Result<Json<Value>, ApiError> {
    // Provenance is all in the sidecar: the output itself is not fetched.
    let (_, key) = readable_output(&st, &p, &id, "output").await?;
    let local = st
        .artifacts()
        .fetch_sidecar(&key, tamis_clean::SIDECAR_SUFFIX)
        .await?;
    let query = tamis_clean::provenance::Query {
        row: q.row,
        column: q.column,
        step: q.step,
    };
    let limit = q.limit.unwrap_or(1000).clamp(1, 100_000);
    let r =
        tokio::task::spawn_blocking(move || tamis_service::clean::provenance(local.path(), &query))
            .await
            .map_err(ApiError::internal)??;
    crate::audit(&st, &p, "provenance.read", &id, &json!({})).await?;
    let total = r.cells.len();
    Ok(Json(json!({
        "job_id": id,
        "total_cells": total,
        "cells": r.cells.into_iter().take(limit).collect::<Vec<_>>(),
        "dropped": r.dropped,
    })))
}

/// The hash-chained lineage of a clean job's output, verified against its bytes.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/lineage", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, description = "chain and verdict")))]
pub async fn lineage(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    // It reads the whole output (to verify it), so it asks what reading it asks.
    let local = local_output(&st, &p, &id).await?;
    let (chain, verdict) = tokio::task::spawn_blocking(move || {
        let path = local.path();
        let chain_file = tamis_clean::sidecar_dir(path).join(tamis_clean::exec::LINEAGE);
        let chain: Value = std::fs::read(&chain_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let verdict = tamis_service::clean::verify_lineage(path, Some(path));
        (chain, verdict)
    })
    .await
    .map_err(ApiError::internal)?;
    let verdict = verdict?;
    Ok(Json(json!({
        "job_id": id,
        "intact": verdict.is_intact(),
        "verdict": verdict.to_string(),
        "chain": chain,
    })))
}

/// A job's audit trail: the platform's entries about it (submitted, cancelled,
/// outputs downloaded, provenance read) and, for a clean job, the run's own
/// audit log (one entry per step: what it did, to how many cells and rows).
#[utoipa::path(get, path = "/api/v1/jobs/{id}/audit", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, description = "platform entries and the run's log")))]
pub async fn audit(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let j = job_of(&st, &p, &id).await?;
    let platform: Vec<_> = st
        .store()
        .audit_log(&p.tenant_id, 10_000)
        .await?
        .into_iter()
        .filter(|e| e.target == id || e.target.starts_with(&format!("{id}/")))
        .collect();
    let run = match (j.kind.as_str(), artifact_key(&st, &p, &id, "output").await) {
        ("clean", Ok((_, key))) => {
            // The run's audit log sits in the output's sidecar.
            let audit = format!(
                "{key}{}/{}",
                tamis_clean::SIDECAR_SUFFIX,
                tamis_clean::exec::AUDIT
            );
            let bytes = st.artifacts().read(&audit).await.unwrap_or_default();
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .collect()
        }
        _ => Vec::new(),
    };
    Ok(Json(
        json!({"job_id": id, "platform": platform, "run": run}),
    ))
}
