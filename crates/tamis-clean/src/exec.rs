//! Running a plan: the passes, the output, provenance, audit log and lineage.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use serde_json::{Value, json};
use tamis_core::contract::Contract;
use tamis_core::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Builder, StringArray, StringBuilder,
    UInt32Builder, UInt64Array, UInt64Builder,
};
use tamis_core::datafusion::arrow::compute::kernels::cmp::distinct;
use tamis_core::datafusion::arrow::compute::{cast, filter, filter_record_batch, not, take};
use tamis_core::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tamis_core::datafusion::arrow::record_batch::RecordBatch;
use tamis_core::datafusion::parquet::arrow::ArrowWriter;
use tamis_core::datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use tamis_core::datafusion::parquet::file::properties::WriterProperties;
use tamis_core::datafusion::parquet::schema::types::ColumnPath;
use tamis_core::{ColumnType, Dataset, Format, Quarantine, ROW_ID};
use tamis_lineage::{BlockKind, Chain};

use crate::early::{Early, OutAct, Sampler, early_plan, row_json};
use crate::ops::{self, Mode, Op, StepOutput};
use crate::plan::Plan;
use crate::typing::Typing;
use crate::{CleanError, sidecar_dir};

/// What to clean and how.
pub struct CleanRequest {
    /// The dataset.
    pub dataset: Arc<Dataset>,
    /// The plan.
    pub plan: Plan,
    /// A contract: PII columns, canonical values, and the quality check.
    pub contract: Option<Contract>,
    /// The output (`.parquet` or `.csv`).
    pub output: PathBuf,
    /// Write cell provenance, dropped rows and row ids.
    pub provenance: bool,
    /// Key for PII hashing (and hashed provenance of PII columns).
    pub secret: Vec<u8>,
    /// Who runs it (audit log).
    pub actor: String,
    /// Where malformed input rows go.
    pub quarantine: Arc<Quarantine>,
    /// Bytes read (for progress).
    pub progress: Arc<AtomicU64>,
    /// Passes started (for progress).
    pub passes: Arc<AtomicU64>,
    /// Raised to stop the run between batches (with `CoreError::Cancelled`).
    pub cancel: tamis_core::Cancel,
    /// The day `not_future` rules are judged against (the quality check).
    pub today: chrono::NaiveDate,
    /// The token vault for `pii` steps that tokenize (file and keys).
    pub vault: Option<(PathBuf, tamis_privacy::anonymize::Keys)>,
    /// Finds near duplicates for `dedupe_fuzzy` steps.
    pub matcher: Option<Arc<dyn crate::merge::Matcher>>,
    /// Write the output in the last statistics pass when the plan allows it,
    /// computing only the columns that wait on statistics after it. The output
    /// is the same either way; `false` keeps a separate final pass over a
    /// spill of the whole typed input (slower; tests compare the two).
    pub early_output: bool,
}

/// What one step did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct StepSummary {
    /// Position in the plan, from 0.
    pub index: usize,
    /// Step id.
    pub id: String,
    /// Step type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Parameters as written.
    pub params: Value,
    /// What it learned in pass 1 (medians, fences, canonical values).
    pub learned: Value,
    /// Columns (name, Arrow type) before the step.
    pub schema_before: Vec<(String, String)>,
    /// Columns after it.
    pub schema_after: Vec<(String, String)>,
    /// Rows it saw.
    pub rows_in: u64,
    /// Rows it dropped.
    pub rows_removed: u64,
    /// Rows with at least one changed cell.
    pub rows_modified: u64,
    /// Cells changed.
    pub cells_modified: u64,
    /// Rows flagged for review (an outlier flag column set), not changed.
    #[serde(default)]
    pub rows_flagged: u64,
    /// Cells changed per column.
    pub cells_by_column: BTreeMap<String, u64>,
    /// Default confidence of its changes.
    pub confidence: f64,
    /// deterministic | heuristic.
    pub source: String,
    /// What a user should know about what it learned: a statistic it could
    /// not take, cells it left as they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What a clean run produced.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CleanOutcome {
    /// Format tag.
    pub schema: String,
    /// Run id.
    pub run_id: String,
    /// Who ran it.
    pub actor: String,
    /// When (UTC, RFC 3339).
    pub created_at: String,
    /// The plan that ran.
    pub plan: Value,
    /// Input files.
    pub inputs: Vec<tamis_core::FileInfo>,
    /// SHA-256 of each input file's bytes.
    pub input_sha256: Vec<String>,
    /// Input columns (name, Arrow type) after typing.
    pub input_schema: Vec<(String, String)>,
    /// Output file name.
    pub output: String,
    /// SHA-256 of the output bytes.
    pub output_sha256: String,
    /// Output columns.
    pub output_schema: Vec<(String, String)>,
    /// Rows read.
    pub rows_in: u64,
    /// Rows written.
    pub rows_out: u64,
    /// Malformed input rows quarantined while reading.
    pub quarantined: u64,
    /// Passes over the input.
    pub passes: u64,
    /// Columns whose provenance values are keyed hashes (PII).
    pub pii_columns: Vec<String>,
    /// Whether provenance was written.
    pub provenance: bool,
    /// Per step.
    pub steps: Vec<StepSummary>,
    /// Non-null cells per output column.
    pub output_non_null: BTreeMap<String, u64>,
    /// Contract check of the output (when a contract was given).
    pub contract_check: Option<Value>,
    /// Up to 20 changed rows before and after.
    pub sample: Vec<Value>,
}

impl CleanOutcome {
    /// The run's transformation list: `{"id","type","params","rows_removed"|"rows_modified"}`.
    pub fn transformations(&self) -> Vec<Value> {
        self.steps
            .iter()
            .map(|s| {
                let mut m = serde_json::Map::new();
                m.insert("id".into(), json!(s.id));
                m.insert("type".into(), json!(s.ty));
                m.insert("params".into(), s.params.clone());
                if s.rows_removed > 0
                    || s.ty == "dedupe_exact"
                    || s.ty == "dedupe_fuzzy"
                    || s.ty == "filter"
                {
                    m.insert("rows_removed".into(), json!(s.rows_removed));
                } else {
                    m.insert("rows_modified".into(), json!(s.rows_modified));
                }
                Value::Object(m)
            })
            .collect()
    }
}

/// The manifest's file name inside the sidecar.
pub const MANIFEST: &str = "manifest.json";
/// Cell provenance.
pub const CELLS: &str = "cells.parquet";
/// Output row ids, in output order.
pub const ROW_IDS: &str = "row_ids.parquet";
/// Audit log.
pub const AUDIT: &str = "audit.jsonl";
/// Lineage chain.
pub const LINEAGE: &str = "lineage.json";

/// Rows read before the row count is estimated for the ops' tables: enough
/// that the reader's read-ahead skews the estimate by little.
const HINT_AFTER_ROWS: usize = 262_144;

/// The file holding the rows a step dropped.
pub fn dropped_file(index: usize) -> String {
    format!("dropped-{:03}.parquet", index + 1)
}

/// The schema of cell provenance.
pub fn cells_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("row_id", DataType::UInt64, false),
        Field::new("column", DataType::Utf8, false),
        Field::new("old_value", DataType::Utf8, true),
        Field::new("new_value", DataType::Utf8, true),
        Field::new("step_index", DataType::UInt32, false),
        Field::new("step_id", DataType::Utf8, false),
        Field::new("step", DataType::Utf8, false),
        Field::new("confidence", DataType::Float64, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, true),
    ]))
}

fn schema_pairs(s: &Schema) -> Vec<(String, String)> {
    s.fields()
        .iter()
        .filter(|f| f.name() != ROW_ID)
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect()
}

fn werr(path: &Path, e: impl std::fmt::Display) -> CleanError {
    CleanError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn props(schema: &Schema) -> WriterProperties {
    let mut b =
        WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default()));
    for f in schema.fields() {
        let c = ColumnPath::from(f.name().as_str());
        // Row ids rise through a file: delta encoding stores them in a few bits
        // each, where a dictionary would be tried and dropped on every row group.
        // Only integer columns: a user's text column may be called `row_id` too.
        if (f.name() == "row_id" || f.name() == ROW_ID)
            && matches!(f.data_type(), DataType::UInt64 | DataType::Int64)
        {
            b = b
                .set_column_dictionary_enabled(c.clone(), false)
                .set_column_encoding(c, Encoding::DELTA_BINARY_PACKED);
        } else if matches!(
            f.data_type(),
            DataType::Int64 | DataType::Int32 | DataType::Date32
        ) {
            // With the dictionary on, this is the encoding a column falls back
            // to when its values are too many for one (ids, timestamps): deltas
            // take a few bits where plain values take 4 or 8 bytes, which leaves
            // zstd less to compress.
            b = b.set_column_encoding(c, Encoding::DELTA_BINARY_PACKED);
        }
    }
    b.build()
}

enum Sink {
    Parquet(ArrowWriter<File>),
    Csv(tamis_core::datafusion::arrow::csv::Writer<File>),
}

impl Sink {
    fn create(path: &Path, schema: SchemaRef, csv: bool) -> Result<Sink, CleanError> {
        let f = File::create(path).map_err(|e| werr(path, e))?;
        Ok(if csv {
            Sink::Csv(
                tamis_core::datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(f),
            )
        } else {
            Sink::Parquet(
                ArrowWriter::try_new(f, schema.clone(), Some(props(&schema)))
                    .map_err(|e| werr(path, e))?,
            )
        })
    }
    fn write(&mut self, b: &RecordBatch) -> Result<(), String> {
        match self {
            Sink::Parquet(w) => w.write(b).map_err(|e| e.to_string()),
            Sink::Csv(w) => w.write(b).map_err(|e| e.to_string()),
        }
    }
    fn close(self) -> Result<(), String> {
        match self {
            Sink::Parquet(w) => w.close().map(|_| ()).map_err(|e| e.to_string()),
            Sink::Csv(w) => w.into_inner().sync_all().map_err(|e| e.to_string()),
        }
    }
}

/// A batch for one of the output files.
struct Out {
    path: PathBuf,
    csv: bool,
    batch: RecordBatch,
}

/// Writes every output file on its own thread, so encoding overlaps the
/// transforms. Files are created on their first batch and closed at the end.
fn writer_thread(rx: Receiver<Out>) -> Result<(), CleanError> {
    let mut sinks: BTreeMap<PathBuf, Sink> = BTreeMap::new();
    for m in rx {
        if !sinks.contains_key(&m.path) {
            let sink = Sink::create(&m.path, m.batch.schema(), m.csv)?;
            sinks.insert(m.path.clone(), sink);
        }
        if let Some(s) = sinks.get_mut(&m.path) {
            s.write(&m.batch).map_err(|e| werr(&m.path, e))?;
        }
    }
    for (p, s) in sinks {
        s.close().map_err(|e| werr(&p, e))?;
    }
    Ok(())
}

/// Where the reader thread gets its batches.
enum Input {
    /// Parse the dataset and type it; malformed rows go to this quarantine.
    Dataset(Arc<Dataset>, Arc<Quarantine>),
    /// Typed batches a previous pass spilled.
    Spill(PathBuf),
}

/// The reader thread's result: the types it ended with and, if asked, the spill it wrote.
type ReaderEnd = (Typing, Option<Result<tempfile::TempPath, CleanError>>);

type SpillWriter =
    tamis_core::datafusion::arrow::ipc::writer::StreamWriter<std::io::BufWriter<File>>;

/// An Arrow IPC file of typed batches: the whole typed input beside the
/// output, or the late pass's snapshot in the temporary sidecar.
struct Spill {
    file: tempfile::NamedTempFile,
    writer: Option<SpillWriter>,
}

impl Spill {
    fn create(dir: &Path) -> Result<Spill, CleanError> {
        let file = tempfile::Builder::new()
            .prefix(".tamis-spill-")
            .tempfile_in(dir)
            .map_err(|e| werr(dir, format!("spill file: {e}")))?;
        Ok(Spill { file, writer: None })
    }

    fn write(&mut self, b: &RecordBatch) -> Result<(), CleanError> {
        let e = |x: &dyn std::fmt::Display| werr(self.file.path(), format!("spill file: {x}"));
        if self.writer.is_none() {
            let f = self.file.as_file().try_clone().map_err(|x| e(&x))?;
            let w =
                SpillWriter::try_new(std::io::BufWriter::new(f), &b.schema()).map_err(|x| e(&x))?;
            self.writer = Some(w);
        }
        match self.writer.as_mut() {
            Some(w) => w.write(b).map_err(|x| e(&x)),
            None => Ok(()),
        }
    }

    fn finish(self) -> Result<tempfile::TempPath, CleanError> {
        if let Some(mut w) = self.writer {
            w.finish()
                .map_err(|x| werr(self.file.path(), format!("spill file: {x}")))?;
        }
        Ok(self.file.into_temp_path())
    }
}

fn read_spill(
    p: &Path,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, CleanError>> + Send>, CleanError> {
    let f = File::open(p).map_err(|e| werr(p, format!("spill file: {e}")))?;
    // A pass over no rows spilled nothing.
    let empty = f.metadata().map(|m| m.len() == 0).unwrap_or(false);
    let f: Box<dyn std::io::Read + Send> = if empty {
        return Ok(Box::new(std::iter::empty()) as Box<dyn Iterator<Item = _> + Send>);
    } else {
        Box::new(f)
    };
    let r = tamis_core::datafusion::arrow::ipc::reader::StreamReader::try_new(
        std::io::BufReader::new(f),
        None,
    )
    .map_err(|e| werr(p, format!("spill file: {e}")))?;
    let p = p.to_path_buf();
    Ok(Box::new(r.map(move |b| {
        b.map_err(|e| werr(&p, format!("spill file: {e}")))
    })))
}

/// Streams typed batches on a reader thread. With `spill_dir`, every typed
/// batch is also written to an Arrow IPC file there, so the final pass reads
/// it back instead of parsing and typing the text again.
fn spawn_reader(
    input: Input,
    typing: Typing,
    progress: Arc<AtomicU64>,
    spill_dir: Option<PathBuf>,
) -> (
    Receiver<Result<RecordBatch, CleanError>>,
    std::thread::JoinHandle<ReaderEnd>,
) {
    let (tx, rx) = sync_channel::<Result<RecordBatch, CleanError>>(4);
    let h = std::thread::spawn(move || {
        let mut typing = typing;
        let mut spill = match spill_dir.as_deref().map(Spill::create) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => return (typing, Some(Err(e))),
            None => None,
        };
        let convert = matches!(input, Input::Dataset(..));
        let batches: Box<dyn Iterator<Item = Result<RecordBatch, CleanError>>> = match input {
            Input::Dataset(ds, q) => match ds.batches(q, progress) {
                Ok(b) => Box::new(b.map(|r| r.map_err(CleanError::from))),
                Err(e) => {
                    let _ = tx.send(Err(e.into()));
                    return (typing, None);
                }
            },
            Input::Spill(p) => match read_spill(&p) {
                Ok(r) => Box::new(r),
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return (typing, None);
                }
            },
        };
        let mut failed = None;
        for b in batches {
            let r = if convert {
                b.and_then(|b| typing.convert(&b))
            } else {
                b
            };
            if let (Ok(b), Some(s)) = (&r, spill.as_mut())
                && let Err(e) = s.write(b)
            {
                failed = Some(e);
                spill = None;
            }
            if tx.send(r).is_err() {
                break;
            }
        }
        let end = match (failed, spill) {
            (Some(e), _) => Some(Err(e)),
            (None, Some(s)) => Some(s.finish()),
            (None, None) => None,
        };
        (typing, end)
    });
    (rx, h)
}

fn empty_typed(dataset: &Dataset, typing: &Typing) -> RecordBatch {
    RecordBatch::new_empty(typing.schema(&dataset.schema()))
}

/// Per-op action in a statistics pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Apply,
    Observe,
}

/// Decides which unresolved ops can observe in this pass: those whose input
/// columns (and row set) no unresolved op before them changes.
fn schedule(ops: &mut [Box<dyn Op>], empty: &RecordBatch) -> Result<Vec<Act>, CleanError> {
    let mut tainted: HashSet<String> = HashSet::new();
    let mut rows_tainted = false;
    let mut acts = Vec::new();
    let mut b = empty.clone();
    for op in ops.iter_mut() {
        let schema = b.schema();
        let reads = op.reads(&schema);
        let writes = op.writes(&schema);
        let dirty_in = rows_tainted || reads.iter().any(|c| tainted.contains(c));
        let act = if !op.is_resolved() && !dirty_in {
            Act::Observe
        } else {
            Act::Apply
        };
        let unreliable = dirty_in || (!op.is_resolved() && op.mode() == Mode::Stats);
        if unreliable {
            tainted.extend(writes);
            if op.drops_rows() {
                rows_tainted = true;
            }
        }
        let out = op.apply(&b)?;
        // Renames carry taint to the new name.
        let after = out.batch.schema();
        if after.fields().len() == schema.fields().len() {
            for (x, y) in schema.fields().iter().zip(after.fields()) {
                if x.name() != y.name() && tainted.contains(x.name()) {
                    tainted.insert(y.name().clone());
                }
            }
        }
        b = out.batch;
        acts.push(act);
    }
    Ok(acts)
}

fn keep_rows(b: &RecordBatch, keep: &Option<BooleanArray>) -> Result<RecordBatch, CleanError> {
    Ok(match keep {
        Some(k) => filter_record_batch(b, k)?,
        None => b.clone(),
    })
}

/// What the statistics passes leave for the final pass.
struct Prepared {
    passes: u64,
    /// The typed input of the last pass, when it was text (saves parsing it again).
    spill: Option<tempfile::TempPath>,
    /// Whether a complete pass already sent malformed rows to the quarantine.
    quarantined: bool,
    /// The last statistics pass is left to the final pass, which runs it as this says.
    early: Option<Early>,
}

/// Sizes the ops' tables once, from an estimate of the rows a pass will see.
struct Hint {
    done: bool,
    seen: usize,
    start: u64,
}

impl Hint {
    fn new(req: &CleanRequest) -> Hint {
        Hint {
            done: false,
            seen: 0,
            start: req.progress.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Counts `rows` more rows; hints the ops once enough were read.
    fn rows(&mut self, rows: usize, req: &CleanRequest, ops: &mut [Box<dyn Op>]) {
        self.seen += rows;
        if self.done || self.seen < HINT_AFTER_ROWS {
            return;
        }
        // Rows so far × total bytes / bytes read so far, plus a tenth: the
        // reader's read-ahead (a few MiB) makes the ratio an underestimate,
        // and a table that still has to grow rehashes every entry once.
        self.done = true;
        let read = req
            .progress
            .load(std::sync::atomic::Ordering::Relaxed)
            .saturating_sub(self.start);
        // No estimate from a reader that does not count its bytes (Excel),
        // and never more than 256 times the rows seen: a hint reserves
        // memory up front.
        if let Some(total) = req.dataset.total_bytes().filter(|_| read > 0) {
            let est = (self.seen as u128 * total as u128 * 11 / (10 * read as u128))
                .min(self.seen as u128 * 256) as usize;
            for op in ops.iter_mut() {
                op.size_hint(est);
            }
        }
    }
}

/// Runs statistics passes until every op is resolved and the types are final,
/// or, with `req.early_output`, until the last one, which it leaves to the
/// final pass when the plan allows (`Prepared::early`). `quarantined` says
/// whether a complete pass already sent malformed rows to the quarantine.
fn stats_passes(
    req: &CleanRequest,
    ops: &mut [Box<dyn Op>],
    typing: &mut Typing,
    text: bool,
    out_csv: bool,
    quarantined: &mut bool,
) -> Result<Prepared, CleanError> {
    let mut passes = 0;
    let mut types_final = !text;
    let spill_dir = req
        .output
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .map(Path::to_path_buf);
    loop {
        if types_final && ops.iter().all(|o| o.is_resolved()) {
            return Ok(Prepared {
                passes,
                spill: None,
                quarantined: *quarantined,
                early: None,
            });
        }
        let empty = empty_typed(&req.dataset, typing);
        let acts = schedule(ops, &empty)?;
        // The pass that resolves the last op keeps its typed input for the final
        // pass, unless the final pass can be this pass.
        let last = ops
            .iter()
            .zip(&acts)
            .all(|(o, a)| o.is_resolved() || *a == Act::Observe);
        if last && req.early_output {
            // A CSV output cannot be spliced: only a plan with no late column.
            let early = early_plan(ops, &empty)?.filter(|e| !(out_csv && e.has_late()));
            if early.is_some() {
                return Ok(Prepared {
                    passes,
                    spill: None,
                    quarantined: *quarantined,
                    early,
                });
            }
        }
        passes += 1;
        req.passes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for op in ops.iter_mut() {
            op.start_apply();
        }
        let q = if *quarantined {
            Arc::new(Quarantine::in_memory())
        } else {
            req.quarantine.clone()
        };
        let (rx, handle) = spawn_reader(
            Input::Dataset(req.dataset.clone(), q),
            typing.clone(),
            req.progress.clone(),
            spill_dir.clone().filter(|_| last && text),
        );
        let mut result = Ok(());
        let mut hint = Hint::new(req);
        for b in rx.iter() {
            let mut b = match b.and_then(|b| req.cancel.check().map(|_| b).map_err(Into::into)) {
                Ok(b) => b,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            hint.rows(b.num_rows(), req, ops);
            for (op, act) in ops.iter_mut().zip(&acts) {
                match act {
                    Act::Observe => {
                        if let Some(k) = op.observe(&b)? {
                            b = filter_record_batch(&b, &k)?;
                        }
                    }
                    Act::Apply => {
                        let out = op.apply(&b)?;
                        b = keep_rows(&out.batch, &out.keep)?;
                    }
                }
            }
        }
        drop(rx);
        let (t, spill) = handle
            .join()
            .map_err(|_| CleanError::Internal("reader thread panicked".into()))?;
        result?;
        *quarantined = true;
        let spill = spill.transpose()?;
        let old = typing.types.clone();
        *typing = t;
        if typing.types != old {
            tracing::info!(
                "a column widened in pass {passes}; the pass restarts with the new types"
            );
            for op in ops.iter_mut() {
                op.reset();
            }
            continue;
        }
        types_final = true;
        for (op, act) in ops.iter_mut().zip(&acts) {
            if *act == Act::Observe {
                op.resolve()?;
            }
        }
        if ops.iter().all(|o| o.is_resolved()) {
            return Ok(Prepared {
                passes,
                spill,
                quarantined: *quarantined,
                early: None,
            });
        }
    }
}

/// Text of the cells at `idx` of an array.
fn texts_at(a: &ArrayRef, idx: &UInt64Array) -> Result<StringArray, CleanError> {
    let t = take(a.as_ref(), idx, None)?;
    let s = cast(&t, &DataType::Utf8)?;
    Ok(s.as_string::<i32>().clone())
}

struct CellRecorder {
    row_id: UInt64Builder,
    column: StringBuilder,
    old: StringBuilder,
    new: StringBuilder,
    step_index: UInt32Builder,
    step_id: StringBuilder,
    step: StringBuilder,
    confidence: Float64Builder,
    source: StringBuilder,
    detail: StringBuilder,
    len: usize,
}

impl CellRecorder {
    fn new() -> Self {
        CellRecorder {
            row_id: UInt64Builder::new(),
            column: StringBuilder::new(),
            old: StringBuilder::new(),
            new: StringBuilder::new(),
            step_index: UInt32Builder::new(),
            step_id: StringBuilder::new(),
            step: StringBuilder::new(),
            confidence: Float64Builder::new(),
            source: StringBuilder::new(),
            detail: StringBuilder::new(),
            len: 0,
        }
    }
    fn finish(&mut self) -> Result<RecordBatch, CleanError> {
        self.len = 0;
        Ok(RecordBatch::try_new(
            cells_schema(),
            vec![
                Arc::new(self.row_id.finish()),
                Arc::new(self.column.finish()),
                Arc::new(self.old.finish()),
                Arc::new(self.new.finish()),
                Arc::new(self.step_index.finish()),
                Arc::new(self.step_id.finish()),
                Arc::new(self.step.finish()),
                Arc::new(self.confidence.finish()),
                Arc::new(self.source.finish()),
                Arc::new(self.detail.finish()),
            ],
        )?)
    }
}

/// Run context of the final pass for one step.
struct Recording<'a> {
    index: usize,
    id: &'a str,
    ty: &'a str,
    confidence: f64,
    source: &'static str,
    pii: &'a HashSet<String>,
    secret: &'a [u8],
}

/// Appends a recorded value, as a keyed hash when its column holds PII.
fn append_protected(b: &mut StringBuilder, pii: bool, secret: &[u8], v: Option<&str>) {
    match v {
        Some(v) if pii => b.append_value(format!("hmac-sha256:{}", ops::keyed_hash(secret, v))),
        v => b.append_option(v),
    }
}

/// Diffs one step's input and output; records changed cells; returns the rows with a change.
fn record_cells(
    input: &RecordBatch,
    out: &StepOutput,
    writes: &[String],
    rec: &Recording,
    cells: &mut CellRecorder,
    summary: &mut StepSummary,
    touched: &mut [bool],
) -> Result<(), CleanError> {
    let ids = tamis_core::row_ids(input)?.clone();
    for c in writes {
        let Some(old) = input.column_by_name(c) else {
            continue; // a column the step adds (outlier flags)
        };
        let new = out.batch.column_by_name(c);
        let changed: Vec<u64> = match new {
            Some(new) => {
                let mask = if let Some(m) = out.changed.get(c) {
                    m.clone()
                } else if old.data_type() == new.data_type() {
                    distinct(old, new)?
                } else {
                    distinct(&cast(old, &DataType::Utf8)?, &cast(new, &DataType::Utf8)?)?
                };
                if mask.true_count() == 0 {
                    continue;
                }
                mask.iter()
                    .enumerate()
                    .filter(|(_, m)| *m == Some(true))
                    .map(|(i, _)| i as u64)
                    .collect()
            }
            // Dropped column: every non-null cell changes to null.
            None => (0..old.len() as u64)
                .filter(|i| old.is_valid(*i as usize))
                .collect(),
        };
        if changed.is_empty() {
            continue;
        }
        let idx = UInt64Array::from(changed);
        let olds = texts_at(old, &idx)?;
        let news = match new {
            Some(n) => texts_at(n, &idx)?,
            None => StringArray::new_null(idx.len()),
        };
        let conf = out.confidence.get(c);
        let detail = out.details.get(c);
        let pii = rec.pii.contains(c);
        for ((i, o), n) in idx.values().iter().zip(&olds).zip(&news) {
            let i = *i as usize;
            touched[i] = true;
            cells.row_id.append_value(ids.value(i));
            cells.column.append_value(c);
            append_protected(&mut cells.old, pii, rec.secret, o);
            append_protected(&mut cells.new, pii, rec.secret, n);
            cells.step_index.append_value(rec.index as u32);
            cells.step_id.append_value(rec.id);
            cells.step.append_value(rec.ty);
            cells.confidence.append_value(
                conf.and_then(|v| v.get(i).copied())
                    .unwrap_or(rec.confidence),
            );
            cells.source.append_value(rec.source);
            cells
                .detail
                .append_option(detail.and_then(|d| d.get(i).cloned().flatten()));
            cells.len += 1;
        }
        *summary.cells_by_column.entry(c.clone()).or_default() += idx.len() as u64;
        summary.cells_modified += idx.len() as u64;
    }
    Ok(())
}

/// Runs a plan: statistics passes, then the final pass that writes the output
/// (to a temporary name, then renamed) with provenance, audit log and lineage.
pub fn clean(req: CleanRequest) -> Result<CleanOutcome, CleanError> {
    let started = chrono::Utc::now();
    let run_id = format!(
        "run-{}-{:x}",
        started.format("%Y%m%dT%H%M%S"),
        std::process::id() as u64 ^ (started.timestamp_subsec_nanos() as u64)
    );
    let dataset = req.dataset.clone();
    let files = dataset.files();
    let text = !files.iter().all(|f| f.format == Format::Parquet);
    let (sampled, empty) = dataset.sample_columns()?;
    let columns = dataset.columns().to_vec();
    let empty: Vec<String> = columns
        .iter()
        .zip(&empty)
        .filter(|(_, e)| **e)
        .map(|(c, _)| c.clone())
        .collect();
    let for_validation: Vec<(String, ColumnType)> = columns
        .iter()
        .cloned()
        .zip(sampled.iter().map(|t| match t {
            ColumnType::Datetime => ColumnType::String,
            t => *t,
        }))
        .collect();
    req.plan.validate(
        &for_validation,
        &empty,
        req.contract.as_ref(),
        &dataset.options().null_tokens,
    )?;
    let out_csv = req
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if files.iter().any(|f| f.name == "-") {
        return Err(CleanError::Step {
            step: "input".into(),
            message: "clean reads its input more than once; save stdin to a file first".into(),
        });
    }

    // Input hashes, computed beside pass 1.
    let paths: Vec<(String, Option<PathBuf>)> = files
        .iter()
        .map(|f| {
            let p = PathBuf::from(f.name.strip_prefix("file://").unwrap_or(&f.name));
            (f.name.clone(), p.is_file().then_some(p))
        })
        .collect();
    // The same file by device and inode, so a link or another spelling of
    // the path is caught too.
    if let Some((name, _)) = paths.iter().find(|(_, p)| {
        p.as_ref()
            .is_some_and(|p| same_file::is_same_file(p, &req.output).unwrap_or(false))
    }) {
        return Err(CleanError::Write {
            path: req.output.clone(),
            message: format!(
                "it is the input `{name}`: clean reads its input again in later passes, and provenance and revert point at it; write the cleaned data to another path"
            ),
        });
    }
    let hasher = std::thread::spawn(move || -> Vec<String> {
        paths
            .iter()
            .map(|(name, p)| match p {
                Some(p) => {
                    tamis_lineage::sha256_file(p).unwrap_or_else(|e| format!("unavailable: {e}"))
                }
                None => format!("unavailable: {name} is not a local file"),
            })
            .collect()
    });

    let tokenizes = req.plan.steps.iter().any(|s| match &s.kind {
        crate::plan::StepKind::Pii { columns, strategy } => {
            ops::pii_plan(columns, *strategy, req.contract.as_ref())
                .iter()
                .any(|p| p.1 == tamis_core::contract::PiiStrategy::Tokenize)
        }
        _ => false,
    });
    let vault = match (&req.vault, tokenizes) {
        (_, false) => None,
        (Some((path, keys)), true) if keys.current.is_some() => Some(Arc::new(ops::TokenVault {
            path: path.clone(),
            keys: keys.clone(),
            vault: std::sync::Mutex::new(tamis_privacy::anonymize::Vault::read(path).map_err(
                |e| CleanError::Step {
                    step: "pii".into(),
                    message: e.to_string(),
                },
            )?),
        })),
        _ => {
            return Err(CleanError::PlanStep {
                step: "pii".into(),
                message: "tokenize needs the token vault key: set TAMIS_ENCRYPTION_KEYS=id:64-hex (and --vault FILE)".into(),
            });
        }
    };
    let mut ops: Vec<Box<dyn Op>> = req
        .plan
        .steps
        .iter()
        .map(|s| {
            ops::build(
                s,
                req.contract.as_ref(),
                &req.secret,
                vault.as_ref(),
                req.matcher.as_ref(),
            )
        })
        .collect();
    let mut typing = Typing::new(
        &columns,
        &sampled,
        !text,
        dataset.options().null_tokens.clone(),
    );
    // PII columns: the contract's, and every column a pii step touches.
    let mut pii: HashSet<String> = req
        .contract
        .iter()
        .flat_map(|c| c.columns.iter().filter(|c| c.pii).map(|c| c.name.clone()))
        .collect();
    for s in &req.plan.steps {
        if let crate::plan::StepKind::Pii {
            columns: Some(c), ..
        } = &s.kind
        {
            pii.extend(c.iter().cloned());
        }
    }

    let side = sidecar_dir(&req.output);
    let side_tmp = tamis_core::quarantine::tmp_name(&side);
    let out_tmp = tamis_core::quarantine::tmp_name(&req.output);
    let cleanup = || {
        let _ = std::fs::remove_file(&out_tmp);
        let _ = std::fs::remove_dir_all(&side_tmp);
    };
    let mut quarantined = false;
    // Output passes given up on because a column widened.
    let mut restarts = 0;
    // Passes, then the final pass; again from the start when a column widens
    // in a final pass that was also the last statistics pass.
    let (stat_passes, input_schema, summaries, done) = loop {
        let prepared = stats_passes(&req, &mut ops, &mut typing, text, out_csv, &mut quarantined)?;
        let empty = empty_typed(&dataset, &typing);
        let input_schema = schema_pairs(&empty.schema());
        let mut summaries = step_summaries(&mut ops, &req.plan, &empty)?;
        let _ = std::fs::remove_dir_all(&side_tmp);
        std::fs::create_dir_all(&side_tmp).map_err(|e| werr(&side_tmp, e))?;
        let result = final_pass(&out_tmp, |tx| {
            output_pass(
                &req,
                &mut ops,
                &mut typing,
                &prepared,
                &pii,
                &mut summaries,
                &out_tmp,
                out_csv,
                &side_tmp,
                tx,
            )
        });
        match result {
            Ok(Some(done)) => break (prepared.passes, input_schema, summaries, done),
            Ok(None) => {
                cleanup();
                restarts += 1;
                tracing::info!("a column widened in the output pass; the passes restart");
                quarantined = true;
                for op in ops.iter_mut() {
                    op.reset();
                }
            }
            Err(e) => {
                cleanup();
                return Err(e);
            }
        }
    };
    let (rows_in, rows_out, non_null, sample, output_schema) = done;
    let quarantined = req.quarantine.finish()?.rows;
    let input_sha256 = hasher.join().unwrap_or_default();
    let output_sha256 = tamis_lineage::sha256_file(&out_tmp).inspect_err(|_| cleanup())?;

    let contract_check = match &req.contract {
        Some(c) => Some(
            crate::check::check_file(&out_tmp, c, req.today, None)
                .inspect_err(|_| cleanup())?
                .to_value(),
        ),
        None => None,
    };

    let outcome = CleanOutcome {
        schema: "tamis.clean/1".into(),
        run_id: run_id.clone(),
        actor: req.actor.clone(),
        created_at: started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        plan: req.plan.to_value(),
        inputs: files.clone(),
        input_sha256,
        input_schema,
        output: req
            .output
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        output_sha256,
        output_schema,
        rows_in,
        rows_out,
        quarantined,
        passes: stat_passes + restarts + 1,
        pii_columns: {
            let mut v: Vec<String> = pii.into_iter().collect();
            v.sort();
            v
        },
        provenance: req.provenance,
        steps: summaries,
        output_non_null: non_null,
        contract_check,
        sample,
    };

    let written = write_records(&outcome, &side_tmp, started);
    if let Err(e) = written {
        cleanup();
        return Err(e);
    }
    // The vault before the output: every token an output holds must resolve.
    if let Some(v) = &vault {
        let saved = v
            .vault
            .lock()
            .map_err(|_| CleanError::Internal("vault lock".into()))
            .and_then(|g| {
                g.write(&v.path).map_err(|e| CleanError::Write {
                    path: v.path.clone(),
                    message: e.to_string(),
                })
            });
        if let Err(e) = saved {
            cleanup();
            return Err(e);
        }
    }
    // Publish: the sidecar first, then the output, each by rename.
    let trash = tamis_core::quarantine::tmp_name(&side).with_extension("old");
    if side.exists() {
        std::fs::rename(&side, &trash).map_err(|e| werr(&side, e))?;
    }
    std::fs::rename(&side_tmp, &side).map_err(|e| werr(&side, e))?;
    std::fs::rename(&out_tmp, &req.output).map_err(|e| werr(&req.output, e))?;
    let _ = std::fs::remove_dir_all(&trash);
    Ok(outcome)
}

/// Each step's summary before the final pass: its schemas and what it learned.
fn step_summaries(
    ops: &mut [Box<dyn Op>],
    plan: &Plan,
    empty: &RecordBatch,
) -> Result<Vec<StepSummary>, CleanError> {
    let mut summaries = Vec::new();
    let mut b = empty.clone();
    for (i, (op, s)) in ops.iter_mut().zip(&plan.steps).enumerate() {
        let before = schema_pairs(&b.schema());
        b = op.apply(&b)?.batch;
        let mut summary = StepSummary {
            index: i,
            id: s.id.clone(),
            ty: s.type_name().into(),
            params: s.params.clone(),
            schema_before: before,
            schema_after: schema_pairs(&b.schema()),
            ..Default::default()
        };
        summary.learn_from(op.as_ref());
        summaries.push(summary);
    }
    Ok(summaries)
}

impl StepSummary {
    /// Takes what `op` learned and the confidence and source of its changes
    /// (known once it is resolved).
    fn learn_from(&mut self, op: &dyn Op) {
        self.learned = op.learned();
        let (confidence, source) = op.confidence();
        self.confidence = confidence;
        self.source = source.name().into();
        self.warnings = op.warnings();
    }
}

type FinalResult = (
    u64,
    u64,
    BTreeMap<String, u64>,
    Vec<Value>,
    Vec<(String, String)>,
);

/// Output rows of the final pass kept for the sample until a late pass says
/// whether a late step changed them.
const SAMPLE_WINDOW: u64 = 1024;

/// Confidence and source of each step's changes, from the summaries.
fn recordings(summaries: &[StepSummary]) -> Vec<(f64, &'static str)> {
    summaries
        .iter()
        .map(|s| {
            (
                s.confidence,
                if s.source == "heuristic" {
                    "heuristic"
                } else {
                    "deterministic"
                },
            )
        })
        .collect()
}

/// Applies op `i` to `b`, counting its rows and changed cells in its summary
/// and, with provenance, recording each changed cell. Returns the op's output
/// and which rows of `b` it changed.
#[allow(clippy::too_many_arguments)]
fn apply_recorded(
    op: &mut Box<dyn Op>,
    i: usize,
    b: &RecordBatch,
    req: &CleanRequest,
    summaries: &mut [StepSummary],
    recs: &[(f64, &'static str)],
    pii: &HashSet<String>,
    cells: &mut CellRecorder,
) -> Result<(StepOutput, Vec<bool>), CleanError> {
    let writes = op.writes(&b.schema());
    let out = op.apply(b)?;
    let s = &mut summaries[i];
    s.rows_in += b.num_rows() as u64;
    let mut t = vec![false; b.num_rows()];
    if req.provenance {
        let rec = Recording {
            index: i,
            id: &s.id.clone(),
            ty: &s.ty.clone(),
            confidence: recs[i].0,
            source: recs[i].1,
            pii,
            secret: &req.secret,
        };
        record_cells(b, &out, &writes, &rec, cells, s, &mut t)?;
    } else {
        let mut throwaway = CellRecorder::new();
        let rec = Recording {
            index: i,
            id: "",
            ty: "",
            confidence: 1.0,
            source: "deterministic",
            pii,
            secret: &req.secret,
        };
        record_cells(b, &out, &writes, &rec, &mut throwaway, s, &mut t)?;
    }
    s.rows_modified += t.iter().filter(|x| **x).count() as u64;
    s.rows_flagged += out.flagged;
    Ok((out, t))
}

/// The columns of `b` named in `names`, in that order.
fn pick(b: &RecordBatch, names: &[String]) -> Result<RecordBatch, CleanError> {
    let schema = b.schema();
    let idx = names
        .iter()
        .map(|n| schema.index_of(n))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(b.project(&idx)?)
}

/// The columns of `b` not named in `names`.
fn pick_others(b: &RecordBatch, names: &[String]) -> Result<RecordBatch, CleanError> {
    let idx: Vec<usize> = (0..b.num_columns())
        .filter(|i| !names.contains(b.schema().field(*i).name()))
        .collect();
    Ok(b.project(&idx)?)
}

/// The final pass: runs `pass` (see `output_pass`) with a writer thread for
/// its files, then splices the output when it was written in parts.
fn final_pass(
    out_tmp: &Path,
    pass: impl FnOnce(&SyncSender<Out>) -> Result<Option<(FinalResult, Spliced)>, CleanError>,
) -> Result<Option<FinalResult>, CleanError> {
    let (tx, rx): (SyncSender<Out>, Receiver<Out>) = sync_channel(8);
    let writer = std::thread::spawn(move || writer_thread(rx));
    let run = pass(&tx);
    // Every file is closed before the caller cleans up or publishes: on an
    // error too, or a file could be written after its directory was removed.
    drop(tx);
    let written = writer
        .join()
        .map_err(|_| CleanError::Internal("writer thread panicked".into()))
        .and_then(|w| w);
    let Some((done, spliced)) = run? else {
        return Ok(None);
    };
    written?;
    if let Some((parts, schema)) = spliced {
        let parts: Vec<&Path> = parts.iter().map(PathBuf::as_path).collect();
        crate::early::splice(&parts, &schema, props(&schema), out_tmp)?;
        for p in parts {
            std::fs::remove_file(p).map_err(|e| werr(p, e))?;
        }
    }
    Ok(Some(done))
}

/// The parts of an output to splice, and its schema.
type Spliced = Option<(Vec<PathBuf>, SchemaRef)>;

/// The final pass's reading and writing: applies every step and sends the
/// output, dropped rows, cell provenance and row ids to the writer thread by
/// `tx` (see `final_pass`). With `prepared.early` it is also the last
/// statistics pass (see `early`): then it returns `None` when a column
/// widened, and the passes must start again with the wider `typing`.
#[allow(clippy::too_many_arguments)]
fn output_pass(
    req: &CleanRequest,
    ops: &mut [Box<dyn Op>],
    typing: &mut Typing,
    prepared: &Prepared,
    pii: &HashSet<String>,
    summaries: &mut [StepSummary],
    out_tmp: &Path,
    out_csv: bool,
    side_tmp: &Path,
    tx: &SyncSender<Out>,
) -> Result<Option<(FinalResult, Spliced)>, CleanError> {
    req.passes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let early = prepared.early.as_ref();
    let late = early.filter(|e| e.has_late());
    let late_cols: &[String] = late.map_or(&[], |e| &e.late);
    let send_to = |path: PathBuf, csv: bool, batch: RecordBatch| -> Result<(), CleanError> {
        tx.send(Out { path, csv, batch })
            .map_err(|_| CleanError::Internal("the writer stopped early".into()))
    };
    let cells_path = side_tmp.join(CELLS);
    let ids_path = side_tmp.join(ROW_IDS);
    // With late columns, this pass writes the others here and the late pass
    // writes them beside; the two are spliced into the output.
    let early_part = side_tmp.join(".output-early.parquet");
    let late_part = side_tmp.join(".output-late.parquet");
    for op in ops.iter_mut() {
        op.start_apply();
    }
    let input = match &prepared.spill {
        Some(p) => Input::Spill(p.to_path_buf()),
        None if prepared.quarantined => {
            Input::Dataset(req.dataset.clone(), Arc::new(Quarantine::in_memory()))
        }
        None => Input::Dataset(req.dataset.clone(), req.quarantine.clone()),
    };
    // Batches of another schema mean a column widened while this pass read.
    let expected = early.map(|_| empty_typed(&req.dataset, typing).schema());
    let (rx_in, reader) = spawn_reader(input, typing.clone(), req.progress.clone(), None);
    let mut snapshot = match late {
        Some(_) => Some(Spill::create(side_tmp)?),
        None => None,
    };
    let mut hint = Hint::new(req);
    let mut widened = false;
    let mut cells = CellRecorder::new();
    let mut rows_in = 0u64;
    let mut rows_out = 0u64;
    let mut non_null: BTreeMap<String, u64> = BTreeMap::new();
    let mut sampler = Sampler::new(20, if late.is_some() { SAMPLE_WINDOW } else { 0 });
    let mut output_schema = Vec::new();
    let mut wrote_any = false;
    let recs = recordings(summaries);
    let empty_out = {
        let mut b = empty_typed(&req.dataset, typing);
        for op in ops.iter_mut() {
            b = op.apply(&b)?.batch;
        }
        op_reset_sequential(ops);
        b
    };
    // Whether any output column is not late (else only the late part is written).
    let early_cols = drop_row_id(&empty_out)?
        .schema()
        .fields()
        .iter()
        .any(|f| !late_cols.contains(f.name()));
    let mut failure = None;
    for b in rx_in.iter() {
        let input = match b.and_then(|b| req.cancel.check().map(|_| b).map_err(Into::into)) {
            Ok(b) => b,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        if widened {
            continue; // read on: the quarantine sees every row once
        }
        if expected.as_ref().is_some_and(|s| input.schema() != *s) {
            widened = true;
            continue;
        }
        if early.is_some() {
            hint.rows(input.num_rows(), req, ops);
        }
        rows_in += input.num_rows() as u64;
        let mut b = input.clone();
        let mut touched = vec![false; b.num_rows()];
        // Each row's position in `input`, so samples can show the row as read.
        let mut pos: ArrayRef = Arc::new(UInt64Array::from_iter_values(0..b.num_rows() as u64));
        for (i, op) in ops.iter_mut().enumerate() {
            match early.map_or(OutAct::Apply, |e| e.acts[i]) {
                OutAct::Apply => {}
                // Its decisions for this batch, which its apply then carries out.
                OutAct::Decide => {
                    op.observe(&b)?;
                }
                OutAct::Observe => {
                    if op.observe(&b)?.is_some() {
                        return Err(CleanError::Internal(format!(
                            "step {}: dropped rows while observing",
                            summaries[i].id
                        )));
                    }
                    continue;
                }
                OutAct::Defer => continue,
            }
            let (out, t) = apply_recorded(op, i, &b, req, summaries, &recs, pii, &mut cells)?;
            for (j, x) in t.iter().enumerate() {
                if *x
                    && let Some(p) = pos
                        .as_primitive::<tamis_core::datafusion::arrow::datatypes::UInt64Type>()
                        .values()
                        .get(j)
                {
                    touched[*p as usize] = true;
                }
            }
            if req.provenance && cells.len >= 65_536 {
                send_to(cells_path.clone(), false, cells.finish()?)?;
            }
            let s = &mut summaries[i];
            if let Some(k) = &out.keep {
                let dropped = not(k)?;
                let n = dropped.true_count() as u64;
                if n > 0 {
                    s.rows_removed += n;
                    if req.provenance {
                        let gone = filter_record_batch(&out.batch, &dropped)?;
                        let reasons: ArrayRef = Arc::new(
                            out.reasons
                                .iter()
                                .map(|r| Some(r.as_str()))
                                .collect::<StringArray>(),
                        );
                        if reasons.len() != gone.num_rows() {
                            return Err(CleanError::Internal(format!(
                                "step {}: {} reasons for {} dropped rows",
                                s.id,
                                reasons.len(),
                                gone.num_rows()
                            )));
                        }
                        let mut fields: Vec<Field> = gone
                            .schema()
                            .fields()
                            .iter()
                            .map(|f| f.as_ref().clone())
                            .collect();
                        fields.push(Field::new("__reason", DataType::Utf8, false));
                        let mut cols = gone.columns().to_vec();
                        cols.push(reasons);
                        send_to(
                            side_tmp.join(dropped_file(i)),
                            false,
                            RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?,
                        )?;
                    }
                }
                pos = filter(&pos, k)?;
            }
            b = keep_rows(&out.batch, &out.keep)?;
        }
        // Sample of changed rows, before and after.
        if !sampler.full(rows_out) {
            let p = pos.as_primitive::<tamis_core::datafusion::arrow::datatypes::UInt64Type>();
            let ids = tamis_core::row_ids(&input)?;
            for (j, src) in p.values().iter().enumerate() {
                let at = rows_out + j as u64;
                if sampler.full(at) {
                    break;
                }
                let src = *src as usize;
                sampler.offer(
                    at,
                    touched[src],
                    || ids.value(src),
                    || row_json(&input, src),
                    || row_json(&b, j),
                );
            }
        }
        rows_out += b.num_rows() as u64;
        // Late columns are counted by the late pass; listed here even when no
        // row reaches it, as every other column is.
        for c in late_cols {
            non_null.entry(c.clone()).or_default();
        }
        for f in b.schema().fields() {
            if f.name() != ROW_ID
                && !late_cols.contains(f.name())
                && let Some(c) = b.column_by_name(f.name())
            {
                *non_null.entry(f.name().clone()).or_default() += (c.len() - c.null_count()) as u64;
            }
        }
        if req.provenance {
            let ids = b
                .column_by_name(ROW_ID)
                .cloned()
                .ok_or_else(|| CleanError::Internal("row ids".into()))?;
            send_to(ids_path.clone(), false, ids_batch(ids)?)?;
        }
        let data = drop_row_id(&b)?;
        output_schema = schema_pairs(&data.schema());
        match (late, snapshot.as_mut()) {
            (Some(e), Some(snap)) => {
                if b.num_rows() > 0 {
                    snap.write(&pick(&b, &e.snapshot)?)?;
                    if early_cols {
                        send_to(early_part.clone(), false, pick_others(&data, &e.late)?)?;
                    }
                    wrote_any = true;
                }
            }
            _ => {
                send_to(out_tmp.to_path_buf(), out_csv, data)?;
                wrote_any = true;
            }
        }
    }
    drop(rx_in);
    let joined = reader
        .join()
        .map_err(|_| CleanError::Internal("reader thread panicked".into()));
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(e) = early {
        let (t, _) = joined?;
        if widened || t.types != typing.types {
            if t.types == typing.types {
                // Only a wider type may change a batch's schema: never restart for nothing.
                return Err(CleanError::Internal(
                    "a batch's schema differs from the typed schema".into(),
                ));
            }
            *typing = t;
            return Ok(None);
        }
        // This pass was the last statistics pass too.
        for ((op, act), s) in ops.iter_mut().zip(&e.acts).zip(summaries.iter_mut()) {
            if matches!(act, OutAct::Observe | OutAct::Decide) {
                op.resolve()?;
                s.learn_from(op.as_ref());
            }
        }
    }
    let spliced = match (late, snapshot) {
        (Some(e), Some(snap)) if wrote_any => {
            let snap = snap.finish()?;
            late_pass(
                req,
                ops,
                e,
                &snap,
                pii,
                summaries,
                &mut cells,
                &mut sampler,
                &mut non_null,
                |b| send_to(late_part.clone(), false, b),
                |b| send_to(cells_path.clone(), false, b),
            )?;
            true
        }
        _ => false,
    };
    if !wrote_any {
        // An empty input still gives a valid, empty output with the right columns.
        let data = drop_row_id(&empty_out)?;
        output_schema = schema_pairs(&data.schema());
        send_to(out_tmp.to_path_buf(), out_csv, data)?;
    }
    if req.provenance {
        if cells.len > 0 || rows_in == 0 || !side_tmp.join(CELLS).exists() {
            send_to(cells_path.clone(), false, cells.finish()?)?;
        }
        let ids = empty_out.column_by_name(ROW_ID).cloned();
        if let Some(ids) = ids.filter(|_| rows_out == 0) {
            send_to(ids_path.clone(), false, ids_batch(ids)?)?;
        }
    }
    let spliced = if spliced {
        let parts = if early_cols {
            vec![early_part, late_part]
        } else {
            vec![late_part]
        };
        Some((parts, drop_row_id(&empty_out)?.schema()))
    } else {
        None
    };
    Ok(Some((
        (rows_in, rows_out, non_null, sampler.finish(), output_schema),
        spliced,
    )))
}

/// The late pass: applies the steps that waited on statistics to the
/// snapshot the output pass took, records their changes, and sends the late
/// columns, row for row in output order, to `send`.
#[allow(clippy::too_many_arguments)]
fn late_pass(
    req: &CleanRequest,
    ops: &mut [Box<dyn Op>],
    early: &Early,
    snapshot: &Path,
    pii: &HashSet<String>,
    summaries: &mut [StepSummary],
    cells: &mut CellRecorder,
    sampler: &mut Sampler,
    non_null: &mut BTreeMap<String, u64>,
    send: impl Fn(RecordBatch) -> Result<(), CleanError>,
    send_cells: impl Fn(RecordBatch) -> Result<(), CleanError>,
) -> Result<(), CleanError> {
    let recs = recordings(summaries);
    let late_ops = |act: &OutAct| matches!(act, OutAct::Observe | OutAct::Defer);
    for (op, act) in ops.iter_mut().zip(&early.acts) {
        if late_ops(act) {
            op.start_apply();
        }
    }
    let mut start = 0u64;
    for b in read_spill(snapshot)? {
        let mut b = b?;
        req.cancel.check()?;
        let mut changed = vec![false; b.num_rows()];
        for (i, (op, act)) in ops.iter_mut().zip(&early.acts).enumerate() {
            if !late_ops(act) {
                continue;
            }
            let (out, t) = apply_recorded(op, i, &b, req, summaries, &recs, pii, cells)?;
            if out.keep.is_some() {
                return Err(CleanError::Internal(format!(
                    "step {}: a late step dropped rows",
                    summaries[i].id
                )));
            }
            for (c, x) in changed.iter_mut().zip(t) {
                *c |= x;
            }
            b = out.batch;
        }
        for c in &early.late {
            let a = b
                .column_by_name(c)
                .ok_or_else(|| CleanError::Internal(format!("late column `{c}` missing")))?;
            *non_null.entry(c.clone()).or_default() += (a.len() - a.null_count()) as u64;
        }
        sampler.late(start, &b, &changed, &early.late);
        start += b.num_rows() as u64;
        send(pick(&b, &early.late)?)?;
        if req.provenance && cells.len >= 65_536 {
            send_cells(cells.finish()?)?;
        }
    }
    Ok(())
}

fn ids_batch(ids: ArrayRef) -> Result<RecordBatch, CleanError> {
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "row_id",
            DataType::UInt64,
            false,
        )])),
        vec![ids],
    )?)
}

fn op_reset_sequential(ops: &mut [Box<dyn Op>]) {
    for op in ops.iter_mut() {
        op.start_apply();
    }
}

pub use tamis_core::dataset::drop_row_id;

/// Writes the manifest, audit log and lineage chain into the sidecar.
fn write_records(
    o: &CleanOutcome,
    side: &Path,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<(), CleanError> {
    let manifest = serde_json::to_string_pretty(&json!({
        "manifest": o,
        "transformations": o.transformations(),
    }))
    .map_err(|e| CleanError::Internal(e.to_string()))?;
    std::fs::write(side.join(MANIFEST), manifest).map_err(|e| werr(&side.join(MANIFEST), e))?;

    // Audit log: one JSON line per action.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let at = started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut lines = vec![json!({
        "ts": at, "actor": o.actor, "run_id": o.run_id, "action": "clean.start",
        "inputs": o.inputs.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "rows_in": o.rows_in, "plan_steps": o.steps.len(),
    })];
    for s in &o.steps {
        lines.push(json!({
            "ts": now, "actor": o.actor, "run_id": o.run_id, "action": "clean.step",
            "step_index": s.index, "step_id": s.id, "type": s.ty, "params": s.params,
            "learned": s.learned,
            "rows_in": s.rows_in, "rows_removed": s.rows_removed, "rows_modified": s.rows_modified,
            "cells_modified": s.cells_modified, "rows_flagged": s.rows_flagged,
            "confidence": s.confidence, "source": s.source, "warnings": s.warnings,
        }));
    }
    lines.push(json!({
        "ts": now, "actor": o.actor, "run_id": o.run_id, "action": "clean.finish",
        "output": o.output, "output_sha256": o.output_sha256, "rows_out": o.rows_out,
        "quarantined": o.quarantined,
    }));
    let audit: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(side.join(AUDIT), audit).map_err(|e| werr(&side.join(AUDIT), e))?;

    // Lineage.
    let mut chain = Chain::genesis(json!({
        "run_id": o.run_id, "tool": format!("tamis {}", env!("CARGO_PKG_VERSION")),
        "created_at": o.created_at, "actor": o.actor,
    }));
    chain.push(
        BlockKind::Source,
        json!({
            "files": o.inputs.iter().zip(&o.input_sha256).map(|(f, h)| json!({"name": f.name, "bytes": f.bytes, "sha256": h})).collect::<Vec<_>>(),
            "schema": o.input_schema, "rows": o.rows_in, "quarantined": o.quarantined,
        }),
    );
    for t in o.transformations() {
        chain.push(BlockKind::Transform, t);
    }
    chain.push(
        BlockKind::Output,
        json!({"file": o.output, "sha256": o.output_sha256, "rows": o.rows_out, "schema": o.output_schema}),
    );
    chain.push(
        BlockKind::Quality,
        json!({
            "rows": o.rows_out, "non_null": o.output_non_null,
            "contract": o.contract_check.as_ref().map(|c| json!({"passed": c.get("passed"), "failing_rows": c.get("failing_rows")})),
        }),
    );
    std::fs::write(side.join(LINEAGE), chain.to_json())
        .map_err(|e| werr(&side.join(LINEAGE), e))?;
    Ok(())
}

/// Reads a cleaned output's manifest.
pub fn read_manifest(output: &Path) -> Result<CleanOutcome, CleanError> {
    let p = sidecar_dir(output).join(MANIFEST);
    let text = std::fs::read_to_string(&p).map_err(|e| CleanError::Read {
        path: p.clone(),
        message: format!("{e} (is `{}` a tamis clean output?)", output.display()),
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| CleanError::Read {
        path: p.clone(),
        message: e.to_string(),
    })?;
    serde_json::from_value(v.get("manifest").cloned().unwrap_or(Value::Null)).map_err(|e| {
        CleanError::Read {
            path: p,
            message: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tamis_core::datafusion::arrow::array::{Int64Array, StringArray as Texts};
    use tamis_core::datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn integers_past_their_dictionary_fall_back_to_deltas() {
        // 200,000 distinct ids outgrow the 1 MiB dictionary page; 3 ages do not.
        let n = 200_000;
        let batch = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef,
            ),
            (
                "age",
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| 20 + i % 3))) as ArrayRef,
            ),
            (
                "name",
                Arc::new(Texts::from_iter_values((0..n).map(|i| format!("n{i}")))) as ArrayRef,
            ),
        ])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.parquet");
        let mut w = ArrowWriter::try_new(
            File::create(&path).unwrap(),
            batch.schema(),
            Some(props(&batch.schema())),
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let r = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let g = r.metadata().row_group(0);
        let has = |j: usize, e: Encoding| g.column(j).encodings().any(|x| x == e);
        // (column, encoding, whether it is used): the ids fall back to deltas;
        // the ages keep their dictionary; text never takes deltas.
        for (j, e, used) in [
            (0, Encoding::DELTA_BINARY_PACKED, true),
            (1, Encoding::DELTA_BINARY_PACKED, false),
            (1, Encoding::RLE_DICTIONARY, true),
            (2, Encoding::DELTA_BINARY_PACKED, false),
        ] {
            assert_eq!(has(j, e), used, "column {j}, {e:?}");
        }
        // The values read back as written.
        let back = tamis_core::datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            File::open(&path).unwrap(),
            n as usize,
        )
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
        assert_eq!(back, batch);
    }
}
