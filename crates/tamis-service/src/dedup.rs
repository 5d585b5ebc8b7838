//! The dedup / link use case: match, then write pairs, clusters and the model.

use std::path::PathBuf;

use crate::ServiceError;

/// A dedup or link job and where its outputs go.
#[derive(Debug, Clone)]
pub struct DedupJob {
    /// What to match and how.
    pub request: tamis_dedup::Request,
    /// Matched pairs (.parquet or .csv).
    pub pairs: PathBuf,
    /// One row per record with its cluster id, if wanted.
    pub clusters: Option<PathBuf>,
    /// Per-field levels and weights in the pairs file.
    pub explain: bool,
    /// Where to save the trained model and settings.
    pub save_model: Option<PathBuf>,
}

/// Runs the job and returns its summary (what was chosen, counts, model, timings).
pub fn dedup(job: &DedupJob) -> Result<serde_json::Value, ServiceError> {
    let o = tamis_dedup::run(&job.request)?;
    let link = job.request.link.is_some();
    tamis_dedup::output::write(
        &job.pairs,
        &tamis_dedup::output::pairs_batch(&o, job.explain)?,
    )?;
    if let Some(c) = &job.clusters {
        tamis_dedup::output::write(c, &tamis_dedup::output::clusters_batch(&o, link)?)?;
    }
    if let Some(m) = &job.save_model {
        tamis_dedup::output::save_model(&o, m)?;
    }
    Ok(tamis_dedup::output::summary(&o))
}
