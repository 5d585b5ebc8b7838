//! Outputs of a run: pairs (with explanations), clusters, the saved model and
//! a summary.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use tamis_core::datafusion::arrow::array::{
    ArrayRef, Float64Builder, StringBuilder, UInt8Array, UInt64Array,
};
use tamis_core::datafusion::arrow::datatypes::{DataType, Field, Schema};
use tamis_core::datafusion::arrow::record_batch::RecordBatch;

use crate::model::{Model, Scorer, Weights, level_of};
use crate::table::Table;
use crate::{DedupError, Outcome, SavedModel, ScoredPair};

/// The matched pairs: `rec_id_l, rec_id_r, row_id_l, row_id_r, score,
/// match_weight`, and with `explain`, per compared column its level and its
/// weight (log2 Bayes factor, term frequency included) — the sum of the
/// weights plus the prior is the match weight.
pub fn pairs_batch(o: &Outcome, explain: bool) -> Result<RecordBatch, DedupError> {
    pairs_of(&o.scorer(), &o.model, &o.matches, explain)
}

/// [`pairs_batch`] for any matches scored over `s`'s table with `model`
/// (a run's, or the pairs an incremental add found).
pub fn pairs_of(
    s: &Scorer,
    model: &Model,
    matches: &[ScoredPair],
    explain: bool,
) -> Result<RecordBatch, DedupError> {
    let t = s.table;
    let mut fields = vec![
        Field::new("rec_id_l", DataType::Utf8, false),
        Field::new("rec_id_r", DataType::Utf8, false),
        Field::new("row_id_l", DataType::UInt64, false),
        Field::new("row_id_r", DataType::UInt64, false),
        Field::new("score", DataType::Float64, false),
        Field::new("match_weight", DataType::Float64, false),
    ];
    let (mut kl, mut kr) = (StringBuilder::new(), StringBuilder::new());
    let (mut rl, mut rr) = (Vec::new(), Vec::new());
    let (mut sc, mut mw) = (Float64Builder::new(), Float64Builder::new());
    for p in matches {
        let (a, b) = (p.a as usize, p.b as usize);
        kl.append_value(t.keys.value(a));
        kr.append_value(t.keys.value(b));
        rl.push(t.row_ids[a]);
        rr.push(t.row_ids[b]);
        sc.append_value(p.probability);
        mw.append_value(p.weight);
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(kl.finish()),
        Arc::new(kr.finish()),
        Arc::new(UInt64Array::from(rl)),
        Arc::new(UInt64Array::from(rr)),
        Arc::new(sc.finish()),
        Arc::new(mw.finish()),
    ];
    if explain {
        let w = Weights::new(model);
        for (k, (c, cmp)) in s.fields.iter().enumerate() {
            let name = &t.columns[*c].name;
            let labels: Vec<String> = (0..cmp.n_levels()).map(|l| cmp.level_label(l)).collect();
            let mut lv = StringBuilder::new();
            let mut wt = Float64Builder::new();
            for p in matches {
                lv.append_value(&labels[level_of(p.gamma, k)]);
                wt.append_value(w.field_weight(s, p.gamma, k, p.a as usize));
            }
            fields.push(Field::new(format!("{name}_level"), DataType::Utf8, false));
            fields.push(Field::new(
                format!("{name}_weight"),
                DataType::Float64,
                false,
            ));
            cols.push(Arc::new(lv.finish()));
            cols.push(Arc::new(wt.finish()));
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// One row per record: `row_id, rec_id, [source,] cluster_id, cluster_size`.
/// `cluster_id` is the key of the cluster's first row (in input order).
pub fn clusters_batch(o: &Outcome, link: bool) -> Result<RecordBatch, DedupError> {
    clusters_of(&o.table, &o.clusters.cluster_of, link)
}

/// [`clusters_batch`] for any table and cluster assignment.
pub fn clusters_of(t: &Table, c: &[u32], link: bool) -> Result<RecordBatch, DedupError> {
    let mut size = vec![0u64; t.rows()];
    for &x in c {
        size[x as usize] += 1;
    }
    let mut fields = vec![
        Field::new("row_id", DataType::UInt64, false),
        Field::new("rec_id", DataType::Utf8, false),
    ];
    let mut rec = StringBuilder::new();
    let mut cid = StringBuilder::new();
    for (r, cluster) in c.iter().enumerate() {
        rec.append_value(t.keys.value(r));
        cid.append_value(t.keys.value(*cluster as usize));
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(t.row_ids.clone())),
        Arc::new(rec.finish()),
    ];
    if link {
        fields.push(Field::new("source", DataType::UInt8, false));
        cols.push(Arc::new(UInt8Array::from(t.source.clone())));
    }
    fields.push(Field::new("cluster_id", DataType::Utf8, false));
    fields.push(Field::new("cluster_size", DataType::UInt64, false));
    cols.push(Arc::new(cid.finish()));
    cols.push(Arc::new(UInt64Array::from(
        c.iter().map(|x| size[*x as usize]).collect::<Vec<_>>(),
    )));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// The run as JSON: what was chosen, counts, the model and timings.
pub fn summary(o: &Outcome) -> serde_json::Value {
    json!({
        "schema": "tamis.dedup/1",
        "rows": o.table.rows(),
        "rows_per_input": o.table.rows_per_source,
        "quarantined_rows": o.quarantined,
        "config": o.config,
        "blocking": o.rule_counts,
        "candidate_pairs": o.candidates,
        "matched_pairs": o.matches.len(),
        "clusters": o.clusters,
        "model": o.model,
        "seconds": o.timings,
    })
}

/// Writes the trained model and the settings it was trained under.
pub fn save_model(o: &Outcome, path: &Path) -> Result<(), DedupError> {
    let saved = o.saved_model();
    let text = serde_json::to_vec_pretty(&saved).map_err(|e| DedupError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let tmp = tamis_core::quarantine::tmp_name(path);
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| DedupError::Write {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

/// Reads a model written by [`save_model`].
pub fn load_model(path: &Path) -> Result<SavedModel, DedupError> {
    let bad = |m: String| DedupError::Settings {
        origin: path.display().to_string(),
        message: m,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let m: SavedModel =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a tamis dedup model: {e}")))?;
    if m.schema != "tamis.dedup-model/1" {
        return Err(bad(format!("unknown model schema `{}`", m.schema)));
    }
    if m.model.fields.len() != m.settings.comparisons.len() {
        return Err(bad("the model's fields do not match its comparisons".into()));
    }
    Ok(m)
}

/// Writes a batch as Parquet or CSV by extension, atomically.
pub fn write(path: &Path, b: &RecordBatch) -> Result<(), DedupError> {
    tamis_core::write_batches(path, std::slice::from_ref(b)).map_err(|e| DedupError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}
