//! The job queue: jobs persisted in the metadata database, leased by workers
//! that heartbeat; a lease that runs out puts the job back in the queue with
//! a backoff (or fails it after its last attempt). Every change a worker makes
//! names the worker and succeeds only while it holds the lease, so a worker
//! that lost its job can never finish it a second time.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Backend, Store, StoreError, json_text, now_ms, parse_json};

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Leased by a worker.
    Running,
    /// Done.
    Succeeded,
    /// Gave up (an error, or out of attempts).
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl JobState {
    /// The name stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<JobState> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ]
        .into_iter()
        .find(|j| j.name() == s)
    }

    /// Whether the job will not change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// A job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// profile, suggest, clean, dedup, …
    pub kind: String,
    /// The dataset it works on.
    pub dataset_id: Option<String>,
    /// Its parameters (plan, options).
    pub params: Value,
    /// State.
    pub state: JobState,
    /// The pass running (`pass1`, `pass2`), when running.
    pub pass: Option<String>,
    /// 0..1 within the pass (1 when the job has succeeded).
    pub progress: f64,
    /// Estimated milliseconds left.
    pub eta_ms: Option<i64>,
    /// Counters (rows processed, duplicates found, imputations applied, …).
    pub metrics: Value,
    /// What it produced (summary), when it succeeded.
    pub result: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// The client's idempotency key.
    pub idempotency_key: Option<String>,
    /// Leases taken so far.
    pub attempts: i64,
    /// Leases allowed.
    pub max_attempts: i64,
    /// Not leased before (ms): the retry backoff.
    pub run_after: i64,
    /// The worker holding it.
    pub lease_owner: Option<String>,
    /// Its lease runs out (ms).
    pub lease_until: Option<i64>,
    /// A user asked to cancel it while it ran.
    pub cancel_requested: bool,
    /// Who submitted it.
    pub created_by: String,
    /// Submitted (ms).
    pub created_at: i64,
    /// First leased (ms).
    pub started_at: Option<i64>,
    /// Finished (ms).
    pub finished_at: Option<i64>,
}

/// A job to submit.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    /// Tenant.
    pub tenant_id: String,
    /// Kind.
    pub kind: String,
    /// Dataset.
    pub dataset_id: Option<String>,
    /// Parameters.
    pub params: Value,
    /// Submitting twice with one key gives the first job back.
    pub idempotency_key: Option<String>,
    /// Leases allowed (default 3).
    pub max_attempts: Option<i64>,
    /// Who submits it.
    pub created_by: String,
}

/// Filters for listing jobs (all optional).
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this dataset.
    pub dataset_id: Option<String>,
    /// At most this many (default 100).
    pub limit: Option<i64>,
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// 1, 2, … within the job.
    pub seq: i64,
    /// When (ms).
    pub ts: i64,
    /// info, warn, error, progress, …
    pub level: String,
    /// The message.
    pub message: String,
    /// Structured fields.
    pub fields: Value,
}

/// Where a running job is, reported with each heartbeat.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The pass running (`pass1`, `pass2`; `None` keeps the last).
    pub pass: Option<String>,
    /// 0..1 within the pass (1 when the job has succeeded).
    pub progress: f64,
    /// Estimated milliseconds left.
    pub eta_ms: Option<i64>,
    /// Counters so far (`None` keeps the last).
    pub metrics: Option<Value>,
}

/// What a heartbeat tells the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Keep going; the lease is extended.
    Continue,
    /// A user cancelled the job: stop and call [`Store::finish_cancelled`].
    Cancel,
}

/// What [`Store::complete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The job is recorded succeeded.
    Succeeded,
    /// A user asked to cancel it before it could be recorded succeeded: it is
    /// still running and held; the worker removes its outputs and calls
    /// [`Store::finish_cancelled`].
    CancelRequested,
}

const BACKOFF_BASE_MS: i64 = 1_000;
const BACKOFF_MAX_MS: i64 = 60_000;

/// The wait before attempt `attempts + 1`: doubling from 1 s, at most a minute.
pub fn backoff_ms(attempts: i64) -> i64 {
    let shift = (attempts.max(1) - 1).min(16) as u32;
    (BACKOFF_BASE_MS << shift).min(BACKOFF_MAX_MS)
}

/// A worker's write changed no row: it no longer holds the job's lease.
fn held(rows: u64, job_id: &str) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::LeaseLost(job_id.to_string()));
    }
    Ok(())
}

fn job_of(r: &AnyRow) -> Result<Job, StoreError> {
    let state: String = r.try_get("state")?;
    let params: String = r.try_get("params")?;
    let metrics: String = r.try_get("metrics")?;
    let result: Option<String> = r.try_get("result")?;
    Ok(Job {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        kind: r.try_get("kind")?,
        dataset_id: r.try_get("dataset_id")?,
        params: parse_json("jobs.params", &params)?,
        state: JobState::parse(&state)
            .ok_or_else(|| StoreError::Conflict(format!("unknown job state `{state}`")))?,
        pass: r.try_get("pass")?,
        progress: r.try_get("progress")?,
        eta_ms: r.try_get("eta_ms")?,
        metrics: parse_json("jobs.metrics", &metrics)?,
        result: result.map(|s| parse_json("jobs.result", &s)).transpose()?,
        error: r.try_get("error")?,
        idempotency_key: r.try_get("idempotency_key")?,
        attempts: r.try_get("attempts")?,
        max_attempts: r.try_get("max_attempts")?,
        run_after: r.try_get("run_after")?,
        lease_owner: r.try_get("lease_owner")?,
        lease_until: r.try_get("lease_until")?,
        cancel_requested: r.try_get::<i64, _>("cancel_requested")? != 0,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

impl Store {
    /// Submits a job. With an idempotency key already used by the tenant, the
    /// existing job comes back and nothing is queued (`false`); refused with
    /// [`StoreError::QueueFull`] when the queue is at its maximum depth.
    pub async fn enqueue(&self, j: &NewJob) -> Result<(Job, bool), StoreError> {
        if let Some(k) = &j.idempotency_key
            && let Some(existing) = self.job_by_key(&j.tenant_id, k).await?
        {
            return Ok((existing, false));
        }
        let depth = self.queue_depth().await?;
        if depth >= self.max_queue_depth {
            return Err(StoreError::QueueFull(depth));
        }
        let now = now_ms();
        let id = crate::new_ordered_id("job");
        let inserted = sqlx::query("INSERT INTO jobs (id, tenant_id, kind, dataset_id, params, state, idempotency_key, max_attempts, run_after, created_by, created_at) VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $10)")
            .bind(&id)
            .bind(&j.tenant_id)
            .bind(&j.kind)
            .bind(&j.dataset_id)
            .bind(json_text(&j.params))
            .bind(&j.idempotency_key)
            .bind(j.max_attempts.unwrap_or(3).max(1))
            .bind(now)
            .bind(&j.created_by)
            .bind(now)
            .execute(&self.pool)
            .await;
        match inserted {
            Ok(_) => Ok((self.job(&j.tenant_id, &id).await?, true)),
            // Two submissions with one key at once: the loser returns the winner's job.
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                let k = j.idempotency_key.as_deref().unwrap_or_default();
                let existing = self
                    .job_by_key(&j.tenant_id, k)
                    .await?
                    .ok_or_else(|| StoreError::Conflict(d.message().to_string()))?;
                Ok((existing, false))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn job_by_key(&self, tenant_id: &str, key: &str) -> Result<Option<Job>, StoreError> {
        sqlx::query("SELECT * FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2")
            .bind(tenant_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(job_of)
            .transpose()
    }

    /// A job of the tenant.
    pub async fn job(&self, tenant_id: &str, id: &str) -> Result<Job, StoreError> {
        let r = sqlx::query("SELECT * FROM jobs WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("job {id}")))?;
        job_of(&r)
    }

    /// The tenant's jobs, newest first.
    pub async fn jobs(&self, tenant_id: &str, f: &JobFilter) -> Result<Vec<Job>, StoreError> {
        sqlx::query(
            "SELECT * FROM jobs WHERE tenant_id = $1 \
             AND ($2 = '' OR state = $2) AND ($3 = '' OR kind = $3) AND ($4 = '' OR dataset_id = $4) \
             ORDER BY created_at DESC, id DESC LIMIT $5",
        )
        .bind(tenant_id)
        .bind(f.state.map(JobState::name).unwrap_or_default())
        .bind(f.kind.clone().unwrap_or_default())
        .bind(f.dataset_id.clone().unwrap_or_default())
        .bind(f.limit.unwrap_or(100).clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job_of)
        .collect()
    }

    /// Jobs waiting in the queue (all tenants).
    pub async fn queue_depth(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE state = 'queued'")
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?,
        )
    }

    /// Leases the oldest runnable job for `worker` for `lease_ms`: queued, past
    /// its backoff, and of a tenant running fewer jobs than its limit.
    pub async fn lease(&self, worker: &str, lease_ms: i64) -> Result<Option<Job>, StoreError> {
        let now = now_ms();
        let pick = "SELECT j.id FROM jobs j JOIN tenants t ON t.id = j.tenant_id \
                    WHERE j.state = 'queued' AND j.run_after <= $3 \
                    AND (SELECT COUNT(*) FROM jobs r WHERE r.tenant_id = j.tenant_id AND r.state = 'running') < t.max_concurrent_jobs \
                    ORDER BY j.created_at, j.id LIMIT 1";
        let lock = match self.backend {
            // Workers in other processes skip a row another is leasing instead of waiting.
            Backend::Postgres => " FOR UPDATE OF j SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2, \
             attempts = attempts + 1, started_at = COALESCE(started_at, $3), pass = NULL, \
             progress = 0, eta_ms = NULL \
             WHERE id = ({pick}{lock}) AND state = 'queued' RETURNING *"
        );
        let r = sqlx::query(&sql)
            .bind(worker)
            .bind(now + lease_ms)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(job_of).transpose()
    }

    /// Extends the lease and records progress. Fails with
    /// [`StoreError::LeaseLost`] when the worker no longer holds the job.
    pub async fn heartbeat(
        &self,
        job_id: &str,
        worker: &str,
        lease_ms: i64,
        p: &Progress,
    ) -> Result<Heartbeat, StoreError> {
        let r = sqlx::query("UPDATE jobs SET lease_until = $1, pass = COALESCE($2, pass), progress = $3, eta_ms = $4, metrics = COALESCE($5, metrics) WHERE id = $6 AND lease_owner = $7 AND state = 'running' RETURNING cancel_requested")
            .bind(now_ms() + lease_ms)
            .bind(p.pass.as_deref())
            .bind(p.progress.clamp(0.0, 1.0))
            .bind(p.eta_ms)
            .bind(p.metrics.as_ref().map(json_text))
            .bind(job_id)
            .bind(worker)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::LeaseLost(job_id.to_string()))?;
        Ok(if r.try_get::<i64, _>("cancel_requested")? != 0 {
            Heartbeat::Cancel
        } else {
            Heartbeat::Continue
        })
    }

    /// Records a held job's final state; returns the rows changed (0: not
    /// held, or, for a success, a cancel was asked for).
    async fn finish(
        &self,
        job_id: &str,
        worker: &str,
        state: JobState,
        result: Option<&Value>,
        metrics: Option<&Value>,
        error: Option<&str>,
    ) -> Result<u64, StoreError> {
        // A success is recorded only if no cancel was asked for: a cancel
        // that lands while the outputs are stored wins over them.
        Ok(sqlx::query("UPDATE jobs SET state = $1, result = $2, metrics = COALESCE($3, metrics), error = $4, finished_at = $5, lease_owner = NULL, lease_until = NULL, progress = CASE WHEN $1 = 'succeeded' THEN 1 ELSE progress END, eta_ms = NULL WHERE id = $6 AND lease_owner = $7 AND state = 'running' AND ($1 <> 'succeeded' OR cancel_requested = 0)")
            .bind(state.name())
            .bind(result.map(json_text))
            .bind(metrics.map(json_text))
            .bind(error)
            .bind(now_ms())
            .bind(job_id)
            .bind(worker)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Marks a leased job succeeded with its result and final metrics,
    /// unless a user asked to cancel it first
    /// ([`Completion::CancelRequested`]: it stays held and running).
    pub async fn complete(
        &self,
        job_id: &str,
        worker: &str,
        result: &Value,
        metrics: &Value,
    ) -> Result<Completion, StoreError> {
        let n = self
            .finish(
                job_id,
                worker,
                JobState::Succeeded,
                Some(result),
                Some(metrics),
                None,
            )
            .await?;
        if n > 0 {
            Ok(Completion::Succeeded)
        } else if self.cancel_requested(job_id, worker).await? {
            Ok(Completion::CancelRequested)
        } else {
            // Held and running with no cancel asked for cannot refuse the
            // update; reported rather than assumed.
            Err(StoreError::LeaseLost(job_id.to_string()))
        }
    }

    /// Whether a user asked to cancel a job this worker holds (a worker
    /// checks before it records a success, whatever its heartbeat last said).
    pub async fn cancel_requested(&self, job_id: &str, worker: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "SELECT cancel_requested FROM jobs WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        )
        .bind(job_id)
        .bind(worker)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::LeaseLost(job_id.to_string()))?;
        Ok(r.try_get::<i64, _>("cancel_requested")? != 0)
    }

    /// Marks a leased job cancelled (after a heartbeat said [`Heartbeat::Cancel`]).
    pub async fn finish_cancelled(&self, job_id: &str, worker: &str) -> Result<(), StoreError> {
        self.finish(
            job_id,
            worker,
            JobState::Cancelled,
            None,
            None,
            Some("cancelled by a user while it ran"),
        )
        .await
        .and_then(|n| held(n, job_id))
    }

    /// A leased job failed. `retry`: a transient fault, retried after a
    /// backoff while attempts remain; otherwise (bad input) it fails now.
    /// Returns the job's new state.
    pub async fn fail(
        &self,
        job_id: &str,
        worker: &str,
        error: &str,
        retry: bool,
    ) -> Result<JobState, StoreError> {
        let r = sqlx::query("SELECT attempts, max_attempts FROM jobs WHERE id = $1 AND lease_owner = $2 AND state = 'running'")
            .bind(job_id)
            .bind(worker)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::LeaseLost(job_id.to_string()))?;
        let (attempts, max): (i64, i64) = (r.try_get("attempts")?, r.try_get("max_attempts")?);
        if retry && attempts < max {
            let n = sqlx::query("UPDATE jobs SET state = 'queued', error = $1, run_after = $2, lease_owner = NULL, lease_until = NULL WHERE id = $3 AND lease_owner = $4 AND state = 'running'")
                .bind(error)
                .bind(now_ms() + backoff_ms(attempts))
                .bind(job_id)
                .bind(worker)
                .execute(&self.pool)
                .await?
                .rows_affected();
            held(n, job_id)?;
            return Ok(JobState::Queued);
        }
        let n = self
            .finish(job_id, worker, JobState::Failed, None, None, Some(error))
            .await?;
        held(n, job_id)?;
        Ok(JobState::Failed)
    }

    /// Cancels a job of the tenant: a queued job at once; a running one is
    /// flagged and its worker stops at its next heartbeat. Returns the state after.
    pub async fn cancel(&self, tenant_id: &str, job_id: &str) -> Result<JobState, StoreError> {
        let job = self.job(tenant_id, job_id).await?;
        match job.state {
            JobState::Queued => {
                let n = sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = $1, error = 'cancelled before it ran' WHERE id = $2 AND tenant_id = $3 AND state = 'queued'")
                    .bind(now_ms())
                    .bind(job_id)
                    .bind(tenant_id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if n == 0 {
                    // Leased in between: flag it instead.
                    return Box::pin(self.cancel(tenant_id, job_id)).await;
                }
                self.changed();
                Ok(JobState::Cancelled)
            }
            JobState::Running => {
                sqlx::query(
                    "UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND tenant_id = $2",
                )
                .bind(job_id)
                .bind(tenant_id)
                .execute(&self.pool)
                .await?;
                Ok(JobState::Running)
            }
            s => Err(StoreError::Conflict(format!(
                "job {job_id} is already {}",
                s.name()
            ))),
        }
    }

    /// Jobs whose lease ran out (their worker died or hung) go back to the
    /// queue after a backoff, or fail when they used their last attempt.
    /// Returns how many were requeued and how many failed.
    pub async fn reap_expired(&self) -> Result<(u64, u64), StoreError> {
        let now = now_ms();
        let rows = sqlx::query("SELECT id, lease_owner, attempts, max_attempts FROM jobs WHERE state = 'running' AND lease_until < $1")
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        let (mut requeued, mut failed) = (0, 0);
        for r in rows {
            let id: String = r.try_get("id")?;
            let owner: Option<String> = r.try_get("lease_owner")?;
            let (attempts, max): (i64, i64) = (r.try_get("attempts")?, r.try_get("max_attempts")?);
            let message = format!(
                "worker {} stopped heartbeating (attempt {attempts} of {max})",
                owner.as_deref().unwrap_or("?")
            );
            // Guarded by the lease it had: a heartbeat that arrives first wins.
            let (sql, last) = if attempts < max {
                (
                    "UPDATE jobs SET state = 'queued', error = $1, run_after = $2, lease_owner = NULL, lease_until = NULL WHERE id = $3 AND state = 'running' AND lease_until < $4",
                    false,
                )
            } else {
                (
                    "UPDATE jobs SET state = 'failed', error = $1, finished_at = $2, lease_owner = NULL, lease_until = NULL WHERE id = $3 AND state = 'running' AND lease_until < $4",
                    true,
                )
            };
            let n = sqlx::query(sql)
                .bind(&message)
                .bind(if last {
                    now
                } else {
                    now + backoff_ms(attempts)
                })
                .bind(&id)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
            if n > 0 {
                tracing::warn!(job = %id, "{message}");
                if last {
                    failed += 1;
                } else {
                    requeued += 1;
                }
            }
        }
        Ok((requeued, failed))
    }

    /// Appends a line to a job's log; returns its sequence number.
    pub async fn append_log(
        &self,
        job_id: &str,
        level: &str,
        message: &str,
        fields: &Value,
    ) -> Result<i64, StoreError> {
        // The next number and the insert in one statement; a concurrent
        // writer's collision on the primary key is retried.
        for _ in 0..5 {
            let r = sqlx::query("INSERT INTO job_logs (job_id, seq, ts, level, message, fields) SELECT $1, CAST(COALESCE(MAX(seq), 0) + 1 AS BIGINT), $2, $3, $4, $5 FROM job_logs WHERE job_id = $1 RETURNING seq")
                .bind(job_id)
                .bind(now_ms())
                .bind(level)
                .bind(message)
                .bind(json_text(fields))
                .fetch_one(&self.pool)
                .await;
            match r {
                Ok(r) => {
                    self.changed();
                    return Ok(r.try_get("seq")?);
                }
                Err(sqlx::Error::Database(d)) if d.is_unique_violation() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict(format!(
            "job {job_id}: log writers keep colliding"
        )))
    }

    /// A job's log lines after `after` (0: all), in order, up to `limit`.
    pub async fn logs_since(
        &self,
        tenant_id: &str,
        job_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LogLine>, StoreError> {
        self.job(tenant_id, job_id).await?;
        sqlx::query("SELECT seq, ts, level, message, fields FROM job_logs WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(job_id)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let fields: String = r.try_get("fields")?;
                Ok(LogLine {
                    seq: r.try_get("seq")?,
                    ts: r.try_get("ts")?,
                    level: r.try_get("level")?,
                    message: r.try_get("message")?,
                    fields: parse_json("job_logs.fields", &fields)?,
                })
            })
            .collect()
    }
}
