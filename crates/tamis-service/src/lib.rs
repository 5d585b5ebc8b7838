//! `tamis-service`: the use cases, called the same way by the CLI and (later)
//! the HTTP server. Neither door calls the other.

pub mod clean;
pub mod dedup;
pub mod platform;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tamis_core::{CoreError, Dataset, Quarantine, ReadOptions};
use tamis_profile::{Profile, ProfileError, ProfileOptions};

/// Errors of the use cases.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Reading the input failed.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Profiling failed.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A privacy scan failed.
    #[error(transparent)]
    Privacy(#[from] tamis_privacy::PrivacyError),
    /// Cleaning, checking or reverting failed.
    #[error(transparent)]
    Clean(#[from] tamis_clean::CleanError),
    /// Matching failed.
    #[error(transparent)]
    Dedup(#[from] tamis_dedup::DedupError),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] tamis_store::StoreError),
    /// A job's parameters do not make sense (it fails without a retry).
    #[error("{0}")]
    BadJob(String),
    /// An output could not be written.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The output.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ServiceError {
    /// Whether the run stopped because it was asked to (a cancelled job).
    pub fn is_cancelled(&self) -> bool {
        let core = match self {
            ServiceError::Core(e)
            | ServiceError::Profile(ProfileError::Core(e))
            | ServiceError::Clean(tamis_clean::CleanError::Core(e))
            | ServiceError::Dedup(tamis_dedup::DedupError::Core(e)) => e,
            _ => return false,
        };
        matches!(core, CoreError::Cancelled)
    }

    /// Whether the input is at fault (exit code 3), rather than tamis or the machine.
    pub fn is_bad_input(&self) -> bool {
        match self {
            ServiceError::Core(e) | ServiceError::Profile(ProfileError::Core(e)) => {
                e.is_bad_input()
            }
            ServiceError::Clean(e) => e.is_bad_input(),
            ServiceError::Privacy(tamis_privacy::PrivacyError::Core(e)) => e.is_bad_input(),
            ServiceError::Privacy(tamis_privacy::PrivacyError::Anon(_)) => true,
            ServiceError::Dedup(tamis_dedup::DedupError::Core(e)) => e.is_bad_input(),
            ServiceError::Dedup(
                tamis_dedup::DedupError::UnknownColumn { .. }
                | tamis_dedup::DedupError::Settings { .. },
            ) => true,
            ServiceError::Store(tamis_store::StoreError::BadUrl(_)) | ServiceError::BadJob(_) => {
                true
            }
            _ => false,
        }
    }
}

/// What to profile and how.
#[derive(Debug, Clone, Default)]
pub struct ProfileRequest {
    /// Paths, globs, `-` or URLs: one dataset.
    pub inputs: Vec<String>,
    /// Reading options.
    pub read: ReadOptions,
    /// Where to write quarantined rows, if anywhere.
    pub quarantine: Option<PathBuf>,
    /// Profiling options.
    pub profile: ProfileOptions,
}

/// Where a job is in its current pass over its input, from its running
/// count of bytes read and its count of passes started: a job that reads
/// its input more than once (a clean) reports each pass from zero.
#[derive(Debug, Clone, Copy)]
pub struct PassProgress {
    pass: u64,
    start: u64,
}

impl Default for PassProgress {
    fn default() -> Self {
        PassProgress { pass: 1, start: 0 }
    }
}

impl PassProgress {
    /// Takes the counters' values now; true when a new pass has begun.
    pub fn update(&mut self, read: u64, passes: u64) -> bool {
        let now = passes.max(1);
        let new = now != self.pass;
        if new {
            (self.pass, self.start) = (now, read);
        }
        new
    }

    /// The pass (1-based).
    pub fn pass(&self) -> u64 {
        self.pass
    }

    /// Bytes of `read` that belong to the current pass.
    pub fn in_pass(&self, read: u64) -> u64 {
        read.saturating_sub(self.start)
    }
}

/// A dataset opened for profiling: its size is known, for progress.
pub struct OpenedProfile {
    dataset: Arc<Dataset>,
    request: ProfileRequest,
    /// Bytes read so far.
    pub progress: Arc<AtomicU64>,
}

impl OpenedProfile {
    /// Total input bytes, when known.
    pub fn total_bytes(&self) -> Option<u64> {
        self.dataset.total_bytes()
    }

    /// Runs the profile.
    pub async fn run(self) -> Result<Profile, ServiceError> {
        let quarantine = Arc::new(match &self.request.quarantine {
            Some(p) => Quarantine::to_file(p)?,
            None => Quarantine::in_memory(),
        });
        let p = tamis_profile::profile(
            self.dataset,
            quarantine,
            self.progress,
            &self.request.profile,
        )
        .await?;
        tracing::info!(
            rows = p.dataset.rows,
            columns = p.dataset.columns,
            issues = p.issues.len(),
            seconds = p.dataset.seconds,
            "profile finished"
        );
        Ok(p)
    }
}

/// Opens the inputs of a profile request (resolves files, sniffs formats, reads headers).
pub fn open_profile(request: ProfileRequest) -> Result<OpenedProfile, ServiceError> {
    let dataset = Arc::new(Dataset::open(&request.inputs, request.read.clone())?);
    Ok(OpenedProfile {
        dataset,
        request,
        progress: Arc::new(AtomicU64::new(0)),
    })
}

/// Profiles a dataset (open + run).
pub async fn profile(request: ProfileRequest) -> Result<Profile, ServiceError> {
    open_profile(request)?.run().await
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ServiceError> {
    let tmp = tamis_core::quarantine::tmp_name(path);
    let werr = |source| ServiceError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(werr)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        werr(e)
    })
}

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exported {
    /// Rows written.
    pub rows: u64,
    /// Rows that could not be read (quarantined, not written).
    pub quarantined: u64,
}

/// Converts a dataset to `out` (Parquet, or CSV by extension), streaming.
pub fn export(inputs: &[String], out: &Path) -> Result<Exported, ServiceError> {
    let ds = Dataset::open(inputs, ReadOptions::default())?;
    let q = Arc::new(Quarantine::in_memory());
    // The row id is tamis's own column, not the data's: conversions leave it out.
    let schema = ds.schema();
    let projected = Arc::new(
        schema
            .project(&tamis_core::dataset::data_columns(&schema))
            .map_err(tamis_core::CoreError::from)?,
    );
    let batches = ds
        .batches(q.clone(), Arc::new(AtomicU64::new(0)))?
        .map(|b| tamis_core::dataset::drop_row_id(&b?));
    let rows = tamis_core::writer::write_stream(out, projected, batches)?;
    Ok(Exported {
        rows,
        quarantined: q.summary().rows,
    })
}

/// Renders and writes the HTML report of a profile.
pub fn write_html_report(profile: &Profile, path: &Path) -> Result<(), ServiceError> {
    write_atomic(path, tamis_report::render_html(profile).as_bytes())
}

/// Scans a dataset for personal data; with `cells`, writes every labelled cell there.
pub fn pii_scan(
    inputs: &[String],
    read: ReadOptions,
    cells: Option<&Path>,
    watch: &tamis_privacy::Watch,
) -> Result<tamis_privacy::Scan, ServiceError> {
    let ds = Dataset::open(inputs, read)?;
    Ok(tamis_privacy::scan_files(&ds, cells, watch)?)
}

/// Applies an anonymisation policy; returns the compliance report.
pub fn pii_apply(
    inputs: &[String],
    read: ReadOptions,
    policy: &Path,
    keys: &tamis_privacy::anonymize::Keys,
    out: &Path,
) -> Result<serde_json::Value, ServiceError> {
    let policy =
        tamis_privacy::apply::Policy::read(policy).map_err(tamis_privacy::PrivacyError::from)?;
    let ds = Dataset::open(inputs, read)?;
    Ok(tamis_privacy::apply::apply(&ds, &policy, keys, out)?)
}

/// Writes a compliance report: HTML when `path` ends in `.html`, else JSON.
pub fn write_pii_report(report: &serde_json::Value, path: &Path) -> Result<(), ServiceError> {
    let html = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("html"));
    let text = if html {
        tamis_report::render_pii_html(report)
    } else {
        serde_json::to_string_pretty(report).unwrap_or_default() + "\n"
    };
    write_atomic(path, text.as_bytes())
}

/// A differentially private histogram of one column, charged to the ε ledger.
#[allow(clippy::too_many_arguments)]
pub fn dp_histogram(
    inputs: &[String],
    read: ReadOptions,
    column: &str,
    buckets: Option<&[String]>,
    epsilon: f64,
    seed: u64,
    keys: &tamis_privacy::anonymize::Keys,
    ledger: &Path,
    dataset_id: &str,
    budget: f64,
) -> Result<serde_json::Value, ServiceError> {
    let ds = Dataset::open(inputs, read)?;
    Ok(tamis_privacy::apply::dp_histogram(
        &ds, column, buckets, epsilon, seed, keys, ledger, dataset_id, budget,
    )?)
}

#[cfg(test)]
mod pass_tests {
    use super::PassProgress;

    #[test]
    fn each_pass_counts_from_zero() {
        let mut at = PassProgress::default();
        assert!(!at.update(500, 0));
        assert_eq!((at.pass(), at.in_pass(500)), (1, 500));
        assert!(!at.update(900, 1));
        assert!(at.update(1000, 2));
        assert_eq!((at.pass(), at.in_pass(1300)), (2, 300));
    }
}
