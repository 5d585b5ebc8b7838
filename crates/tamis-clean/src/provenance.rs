//! Reading provenance back: queries, and `revert`, which rebuilds the input
//! from a cleaned output and its sidecar.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use tamis_core::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringBuilder, UInt64Array, new_null_array,
};
use tamis_core::datafusion::arrow::compute::{
    cast, concat_batches, sort_to_indices, take_record_batch,
};
use tamis_core::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use tamis_core::datafusion::arrow::record_batch::RecordBatchReader;
use tamis_core::datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tamis_core::{Dataset, Quarantine, ROW_ID, ReadOptions};

use crate::exec::{CELLS, CleanOutcome, ROW_IDS, StepSummary, dropped_file, read_manifest};
use crate::{CleanError, sidecar_dir};

fn rerr(path: &Path, e: impl std::fmt::Display) -> CleanError {
    CleanError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Reads a whole Parquet file (empty schema-less result if it does not exist).
fn read_parquet(path: &Path) -> Result<Option<RecordBatch>, CleanError> {
    if !path.exists() {
        return Ok(None);
    }
    let f = std::fs::File::open(path).map_err(|e| rerr(path, e))?;
    let r = ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.build())
        .map_err(|e| rerr(path, e))?;
    let schema = r.schema();
    let batches: Vec<RecordBatch> = r.collect::<Result<_, _>>().map_err(|e| rerr(path, e))?;
    Ok(Some(concat_batches(&schema, &batches)?))
}

/// A cell change as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CellChange {
    /// Input row id.
    pub row_id: u64,
    /// Column (its name when the step ran).
    pub column: String,
    /// Value before (a keyed hash for PII columns).
    pub old_value: Option<String>,
    /// Value after.
    pub new_value: Option<String>,
    /// Step position, from 0.
    pub step_index: u32,
    /// Step id.
    pub step_id: String,
    /// Step type.
    pub step: String,
    /// Confidence.
    pub confidence: f64,
    /// deterministic | heuristic.
    pub source: String,
    /// Where the value came from, when the step says (`from row 17 (most_recent)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A filter for [`query`].
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only this input row.
    pub row: Option<u64>,
    /// Only this column.
    pub column: Option<String>,
    /// Only this step (id, type or 1-based position).
    pub step: Option<String>,
}

/// What a query found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryResult {
    /// Changed cells.
    pub cells: Vec<CellChange>,
    /// Dropped rows: row id, step id, reason, the row's values when dropped.
    pub dropped: Vec<Value>,
}

fn step_matches(q: &Option<String>, s: &StepSummary) -> bool {
    match q {
        None => true,
        Some(q) => q == &s.id || q == &s.ty || q.parse::<usize>().is_ok_and(|n| n == s.index + 1),
    }
}

/// Queries the provenance of a cleaned output.
pub fn query(output: &Path, q: &Query) -> Result<QueryResult, CleanError> {
    let m = read_manifest(output)?;
    let side = sidecar_dir(output);
    if !m.provenance {
        return Err(rerr(&side, "this output was cleaned with provenance off"));
    }
    let steps: Vec<&StepSummary> = m
        .steps
        .iter()
        .filter(|s| step_matches(&q.step, s))
        .collect();
    if steps.is_empty() {
        return Err(CleanError::Read {
            path: side,
            message: format!(
                "no step `{}`; steps are {}",
                q.step.clone().unwrap_or_default(),
                m.steps
                    .iter()
                    .map(|s| format!("{} ({})", s.id, s.ty))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let mut cells = Vec::new();
    if let Some(b) = read_parquet(&side.join(CELLS))? {
        let s = |i: usize| b.column(i).as_string::<i32>();
        let rid = b.column(0).as_primitive::<UInt64Type>();
        let idx = b
            .column(4)
            .as_primitive::<tamis_core::datafusion::arrow::datatypes::UInt32Type>();
        let conf = b
            .column(7)
            .as_primitive::<tamis_core::datafusion::arrow::datatypes::Float64Type>();
        for i in 0..b.num_rows() {
            if q.row.is_some_and(|r| r != rid.value(i))
                || q.column.as_ref().is_some_and(|c| c != s(1).value(i))
                || !steps.iter().any(|st| st.index as u32 == idx.value(i))
            {
                continue;
            }
            let opt = |a: &tamis_core::datafusion::arrow::array::StringArray| {
                (!a.is_null(i)).then(|| a.value(i).to_string())
            };
            cells.push(CellChange {
                row_id: rid.value(i),
                column: s(1).value(i).to_string(),
                old_value: opt(s(2)),
                new_value: opt(s(3)),
                step_index: idx.value(i),
                step_id: s(5).value(i).to_string(),
                step: s(6).value(i).to_string(),
                confidence: conf.value(i),
                source: s(8).value(i).to_string(),
                // Outputs cleaned before details were recorded have 9 columns.
                detail: (b.num_columns() > 9).then(|| opt(s(9))).flatten(),
            });
        }
    }
    let mut dropped = Vec::new();
    if q.column.is_none() {
        for st in &steps {
            let Some(b) = read_parquet(&side.join(dropped_file(st.index)))? else {
                continue;
            };
            let rid = b
                .column_by_name(ROW_ID)
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                .ok_or_else(|| rerr(&side, "dropped rows without row ids"))?;
            let reason = b
                .column_by_name("__reason")
                .map(|c| c.as_string::<i32>().clone())
                .ok_or_else(|| rerr(&side, "dropped rows without reasons"))?;
            for i in 0..b.num_rows() {
                if q.row.is_some_and(|r| r != rid.value(i)) {
                    continue;
                }
                let mut vals = serde_json::Map::new();
                for (f, c) in b.schema().fields().iter().zip(b.columns()) {
                    if f.name() == ROW_ID || f.name() == "__reason" {
                        continue;
                    }
                    let v = cast(&c.slice(i, 1), &DataType::Utf8)?;
                    let v = v.as_string::<i32>();
                    vals.insert(
                        f.name().clone(),
                        json!((!v.is_null(0)).then(|| v.value(0).to_string())),
                    );
                }
                dropped.push(json!({
                    "row_id": rid.value(i), "step_id": st.id, "step": st.ty,
                    "reason": reason.value(i), "row": vals,
                }));
            }
        }
    }
    Ok(QueryResult { cells, dropped })
}

fn parse_type(t: &str) -> Result<DataType, CleanError> {
    t.parse::<DataType>()
        .map_err(|e| CleanError::Internal(format!("type `{t}` in the manifest: {e}")))
}

fn schema_of(pairs: &[(String, String)]) -> Result<SchemaRef, CleanError> {
    let mut fields: Vec<Field> = pairs
        .iter()
        .map(|(n, t)| Ok(Field::new(n, parse_type(t)?, true)))
        .collect::<Result<_, CleanError>>()?;
    fields.push(Field::new(ROW_ID, DataType::UInt64, false));
    Ok(Arc::new(Schema::new(fields)))
}

/// Reads the cleaned output as the manifest's output schema, with row ids.
fn read_output(output: &Path, m: &CleanOutcome) -> Result<RecordBatch, CleanError> {
    let side = sidecar_dir(output);
    let ds = Dataset::open(&[output.display().to_string()], ReadOptions::default())?;
    let q = Arc::new(Quarantine::in_memory());
    let mut batches = Vec::new();
    for b in ds.batches(q.clone(), Arc::new(Default::default()))? {
        batches.push(b?);
    }
    if q.summary().rows > 0 {
        return Err(rerr(
            output,
            "the output has malformed rows; it was changed after cleaning",
        ));
    }
    let schema = schema_of(&m.output_schema)?;
    let ids = read_parquet(&side.join(ROW_IDS))?
        .ok_or_else(|| rerr(&side.join(ROW_IDS), "missing; was provenance on?"))?;
    let ids = ids.column(0).clone();
    let read = concat_batches(&ds.schema(), &batches)?;
    if read.num_rows() != ids.len() {
        return Err(rerr(
            output,
            format!(
                "{} rows, but provenance lists {}: the output was changed after cleaning",
                read.num_rows(),
                ids.len()
            ),
        ));
    }
    let mut cols = Vec::new();
    for (f, (name, _)) in schema.fields().iter().zip(&m.output_schema) {
        let c = read
            .column_by_name(name)
            .ok_or_else(|| rerr(output, format!("column `{name}` is missing")))?;
        cols.push(cast(c, f.data_type())?);
    }
    cols.push(ids);
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// Sets `values` (text, cast to the column's type) at row ids of a column.
fn set_cells(
    col: &ArrayRef,
    ids: &UInt64Array,
    changes: &HashMap<u64, Option<String>>,
) -> Result<ArrayRef, CleanError> {
    let t = col.data_type().clone();
    let s = cast(col, &DataType::Utf8)?;
    let s = s.as_string::<i32>();
    let mut b = StringBuilder::with_capacity(s.len(), s.value_data().len());
    for i in 0..s.len() {
        match changes.get(&ids.value(i)) {
            Some(v) => b.append_option(v.as_deref()),
            None => b.append_option((!s.is_null(i)).then(|| s.value(i))),
        }
    }
    let out: ArrayRef = Arc::new(b.finish());
    Ok(cast(&out, &t)?)
}

/// Rebuilds the input (as tamis read and typed it) from a cleaned output and
/// its provenance: undoes every step from the last to the first. Holds the
/// data in memory. PII columns come back as their keyed hashes: the clear
/// values were never stored.
pub fn revert(
    output: &Path,
    vault: Option<(
        &tamis_privacy::anonymize::Vault,
        &tamis_privacy::anonymize::Keys,
    )>,
) -> Result<(RecordBatch, Vec<String>), CleanError> {
    let m = read_manifest(output)?;
    let side = sidecar_dir(output);
    if !m.provenance {
        return Err(rerr(
            &side,
            "this output was cleaned with provenance off; it cannot be reverted",
        ));
    }
    let mut cur = read_output(output, &m)?;
    let cells = read_parquet(&side.join(CELLS))?;
    // step → column → row id → old value
    let mut by_step: HashMap<u32, HashMap<String, HashMap<u64, Option<String>>>> = HashMap::new();
    if let Some(b) = &cells {
        let rid = b.column(0).as_primitive::<UInt64Type>();
        let col = b.column(1).as_string::<i32>();
        let old = b.column(2).as_string::<i32>();
        let idx = b
            .column(4)
            .as_primitive::<tamis_core::datafusion::arrow::datatypes::UInt32Type>();
        for i in 0..b.num_rows() {
            by_step
                .entry(idx.value(i))
                .or_default()
                .entry(col.value(i).to_string())
                .or_default()
                .insert(
                    rid.value(i),
                    (!old.is_null(i)).then(|| old.value(i).to_string()),
                );
        }
    }
    for s in m.steps.iter().rev() {
        let before = schema_of(&s.schema_before)?;
        let renamed: HashMap<String, String> = if s.ty == "rename" {
            s.params
                .get("mapping")
                .and_then(|v| v.as_object())
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            HashMap::new()
        };
        let ids = cur
            .column_by_name(ROW_ID)
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .ok_or_else(|| CleanError::Internal("row ids".into()))?
            .clone();
        let mut changes = by_step.remove(&(s.index as u32)).unwrap_or_default();
        // Tokenized columns come back from the vault, when its key is held.
        let tokenized: Vec<String> = s.learned["tokenized"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if let Some((v, keys)) = vault {
            for c in &tokenized {
                let Some(col) = cur.column_by_name(c) else {
                    continue;
                };
                let text = cast(col, &DataType::Utf8)?;
                let text = text.as_string::<i32>();
                let mut back = HashMap::new();
                for i in 0..text.len() {
                    if text.is_null(i) {
                        continue;
                    }
                    let clear =
                        v.detokenise(keys, text.value(i))
                            .map_err(|m| CleanError::Read {
                                path: side.clone(),
                                message: format!("column `{c}`: {m}"),
                            })?;
                    back.insert(ids.value(i), Some(clear));
                }
                changes.insert(c.clone(), back);
            }
        }
        let mut cols: Vec<ArrayRef> = Vec::new();
        for f in before.fields() {
            if f.name() == ROW_ID {
                cols.push(Arc::new(ids.clone()));
                continue;
            }
            let now = renamed.get(f.name()).unwrap_or(f.name());
            let c = match cur.column_by_name(now) {
                Some(c) => cast(c, f.data_type())?,
                None => new_null_array(f.data_type(), cur.num_rows()),
            };
            let c = match changes.get(f.name()) {
                Some(ch) => set_cells(&c, &ids, ch)?,
                None => c,
            };
            cols.push(c);
        }
        let mut b = RecordBatch::try_new(before.clone(), cols)?;
        if let Some(d) = read_parquet(&side.join(dropped_file(s.index)))? {
            let mut dc = Vec::new();
            for f in before.fields() {
                let c = d.column_by_name(f.name()).ok_or_else(|| {
                    rerr(
                        &side,
                        format!("dropped rows of step {} lack `{}`", s.id, f.name()),
                    )
                })?;
                dc.push(cast(c, f.data_type())?);
            }
            let d = RecordBatch::try_new(before.clone(), dc)?;
            b = concat_batches(&before, &[b, d])?;
        }
        cur = b;
    }
    let order = sort_to_indices(
        cur.column_by_name(ROW_ID)
            .ok_or_else(|| CleanError::Internal("row ids".into()))?,
        None,
        None,
    )?;
    let sorted = take_record_batch(&cur, &order)?;
    Ok((sorted, m.pii_columns.clone()))
}

/// Writes a batch to Parquet, or CSV by extension, atomically.
pub fn write_batch(path: &Path, b: &RecordBatch, with_row_id: bool) -> Result<(), CleanError> {
    let b = if with_row_id {
        b.clone()
    } else {
        crate::exec::drop_row_id(b)?
    };
    tamis_core::write_batches(path, std::slice::from_ref(&b)).map_err(|x| CleanError::Write {
        path: path.to_path_buf(),
        message: x.to_string(),
    })
}
