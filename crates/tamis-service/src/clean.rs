//! Use cases of cleaning: check, suggest, infer a contract, clean, provenance,
//! revert and lineage verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde_json::{Value, json};
use tamis_clean::check::{CheckReport, FreeTextPii};
use tamis_clean::provenance::{Query, QueryResult};
use tamis_clean::{CleanError, CleanOutcome, Plan};
use tamis_core::contract::Contract;
use tamis_core::{Dataset, Quarantine, ReadOptions};
use tamis_lineage::{Chain, Verdict};

use crate::{ProfileRequest, ServiceError, write_atomic};

fn quarantine(path: &Option<PathBuf>) -> Result<Arc<Quarantine>, ServiceError> {
    Ok(Arc::new(match path {
        Some(p) => Quarantine::to_file(p)?,
        None => Quarantine::in_memory(),
    }))
}

/// Checks a dataset against a contract.
pub fn check(
    inputs: &[String],
    read: ReadOptions,
    contract: &Path,
    violations: Option<&Path>,
    quarantine_to: &Option<PathBuf>,
    today: chrono::NaiveDate,
) -> Result<CheckReport, ServiceError> {
    let contract = Contract::read(contract).map_err(CleanError::from)?;
    let ds = Dataset::open(inputs, read)?;
    let q = quarantine(quarantine_to)?;
    let r = tamis_clean::check::check(&ds, &contract, today, violations, q.clone())?;
    q.finish()?;
    Ok(r)
}

/// Suggests a plan from a profile.
pub async fn suggest(req: ProfileRequest) -> Result<Plan, ServiceError> {
    let p = crate::profile(req).await?;
    Ok(tamis_clean::suggest::suggest(&p))
}

/// Infers a starting contract from a profile, then looks inside the free
/// text of its text columns for personal data
/// ([`tamis_clean::check::propose_redact_entities`]: those found to hold
/// some get `pii_strategy: redact_entities`). Returns the contract and what
/// each text column's sample held.
pub async fn infer_contract(
    req: ProfileRequest,
    dataset_id: &str,
) -> Result<(Contract, Vec<FreeTextPii>), ServiceError> {
    use tamis_clean::check::{FREE_TEXT_ROWS, FREE_TEXT_SAMPLE};
    let today = req.profile.today;
    let opened = crate::open_profile(req)?;
    // The same opened dataset is read again for the sample: stdin was
    // spooled to a file when it was opened.
    let ds = opened.dataset.clone();
    let p = opened.run().await?;
    let mut contract = tamis_clean::check::infer_contract(&p, dataset_id, today);
    let columns: Vec<String> = contract
        .columns
        .iter()
        .filter(|c| tamis_clean::check::free_text_candidate(c))
        .map(|c| c.name.clone())
        .collect();
    if columns.is_empty() {
        return Ok((contract, Vec::new()));
    }
    let samples = ds.sample_head_text(&columns, FREE_TEXT_SAMPLE, FREE_TEXT_ROWS)?;
    let found = tamis_clean::check::propose_redact_entities(&mut contract, &columns, &samples);
    Ok((contract, found))
}

/// What to clean.
pub struct CleanJob {
    /// Inputs (one dataset).
    pub inputs: Vec<String>,
    /// Read options.
    pub read: ReadOptions,
    /// Plan file.
    pub plan: PathBuf,
    /// Contract file.
    pub contract: Option<PathBuf>,
    /// Output file.
    pub output: PathBuf,
    /// Provenance on.
    pub provenance: bool,
    /// PII key.
    pub secret: Vec<u8>,
    /// Actor for the audit log.
    pub actor: String,
    /// Quarantine file.
    pub quarantine: Option<PathBuf>,
    /// Before/after report (.json or .html).
    pub report: Option<PathBuf>,
    /// Day for `not_future`.
    pub today: chrono::NaiveDate,
    /// Bytes read, for progress.
    pub progress: Arc<AtomicU64>,
    /// Passes started, for progress.
    pub passes: Arc<AtomicU64>,
    /// Input bytes per pass, set once the input is opened (left as it is
    /// when a size is unknown: stdin, a stream), for progress.
    pub total: Arc<AtomicU64>,
    /// Raised to stop the run between batches.
    pub cancel: tamis_core::Cancel,
    /// Token vault file and keys (for `pii` steps that tokenize).
    pub vault: Option<(PathBuf, tamis_privacy::anonymize::Keys)>,
}

/// Cleans: reads the plan and contract (failing before any data is read if
/// they are bad), runs the plan, and writes the optional report.
pub async fn clean(job: CleanJob) -> Result<CleanOutcome, ServiceError> {
    let plan = Plan::read(&job.plan)?;
    let contract = match &job.contract {
        Some(c) => Some(Contract::read(c).map_err(CleanError::from)?),
        None => None,
    };
    let dataset = Arc::new(Dataset::open(&job.inputs, job.read.clone())?);
    if let Some(n) = dataset.total_bytes() {
        job.total.store(n, std::sync::atomic::Ordering::Relaxed);
    }
    let req = tamis_clean::CleanRequest {
        dataset,
        plan,
        contract,
        output: job.output.clone(),
        provenance: job.provenance,
        secret: job.secret.clone(),
        actor: job.actor.clone(),
        quarantine: quarantine(&job.quarantine)?,
        progress: job.progress.clone(),
        passes: job.passes.clone(),
        cancel: job.cancel.clone(),
        today: job.today,
        vault: job.vault.clone(),
        matcher: Some(Arc::new(crate::dedup::DedupMatcher)),
        early_output: true,
    };
    let outcome = tokio::task::spawn_blocking(move || tamis_clean::clean(req))
        .await
        .map_err(|e| CleanError::Internal(e.to_string()))??;
    if let Some(r) = &job.report {
        let before = crate::profile(ProfileRequest {
            inputs: job.inputs.clone(),
            read: job.read.clone(),
            ..Default::default()
        })
        .await?;
        let after = crate::profile(ProfileRequest {
            inputs: vec![job.output.display().to_string()],
            ..Default::default()
        })
        .await?;
        let report = clean_report(&outcome, &before, &after);
        let html = r
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("html"));
        let bytes = if html {
            tamis_report::render_clean_html(&report)
        } else {
            serde_json::to_string_pretty(&report).unwrap_or_default()
        };
        write_atomic(r, bytes.as_bytes())?;
    }
    Ok(outcome)
}

/// The before/after report of a clean run.
pub fn clean_report(
    o: &CleanOutcome,
    before: &tamis_profile::Profile,
    after: &tamis_profile::Profile,
) -> Value {
    let dedup: u64 = o
        .steps
        .iter()
        .filter(|s| s.ty == "dedupe_exact" || s.ty == "dedupe_fuzzy")
        .map(|s| s.rows_removed)
        .sum();
    json!({
        "schema": "tamis.clean-report/1",
        "run_id": o.run_id,
        "inputs": o.inputs.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "output": o.output,
        "rows_in": o.rows_in,
        "rows_out": o.rows_out,
        "duplicates_removed": dedup,
        "quality_before": before.quality,
        "quality_after": after.quality,
        "issues_before": before.issues.len(),
        "issues_after": after.issues.len(),
        "steps": o.steps.iter().map(|s| json!({
            "id": s.id, "type": s.ty, "rows_in": s.rows_in, "rows_removed": s.rows_removed,
            "rows_modified": s.rows_modified, "cells_modified": s.cells_modified,
            "rows_flagged": s.rows_flagged,
            "cells_by_column": s.cells_by_column, "learned": s.learned,
        })).collect::<Vec<_>>(),
        "transformations": o.transformations(),
        "sample": o.sample,
    })
}

/// Queries provenance.
pub fn provenance(output: &Path, q: &Query) -> Result<QueryResult, ServiceError> {
    Ok(tamis_clean::provenance::query(output, q)?)
}

/// Reverts a cleaned output into `dest`; returns (rows, PII columns that come back hashed).
pub fn revert(
    output: &Path,
    dest: &Path,
    vault: Option<(&Path, &tamis_privacy::anonymize::Keys)>,
) -> Result<(usize, Vec<String>), ServiceError> {
    let v = match vault {
        Some((p, _)) => Some(
            tamis_privacy::anonymize::Vault::read(p).map_err(tamis_privacy::PrivacyError::from)?,
        ),
        None => None,
    };
    let (b, pii) = tamis_clean::provenance::revert(output, v.as_ref().zip(vault.map(|x| x.1)))?;
    tamis_clean::provenance::write_batch(dest, &b, false)?;
    Ok((b.num_rows(), pii))
}

/// Verifies a lineage chain; `chain` may be the chain file or the cleaned output.
pub fn verify_lineage(chain: &Path, data: Option<&Path>) -> Result<Verdict, ServiceError> {
    let file = if chain.is_dir() {
        chain.join(tamis_clean::exec::LINEAGE)
    } else if chain.extension().is_some_and(|e| e == "json") {
        chain.to_path_buf()
    } else {
        tamis_clean::sidecar_dir(chain).join(tamis_clean::exec::LINEAGE)
    };
    Ok(Chain::verify_file(&file, data).map_err(CleanError::from)?)
}

/// Reads a plan document (YAML or JSON text), checking every step.
pub fn parse_plan(text: &str) -> Result<Plan, ServiceError> {
    Ok(Plan::parse(text, "the plan")?)
}
