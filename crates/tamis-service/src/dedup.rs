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
    let model = req
        .model
        .as_ref()
        .ok_or_else(|| tamis_dedup::DedupError::Settings {
            origin: "--add".into(),
            message: "incremental matching scores with a trained model: give --model M".into(),
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

/// The matcher `dedupe_fuzzy` cleaning steps use: tamis-dedup over the rows
/// the step sees, automatic unless the step names settings or a model.
#[derive(Debug, Clone, Copy, Default)]
pub struct DedupMatcher;

impl tamis_clean::Matcher for DedupMatcher {
    fn cluster(
        &self,
        rows: &[tamis_core::datafusion::arrow::record_batch::RecordBatch],
        spec: &tamis_clean::plan::FuzzySpec,
    ) -> Result<tamis_clean::Matched, String> {
        let mut settings = match &spec.settings {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read settings `{p}`: {e}"))?;
                tamis_dedup::settings::Settings::from_text(&text, p).map_err(|e| e.to_string())?
            }
            None => Default::default(),
        };
        let mut model = match &spec.model {
            Some(p) => Some(
                tamis_dedup::output::load_model(std::path::Path::new(p))
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        if let Some(t) = spec.threshold {
            settings.threshold = Some(t);
            if let Some(m) = &mut model {
                m.settings.threshold = Some(t);
            }
        }
        let n: usize = rows.iter().map(|b| b.num_rows()).sum();
        let o = tamis_dedup::run_inputs(
            &[tamis_dedup::table::Input::Memory {
                name: "the rows reaching dedupe_fuzzy".into(),
                batches: rows.to_vec(),
            }],
            &settings,
            model.as_ref(),
        )
        .map_err(|e| e.to_string())?;
        if o.table.rows() != n {
            return Err(format!("matched {} rows of {n}", o.table.rows()));
        }
        let c = &o.clusters.cluster_of;
        // Each row's strongest link inside its cluster (a link the size guard
        // refused joins nothing, so it does not count).
        let mut confidence = vec![1.0; n];
        let mut best = vec![0.0f64; n];
        for p in &o.matches {
            let (a, b) = (p.a as usize, p.b as usize);
            if c[a] == c[b] {
                best[a] = best[a].max(p.probability);
                best[b] = best[b].max(p.probability);
            }
        }
        for r in 0..n {
            if best[r] > 0.0 {
                confidence[r] = best[r];
            }
        }
        Ok(tamis_clean::Matched {
            cluster_of: c.clone(),
            confidence,
            summary: tamis_dedup::output::summary(&o),
        })
    }
}
