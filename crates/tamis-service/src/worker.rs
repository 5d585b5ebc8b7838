//! Workers: lease jobs from the store's queue, run them through the same use
//! cases the CLI calls, heartbeat while they run, and record their outputs.
//!
//! A job runs in a scratch directory (`DATA_DIR/work/JOB.ATTEMPT/`): its inputs are
//! dataset versions fetched from the artifact store (read in place when the
//! store is a local directory) or, for jobs submitted on this machine, local
//! files; its outputs are written there and then put in the artifact store
//! under `jobs/TENANT/JOB/NAME`. Puts are atomic and the artifact rows have
//! ids derived from the job and the output's name: a job retried after its
//! worker died rewrites the same objects and rows, never a second copy or a
//! half-written one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tamis_store::{
    Artifact, Artifacts, Completion, Heartbeat, Job, JobState, LocalCopy, Progress, Store, now_ms,
};

use tamis_core::Cancel;

use crate::{ProfileRequest, ServiceError};

/// How a worker runs.
#[derive(Clone)]
pub struct WorkerConfig {
    /// Its name in leases and logs (unique among running workers).
    pub id: String,
    /// Scratch space for running jobs (`DATA_DIR/work/JOB.ATTEMPT/`).
    pub data_dir: PathBuf,
    /// Where inputs are read from and outputs kept.
    pub artifacts: Artifacts,
    /// How long a lease lasts without a heartbeat (ms).
    pub lease_ms: i64,
    /// How often it heartbeats (ms; a third of the lease is safe).
    pub heartbeat_ms: u64,
    /// How long it sleeps when the queue is empty (ms).
    pub poll_ms: u64,
    /// Called with each job a worker finishes (the server counts them for `/metrics`).
    pub on_finish: Option<FinishHook>,
    /// The keys of the tenants' token vaults (`pii` steps that tokenize):
    /// tokens a clean job makes are kept, encrypted, in its tenant's vault in
    /// the store. Without them such a job fails, saying which key to set.
    pub vault_keys: Option<tamis_privacy::anonymize::Keys>,
}

/// A callback told of every job a worker finishes, with its final record.
pub type FinishHook = Arc<dyn Fn(&Job) + Send + Sync>;

impl WorkerConfig {
    /// Defaults: a 30 s lease, heartbeats every 10 s, polls every 500 ms.
    pub fn new(
        id: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        artifacts: Artifacts,
    ) -> WorkerConfig {
        WorkerConfig {
            id: id.into(),
            data_dir: data_dir.into(),
            artifacts,
            lease_ms: 30_000,
            heartbeat_ms: 10_000,
            poll_ms: 500,
            on_finish: None,
            vault_keys: None,
        }
    }
}

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("id", &self.id)
            .field("data_dir", &self.data_dir)
            .field("artifacts", &self.artifacts.url())
            .field("lease_ms", &self.lease_ms)
            .field("heartbeat_ms", &self.heartbeat_ms)
            .field("poll_ms", &self.poll_ms)
            .field("on_finish", &self.on_finish.is_some())
            .field("vault_keys", &self.vault_keys)
            .finish()
    }
}

/// How long a run asked to stop is waited for before the job is marked
/// cancelled anyway (a blocking step that checks rarely then finishes alone).
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Runs `fut` until it ends or `cancel` is raised; then drops it, which stops
/// async work at its next await.
async fn until_cancelled<T>(
    fut: impl std::future::Future<Output = Result<T, ServiceError>>,
    cancel: &Cancel,
) -> Result<T, ServiceError> {
    let raised = async {
        while !cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        r = fut => r,
        _ = raised => Err(tamis_core::CoreError::Cancelled.into()),
    }
}

/// The job kinds a worker runs.
pub const JOB_KINDS: [&str; 5] = ["profile", "suggest", "clean", "dedup", "pii"];

/// What a job produced: its result summary, metrics and files.
struct Produced {
    result: Value,
    metrics: Value,
    files: Vec<(String, PathBuf)>,
}

fn bad(message: impl Into<String>) -> ServiceError {
    ServiceError::BadJob(message.into())
}

fn strings(job: &Job, field: &str) -> Vec<String> {
    job.params
        .get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A job's inputs as local files: the artifact-store keys in `artifacts`
/// (dataset versions; fetched unless the store is local), then the local
/// paths in `inputs`. The copies live as long as the returned guards.
async fn inputs_of(
    job: &Job,
    artifacts: &Artifacts,
) -> Result<(Vec<String>, Vec<LocalCopy>), ServiceError> {
    let mut copies = Vec::new();
    let mut inputs = Vec::new();
    for key in strings(job, "artifacts") {
        let c = artifacts.fetch(&key).await?;
        inputs.push(c.path().display().to_string());
        copies.push(c);
    }
    inputs.extend(strings(job, "inputs"));
    if inputs.is_empty() {
        return Err(bad(format!(
            "job {}: params need `artifacts`: [keys] or `inputs`: [paths]",
            job.id
        )));
    }
    Ok((inputs, copies))
}

/// What a running job shares with its heartbeat: bytes read (of `total`
/// per pass), passes started, and the flag that stops it.
#[derive(Clone, Default)]
struct Shared {
    progress: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
    passes: Arc<AtomicU64>,
    cancel: Cancel,
}

/// Runs a job's use case, reporting to `shared`.
async fn execute(
    store: &Store,
    artifacts: &Artifacts,
    vault_keys: Option<&tamis_privacy::anonymize::Keys>,
    job: &Job,
    dir: &Path,
    shared: Shared,
) -> Result<Produced, ServiceError> {
    let Shared {
        progress,
        total,
        passes,
        cancel,
    } = shared;
    let (inputs, _copies) = until_cancelled(inputs_of(job, artifacts), &cancel).await?;
    // Bytes per pass, for progress (a profile knows better and says so).
    let size: u64 = inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    total.store(size, Ordering::Relaxed);
    match job.kind.as_str() {
        "profile" => {
            let mut opened = crate::open_profile(ProfileRequest {
                inputs,
                ..Default::default()
            })?;
            total.store(opened.total_bytes().unwrap_or(0), Ordering::Relaxed);
            opened.progress = progress;
            let p = until_cancelled(opened.run(), &cancel).await?;
            let path = dir.join("profile.json");
            let value = serde_json::to_value(&p).map_err(|e| bad(e.to_string()))?;
            let text = serde_json::to_vec_pretty(&value).map_err(|e| bad(e.to_string()))?;
            crate::write_atomic(&path, &text)?;
            // A profile of a dataset version is kept with the version.
            if let Some(version) = job.params.get("version_id").and_then(Value::as_str) {
                let schema = json!(
                    p.columns
                        .iter()
                        .map(|c| json!({"name": c.name, "type": c.inferred_type}))
                        .collect::<Vec<_>>()
                );
                store
                    .set_profile(
                        &job.tenant_id,
                        version,
                        &schema,
                        &value,
                        p.dataset.rows as i64,
                    )
                    .await?;
            }
            Ok(Produced {
                result: json!({
                    "rows": p.dataset.rows,
                    "columns": p.dataset.columns,
                    "quality": p.quality,
                    "issues": p.issues.len(),
                }),
                metrics: json!({"rows_processed": p.dataset.rows}),
                files: vec![("profile".into(), path)],
            })
        }
        "suggest" => {
            let plan = until_cancelled(
                crate::clean::suggest(ProfileRequest {
                    inputs,
                    ..Default::default()
                }),
                &cancel,
            )
            .await?;
            let value = plan.to_value();
            let path = dir.join("plan.json");
            let text = serde_json::to_vec_pretty(&value).map_err(|e| bad(e.to_string()))?;
            crate::write_atomic(&path, &text)?;
            let steps = value
                .get("steps")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            Ok(Produced {
                result: json!({"steps": steps, "plan": value}),
                metrics: json!({}),
                files: vec![("plan".into(), path)],
            })
        }
        "dedup" => {
            let settings = match job.params.get("settings") {
                Some(v) if !v.is_null() => {
                    tamis_dedup::settings::Settings::from_text(&v.to_string(), "params.settings")?
                }
                _ => Default::default(),
            };
            let pairs = dir.join("pairs.parquet");
            let clusters = dir.join("clusters.parquet");
            let d = crate::dedup::DedupJob {
                request: tamis_dedup::Request {
                    inputs,
                    settings,
                    cancel: cancel.clone(),
                    ..Default::default()
                },
                pairs: pairs.clone(),
                clusters: Some(clusters.clone()),
                explain: true,
                save_model: None,
                add: None,
                clusters_in: None,
            };
            let s = tokio::task::spawn_blocking(move || crate::dedup::dedup(&d))
                .await
                .map_err(|e| ServiceError::BadJob(format!("the dedup task stopped: {e}")))??;
            Ok(Produced {
                metrics: json!({
                    "rows_processed": s["rows"],
                    "duplicates_found": s["matched_pairs"],
                }),
                result: s,
                files: vec![("pairs".into(), pairs), ("clusters".into(), clusters)],
            })
        }
        "pii" => {
            // The sample pass reads a few thousand rows; progress follows the full pass.
            let (scan, cells) = (dir.join("pii.json"), dir.join("pii_cells.csv"));
            let watch = tamis_privacy::Watch {
                cancel: cancel.clone(),
                progress,
            };
            let c = cells.clone();
            let s = tokio::task::spawn_blocking(move || {
                crate::pii_scan(
                    &inputs,
                    tamis_core::ReadOptions::default(),
                    Some(&c),
                    &watch,
                )
            })
            .await
            .map_err(|e| ServiceError::BadJob(format!("the PII scan task stopped: {e}")))??;
            let text = serde_json::to_vec_pretty(&s).map_err(|e| bad(e.to_string()))?;
            crate::write_atomic(&scan, &text)?;
            // The result names each column's finding; the cells are an output.
            let columns: Vec<Value> = s
                .columns
                .iter()
                .filter(|c| c.pii_type.is_some() || !c.embedded.is_empty())
                .map(|c| {
                    json!({"name": c.name, "pii_type": c.pii_type, "confidence": c.confidence,
                           "hit_rate": c.hit_rate, "embedded": c.embedded, "examples": c.examples})
                })
                .collect();
            Ok(Produced {
                metrics: json!({"rows_processed": s.rows, "pii_cells": s.labelled}),
                result: json!({"rows": s.rows, "cells": s.cells, "labelled": s.labelled,
                               "columns": columns}),
                files: vec![("scan".into(), scan), ("cells".into(), cells)],
            })
        }
        "clean" => {
            let plan = job
                .params
                .get("plan")
                .filter(|v| !v.is_null())
                .ok_or_else(|| bad(format!("job {}: params need `plan`", job.id)))?;
            let plan_path = dir.join("plan.json");
            let plan_text = match plan {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            crate::write_atomic(&plan_path, plan_text.as_bytes())?;
            let output = dir.join("clean.parquet");
            let vault = dir.join("vault.json");
            let o = crate::clean::clean(crate::clean::CleanJob {
                inputs,
                read: Default::default(),
                plan: plan_path,
                contract: None,
                output: output.clone(),
                provenance: true,
                secret: match vault_keys {
                    Some(k) => k.hmac.clone(),
                    None => std::env::var("TAMIS_PII_KEY")
                        .unwrap_or_default()
                        .into_bytes(),
                },
                actor: job.created_by.clone(),
                quarantine: Some(dir.join("quarantine.jsonl")),
                report: None,
                today: chrono::Utc::now().date_naive(),
                progress,
                passes,
                total,
                cancel: cancel.clone(),
                vault: vault_keys.map(|k| (vault.clone(), k.clone())),
            })
            .await?;
            // Tokens the run made go to the tenant's vault before the output
            // that holds them is published.
            if vault.exists() {
                let v = tamis_privacy::anonymize::Vault::read(&vault)
                    .map_err(tamis_privacy::PrivacyError::from)?;
                let entries: Vec<(String, String)> = v.entries.into_iter().collect();
                store.put_vault_entries(&job.tenant_id, &entries).await?;
            }
            let imputations: u64 = o
                .steps
                .iter()
                .filter(|s| s.ty == "impute")
                .map(|s| s.cells_modified)
                .sum();
            let removed: u64 = o
                .steps
                .iter()
                .filter(|s| s.ty.starts_with("dedupe"))
                .map(|s| s.rows_removed)
                .sum();
            Ok(Produced {
                metrics: json!({
                    "rows_processed": o.rows_in,
                    "imputations_applied": imputations,
                    "duplicates_found": removed,
                }),
                result: json!({
                    "rows_in": o.rows_in,
                    "rows_out": o.rows_out,
                    "quarantined": o.quarantined,
                    "transformations": o.transformations(),
                }),
                files: vec![
                    ("output".into(), output),
                    ("quarantine".into(), dir.join("quarantine.jsonl")),
                ],
            })
        }
        other => Err(bad(format!(
            "job {}: unknown kind `{other}`; kinds are {}",
            job.id,
            JOB_KINDS.join(", ")
        ))),
    }
}

/// Where a job's output file goes in the artifact store.
fn output_key(job: &Job, path: &Path) -> String {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{}/{file}", job_prefix(job))
}

/// Where a job's outputs and log are kept.
fn job_prefix(job: &Job) -> String {
    format!("jobs/{}/{}", job.tenant_id, job.id)
}

/// Records an output under the id derived from the job and its name (a retry
/// overwrites the row, never adds one).
async fn record_artifact(
    store: &Store,
    job: &Job,
    name: &str,
    key: &str,
    (sha, bytes): (String, i64),
) -> Result<(), ServiceError> {
    store
        .add_artifact(&Artifact {
            id: format!("art_{}_{name}", job.id),
            tenant_id: job.tenant_id.clone(),
            job_id: Some(job.id.clone()),
            dataset_id: job.dataset_id.clone(),
            kind: name.to_string(),
            path: key.to_string(),
            bytes,
            sha256: sha,
            created_at: now_ms(),
        })
        .await?;
    Ok(())
}

/// Puts a finished job's files in the artifact store and records them;
/// returns its result (listing the artifacts) and metrics.
/// A cancel is looked at between files, not inside one: a file whose put
/// has begun is stored and recorded whole, so that removing the outputs
/// afterwards ([`drop_outputs`]) leaves nothing behind.
async fn put_outputs(
    store: &Store,
    cfg: &WorkerConfig,
    job: &Job,
    p: Produced,
    cancel: &Cancel,
) -> Result<(Value, Value), ServiceError> {
    let mut files = Vec::new();
    for (name, path) in &p.files {
        if cancel.is_cancelled() {
            return Err(tamis_core::CoreError::Cancelled.into());
        }
        if !path.exists() {
            // Only the quarantine file is written when there is something to say.
            if name == "quarantine" {
                continue;
            }
            return Err(bad(format!(
                "the {} job ended without its `{name}` output",
                job.kind
            )));
        }
        let key = output_key(job, path);
        let put = cfg
            .artifacts
            .put_with_sidecar(&key, path, tamis_clean::SIDECAR_SUFFIX)
            .await?;
        record_artifact(store, job, name, &key, (put.sha256, put.bytes as i64)).await?;
        files.push(json!({"kind": name, "key": key}));
    }
    let mut result = p.result;
    if let Value::Object(m) = &mut result {
        m.insert("artifacts".into(), Value::Array(files));
    }
    Ok((result, p.metrics))
}

/// Keeps the job's log with its outputs, as JSON lines. Best effort: the lines
/// stay in the database, and a store outage must not keep the job's final
/// state from being recorded.
async fn save_log(store: &Store, cfg: &WorkerConfig, job: &Job) {
    if let Err(e) = try_save_log(store, cfg, job).await {
        tracing::warn!(job = %job.id, "the job's log was not kept as an artifact: {e}");
    }
}

/// Aborts a task when dropped (the heartbeat, on every way out of a run).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn try_save_log(store: &Store, cfg: &WorkerConfig, job: &Job) -> Result<(), ServiceError> {
    let lines = store
        .logs_since(&job.tenant_id, &job.id, 0, i64::MAX)
        .await?;
    let mut text = String::new();
    for l in &lines {
        text.push_str(&serde_json::to_string(l).map_err(|e| bad(e.to_string()))?);
        text.push('\n');
    }
    let key = output_key(job, Path::new("logs.jsonl"));
    let sum = (
        tamis_lineage::sha256_hex(text.as_bytes()),
        text.len() as i64,
    );
    cfg.artifacts.put_bytes(&key, text.into_bytes()).await?;
    record_artifact(store, job, "log", &key, sum).await
}

/// Leases one runnable job, runs it and records the outcome. Returns the job
/// id and its state after, or `None` when nothing was runnable.
pub async fn run_once(
    store: &Store,
    cfg: &WorkerConfig,
) -> Result<Option<(String, JobState)>, ServiceError> {
    let Some(job) = store.lease(&cfg.id, cfg.lease_ms).await? else {
        return Ok(None);
    };
    // A scratch directory per attempt: a retry never sees or shares a dead
    // (or abandoned) attempt's files, whose directories it removes.
    let work = cfg.data_dir.join("work");
    for n in 1..job.attempts {
        let _ = std::fs::remove_dir_all(work.join(format!("{}.{n}", job.id)));
    }
    let dir = work.join(format!("{}.{}", job.id, job.attempts));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|source| ServiceError::Write {
        path: dir.clone(),
        source,
    })?;
    let state = run_in(store, cfg, job, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    state
}

async fn run_in(
    store: &Store,
    cfg: &WorkerConfig,
    job: Job,
    dir: &Path,
) -> Result<Option<(String, JobState)>, ServiceError> {
    store
        .append_log(
            &job.id,
            "info",
            &format!(
                "attempt {} of {} on worker {}",
                job.attempts, job.max_attempts, cfg.id
            ),
            &json!({"kind": job.kind, "attempt": job.attempts}),
        )
        .await?;
    let shared = Shared::default();
    let ended = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicBool::new(false));
    let started = now_ms();
    // The heartbeat: extends the lease and reports progress until the job ends.
    let beat = {
        let (store, cfg, id) = (store.clone(), cfg.clone(), job.id.clone());
        let (progress, total, passes) = (
            shared.progress.clone(),
            shared.total.clone(),
            shared.passes.clone(),
        );
        let (cancel, lost, ended) = (shared.cancel.clone(), lost.clone(), ended.clone());
        tokio::spawn(async move {
            // Progress is per pass: a clean reads its input once per pass.
            let (mut at, mut pass_started) = (crate::PassProgress::default(), started);
            // When the lease was last extended.
            let mut renewed = started;
            loop {
                tokio::time::sleep(Duration::from_millis(cfg.heartbeat_ms)).await;
                let (done, all) = (
                    progress.load(Ordering::Relaxed),
                    total.load(Ordering::Relaxed),
                );
                if at.update(done, passes.load(Ordering::Relaxed)) {
                    pass_started = now_ms();
                }
                let pass = at.pass();
                let share = if all > 0 {
                    at.in_pass(done) as f64 / all as f64
                } else {
                    0.0
                };
                let elapsed = now_ms() - pass_started;
                let eta = (share > 0.01).then(|| ((elapsed as f64) * (1.0 - share) / share) as i64);
                let p = Progress {
                    pass: Some(format!("pass{pass}")),
                    progress: share.min(0.99),
                    eta_ms: eta,
                    metrics: Some(json!({"bytes_read": done})),
                };
                // It beats until the job's final state is recorded (uploading
                // outputs, or waiting for a cancelled run to stop, can outlast
                // a lease), but logs progress only while the run runs.
                // The lease runs from before the call (the store dates it then).
                let sent = now_ms();
                match store.heartbeat(&id, &cfg.id, cfg.lease_ms, &p).await {
                    Ok(Heartbeat::Continue) if !ended.load(Ordering::Relaxed) => {
                        // The live console shows progress as log lines too.
                        let _ = store
                            .append_log(
                                &id,
                                "progress",
                                &format!("pass {pass}: {:.0}% read", p.progress * 100.0),
                                &json!({"pass": pass, "progress": p.progress, "eta_ms": p.eta_ms, "bytes_read": done}),
                            )
                            .await;
                    }
                    Ok(Heartbeat::Continue) => {}
                    Ok(Heartbeat::Cancel) => cancel.cancel(),
                    Err(e) => {
                        // A store hiccup is retried at the next beat while
                        // the lease may still hold; a lease taken over, or
                        // one that ran out unrenewed, means another worker
                        // may have the job: this run stops too.
                        let taken = matches!(e, tamis_store::StoreError::LeaseLost(_));
                        if taken || now_ms() - renewed >= cfg.lease_ms {
                            lost.store(true, Ordering::Release);
                            cancel.cancel();
                            break;
                        }
                        tracing::warn!(job = %id, "heartbeat failed, retried at the next beat: {e}");
                        continue;
                    }
                }
                renewed = sent;
            }
        })
    };
    let cancel = shared.cancel.clone();
    let run = execute(
        store,
        &cfg.artifacts,
        cfg.vault_keys.as_ref(),
        &job,
        dir,
        shared,
    );
    tokio::pin!(run);
    // Asked to stop (the heartbeat raised the flag: a user cancelled, or the
    // lease went to another worker): the run is given STOP_GRACE to end.
    // Async steps stop at their next await, blocking ones (clean, dedup) at
    // their next batch or stage.
    let mut asked: Option<std::time::Instant> = None;
    let outcome = loop {
        tokio::select! {
            r = &mut run => break Some(r),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if asked.is_none() && cancel.is_cancelled() {
                    asked = Some(std::time::Instant::now());
                }
                if asked.is_some_and(|t| t.elapsed() > STOP_GRACE) {
                    break None;
                }
            }
        }
    };
    // The run may have seen the flag (and ended) before the loop did.
    if asked.is_none() && cancel.is_cancelled() {
        asked = Some(std::time::Instant::now());
    }
    ended.store(true, Ordering::Relaxed);
    let _beat = AbortOnDrop(beat);
    let state = if let Some(t) = asked {
        let stopped = outcome.is_some();
        let interrupted = matches!(&outcome, Some(Err(e)) if e.is_cancelled());
        let fields = json!({"stopped": stopped, "interrupted": interrupted,
                            "stop_ms": t.elapsed().as_millis() as u64});
        if lost.load(Ordering::Acquire) {
            tracing::warn!(job = %job.id, %fields, "lease lost; another worker has the job");
            return Ok(Some((job.id.clone(), JobState::Running)));
        }
        let message = if stopped {
            "cancelled while running; stopped"
        } else {
            "cancelled while running; a blocking step is still finishing, unrecorded"
        };
        store.append_log(&job.id, "warn", message, &fields).await?;
        save_log(store, cfg, &job).await;
        store.finish_cancelled(&job.id, &cfg.id).await?;
        JobState::Cancelled
    } else {
        record_outcome(store, cfg, &job, outcome, (&cancel, &lost)).await?
    };
    if let Some(hook) = &cfg.on_finish
        && state.is_final()
    {
        hook(&store.job(&job.tenant_id, &job.id).await?);
    }
    Ok(Some((job.id.clone(), state)))
}

/// Records how a run that was not asked to stop ended: its outputs put and
/// the job succeeded, or the attempt failed (retried when it may be). A
/// cancel asked for while the outputs are stored wins: they are removed and
/// the job ends cancelled ([`drop_outputs`]).
async fn record_outcome(
    store: &Store,
    cfg: &WorkerConfig,
    job: &Job,
    outcome: Option<Result<Produced, ServiceError>>,
    (cancel, lost): (&Cancel, &AtomicBool),
) -> Result<JobState, ServiceError> {
    // Outputs go to the artifact store first; failing that fails the attempt.
    // A cancel the heartbeat relays stops the puts before the next file.
    let outcome = match outcome {
        Some(Ok(p)) => put_outputs(store, cfg, job, p, cancel).await,
        Some(Err(e)) => Err(e),
        None => Err(bad("the run ended without a result")),
    };
    if matches!(&outcome, Err(e) if e.is_cancelled()) {
        if lost.load(Ordering::Acquire) {
            // Another worker has the job and writes the same outputs.
            tracing::warn!(job = %job.id, "lease lost while storing outputs; another worker has the job");
            return Ok(JobState::Running);
        }
        return drop_outputs(store, cfg, job, Late::Storing).await;
    }
    // The last log line and the log artifact come before the final state, so
    // whoever sees the state (a live console, a client) finds both. The
    // heartbeat may not have relayed a cancel yet: the store is asked.
    Ok(match outcome {
        Ok(_) if store.cancel_requested(&job.id, &cfg.id).await? => {
            drop_outputs(store, cfg, job, Late::Storing).await?
        }
        Ok((result, metrics)) => {
            store
                .append_log(&job.id, "info", "succeeded", &metrics)
                .await?;
            save_log(store, cfg, job).await;
            if store.complete(&job.id, &cfg.id, &result, &metrics).await?
                == Completion::CancelRequested
            {
                // Asked for between the check and the record: the log already
                // says "succeeded", so the next line says what overruled it.
                return drop_outputs(store, cfg, job, Late::Recording).await;
            }
            // Rows count towards the tenant's monthly quota.
            let rows = metrics
                .get("rows_processed")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if rows > 0 {
                store
                    .add_usage(&job.tenant_id, &tamis_store::current_month(), rows)
                    .await?;
            }
            JobState::Succeeded
        }
        Err(e) => {
            let transient = !e.is_bad_input();
            let retry = transient && job.attempts < job.max_attempts;
            let message = e.to_string();
            store
                .append_log(&job.id, "error", &message, &json!({"retry": retry}))
                .await?;
            if !retry {
                save_log(store, cfg, job).await;
            }
            store.fail(&job.id, &cfg.id, &message, transient).await?
        }
    })
}

/// When a cancel overtook a finished run (see [`drop_outputs`]).
#[derive(Debug, Clone, Copy)]
enum Late {
    /// While its outputs were being stored.
    Storing,
    /// Once they were stored and "succeeded" logged, before the success was
    /// recorded.
    Recording,
}

/// Ends a job cancelled after its run finished, while its outputs were
/// being stored (or its success recorded): their records go first (nothing
/// points at a half-stored output), then the objects, then the log is kept
/// and the job cancelled. An object that cannot be deleted is named in the
/// log, not retried: the cancel is not held up by a store outage.
async fn drop_outputs(
    store: &Store,
    cfg: &WorkerConfig,
    job: &Job,
    late: Late,
) -> Result<JobState, ServiceError> {
    let when = match late {
        Late::Storing => "cancelled while its outputs were being stored",
        Late::Recording => {
            "cancelled as its success was being recorded, which the cancel overrules"
        }
    };
    // Refused (lease lost) when another worker has taken the job over: its
    // attempt writes the same keys, so nothing is deleted then.
    let records = store
        .remove_job_artifacts(&job.tenant_id, &job.id, &cfg.id)
        .await?;
    let (message, fields) = match cfg.artifacts.delete_prefix(&job_prefix(job)).await {
        Ok(objects) => (
            format!("{when}; its outputs are removed"),
            json!({"artifacts_removed": records, "objects_removed": objects}),
        ),
        Err(e) => (
            format!("{when}; removing its outputs failed: {e}"),
            json!({"artifacts_removed": records, "objects_removed": null}),
        ),
    };
    store.append_log(&job.id, "warn", &message, &fields).await?;
    save_log(store, cfg, job).await;
    store.finish_cancelled(&job.id, &cfg.id).await?;
    Ok(JobState::Cancelled)
}

/// Runs jobs until `stop` turns true: reaps expired leases, leases, runs,
/// and sleeps when the queue is empty.
pub async fn run(
    store: Store,
    cfg: WorkerConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ServiceError> {
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let (requeued, failed) = store.reap_expired().await?;
        if requeued + failed > 0 {
            tracing::warn!(requeued, failed, "expired leases reaped");
        }
        match run_once(&store, &cfg).await {
            Ok(Some((id, state))) => tracing::info!(job = %id, state = state.name(), "job done"),
            Ok(None) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(cfg.poll_ms)) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::error!("worker: {e}");
                tokio::time::sleep(Duration::from_millis(cfg.poll_ms)).await;
            }
        }
    }
}
