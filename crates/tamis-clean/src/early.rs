//! Writing the output in the last statistics pass.
//!
//! A plan whose ops wait on statistics (a median, fences, canonical values)
//! used to need the whole typed input a second time: the last statistics pass
//! spilled every typed column to disk and the final pass read it back. The
//! spill is larger than the input, and writing it was most of a clean job's
//! system time. Most columns do not wait on anything, though: when the plan
//! allows it, the last statistics pass also writes the output's final
//! columns, and a late pass computes only the columns that wait (the `late`
//! ones) from a snapshot of the columns they read. The two Parquet files are
//! then spliced, column chunk by column chunk, into one: the same bytes a
//! single writer would have produced.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use tamis_core::ROW_ID;
use tamis_core::datafusion::arrow::array::{Array, ArrayRef, AsArray};
use tamis_core::datafusion::arrow::compute::cast;
use tamis_core::datafusion::arrow::datatypes::{DataType, Schema};
use tamis_core::datafusion::arrow::record_batch::RecordBatch;
use tamis_core::datafusion::parquet::arrow::{
    ArrowSchemaConverter, add_encoded_arrow_schema_to_metadata,
};
use tamis_core::datafusion::parquet::column::writer::ColumnCloseResult;
use tamis_core::datafusion::parquet::file::metadata::{
    ColumnChunkMetaData, PageIndexPolicy, ParquetMetaDataOptions, ParquetMetaDataReader,
};
use tamis_core::datafusion::parquet::file::statistics::Statistics;
use tamis_core::datafusion::parquet::file::writer::SerializedFileWriter;

use crate::CleanError;
use crate::ops::{Mode, Op};

/// How the output pass treats each op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutAct {
    /// Its statistics are known: apply it.
    Apply,
    /// A sequential op still deciding: decide on the batch (observe), then apply.
    Decide,
    /// Waits on statistics this pass gathers: observe; the late pass applies it.
    Observe,
    /// Reads a column that waits on statistics: the late pass applies it.
    Defer,
}

/// An output pass that is also the last statistics pass.
#[derive(Debug)]
pub(crate) struct Early {
    /// Per op.
    pub acts: Vec<OutAct>,
    /// Output columns the late pass writes, in first-written order.
    pub late: Vec<String>,
    /// Columns the late pass reads (the row id first), as they are at the end
    /// of the output pass. Empty when nothing is late.
    pub snapshot: Vec<String>,
}

impl Early {
    /// Whether a late pass is needed.
    pub fn has_late(&self) -> bool {
        !self.late.is_empty()
    }
}

/// Whether the last statistics pass, in which every unresolved op observes,
/// can also write the output, and how. It can when what waits on statistics
/// neither drops rows nor changes the schema, and no op after the first
/// waiting one drops rows or changes a column the waiting ones read or write:
/// then the output's rows and every other column are final in this pass, and
/// a snapshot taken at its end holds what the waiting ops would have read.
pub(crate) fn early_plan(
    ops: &mut [Box<dyn Op>],
    empty: &RecordBatch,
) -> Result<Option<Early>, CleanError> {
    let mut late: Vec<String> = Vec::new();
    let mut read_late: Vec<String> = Vec::new();
    let mut first = None;
    // (act, writes, schema before, schema after) per op.
    let mut steps = Vec::new();
    let mut b = empty.clone();
    for (i, op) in ops.iter_mut().enumerate() {
        let schema = b.schema();
        let reads = op.reads(&schema);
        let writes = op.writes(&schema);
        let after = op.apply(&b)?.batch;
        let reads_late = reads.iter().any(|c| late.contains(c));
        let act = if !op.is_resolved() {
            if reads_late {
                return Ok(None); // cannot happen in a last pass; never guess
            }
            if op.mode() == Mode::Sequential {
                OutAct::Decide
            } else {
                OutAct::Observe
            }
        } else if reads_late {
            OutAct::Defer
        } else {
            OutAct::Apply
        };
        if matches!(act, OutAct::Observe | OutAct::Defer) {
            if op.drops_rows() || after.schema() != schema {
                return Ok(None);
            }
            // An unresolved op's schema on an empty batch is only a guess for
            // a column it writes without reading (an outlier flag over a column
            // of that name): only ops that rewrite what they read wait.
            if act == OutAct::Observe && writes.iter().any(|c| !reads.contains(c)) {
                return Ok(None);
            }
            first.get_or_insert(i);
            for c in writes.iter().chain(&reads) {
                let list = if writes.contains(c) {
                    &mut late
                } else {
                    &mut read_late
                };
                if !list.contains(c) {
                    list.push(c.clone());
                }
            }
        } else if first.is_some() && op.drops_rows() {
            return Ok(None);
        }
        steps.push((act, writes, schema, after.schema()));
        b = after;
    }
    let acts = steps.iter().map(|s| s.0).collect();
    let Some(first) = first else {
        return Ok(Some(Early {
            acts,
            late,
            snapshot: Vec::new(),
        }));
    };
    let mut snapshot = vec![ROW_ID.to_string()];
    for c in late.iter().chain(&read_late) {
        if !snapshot.contains(c) {
            snapshot.push(c.clone());
        }
    }
    let watched: HashSet<&String> = snapshot.iter().collect();
    for (act, writes, before, after) in steps.iter().skip(first) {
        if matches!(act, OutAct::Observe | OutAct::Defer) {
            continue;
        }
        if writes.iter().any(|c| watched.contains(c)) {
            return Ok(None);
        }
        for c in &watched {
            if let Ok(f) = before.field_with_name(c)
                && after.field_with_name(c).ok() != Some(f)
            {
                return Ok(None);
            }
        }
    }
    let end = b.schema();
    if snapshot.iter().any(|c| end.field_with_name(c).is_err()) {
        return Ok(None);
    }
    Ok(Some(Early {
        acts,
        late,
        snapshot,
    }))
}

/// A cell as text, as reports show it.
pub(crate) fn cell_text(c: &ArrayRef, i: usize) -> Option<String> {
    cast(&c.slice(i, 1), &DataType::Utf8).ok().and_then(|s| {
        s.as_string::<i32>()
            .iter()
            .next()
            .flatten()
            .map(String::from)
    })
}

/// A row as a JSON object, columns in order, without the row id.
pub(crate) fn row_json(b: &RecordBatch, i: usize) -> Value {
    let mut m = serde_json::Map::new();
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        if f.name() == ROW_ID {
            continue;
        }
        m.insert(f.name().clone(), json!(cell_text(c, i)));
    }
    Value::Object(m)
}

/// One sampled row.
struct SampleRow {
    pos: u64,
    row_id: u64,
    before: Value,
    after: Value,
    changed: bool,
}

/// Picks the rows a report shows: the first `want` output rows a step
/// changed, as read and as written. When a late pass follows, every output
/// row below `window` is kept too, until the late pass says whether it
/// changed: a row only a late step changes is shown only when it lies below
/// the window (its other columns are not kept past it).
pub(crate) struct Sampler {
    want: usize,
    window: u64,
    rows: Vec<SampleRow>,
    changed: usize,
}

impl Sampler {
    pub fn new(want: usize, window: u64) -> Self {
        Sampler {
            want,
            window,
            rows: Vec::new(),
            changed: 0,
        }
    }

    /// Whether no row from output position `pos` on can be wanted.
    pub fn full(&self, pos: u64) -> bool {
        pos >= self.window && self.changed >= self.want
    }

    /// Offers the output row at `pos`; the JSON is built only if it is kept.
    pub fn offer(
        &mut self,
        pos: u64,
        changed: bool,
        row_id: impl FnOnce() -> u64,
        before: impl FnOnce() -> Value,
        after: impl FnOnce() -> Value,
    ) {
        if pos < self.window || (changed && self.changed < self.want) {
            self.changed += usize::from(changed);
            self.rows.push(SampleRow {
                pos,
                row_id: row_id(),
                before: before(),
                after: after(),
                changed,
            });
        }
    }

    /// The late pass: output rows `start..` are `b`, whose `cols` are final;
    /// `changed` marks the rows a late step changed.
    pub fn late(&mut self, start: u64, b: &RecordBatch, changed: &[bool], cols: &[String]) {
        let end = start + b.num_rows() as u64;
        for r in self
            .rows
            .iter_mut()
            .filter(|r| r.pos >= start && r.pos < end)
        {
            let j = (r.pos - start) as usize;
            r.changed |= changed.get(j).copied().unwrap_or(false);
            for c in cols {
                if let (Some(a), Some(m)) = (b.column_by_name(c), r.after.as_object_mut()) {
                    m.insert(c.clone(), json!(cell_text(a, j)));
                }
            }
        }
    }

    pub fn finish(self) -> Vec<Value> {
        self.rows
            .into_iter()
            .filter(|r| r.changed)
            .take(self.want)
            .map(|r| json!({"row_id": r.row_id, "before": r.before, "after": r.after}))
            .collect()
    }
}

/// A column chunk's metadata as its writer made it: reading loses whether
/// the statistics also carry the deprecated min/max fields, which the writer
/// sets for columns of signed sort order.
fn as_written(c: &ColumnChunkMetaData) -> Result<ColumnChunkMetaData, CleanError> {
    let Some(stats) = c.statistics() else {
        return Ok(c.clone());
    };
    let compat = c.column_descr().sort_order().is_signed();
    let stats = match stats.clone() {
        Statistics::Boolean(v) => Statistics::Boolean(v.with_backwards_compatible_min_max(compat)),
        Statistics::Int32(v) => Statistics::Int32(v.with_backwards_compatible_min_max(compat)),
        Statistics::Int64(v) => Statistics::Int64(v.with_backwards_compatible_min_max(compat)),
        Statistics::Int96(v) => Statistics::Int96(v.with_backwards_compatible_min_max(compat)),
        Statistics::Float(v) => Statistics::Float(v.with_backwards_compatible_min_max(compat)),
        Statistics::Double(v) => Statistics::Double(v.with_backwards_compatible_min_max(compat)),
        Statistics::ByteArray(v) => {
            Statistics::ByteArray(v.with_backwards_compatible_min_max(compat))
        }
        Statistics::FixedLenByteArray(v) => {
            Statistics::FixedLenByteArray(v.with_backwards_compatible_min_max(compat))
        }
    };
    c.clone()
        .into_builder()
        .set_statistics(stats)
        .build()
        .map_err(|e| CleanError::Internal(format!("splice: {e}")))
}

fn serr(path: &Path, e: impl std::fmt::Display) -> CleanError {
    CleanError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `out` as Parquet with the columns of `schema`, in its order, each
/// copied (still encoded and compressed) from the first of `parts` that holds
/// it, with `props`. The parts were written from the same rows by writers with
/// the same row group size, so their row groups agree; this is checked.
pub(crate) fn splice(
    parts: &[&Path],
    schema: &Schema,
    props: tamis_core::datafusion::parquet::file::properties::WriterProperties,
    out: &Path,
) -> Result<(), CleanError> {
    let mut ins = Vec::new();
    for p in parts {
        let f = File::open(p).map_err(|e| serr(p, e))?;
        // Page encoding statistics in full, as the writer wrote them.
        let md = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Optional)
            .with_metadata_options(Some(
                ParquetMetaDataOptions::new().with_encoding_stats_as_mask(false),
            ))
            .parse_and_finish(&f)
            .map_err(|e| serr(p, e))?;
        ins.push((f, md));
    }
    let mut props = props;
    add_encoded_arrow_schema_to_metadata(schema, &mut props);
    let pschema = ArrowSchemaConverter::new()
        .with_coerce_types(props.coerce_types())
        .convert(schema)
        .map_err(|e| serr(out, e))?;
    let mut from = Vec::new();
    for leaf in pschema.columns() {
        let found = ins.iter().enumerate().find_map(|(k, (_, md))| {
            md.file_metadata()
                .schema_descr()
                .columns()
                .iter()
                .position(|c| c.path() == leaf.path())
                .map(|j| (k, j))
        });
        from.push(found.ok_or_else(|| {
            CleanError::Internal(format!("splice: no part holds column {}", leaf.path()))
        })?);
    }
    let groups = ins.first().map_or(0, |(_, md)| md.num_row_groups());
    for (_, md) in &ins {
        let same = md.num_row_groups() == groups
            && (0..groups).all(|g| md.row_group(g).num_rows() == ins[0].1.row_group(g).num_rows());
        if !same {
            return Err(CleanError::Internal(
                "splice: the parts' row groups differ".into(),
            ));
        }
    }
    let f = File::create(out).map_err(|e| serr(out, e))?;
    let mut w = SerializedFileWriter::new(f, pschema.root_schema_ptr(), Arc::new(props))
        .map_err(|e| serr(out, e))?;
    for g in 0..groups {
        let mut rg = w.next_row_group().map_err(|e| serr(out, e))?;
        for (k, j) in &from {
            let (f, md) = &ins[*k];
            let meta = md.row_group(g);
            let c = meta.column(*j);
            let close = ColumnCloseResult {
                bytes_written: c.compressed_size() as u64,
                rows_written: meta.num_rows() as u64,
                metadata: as_written(c)?,
                bloom_filter: None,
                column_index: md
                    .column_index()
                    .and_then(|x| x.get(g))
                    .and_then(|x| x.get(*j))
                    .cloned(),
                offset_index: md
                    .offset_index()
                    .and_then(|x| x.get(g))
                    .and_then(|x| x.get(*j))
                    .cloned(),
            };
            rg.append_column(f, close).map_err(|e| serr(out, e))?;
        }
        rg.close().map_err(|e| serr(out, e))?;
    }
    w.close().map_err(|e| serr(out, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tamis_core::datafusion::arrow::array::{
        Date32Array, Float64Array, Int64Array, StringArray,
    };
    use tamis_core::datafusion::parquet::arrow::ArrowWriter;
    use tamis_core::datafusion::parquet::basic::{Compression, ZstdLevel};
    use tamis_core::datafusion::parquet::file::properties::WriterProperties;

    fn props() -> WriterProperties {
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(3))
            .build()
    }

    fn write(path: &Path, batches: &[RecordBatch]) {
        let f = File::create(path).unwrap();
        let mut w = ArrowWriter::try_new(f, batches[0].schema(), Some(props())).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.close().unwrap();
    }

    /// Interleaved columns from two parts, several row groups (split inside
    /// batches), nulls, text, dates: the spliced file is byte for byte the
    /// one a single writer makes.
    #[test]
    fn splice_gives_the_bytes_one_writer_gives() {
        let dir = tempfile::tempdir().unwrap();
        let mut whole = Vec::new();
        for k in 0..3i64 {
            let n = 4;
            let a = Int64Array::from_iter((0..n).map(|i| (i % 3 != 0).then_some(k * 10 + i)));
            let b = StringArray::from_iter((0..n).map(|i| (i != 2).then(|| format!("v{k}{i}"))));
            let c = Float64Array::from_iter_values((0..n).map(|i| (k * n + i) as f64 / 3.0));
            let d = Date32Array::from_iter_values((0..n).map(|i| 19_000 + (k * n + i) as i32));
            whole.push(
                RecordBatch::try_from_iter([
                    ("a", Arc::new(a) as ArrayRef),
                    ("b", Arc::new(b) as ArrayRef),
                    ("c", Arc::new(c) as ArrayRef),
                    ("d", Arc::new(d) as ArrayRef),
                ])
                .unwrap(),
            );
        }
        let one = dir.path().join("one.parquet");
        write(&one, &whole);
        let part = |cols: &[usize]| -> Vec<RecordBatch> {
            whole.iter().map(|b| b.project(cols).unwrap()).collect()
        };
        let (p1, p2) = (dir.path().join("p1.parquet"), dir.path().join("p2.parquet"));
        write(&p1, &part(&[0, 2]));
        write(&p2, &part(&[1, 3]));
        let out = dir.path().join("out.parquet");
        splice(&[&p1, &p2], &whole[0].schema(), props(), &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&one).unwrap());
        // Parts whose row groups differ are refused, not spliced.
        write(&p2, &[whole[0].project(&[1, 3]).unwrap()]);
        let e = splice(&[&p1, &p2], &whole[0].schema(), props(), &out).unwrap_err();
        assert!(e.to_string().contains("row groups differ"), "{e}");
    }
}
