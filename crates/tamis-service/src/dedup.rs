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
    /// Incremental: new records matched against the inputs with the model.
    pub add: Option<Vec<String>>,
    /// Incremental: the inputs' cluster table, so they are not rematched.
    pub clusters_in: Option<PathBuf>,
}

/// Runs the job and returns its summary (what was chosen, counts, model, timings).
pub fn dedup(job: &DedupJob) -> Result<serde_json::Value, ServiceError> {
    if let Some(add) = &job.add {
        return incremental(job, add);
    }
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

/// Matches new records against the inputs under the job's model and writes
/// the new pairs and the updated clusters.
fn incremental(job: &DedupJob, add: &[String]) -> Result<serde_json::Value, ServiceError> {
    use tamis_dedup::incremental::Index;
    use tamis_dedup::table::Input;
    let req = &job.request;
    let model = req.model.as_ref().ok_or_else(|| {
        tamis_dedup::DedupError::Settings {
            origin: "--add".into(),
            message: "incremental matching scores with a trained model: give --model M".into(),
        }
    })?;
    let t0 = std::time::Instant::now();
    let base = [Input::open(&req.inputs, &req.read)?];
    let (mut index, rematched) = match &job.clusters_in {
        Some(c) => (Index::open(&base, model, c, &req.read)?, false),
        None => (
            Index::new(tamis_dedup::run_inputs(&base, &req.settings, Some(model))?)?,
            true,
        ),
    };
    let indexing = t0.elapsed().as_secs_f64();
    let new = Input::open(add, &req.read)?;
    let added = index.add_input(&new, 0)?;
    tamis_dedup::output::write(
        &job.pairs,
        &tamis_dedup::output::pairs_of(
            &index.scorer(),
            index.model(),
            &added.matches,
            job.explain,
        )?,
    )?;
    let clusters = index.clusters();
    if let Some(c) = &job.clusters {
        tamis_dedup::output::write(
            c,
            &tamis_dedup::output::clusters_of(index.table(), &clusters.cluster_of, false)?,
        )?;
    }
    Ok(serde_json::json!({
        "schema": "tamis.dedup/1",
        "rows": index.table().rows(),
        "incremental": {
            "added_rows": added.rows.len(),
            "candidate_pairs": added.candidates,
            "matched_pairs": added.matched_pairs,
            "seconds_matching": added.seconds,
            "seconds_indexing": indexing,
            "base_rematched": rematched,
        },
        "clusters": clusters,
    }))
}
