//! Datasets: uploads (streamed to the store), ingests, versions, profiles,
//! issues, downloads, suggestions and saved plans.
//!
//! An upload is streamed to a temporary file while its SHA-256 is computed,
//! renamed into `DATA_DIR/datasets/TENANT/DATASET/UPLOAD/NAME`, recorded as the
//! dataset's next version, and a profile job is queued: the answer is `202`
//! as soon as the last byte is on disk, and the profile arrives later.

use std::path::{Path as FsPath, PathBuf};

use axum::extract::{Multipart, Path, Query, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;
use tamis_store::{NewJob, Version};
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::{AppState, Principal, json_status};

pub(crate) fn routes() -> axum::Router<AppState> {
    // Uploads stream to disk and are held to `max_upload_bytes` as they arrive,
    // so the framework's limit on buffered bodies is lifted on those two only.
    let streamed = axum::extract::DefaultBodyLimit::disable;
    Router::new()
        .route("/datasets", get(list).post(upload.layer(streamed())))
        .route("/datasets/ingest", post(ingest))
        .route("/datasets/{id}", get(one))
        .route(
            "/datasets/{id}/versions",
            get(versions).post(upload_version.layer(streamed())),
        )
        .route("/datasets/{id}/profile", get(profile))
        .route("/datasets/{id}/issues", get(issues))
        .route("/datasets/{id}/download", get(download))
        .route("/datasets/{id}/suggestions", get(suggestions).post(suggest))
        .route("/plans", get(list_plans).post(save_plan))
        .route("/plans/{id}", get(one_plan))
}

/// Extensions an upload may have, and what its first bytes must look like.
const FORMATS: [(&str, Magic); 14] = [
    ("csv", Magic::Text),
    ("tsv", Magic::Text),
    ("txt", Magic::Text),
    ("psv", Magic::Text),
    ("json", Magic::Text),
    ("jsonl", Magic::Text),
    ("ndjson", Magic::Text),
    ("parquet", Magic::Bytes(b"PAR1")),
    ("xlsx", Magic::Bytes(b"PK\x03\x04")),
    ("xls", Magic::Bytes(b"\xD0\xCF\x11\xE0")),
    ("gz", Magic::Bytes(b"\x1F\x8B")),
    ("zst", Magic::Bytes(b"\x28\xB5\x2F\xFD")),
    ("bz2", Magic::Bytes(b"BZh")),
    ("ods", Magic::Bytes(b"PK\x03\x04")),
];

#[derive(Debug, Clone, Copy)]
enum Magic {
    Text,
    Bytes(&'static [u8]),
}

/// Names a binary by its first bytes, for a message.
fn looks_like(head: &[u8]) -> &'static str {
    const KNOWN: [(&[u8], &str); 8] = [
        (b"\x7FELF", "an ELF executable"),
        (b"MZ", "a Windows executable"),
        (b"%PDF", "a PDF document"),
        (b"\x89PNG", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"PAR1", "a Parquet file"),
        (b"PK\x03\x04", "a ZIP archive"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| head.starts_with(m))
        .map_or("binary data", |(_, n)| n)
}

/// Checks an upload's name: a plain file name with a known extension, no
/// path parts (`../`, `/`, `\`), no control characters. Returns its extension.
pub fn check_name(raw: &str) -> Result<String, ApiError> {
    let bad = |why: &str| {
        ApiError::bad_request(format!("upload name `{}`: {why}", raw.escape_default()))
            .with_details(json!({"field": "file"}))
    };
    if raw.is_empty() || raw.len() > 200 {
        return Err(bad("must be 1 to 200 bytes long"));
    }
    if raw.contains(['/', '\\']) || raw == "." || raw == ".." || raw.contains("..") {
        return Err(bad("must be a file name, not a path"));
    }
    if raw.starts_with('.') || raw.chars().any(char::is_control) {
        return Err(bad("must not start with a dot or hold control characters"));
    }
    let ext = raw
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if !FORMATS.iter().any(|(e, _)| *e == ext) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "upload `{raw}`: tamis reads {}",
                FORMATS.map(|(e, _)| format!(".{e}")).join(", ")
            ),
        ));
    }
    Ok(ext)
}

/// Checks that the first bytes of a file agree with its extension.
pub fn sniff(name: &str, ext: &str, head: &[u8]) -> Result<(), ApiError> {
    let Some((_, magic)) = FORMATS.iter().find(|(e, _)| *e == ext) else {
        return Ok(());
    };
    let ok = match magic {
        Magic::Bytes(m) => head.starts_with(m),
        Magic::Text => {
            let utf16 = head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF");
            utf16 || !head.iter().take(8192).any(|b| *b == 0)
        }
    };
    if ok || head.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!(
            "upload `{name}` is named .{ext} but its content looks like {}",
            looks_like(head)
        ),
    ))
}

/// A file written under the staging directory, not yet a version. Dropping
/// it removes the file, so every refusal or failure before [`commit`] moves it
/// into place leaves nothing behind (after the move, the removal finds nothing).
struct Staged {
    tmp: PathBuf,
    name: String,
    sha256: String,
    bytes: u64,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn io_err(what: &str, e: std::io::Error) -> ApiError {
    ApiError::internal(format!("{what}: {e}"))
}

fn staging_dir(st: &AppState) -> PathBuf {
    st.config().data_dir.join("staging")
}

/// Streams `chunks` of a file named `name` to a staging file: the name is
/// checked, the first bytes must agree with its extension, the bytes are
/// hashed, and more than `max` bytes (when given) are refused as they arrive.
/// Uploads and ingests both come through here.
async fn stage<E>(
    st: &AppState,
    name: String,
    max: Option<u64>,
    chunks: impl futures::Stream<Item = Result<axum::body::Bytes, E>>,
    chunk_error: impl Fn(E) -> ApiError,
) -> Result<Staged, ApiError> {
    use futures::StreamExt;
    let ext = check_name(&name)?;
    let dir = staging_dir(st);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| io_err("staging dir", e))?;
    let tmp = dir.join(tamis_store::new_id("up"));
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| io_err("staging file", e))?;
    let mut staged = Staged {
        tmp,
        name,
        sha256: String::new(),
        bytes: 0,
    };
    let mut hasher = sha2::Sha256::new();
    let mut head: Vec<u8> = Vec::new();
    let mut chunks = std::pin::pin!(chunks);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(&chunk_error)?;
        if head.len() < 8192 {
            head.extend_from_slice(&chunk[..chunk.len().min(8192 - head.len())]);
            if head.len() >= 8192 {
                sniff(&staged.name, &ext, &head)?;
            }
        }
        staged.bytes += chunk.len() as u64;
        if let Some(max) = max
            && staged.bytes > max
        {
            return Err(too_large(max));
        }
        hasher.update(&chunk);
        f.write_all(&chunk)
            .await
            .map_err(|e| io_err("staging write", e))?;
    }
    sniff(&staged.name, &ext, &head)?;
    if staged.bytes == 0 {
        return Err(ApiError::bad_request(format!(
            "upload `{}` is empty",
            staged.name
        )));
    }
    f.flush().await.map_err(|e| io_err("staging flush", e))?;
    f.sync_all().await.map_err(|e| io_err("staging sync", e))?;
    staged.sha256 = hex::encode(hasher.finalize());
    Ok(staged)
}

/// Streams a multipart field to a staging file.
async fn stage_field(
    st: &AppState,
    field: axum::extract::multipart::Field<'_>,
) -> Result<Staged, ApiError> {
    let name = field
        .file_name()
        .map(String::from)
        .ok_or_else(|| ApiError::bad_request("the `file` part needs a file name"))?;
    let max = st.config().max_upload_bytes;
    stage(st, name, Some(max), field, |e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(max)
        } else {
            ApiError::bad_request(format!("the upload stopped: {}", e.body_text()))
        }
    })
    .await
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("uploads are limited to {max} bytes"),
    )
    .with_details(json!({"max_bytes": max}))
}

/// The dataset named `name` in the tenant, created if missing.
async fn dataset_named(
    st: &AppState,
    tenant: &str,
    user: &str,
    name: &str,
) -> Result<tamis_store::Dataset, ApiError> {
    if let Some(d) = st
        .store()
        .datasets(tenant)
        .await?
        .into_iter()
        .find(|d| d.name == name)
    {
        return Ok(d);
    }
    Ok(st.store().create_dataset(tenant, name, user).await?)
}

/// Moves a staged file into its dataset, records the version and queues its
/// profile. Returns the `202` body.
async fn commit(
    st: &AppState,
    tenant: &str,
    actor: &str,
    dataset: &tamis_store::Dataset,
    staged: Staged,
) -> Result<Value, ApiError> {
    let upload = tamis_store::new_id("v");
    let key = format!("datasets/{tenant}/{}/{upload}/{}", dataset.id, staged.name);
    // A rename on a local store; an upload to S3. Either way the object
    // appears whole or not at all.
    st.artifacts().move_file(&key, &staged.tmp).await?;
    let v = st
        .store()
        .add_version(
            tenant,
            &dataset.id,
            &key,
            &staged.sha256,
            staged.bytes as i64,
        )
        .await?;
    let (job, _) = st
        .store()
        .enqueue(&NewJob {
            tenant_id: tenant.to_string(),
            kind: "profile".into(),
            dataset_id: Some(dataset.id.clone()),
            params: crate::jobs::version_params(&v),
            idempotency_key: Some(format!("profile:{}", v.id)),
            max_attempts: None,
            created_by: actor.to_string(),
        })
        .await?;
    st.store()
        .audit(
            Some(tenant),
            actor,
            "dataset.upload",
            &dataset.id,
            &json!({"version": v.version, "bytes": staged.bytes, "sha256": staged.sha256, "name": staged.name}),
        )
        .await?;
    Ok(json!({
        "dataset_id": dataset.id,
        "dataset": dataset.name,
        "version": v.version,
        "version_id": v.id,
        "job_id": job.id,
        "status": job.state.name(),
        "bytes": staged.bytes,
        "sha256": staged.sha256,
    }))
}

/// Reads a multipart upload: `file` (required) and `name` (optional, before
/// or after the file).
async fn read_upload(
    st: &AppState,
    mut mp: Multipart,
) -> Result<(Staged, Option<String>), ApiError> {
    let mut staged: Option<Staged> = None;
    let mut name: Option<String> = None;
    let bad_part = |e: axum::extract::multipart::MultipartError| {
        ApiError::new(e.status(), crate::error::code_of(e.status()), e.body_text())
    };
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(bad_part(e)),
        };
        match field.name() {
            Some("file") if staged.is_none() => staged = Some(stage_field(st, field).await?),
            Some("name") => {
                name = Some(field.text().await.map_err(bad_part)?.trim().to_string());
            }
            _ => {}
        }
    }
    let staged = staged.ok_or_else(|| {
        ApiError::bad_request("the form needs a `file` part").with_details(json!({"field": "file"}))
    })?;
    Ok((staged, name.filter(|n| !n.is_empty())))
}

fn default_name(file: &str) -> String {
    file.split('.').next().unwrap_or(file).to_string()
}

/// Uploads a file (multipart `file`, optional `name`): a new dataset, or the
/// next version of the dataset of that name. `202` once stored; profiling runs
/// as a job.
#[utoipa::path(post, path = "/api/v1/datasets", tag = "datasets",
    request_body(content_type = "multipart/form-data", description = "`file` and optional `name`"),
    responses((status = 202, description = "dataset_id, version, job_id, status"),
        (status = 400, description = "bad name or form"), (status = 413, description = "too large"),
        (status = 415, description = "not a format tamis reads")))]
pub async fn upload(
    State(st): State<AppState>,
    p: Principal,
    mp: Multipart,
) -> Result<Response, ApiError> {
    p.require("engineer")?;
    p.may("upload")?;
    st.limiter().check(&p.actor, &p.tier).await?;
    let (staged, name) = read_upload(&st, mp).await?;
    let name = name.unwrap_or_else(|| default_name(&staged.name));
    let ds = dataset_named(&st, &p.tenant_id, &p.user_id, &name).await?;
    p.may_use_dataset(&ds.id)?;
    let body = commit(&st, &p.tenant_id, &p.actor, &ds, staged).await?;
    Ok(json_status(StatusCode::ACCEPTED, body))
}

/// Uploads the next version of a dataset.
#[utoipa::path(post, path = "/api/v1/datasets/{id}/versions", tag = "datasets",
    params(("id" = String, Path)), request_body(content_type = "multipart/form-data"),
    responses((status = 202, description = "version and profile job")))]
pub async fn upload_version(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    mp: Multipart,
) -> Result<Response, ApiError> {
    p.require("engineer")?;
    p.may_on("upload", &id)?;
    let ds = st.store().dataset(&p.tenant_id, &id).await?;
    st.limiter().check(&p.actor, &p.tier).await?;
    let (staged, _) = read_upload(&st, mp).await?;
    let body = commit(&st, &p.tenant_id, &p.actor, &ds, staged).await?;
    Ok(json_status(StatusCode::ACCEPTED, body))
}

/// Copies a file the server can read into the store as a dataset version.
pub async fn ingest_file(
    st: &AppState,
    tenant: &str,
    actor: &str,
    file: &FsPath,
    name: Option<String>,
) -> Result<Value, ApiError> {
    let raw = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let f = tokio::fs::File::open(file)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read `{}`: {e}", file.display())))?;
    // The file is the server's own: no upload limit.
    let chunks = tokio_util::io::ReaderStream::with_capacity(f, 256 << 10);
    let staged = stage(st, raw, None, chunks, |e| io_err("ingest read", e)).await?;
    commit_named(st, tenant, actor, staged, name).await
}

/// Copies an object under one of the server's S3 ingest prefixes into the
/// store as a dataset version (streamed, hashed and sniffed like an upload).
pub async fn ingest_object(
    st: &AppState,
    tenant: &str,
    actor: &str,
    url: &str,
    name: Option<String>,
) -> Result<Value, ApiError> {
    let rest = url.strip_prefix("s3://").unwrap_or(url);
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    // Plain segments only: `..` or `//` could step outside the allowed prefix.
    if bucket.is_empty()
        || key.is_empty()
        || key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(ApiError::bad_request(format!(
            "`{url}`: give s3://BUCKET/KEY with plain path segments"
        )));
    }
    let allowed = st.config().ingest_urls.iter().any(|r| {
        let r = r.trim_end_matches('/');
        url == r || url.starts_with(&format!("{r}/"))
    });
    if !allowed {
        return Err(ApiError::forbidden(format!(
            "`{url}` is not under one of this server's ingest roots"
        )));
    }
    let source = tamis_store::Artifacts::open_with(
        &format!("s3://{bucket}"),
        st.scratch(),
        st.config().s3_options.clone(),
    )?;
    let d = source.get(key).await.map_err(|e| match e {
        tamis_store::StoreError::NotFound(_) => ApiError::not_found(format!("object `{url}`")),
        e => {
            tracing::warn!("ingest of {url}: {e}");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                format!("cannot read `{url}` from S3 now; retry later"),
            )
        }
    })?;
    let raw = key.rsplit('/').next().unwrap_or(key).to_string();
    let staged = stage(st, raw, None, d.stream, |e| {
        ApiError::bad_request(format!("reading `{url}` stopped: {e}"))
    })
    .await?;
    commit_named(st, tenant, actor, staged, name).await
}

/// Commits a staged ingest to the dataset `name` (default: the file's stem).
async fn commit_named(
    st: &AppState,
    tenant: &str,
    actor: &str,
    staged: Staged,
    name: Option<String>,
) -> Result<Value, ApiError> {
    let name = name.unwrap_or_else(|| default_name(&staged.name));
    let ds = dataset_named(st, tenant, actor, &name).await?;
    commit(st, tenant, actor, &ds, staged).await
}

/// An ingest.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Ingest {
    /// A path or `file://` URL under one of the server's ingest directories,
    /// or an `s3://BUCKET/KEY` under one of its S3 ingest prefixes.
    pub url: String,
    /// Dataset name (default: the file's stem).
    pub name: Option<String>,
}

/// Ingests a file the server can read (under its `--ingest-root`s).
#[utoipa::path(post, path = "/api/v1/datasets/ingest", tag = "datasets", request_body = Ingest,
    responses((status = 202, description = "dataset_id, version, job_id"), (status = 403, description = "outside the ingest roots")))]
pub async fn ingest(
    State(st): State<AppState>,
    p: Principal,
    Json(i): Json<Ingest>,
) -> Result<Response, ApiError> {
    p.require("engineer")?;
    p.may("upload")?;
    st.limiter().check(&p.actor, &p.tier).await?;
    if i.url.starts_with("s3://") {
        let body = ingest_object(&st, &p.tenant_id, &p.actor, &i.url, i.name).await?;
        return Ok(json_status(StatusCode::ACCEPTED, body));
    }
    let raw = i.url.strip_prefix("file://").unwrap_or(&i.url);
    if raw.contains("://") {
        return Err(ApiError::bad_request(format!(
            "`{}`: this server ingests local files (file:// or a path) and s3:// objects under its ingest roots",
            i.url
        )));
    }
    // Canonical paths: `..` and symlinks cannot lead out of a root.
    let path =
        std::fs::canonicalize(raw).map_err(|_| ApiError::not_found(format!("file `{raw}`")))?;
    let allowed = st.config().ingest_roots.iter().any(|r| {
        std::fs::canonicalize(r)
            .map(|r| path.starts_with(r))
            .unwrap_or(false)
    });
    if !allowed {
        return Err(ApiError::forbidden(format!(
            "`{raw}` is not under one of this server's ingest roots"
        )));
    }
    let body = ingest_file(&st, &p.tenant_id, &p.actor, &path, i.name).await?;
    Ok(json_status(StatusCode::ACCEPTED, body))
}

fn version_view(v: &Version, with_profile: bool) -> Value {
    let mut o = json!({
        "id": v.id, "version": v.version, "checksum": v.checksum, "bytes": v.bytes,
        "rows": v.rows, "schema": v.schema, "created_at": v.created_at,
        "file": v.artifact.rsplit('/').next(),
        "profiled": v.profile.is_some() || v.rows.is_some(),
    });
    if with_profile && let Value::Object(m) = &mut o {
        m.insert("profile".into(), v.profile.clone().unwrap_or(Value::Null));
    }
    o
}

/// Lists the tenant's datasets with their latest version.
#[utoipa::path(get, path = "/api/v1/datasets", tag = "datasets", responses((status = 200, description = "datasets")))]
pub async fn list(State(st): State<AppState>, p: Principal) -> Result<Json<Value>, ApiError> {
    p.may("read")?;
    let mut out = Vec::new();
    for (d, versions, latest) in st.store().datasets_latest(&p.tenant_id).await? {
        if p.may_use_dataset(&d.id).is_err() {
            continue;
        }
        out.push(json!({"dataset": d, "versions": versions, "latest": latest.as_ref().map(|v| version_view(v, false))}));
    }
    Ok(Json(json!({"datasets": out})))
}

async fn dataset_of(
    st: &AppState,
    p: &Principal,
    id: &str,
) -> Result<(tamis_store::Dataset, Vec<Version>), ApiError> {
    let d = st.store().dataset(&p.tenant_id, id).await?;
    p.may_on("read", id)?;
    let vs = st.store().versions_brief(&d).await?;
    Ok((d, vs))
}

/// Which version (default: the latest).
#[derive(Debug, Deserialize, IntoParams)]
pub struct VersionQuery {
    /// 1, 2, …
    pub version: Option<i64>,
}

fn pick(vs: &[Version], want: Option<i64>) -> Result<&Version, ApiError> {
    match want {
        Some(n) => vs
            .iter()
            .find(|v| v.version == n)
            .ok_or_else(|| ApiError::not_found(format!("version {n}"))),
        None => vs
            .last()
            .ok_or_else(|| ApiError::not_found("a version of this dataset")),
    }
}

/// One dataset with its latest version.
#[utoipa::path(get, path = "/api/v1/datasets/{id}", tag = "datasets", params(("id" = String, Path)),
    responses((status = 200, description = "dataset"), (status = 404, description = "no such dataset in your tenant")))]
pub async fn one(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (d, vs) = dataset_of(&st, &p, &id).await?;
    Ok(Json(
        json!({"dataset": d, "versions": vs.len(), "latest": vs.last().map(|v| version_view(v, false))}),
    ))
}

/// A dataset's versions.
#[utoipa::path(get, path = "/api/v1/datasets/{id}/versions", tag = "datasets", params(("id" = String, Path)),
    responses((status = 200, description = "versions")))]
pub async fn versions(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, vs) = dataset_of(&st, &p, &id).await?;
    Ok(Json(
        json!({"versions": vs.iter().map(|v| version_view(v, false)).collect::<Vec<_>>()}),
    ))
}

/// A version's profile as stored JSON text (not parsed: the profile answer
/// passes it through).
async fn profile_text(
    st: &AppState,
    p: &Principal,
    id: &str,
    version: Option<i64>,
) -> Result<(Version, String), ApiError> {
    let (_, vs) = dataset_of(st, p, id).await?;
    let v = pick(&vs, version)?.clone();
    let Some(text) = st.store().profile_text(&p.tenant_id, &v.id).await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_ready",
            format!(
                "version {} is not profiled yet; its profile job is queued or running",
                v.version
            ),
        ));
    };
    Ok((v, text))
}

/// The profile of a version (default: the latest).
#[utoipa::path(get, path = "/api/v1/datasets/{id}/profile", tag = "datasets",
    params(("id" = String, Path), VersionQuery),
    responses((status = 200, description = "profile"), (status = 409, description = "not profiled yet")))]
pub async fn profile(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Response, ApiError> {
    let (v, text) = profile_text(&st, &p, &id, q.version).await?;
    // `{"version": N, "profile": …}` around the stored text, which was
    // written by serde_json and is valid JSON.
    let body = format!("{{\"version\":{},\"profile\":{text}}}", v.version);
    let mut r = Response::new(axum::body::Body::from(body));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// The issues found in a version's profile.
#[utoipa::path(get, path = "/api/v1/datasets/{id}/issues", tag = "datasets",
    params(("id" = String, Path), VersionQuery), responses((status = 200, description = "issues")))]
pub async fn issues(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<Value>, ApiError> {
    let (v, text) = profile_text(&st, &p, &id, q.version).await?;
    let profile: Value = serde_json::from_str(&text).map_err(ApiError::internal)?;
    Ok(Json(json!({
        "version": v.version,
        "quality": profile.get("quality"),
        "issues": profile.get("issues").cloned().unwrap_or(json!([])),
    })))
}

/// A download.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DownloadQuery {
    /// 1, 2, … (default: the latest).
    pub version: Option<i64>,
    /// `parquet`, `csv` or `original` (default).
    pub format: Option<String>,
}

/// Streams an artifact in the asked format: as stored (straight from the
/// artifact store), or converted by the same reader the jobs use (to a
/// temporary file, unlinked once open).
pub(crate) async fn send_as(
    st: &AppState,
    key: &str,
    format: Option<&str>,
    stem: &str,
) -> Result<Response, ApiError> {
    let file = key.rsplit('/').next().unwrap_or(key);
    let ext = file
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let want = match format {
        None | Some("original") => None,
        Some(f @ ("csv" | "parquet")) => (f != ext).then_some(f),
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "format `{f}`: use parquet, csv or original"
            ))
            .with_details(json!({"field": "format"})));
        }
    };
    let content_type = |e: &str| match e {
        "csv" => "text/csv; charset=utf-8",
        "parquet" => "application/vnd.apache.parquet",
        "json" | "jsonl" | "ndjson" => "application/json",
        _ => "application/octet-stream",
    };
    let Some(to) = want else {
        return crate::stream_artifact(st, key, file, content_type(&ext)).await;
    };
    let input = st.artifacts().fetch(key).await?;
    let dir = staging_dir(st);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| io_err("staging dir", e))?;
    let out = dir.join(format!("{}.{to}", tamis_store::new_id("dl")));
    let (path, o) = (input.path().display().to_string(), out.clone());
    let exported = tokio::task::spawn_blocking(move || tamis_service::export(&[path], &o))
        .await
        .map_err(ApiError::internal)??;
    drop(input);
    let mut r = crate::stream_file(&out, &format!("{stem}.{to}"), content_type(to)).await;
    // The open handle keeps the bytes until the stream ends.
    let _ = std::fs::remove_file(&out);
    if let Ok(r) = &mut r {
        r.headers_mut().insert("x-tamis-rows", exported.rows.into());
        r.headers_mut()
            .insert("x-tamis-quarantined", exported.quarantined.into());
    }
    r
}

/// Downloads a version (streamed), as stored or converted.
#[utoipa::path(get, path = "/api/v1/datasets/{id}/download", tag = "datasets",
    params(("id" = String, Path), DownloadQuery), responses((status = 200, description = "the file")))]
pub async fn download(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    p.require("analyst")?;
    p.may_on("download", &id)?;
    let (d, vs) = dataset_of(&st, &p, &id).await?;
    let v = pick(&vs, q.version)?;
    crate::audit(
        &st,
        &p,
        "dataset.download",
        &d.id,
        &json!({"version": v.version, "format": q.format}),
    )
    .await?;
    send_as(&st, &v.artifact, q.format.as_deref(), &d.name).await
}

/// Queues a suggest job for a version: a cleaning plan from its profile.
#[utoipa::path(post, path = "/api/v1/datasets/{id}/suggestions", tag = "plans",
    params(("id" = String, Path), VersionQuery), responses((status = 202, description = "the job")))]
pub async fn suggest(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Response, ApiError> {
    p.require("analyst")?;
    p.may_on("suggest", &id)?;
    let (_, vs) = dataset_of(&st, &p, &id).await?;
    let v = pick(&vs, q.version)?;
    st.limiter().check(&p.actor, &p.tier).await?;
    let (job, _) = crate::jobs::submit(
        &st,
        &p,
        "suggest",
        &id,
        v,
        json!({}),
        Some(format!("suggest:{}", v.id)),
    )
    .await?;
    Ok(json_status(StatusCode::ACCEPTED, json!({"job": job})))
}

/// The latest suggested plan of a dataset (from its newest finished suggest job).
#[utoipa::path(get, path = "/api/v1/datasets/{id}/suggestions", tag = "plans",
    params(("id" = String, Path)), responses((status = 200, description = "plan"), (status = 409, description = "none yet")))]
pub async fn suggestions(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    dataset_of(&st, &p, &id).await?;
    let jobs = st
        .store()
        .jobs(
            &p.tenant_id,
            &tamis_store::JobFilter {
                kind: Some("suggest".into()),
                dataset_id: Some(id.clone()),
                limit: Some(20),
                ..Default::default()
            },
        )
        .await?;
    let Some(done) = jobs
        .iter()
        .find(|j| j.state == tamis_store::JobState::Succeeded)
    else {
        let pending = jobs.iter().find(|j| !j.state.is_final()).map(|j| &j.id);
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_ready",
            "no suggestions yet: POST to this path to compute them",
        )
        .with_details(json!({"pending_job": pending})));
    };
    let result = done.result.clone().unwrap_or(Value::Null);
    Ok(Json(json!({
        "job_id": done.id,
        "version": done.params.get("version"),
        "plan": result.get("plan").cloned().unwrap_or(Value::Null),
    })))
}

/// A plan to save.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewPlan {
    /// Label.
    pub name: String,
    /// The dataset it is for, if any.
    pub dataset_id: Option<String>,
    /// The plan document: `{"steps": [...]}` as `tamis clean --plan` reads.
    pub plan: Value,
}

/// Saves a plan (checked first, as a clean job would read it).
#[utoipa::path(post, path = "/api/v1/plans", tag = "plans", request_body = NewPlan,
    responses((status = 201, description = "saved"), (status = 422, description = "not a valid plan")))]
pub async fn save_plan(
    State(st): State<AppState>,
    p: Principal,
    Json(n): Json<NewPlan>,
) -> Result<Response, ApiError> {
    p.require("engineer")?;
    p.may("plan")?;
    if let Some(d) = &n.dataset_id {
        p.may_use_dataset(d)?;
    }
    crate::jobs::check_plan(&n.plan)?;
    let saved = st
        .store()
        .save_plan(
            &p.tenant_id,
            n.dataset_id.as_deref(),
            &n.name,
            &n.plan,
            &p.actor,
        )
        .await?;
    crate::audit(
        &st,
        &p,
        "plan.save",
        &saved.id,
        &json!({"dataset": saved.dataset_id}),
    )
    .await?;
    Ok(json_status(StatusCode::CREATED, json!({"plan": saved})))
}

/// Plans filter.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PlansQuery {
    /// Only plans for this dataset.
    pub dataset_id: Option<String>,
}

/// The tenant's saved plans.
#[utoipa::path(get, path = "/api/v1/plans", tag = "plans", params(PlansQuery), responses((status = 200, description = "plans")))]
pub async fn list_plans(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<PlansQuery>,
) -> Result<Json<Value>, ApiError> {
    p.may("read")?;
    let plans: Vec<_> = st
        .store()
        .plans(&p.tenant_id, q.dataset_id.as_deref())
        .await?
        .into_iter()
        .filter(|pl| {
            pl.dataset_id
                .as_deref()
                .is_none_or(|d| p.may_use_dataset(d).is_ok())
        })
        .collect();
    Ok(Json(json!({"plans": plans})))
}

/// One saved plan.
#[utoipa::path(get, path = "/api/v1/plans/{id}", tag = "plans", params(("id" = String, Path)),
    responses((status = 200, description = "plan")))]
pub async fn one_plan(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.may("read")?;
    let plan = st.store().plan(&p.tenant_id, &id).await?;
    if let Some(d) = &plan.dataset_id {
        p.may_use_dataset(d)?;
    }
    Ok(Json(json!({"plan": plan})))
}
