//! The transforms behind plan steps, one [`Op`] per step.
//!
//! Each op works on whole Arrow batches. Ops that need statistics over the
//! whole dataset (medians, modes, fences, learned canonical values, keep-last
//! duplicates) observe a pass first and are resolved; ops that decide in row
//! order (keep-first duplicates, forward fill) carry state across batches.
//! The runner ([`crate::exec`]) diffs each op's output against its input to
//! record cell provenance, so an op only computes new values.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};
use tamis_core::ROW_ID;
use tamis_core::contract::{Contract, PiiStrategy};
use tamis_core::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Date32Builder, Float64Array,
    Float64Builder, StringArray, StringBuilder, UInt64Array,
};
use tamis_core::datafusion::arrow::buffer::NullBuffer;
use tamis_core::datafusion::arrow::compute::{cast, is_null, kernels::zip::zip, not};
use tamis_core::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tamis_core::datafusion::arrow::record_batch::RecordBatch;
use tamis_core::datafusion::common::DFSchema;
use tamis_core::datafusion::physical_expr::PhysicalExpr;
use tamis_core::datafusion::prelude::SessionContext;
use tamis_core::types::{DateFormat, parse_bool, parse_date};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::CleanError;
use crate::plan::*;
use crate::rowtable::RowTable;
use crate::typing::{arrow_type, days};

/// Where a change comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A rule with one right answer.
    Deterministic,
    /// A statistical or similarity guess.
    Heuristic,
}

impl Source {
    /// The name recorded in provenance.
    pub fn name(self) -> &'static str {
        match self {
            Source::Deterministic => "deterministic",
            Source::Heuristic => "heuristic",
        }
    }
}

/// How an op takes part in the passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A function of each row alone.
    Local,
    /// Decides in row order with state (needs the final row set upstream).
    Sequential,
    /// Needs statistics over a whole pass before it can apply.
    Stats,
}

/// What applying an op to a batch gives.
pub struct StepOutput {
    /// The batch after the op (same rows as the input).
    pub batch: RecordBatch,
    /// Which rows survive (`None`: all).
    pub keep: Option<BooleanArray>,
    /// Why each dropped row was dropped, in row order.
    pub reasons: Vec<String>,
    /// Per-row confidence for a written column, where it differs from the step's.
    pub confidence: HashMap<String, Vec<f64>>,
    /// Which cells of a written column changed, when the op knows (saves a comparison).
    pub changed: HashMap<String, BooleanArray>,
    /// Per row of a written column: where a changed cell's value came from, recorded in provenance.
    pub details: HashMap<String, Vec<Option<String>>>,
    /// Rows the op flagged for review (a flag column it adds is true).
    pub flagged: u64,
}

impl StepOutput {
    /// The batch unchanged, every row kept.
    pub(crate) fn same_rows(batch: RecordBatch) -> StepOutput {
        StepOutput {
            batch,
            keep: None,
            reasons: Vec::new(),
            confidence: HashMap::new(),
            changed: HashMap::new(),
            details: HashMap::new(),
            flagged: 0,
        }
    }
}

/// One plan step at run time.
pub trait Op: Send {
    /// How it takes part in the passes.
    fn mode(&self) -> Mode;
    /// Columns it reads (by their names before it runs).
    fn reads(&self, schema: &Schema) -> Vec<String>;
    /// Columns it writes (by their names before it runs).
    fn writes(&self, schema: &Schema) -> Vec<String>;
    /// Whether it may drop rows.
    fn drops_rows(&self) -> bool {
        false
    }
    /// Whether its statistics or decisions are known.
    fn is_resolved(&self) -> bool {
        true
    }
    /// Forgets observations (the pass restarts).
    fn reset(&mut self) {}
    /// Observes a batch in a statistics pass. A sequential op decides its
    /// rows here and returns which survive.
    fn observe(&mut self, _batch: &RecordBatch) -> Result<Option<BooleanArray>, CleanError> {
        Ok(None)
    }
    /// Turns observations into statistics.
    fn resolve(&mut self) -> Result<(), CleanError> {
        Ok(())
    }
    /// Applies the op.
    fn apply(&mut self, batch: &RecordBatch) -> Result<StepOutput, CleanError>;
    /// Confidence and source of its changes.
    fn confidence(&self) -> (f64, Source) {
        (1.0, Source::Deterministic)
    }
    /// What it learned (medians, fences, ...), for the audit log.
    fn learned(&self) -> Value {
        Value::Null
    }
    /// What a user should know about what it learned (once resolved): a
    /// statistic it could not take, cells it will leave as they are.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    /// Starts the final pass (sequential state is rewound).
    fn start_apply(&mut self) {}
    /// An estimate of the rows a pass will see, to size tables once.
    fn size_hint(&mut self, _rows: usize) {}
}

/// Each column a `pii` step protects: (column, strategy, redaction label).
pub fn pii_plan(
    columns: &Option<Vec<String>>,
    strategy: Option<PiiStrategy>,
    contract: Option<&Contract>,
) -> Vec<(String, PiiStrategy, String)> {
    let cols = crate::plan::pii_columns(columns, contract);
    cols.iter()
        .map(|c| {
            let cc = contract.and_then(|k| k.column(c));
            let st = strategy
                .or_else(|| cc.and_then(|k| k.pii_strategy))
                .unwrap_or(PiiStrategy::Hash);
            let label = cc
                .and_then(|k| k.pii_type.clone())
                .unwrap_or_else(|| c.clone())
                .to_uppercase();
            (c.clone(), st, label)
        })
        .collect()
}

/// The token vault a clean run writes to: its file, the keys, the tokens so far.
pub struct TokenVault {
    /// The vault file.
    pub path: std::path::PathBuf,
    /// Keys: the current encryption key encrypts the values.
    pub keys: tamis_privacy::anonymize::Keys,
    /// Tokens.
    pub vault: std::sync::Mutex<tamis_privacy::anonymize::Vault>,
}

/// Builds the op for a step.
pub fn build(
    step: &Step,
    contract: Option<&Contract>,
    secret: &[u8],
    vault: Option<&Arc<TokenVault>>,
    matcher: Option<&Arc<dyn crate::merge::Matcher>>,
) -> Box<dyn Op> {
    match &step.kind {
        StepKind::DedupeFuzzy(spec) => Box::new(crate::merge::FuzzyDedupe::new(
            spec.clone(),
            matcher.cloned(),
        )),
        StepKind::DedupeExact { columns, keep } => Box::new(Dedupe {
            columns: columns.clone(),
            keep: *keep,
            seen: RowTable::default(),
            drops: Vec::new(),
            cursor: 0,
            resolved: false,
        }),
        StepKind::Impute {
            columns,
            method,
            by,
        } => Box::new(Impute {
            columns: columns.clone(),
            method: method.clone(),
            by: by.clone(),
            obs: HashMap::new(),
            fills: HashMap::new(),
            last: HashMap::new(),
            resolved: matches!(
                method,
                ImputeMethod::Constant(_) | ImputeMethod::ForwardFill
            ),
            share: 1.0,
            warnings: Vec::new(),
        }),
        StepKind::NormalizeText {
            columns,
            trim,
            collapse_whitespace,
            case,
            unicode,
            strip_accents,
            nullify_tokens,
        } => Box::new(Normalize {
            columns: columns.clone(),
            f: TextNorm {
                trim: *trim,
                collapse: *collapse_whitespace,
                case: *case,
                unicode: *unicode,
                strip_accents: *strip_accents,
                nullify: nullify_tokens.then(tamis_core::NullTokens::default),
            },
        }),
        StepKind::Canonicalize {
            columns,
            values,
            threshold,
        } => {
            let mut given: HashMap<String, Vec<String>> = HashMap::new();
            for c in columns {
                let v = values.clone().or_else(|| {
                    contract
                        .and_then(|k| k.column(c))
                        .map(|k| k.canonical_values.clone())
                        .filter(|v| !v.is_empty())
                });
                if let Some(v) = v {
                    given.insert(c.clone(), v);
                }
            }
            let resolved = given.len() == columns.len();
            Box::new(Canonicalize {
                columns: columns.clone(),
                threshold: *threshold,
                canon: given,
                counts: HashMap::new(),
                cache: HashMap::new(),
                resolved,
            })
        }
        StepKind::Parse {
            columns,
            to,
            day_first,
            decimal_comma,
        } => Box::new(Parse {
            columns: columns.clone(),
            to: *to,
            day_first: *day_first,
            decimal_comma: *decimal_comma,
        }),
        StepKind::Standardize {
            columns,
            kind,
            default_country_code,
        } => Box::new(Standardize {
            columns: columns.clone(),
            kind: *kind,
            cc: default_country_code.clone(),
        }),
        StepKind::Outliers {
            columns,
            method,
            k,
            action,
        } => Box::new(Outliers {
            columns: columns.clone(),
            method: *method,
            k: *k,
            action: *action,
            values: HashMap::new(),
            fences: BTreeMap::new(),
            resolved: false,
        }),
        StepKind::Filter { drop_where, reason } => Box::new(Filter {
            at: format!("`{}` (filter)", step.id),
            sql: drop_where.clone(),
            reason: reason.clone(),
            expr: None,
        }),
        StepKind::Pii { columns, strategy } => {
            let plan = pii_plan(columns, *strategy, contract);
            Box::new(Pii {
                plan,
                key: secret.to_vec(),
                vault: vault.cloned(),
            })
        }
        StepKind::Rename { mapping } => Box::new(Rename {
            mapping: mapping.clone(),
        }),
        StepKind::Drop { columns } => Box::new(DropCols {
            columns: columns.clone(),
        }),
        StepKind::Cast { types } => Box::new(Cast {
            types: types.clone(),
        }),
    }
}

// ---------------------------------------------------------------- helpers

/// The columns of a schema without the row id.
pub(crate) fn data_columns(schema: &Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != ROW_ID)
        .collect()
}

fn col<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, CleanError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| CleanError::Internal(format!("column `{name}` is missing")))
}

fn row_ids(batch: &RecordBatch) -> Result<&UInt64Array, CleanError> {
    col(batch, ROW_ID)?
        .as_primitive_opt()
        .ok_or_else(|| CleanError::Internal("row ids are not u64".into()))
}

/// Replaces (or adds) columns of a batch by name.
pub fn with_columns(
    batch: &RecordBatch,
    new: Vec<(String, ArrayRef)>,
) -> Result<RecordBatch, CleanError> {
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    for (name, a) in new {
        let f = Field::new(&name, a.data_type().clone(), true);
        match fields.iter().position(|x| x.name() == &name) {
            Some(i) => {
                fields[i] = f;
                cols[i] = a;
            }
            None => {
                // New columns go before the row id, which stays last.
                let at = fields.len().saturating_sub(1);
                fields.insert(at, f);
                cols.insert(at, a);
            }
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

fn as_text(a: &ArrayRef) -> Result<StringArray, CleanError> {
    let s = cast(a, &DataType::Utf8)?;
    Ok(s.as_string::<i32>().clone())
}

fn as_f64(a: &ArrayRef) -> Result<Float64Array, CleanError> {
    let f = cast(a, &DataType::Float64)?;
    Ok(
        f.as_primitive::<tamis_core::datafusion::arrow::datatypes::Float64Type>()
            .clone(),
    )
}

/// A number as text that casts back to the column's type exactly.
fn number_text(v: f64, t: &DataType) -> String {
    if matches!(
        t,
        DataType::Int64 | DataType::Int32 | DataType::Int16 | DataType::Int8
    ) {
        format!("{}", v.round() as i64)
    } else {
        format!("{v}")
    }
}

/// Joins the `by` values of a row in a group key ([`group_keys`]).
const GROUP_SEP: &str = "\u{1f}";
/// A null `by` value in a group key (no text value is a lone NUL).
const NULL_IN_GROUP: &str = "\u{0}";

/// Each row's group key: its `by` values joined by [`GROUP_SEP`], a null as
/// [`NULL_IN_GROUP`]; `None` without `by`.
fn group_keys(batch: &RecordBatch, by: &[String]) -> Result<Option<Vec<String>>, CleanError> {
    if by.is_empty() {
        return Ok(None);
    }
    let cols: Vec<StringArray> = by
        .iter()
        .map(|c| as_text(col(batch, c)?))
        .collect::<Result<_, _>>()?;
    Ok(Some(
        (0..batch.num_rows())
            .map(|i| {
                cols.iter()
                    .map(|c| {
                        if c.is_null(i) {
                            NULL_IN_GROUP
                        } else {
                            c.value(i)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(GROUP_SEP)
            })
            .collect(),
    ))
}

/// Exact median (mean of the two middle values for an even count) of unsorted values.
pub fn median(v: &mut [f64]) -> Option<f64> {
    quantile(v, 0.5)
}

/// Exact quantile with linear interpolation between closest ranks (DuckDB's `quantile_cont`).
pub fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let (_, a, rest) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let a = *a;
    if hi == lo {
        return Some(a);
    }
    let b = rest.iter().copied().fold(f64::INFINITY, f64::min);
    Some(a + (b - a) * (pos - lo as f64))
}

// ---------------------------------------------------------------- dedupe

/// A selected column's cells as [`row_hashes`] reads them.
enum HashCells<'a> {
    Text(&'a StringArray),
    I64(&'a [i64], Option<&'a NullBuffer>),
    F64(&'a [f64], Option<&'a NullBuffer>),
    I32(&'a [i32], Option<&'a NullBuffer>),
}

impl HashCells<'_> {
    /// Appends cell `i`: a tag (null or value), then the value, text with
    /// its length first, so that no two different rows write the same bytes.
    #[inline]
    fn write(&self, i: usize, buf: &mut Vec<u8>) {
        fn fixed<const N: usize>(
            nulls: Option<&NullBuffer>,
            i: usize,
            v: [u8; N],
            buf: &mut Vec<u8>,
        ) {
            if nulls.is_some_and(|n| n.is_null(i)) {
                buf.push(0);
            } else {
                buf.push(1);
                buf.extend_from_slice(&v);
            }
        }
        match self {
            HashCells::Text(s) => {
                if s.is_null(i) {
                    buf.push(0);
                } else {
                    let v = s.value(i).as_bytes();
                    buf.push(1);
                    // Text values are under 2 GiB (i32 offsets).
                    buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    buf.extend_from_slice(v);
                }
            }
            // Fixed-width values by their bytes (no text formatting).
            HashCells::I64(v, n) => fixed(*n, i, v[i].to_le_bytes(), buf),
            HashCells::F64(v, n) => fixed(*n, i, v[i].to_le_bytes(), buf),
            HashCells::I32(v, n) => fixed(*n, i, v[i].to_le_bytes(), buf),
        }
    }
}

/// Row hashes: one 128-bit xxh3 per row over its selected cells, written
/// one after another (see [`HashCells::write`]), so a false match needs a
/// 128-bit collision (~1e-25 at 10M rows). One hash per row rather than one
/// per cell: with short cells, the per-call cost of the hash was most of it.
pub fn row_hashes(batch: &RecordBatch, columns: &[String]) -> Result<Vec<[u64; 2]>, CleanError> {
    use tamis_core::datafusion::arrow::datatypes::{Date32Type, Float64Type, Int64Type};
    use xxhash_rust::xxh3::xxh3_128;
    let n = batch.num_rows();
    let arrays = columns
        .iter()
        .map(|c| col(batch, c))
        .collect::<Result<Vec<_>, _>>()?;
    // Columns of other types, as text (owned here, so the cells can borrow them).
    let read = |a: &ArrayRef| match a.data_type() {
        DataType::Utf8 | DataType::Int64 | DataType::Float64 | DataType::Date32 => Ok(None),
        _ => as_text(a).map(Some),
    };
    let texts = arrays
        .iter()
        .map(|&a| read(a))
        .collect::<Result<Vec<_>, _>>()?;
    let cells: Vec<HashCells> = arrays
        .iter()
        .zip(&texts)
        .map(|(a, t)| match (t, a.data_type()) {
            (Some(t), _) => HashCells::Text(t),
            (None, DataType::Int64) => {
                let p = a.as_primitive::<Int64Type>();
                HashCells::I64(p.values(), p.nulls())
            }
            (None, DataType::Float64) => {
                let p = a.as_primitive::<Float64Type>();
                HashCells::F64(p.values(), p.nulls())
            }
            (None, DataType::Date32) => {
                let p = a.as_primitive::<Date32Type>();
                HashCells::I32(p.values(), p.nulls())
            }
            // Utf8: `read` left only these four types unread.
            (None, _) => HashCells::Text(a.as_string::<i32>()),
        })
        .collect();
    let mut buf = Vec::with_capacity(256);
    Ok((0..n)
        .map(|i| {
            buf.clear();
            for c in &cells {
                c.write(i, &mut buf);
            }
            let x = xxh3_128(&buf);
            [x as u64, (x >> 64) as u64]
        })
        .collect())
}

struct Dedupe {
    columns: Option<Vec<String>>,
    keep: Keep,
    /// hash → row id of the first (keep first) or last (keep last) occurrence.
    seen: RowTable,
    /// keep first: (dropped row id, survivor row id), in row order.
    drops: Vec<(u64, u64)>,
    cursor: usize,
    resolved: bool,
}

impl Dedupe {
    fn cols(&self, schema: &Schema) -> Vec<String> {
        self.columns.clone().unwrap_or_else(|| data_columns(schema))
    }
}

impl Op for Dedupe {
    fn mode(&self) -> Mode {
        match self.keep {
            Keep::First => Mode::Sequential,
            Keep::Last => Mode::Stats,
        }
    }
    fn reads(&self, schema: &Schema) -> Vec<String> {
        self.cols(schema)
    }
    fn writes(&self, _: &Schema) -> Vec<String> {
        Vec::new()
    }
    fn drops_rows(&self) -> bool {
        true
    }
    fn is_resolved(&self) -> bool {
        self.resolved
    }
    fn reset(&mut self) {
        self.seen.clear();
        self.drops.clear();
        self.resolved = false;
    }
    fn observe(&mut self, batch: &RecordBatch) -> Result<Option<BooleanArray>, CleanError> {
        let hs = row_hashes(batch, &self.cols(&batch.schema()))?;
        let ids = row_ids(batch)?.values();
        match self.keep {
            Keep::First => {
                let mut keep = vec![true; hs.len()];
                let drops = &mut self.drops;
                self.seen.insert_first(&hs, ids, |i, first| {
                    keep[i] = false;
                    drops.push((ids[i], first));
                });
                Ok(Some(BooleanArray::from(keep)))
            }
            Keep::Last => {
                self.seen.insert_last(&hs, ids);
                Ok(None)
            }
        }
    }
    fn resolve(&mut self) -> Result<(), CleanError> {
        if self.keep == Keep::First {
            // The decisions are made; the hashes are no longer needed.
            self.seen = RowTable::default();
        }
        self.resolved = true;
        Ok(())
    }
    fn start_apply(&mut self) {
        self.cursor = 0;
    }
    fn size_hint(&mut self, rows: usize) {
        if !self.resolved || self.keep == Keep::Last {
            self.seen.reserve(rows.saturating_sub(self.seen.len()));
        }
    }
    fn apply(&mut self, batch: &RecordBatch) -> Result<StepOutput, CleanError> {
        let ids = row_ids(batch)?;
        let mut keep = BooleanBuilder::with_capacity(batch.num_rows());
        let mut reasons = Vec::new();
        match self.keep {
            Keep::First => {
                for id in ids.values().iter() {
                    while self.cursor < self.drops.len() && self.drops[self.cursor].0 < *id {
                        self.cursor += 1;
                    }
                    match self.drops.get(self.cursor) {
                        Some((d, first)) if d == id => {
                            keep.append_value(false);
                            reasons.push(format!("exact duplicate of row {first}"));
                        }
                        _ => keep.append_value(true),
                    }
                }
            }
            Keep::Last => {
                let hs = row_hashes(batch, &self.cols(&batch.schema()))?;
                let ids = ids.values();
                self.seen.get_each(&hs, |i, last| match last {
                    Some(last) if last != ids[i] => {
                        keep.append_value(false);
                        reasons.push(format!("exact duplicate of row {last}"));
                    }
                    _ => keep.append_value(true),
                });
            }
        }
        Ok(StepOutput {
            batch: batch.clone(),
            keep: Some(keep.finish()),
            reasons,
            confidence: HashMap::new(),
            changed: HashMap::new(),
            details: HashMap::new(),
            flagged: 0,
        })
    }
}

// ---------------------------------------------------------------- impute

#[derive(Default)]
struct ImputeObs {
    /// group → values (median) or (sum, count) (mean) or value counts (mode).
    values: HashMap<String, Vec<f64>>,
    sums: HashMap<String, (f64, u64)>,
    counts: HashMap<String, BTreeMap<String, u64>>,
    /// Groups (of `by`) seen with a missing value.
    missing: BTreeSet<String>,
}

struct Impute {
    columns: Vec<String>,
    method: ImputeMethod,
    by: Vec<String>,
    obs: HashMap<String, ImputeObs>,
    /// column → group → fill value as text.
    fills: HashMap<String, BTreeMap<String, String>>,
    /// forward fill: column → last non-null value as text.
    last: HashMap<String, String>,
    resolved: bool,
    share: f64,
    /// Set by `resolve`: what it could not learn.
    warnings: Vec<String>,
}

const NO_GROUP: &str = "";

/// Groups named in a warning, at most.
const WARN_GROUPS: usize = 3;

/// Notes that group `g` has a missing value (one lookup once noted).
fn note_missing(missing: &mut BTreeSet<String>, g: &str) {
    if !missing.contains(g) {
        missing.insert(g.to_string());
    }
}

/// The warning for a statistic impute of `column` whose `fills` (per group)
/// leave some of its `missing` groups' values missing: the column had no
/// value to learn from at all, or some groups had none.
fn unfilled_warning(
    column: &str,
    method: &ImputeMethod,
    by: &[String],
    fills: &BTreeMap<String, String>,
    missing: &BTreeSet<String>,
) -> Option<String> {
    let stat = match method {
        ImputeMethod::Mean => "mean",
        ImputeMethod::Median => "median",
        ImputeMethod::Mode => "most frequent value",
        ImputeMethod::Constant(_) | ImputeMethod::ForwardFill => return None,
    };
    if missing.is_empty() {
        // Nothing to fill (no rows, or no missing value).
        return None;
    }
    if fills.is_empty() {
        return Some(format!(
            "column '{column}' has no values to learn a {stat} from: its missing values are left missing"
        ));
    }
    let unfilled: Vec<&String> = missing.iter().filter(|g| !fills.contains_key(*g)).collect();
    if unfilled.is_empty() {
        return None;
    }
    let shown: Vec<String> = unfilled
        .iter()
        .take(WARN_GROUPS)
        .map(|g| {
            let parts: Vec<&str> = g
                .split(GROUP_SEP)
                .map(|p| if p == NULL_IN_GROUP { "null" } else { p })
                .collect();
            format!("({})", parts.join(", "))
        })
        .collect();
    let more = unfilled.len().saturating_sub(WARN_GROUPS);
    Some(format!(
        "{} of ({}) ha{} no values of column '{column}' to learn a {stat} from: {}{}; their missing values are left missing",
        tamis_profile::assemble::plural(unfilled.len() as u64, "group"),
        by.join(", "),
        if unfilled.len() == 1 { "s" } else { "ve" },
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
    ))
}

impl Op for Impute {
    fn mode(&self) -> Mode {
        match self.method {
            ImputeMethod::Constant(_) => Mode::Local,
            ImputeMethod::ForwardFill => Mode::Sequential,
            _ => Mode::Stats,
        }
    }
    fn reads(&self, _: &Schema) -> Vec<String> {
        self.columns.iter().chain(&self.by).cloned().collect()
    }
    fn writes(&self, _: &Schema) -> Vec<String> {
        self.columns.clone()
    }
    fn is_resolved(&self) -> bool {
        self.resolved
    }
    fn reset(&mut self) {
        self.obs.clear();
        self.fills.clear();
        if self.mode() == Mode::Stats {
            self.resolved = false;
        }
    }
    fn size_hint(&mut self, rows: usize) {
        // An ungrouped median keeps every value: one allocation, not a
        // doubling copy after copy.
        if self.method == ImputeMethod::Median && self.by.is_empty() && !self.resolved {
            for c in &self.columns {
                let v = self.obs.entry(c.clone()).or_default();
                let v = v.values.entry(NO_GROUP.to_string()).or_default();
                v.reserve(rows.saturating_sub(v.len()));
            }
        }
    }
    fn observe(&mut self, batch: &RecordBatch) -> Result<Option<BooleanArray>, CleanError> {
        if self.mode() != Mode::Stats {
            return Ok(None);
        }
        let groups = group_keys(batch, &self.by)?;
        for c in &self.columns {
            let a = col(batch, c)?;
            let o = self.obs.entry(c.clone()).or_default();
            match self.method {
                ImputeMethod::Median | ImputeMethod::Mean => {
                    let f = as_f64(a)?;
                    if groups.is_none() && f.null_count() > 0 {
                        note_missing(&mut o.missing, NO_GROUP);
                    }
                    let median = self.method == ImputeMethod::Median;
                    match &groups {
                        // One group: no per-value key lookups.
                        None if median => o
                            .values
                            .entry(NO_GROUP.to_string())
                            .or_default()
                            .extend(f.iter().flatten()),
                        None => {
                            let e = o.sums.entry(NO_GROUP.to_string()).or_insert((0.0, 0));
                            for v in f.iter().flatten() {
                                e.0 += v;
                                e.1 += 1;
                            }
                        }
                        Some(groups) => {
                            for (v, g) in f.iter().zip(groups) {
                                let Some(v) = v else {
                                    note_missing(&mut o.missing, g);
                                    continue;
                                };
                                if median {
                                    match o.values.get_mut(g) {
                                        Some(x) => x.push(v),
                                        None => {
                                            o.values.insert(g.clone(), vec![v]);
                                        }
                                    }
                                } else {
                                    match o.sums.get_mut(g) {
                                        Some(e) => {
                                            e.0 += v;
                                            e.1 += 1;
                                        }
                                        None => {
                                            o.sums.insert(g.clone(), (v, 1));
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                _ => {
                    let s = as_text(a)?;
                    for i in 0..s.len() {
                        let g = groups.as_ref().map_or(NO_GROUP, |g| g[i].as_str());
                        if s.is_null(i) {
                            note_missing(&mut o.missing, g);
                            continue;
                        }
                        *o.counts
                            .entry(g.to_string())
                            .or_default()
                            .entry(s.value(i).to_string())
                            .or_default() += 1;
                    }
                }
            }
        }
        Ok(None)
    }
    fn resolve(&mut self) -> Result<(), CleanError> {
        let mut shares = Vec::new();
        self.warnings.clear();
        for c in &self.columns {
            let o = self.obs.remove(c).unwrap_or_default();
            let missing = o.missing;
            let mut fills = BTreeMap::new();
            for (g, mut v) in o.values {
                if let Some(m) = median(&mut v) {
                    fills.insert(g, format!("{m}"));
                }
            }
            for (g, (s, n)) in o.sums {
                if n > 0 {
                    fills.insert(g, format!("{}", s / n as f64));
                }
            }
            // Groups in order: the mean share below must not depend on hash order.
            let mut groups: Vec<_> = o.counts.into_iter().collect();
            groups.sort_by(|a, b| a.0.cmp(&b.0));
            for (g, counts) in groups {
                let total: u64 = counts.values().sum();
                // Most frequent; ties go to the smallest value (BTreeMap order).
                if let Some((v, n)) = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) {
                    shares.push(*n as f64 / total.max(1) as f64);
                    fills.insert(g, v.clone());
                }
            }
            if let Some(w) = unfilled_warning(c, &self.method, &self.by, &fills, &missing) {
                self.warnings.push(w);
            }
            self.fills.insert(c.clone(), fills);
        }
        if !shares.is_empty() {
            self.share = shares.iter().sum::<f64>() / shares.len() as f64;
        }
        self.resolved = true;
        Ok(())
    }
    fn start_apply(&mut self) {
        self.last.clear();
    }
    fn confidence(&self) -> (f64, Source) {
        match self.method {
            ImputeMethod::Constant(_) => (1.0, Source::Deterministic),
            ImputeMethod::Mode => (self.share, Source::Heuristic),
            _ => (0.5, Source::Heuristic),
        }
    }
    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
    fn learned(&self) -> Value {
        json!(
            self.fills
                .iter()
                .map(|(c, g)| (c.clone(), json!(g)))
                .collect::<serde_json::Map<_, _>>()
        )
    }
    fn apply(&mut self, batch: &RecordBatch) -> Result<StepOutput, CleanError> {
        let groups = group_keys(batch, &self.by)?;
        let mut new = Vec::new();
        for c in &self.columns {
            let a = col(batch, c)?;
            if a.null_count() == 0 && self.method != ImputeMethod::ForwardFill {
                continue;
            }
            let t = a.data_type().clone();
            let numeric = matches!(self.method, ImputeMethod::Mean | ImputeMethod::Median);
            // The fill value as text that casts to the column's type exactly.
            let text = |v: &str| -> String {
                if numeric {
                    number_text(v.parse().unwrap_or(f64::NAN), &t)
                } else {
                    v.to_string()
                }
            };
            let scalar = match (&self.method, &groups) {
                (ImputeMethod::Constant(v), _) => Some(Some(v.clone())),
                (ImputeMethod::ForwardFill, _) | (_, Some(_)) => None,
                (_, None) => Some(
                    self.fills
                        .get(c)
                        .and_then(|f| f.get(NO_GROUP))
                        .map(|v| text(v)),
                ),
            };
            let mask = is_null(a)?;
            let filled = match scalar {
                // One value for every null: a one-row array broadcast by `zip`.
                Some(v) => {
                    let one: ArrayRef = Arc::new(StringArray::from(vec![v]));
                    let one = cast(&one, &t)?;
                    zip(
                        &mask,
                        &tamis_core::datafusion::arrow::array::Scalar::new(one),
                        a,
                    )?
                }
                None => {
                    let mut fill = StringBuilder::with_capacity(a.len(), a.len());
                    if self.method == ImputeMethod::ForwardFill {
                        let s = as_text(a)?;
                        let mut last = self.last.get(c).cloned();
                        for i in 0..s.len() {
                            if s.is_null(i) {
                                fill.append_option(last.as_deref());
                            } else {
                                last = Some(s.value(i).to_string());
                                fill.append_null();
                            }
                        }
                        if let Some(l) = last {
                            self.last.insert(c.clone(), l);
                        }
                    } else {
                        let fills = self.fills.get(c);
                        for i in 0..a.len() {
                            if !a.is_null(i) {
                                fill.append_null();
                                continue;
                            }
                            let g = groups.as_ref().map_or(NO_GROUP, |g| g[i].as_str());
                            fill.append_option(fills.and_then(|f| f.get(g)).map(|v| text(v)));
                        }
                    }
                    let fill: ArrayRef = Arc::new(fill.finish());
                    zip(&mask, &cast(&fill, &t)?, a)?
                }
            };
            new.push((c.clone(), filled));
        }
        Ok(StepOutput::same_rows(with_columns(batch, new)?))
    }
}

// ---------------------------------------------------------------- normalize

/// Text normalisation options.
#[derive(Debug, Clone)]
pub struct TextNorm {
    /// Trim both ends.
    pub trim: bool,
    /// Collapse inner whitespace.
    pub collapse: bool,
    /// Case.
    pub case: Option<Case>,
    /// Unicode form.
    pub unicode: Option<NormalForm>,
    /// Strip accents.
    pub strip_accents: bool,
    /// Null tokens to nullify.
    pub nullify: Option<tamis_core::NullTokens>,
}

impl TextNorm {
    /// Normalises one value; `None` means null.
    pub fn apply(&self, v: &str) -> Option<String> {
        if let Some(n) = &self.nullify
            && n.classify(v) != tamis_core::types::Missing::No
        {
            return None;
        }
        let mut s: String = match self.unicode {
            Some(NormalForm::Nfc) => v.nfc().collect(),
            Some(NormalForm::Nfkc) => v.nfkc().collect(),
            None => v.to_string(),
        };
        if self.strip_accents {
            s = s.nfd().filter(|c| !is_combining_mark(*c)).nfc().collect();
        }
        if self.collapse {
            s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        } else if self.trim {
            s = s.trim().to_string();
        }
        match self.case {
            Some(Case::Lower) => s = s.to_lowercase(),
            Some(Case::Upper) => s = s.to_uppercase(),
            Some(Case::Title) => {
                let mut out = String::with_capacity(s.len());
                let mut start = true;
                for ch in s.chars() {
                    if ch.is_alphanumeric() {
                        if start {
                            out.extend(ch.to_uppercase());
                        } else {
                            out.extend(ch.to_lowercase());
                        }
                        start = false;
                    } else {
                        out.push(ch);
                        start = true;
                    }
                }
                s = out;
            }
            None => {}
        }
        Some(s)
    }
}

/// Applies `f` to every non-null value of a text column; values it leaves
/// alone are copied without allocating. Also returns which cells changed, so
/// provenance needs no second comparison.
fn map_text(
    a: &ArrayRef,
    mut f: impl FnMut(&str) -> Option<std::borrow::Cow<'_, str>>,
) -> Result<(ArrayRef, BooleanArray), CleanError> {
    let s = a
        .as_string_opt::<i32>()
        .ok_or_else(|| CleanError::Internal("not a text column".into()))?;
    let mut b = StringBuilder::with_capacity(s.len(), s.value_data().len());
    let mut changed = BooleanBuilder::with_capacity(s.len());
    for v in s.iter() {
        match v {
            None => {
                b.append_null();
                changed.append_value(false);
            }
            Some(v) => match f(v) {
                Some(x) => {
                    let same = match &x {
                        std::borrow::Cow::Borrowed(y) => y.len() == v.len(),
                        std::borrow::Cow::Owned(y) => y.as_str() == v,
                    };
                    b.append_value(x);
                    changed.append_value(!same);
                }
                None => {
                    b.append_null();
                    changed.append_value(true);
                }
            },
        }
    }
    Ok((Arc::new(b.finish()), changed.finish()))
}

/// The output of an op that rewrote text columns, with their change masks.
fn text_output(
    batch: &RecordBatch,
    new: Vec<(String, (ArrayRef, BooleanArray))>,
) -> Result<StepOutput, CleanError> {
    let mut changed = HashMap::new();
    let mut cols = Vec::new();
    for (c, (a, m)) in new {
        changed.insert(c.clone(), m);
        cols.push((c, a));
    }
    Ok(StepOutput {
        changed,
        ..StepOutput::same_rows(with_columns(batch, cols)?)
    })
}

struct Normalize {
    columns: Vec<String>,
    f: TextNorm,
}

impl Op for Normalize {
    fn mode(&self) -> Mode {
        Mode::Local
    }
    fn reads(&self, _: &Schema) -> Vec<String> {
        self.columns.clone()
    }
    fn writes(&self, _: &Schema) -> Vec<String> {
        self.columns.clone()
    }
    fn apply(&mut self, batch: &RecordBatch) -> Result<StepOutput, CleanError> {
        let simple_ascii =
            self.f.unicode.is_none() && !self.f.strip_accents && self.f.nullify.is_none();
        let mut new = Vec::new();
        for c in &self.columns {
            let a = col(batch, c)?;
            let out = map_text(a, |v| {
                if simple_ascii && v.is_ascii() {
                    // Fast path: trim and case on ASCII without a new String when nothing changes.
                    let t = if self.f.trim || self.f.collapse {
                        v.trim()
                    } else {
                        v
                    };
                    let needs_collapse = self.f.collapse
                        && t.as_bytes().windows(2).any(|w| {
                            w[0].is_ascii_whitespace()
                                && (w[1].is_ascii_whitespace() || w[0] != b' ')
                        });
                    let case_ok = match self.f.case {
                        Some(Case::Lower) => !t.bytes().any(|b| b.is_ascii_uppercase()),
                        Some(Case::Upper) => !t.bytes().any(|b| b.is_ascii_lowercase()),
                        Some(Case::Title) => false,
                        None => true,
                    };
                    if case_ok && !needs_collapse {
                        return Some(std::borrow::Cow::Borrowed(t));
                    }
                }
                self.f.apply(v).map(std::borrow::Cow::Owned)
            })?;
            new.push((c.clone(), out));
        }
        text_output(batch, new)
    }
}

// ---------------------------------------------------------------- canonicalize

fn fold(v: &str) -> String {
    v.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

struct Canonicalize {
    columns: Vec<String>,
    threshold: f64,
    canon: HashMap<String, Vec<String>>,
    counts: HashMap<String, HashMap<String, u64>>,
    cache: HashMap<String, HashMap<String, Option<(String, f64)>>>,
    resolved: bool,
}

impl Canonicalize {
    fn map(canon: &[String], threshold: f64, v: &str) -> Option<(String, f64)> {
        let f = fold(v);
        if let Some(c) = canon.iter().find(|c| fold(c) == f) {
            return (c != v).then(|| (c.clone(), 1.0));
        }
        let best = canon
            .iter()
            .map(|c| (strsim::jaro_winkler(&f, &fold(c)), c))
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(a.1)))?;
        (best.0 >= threshold).then(|| (best.1.clone(), best.0))
    }
}

impl Op for Canonicalize {
    fn mode(&self) -> Mode {
        if self.columns.iter().all(|c| self.canon.contains_key(c))
            && self.counts.is_empty()
            && self.resolved
        {
            Mode::Local
        } else {
            Mode::Stats
        }
    }
    fn reads(&self, _: &Schema) -> Vec<String> {
        self.columns.clone()
    }
    fn writes(&self, _: &Schema) -> Vec<String> {
        self.columns.clone()
    }
    fn is_resolved(&self) -> bool {
        self.resolved
    }
    fn reset(&mut self) {
        // Mappings cached before the canonical values were known are void.
        self.cache.clear();
        if !self.counts.is_empty() || !self.resolved {
            self.counts.clear();
            for c in &self.columns {
                if !self.canon.contains_key(c) {
                    self.resolved = false;
                }
            }
        }
    }
    fn observe(&mut self, batch: &RecordBatch) -> Result<Option<BooleanArray>, CleanError> {
        for c in &self.columns {
            if self.canon.contains_key(c) && !self.counts.contains_key(c) && self.resolved {
                continue;
            }
            let s = as_text(col(batch, c)?)?;
            let m = self.counts.entry(c.clone()).or_default();
            for v in s.iter().flatten() {
                match m.get_mut(v) {
                    Some(n) => *n += 1,
                    None => {
                        m.insert(v.to_string(), 1);
                    }
                }
            }
        }
        Ok(None)
    }
    fn resolve(&mut self) -> Result<(), CleanError> {
        for (c, counts) in std::mem::take(&mut self.counts) {
            // Group spellings that fold alike; a group is canonical when it holds at
            // least 1% of the values (or is among the 3 largest) and is not close to a
            // larger one, spelled as its first member by `canonical_order`. The rest map by similarity.
            let total: u64 = counts.values().sum();
            let mut groups: BTreeMap<String, (u64, Vec<(u64, String)>)> = BTreeMap::new();
            for (v, n) in counts {
                let g = groups.entry(fold(&v)).or_default();
                g.0 += n;
                g.1.push((n, v));
            }
            let mut ranked: Vec<(u64, String)> = groups
                .into_values()
                .map(|(n, mut members)| {
                    members.sort_by(|a, b| {
                        tamis_core::types::canonical_order((&a.1, a.0), (&b.1, b.0))
                    });
                    (n, members.swap_remove(0).1)
                })
                .collect();
            ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            // Largest first: a group close to a larger canonical value is its
            // variant (a typo), not a canonical value of its own.
            let mut canon: Vec<String> = Vec::new();
            for (n, v) in ranked {
                let big = canon.len() < 3 || n * 100 >= total;
                let near = canon
                    .iter()
                    .any(|c| strsim::jaro_winkler(&fold(c), &fold(&v)) >= self.threshold);
                if big && !near {
                    canon.push(v);
                }
            }
            self.canon.entry(c).or_insert(canon);
        }
        // An apply before this (its input still changing, in an earlier
        // pass) cached every value as unmapped.
        self.cache.clear();
        self.resolved = true;
        Ok(())
    }
    fn confidence(&self) -> (f64, Source) {
        (1.0, Source::Heuristic)
    }
    fn learned(&self) -> Value {
        json!(self.canon.iter().collect::<BTreeMap<_, _>>())
    }
    fn apply(&mut self, batch: &RecordBatch) -> Result<StepOutput, CleanError> {
        let mut new = Vec::new();
        let mut conf = HashMap::new();
        for c in &self.columns {
            let canon = self.canon.get(c).cloned().unwrap_or_default();
            let cache = self.cache.entry(c.clone()).or_default();
            let mut cs = Vec::with_capacity(batch.num_rows());
            let out = map_text(col(batch, c)?, |v| {
                let m = match cache.get(v) {
                    Some(m) => m.clone(),
                    None => {
                        let m = Self::map(&canon, self.threshold, v);
                        cache.insert(v.to_string(), m.clone());
                        m
                    }
                };
                match m {
                    Some((to, s)) => {
                        cs.push(s);
                        Some(std::borrow::Cow::Owned(to))
                    }
                    None => {
                        cs.push(1.0);
                        Some(std::borrow::Cow::Borrowed(v))
                    }
                }
            })?;
            // Nulls did not call the closure; pad them so confidences align with rows.
            let a = col(batch, c)?;
            let mut aligned = Vec::with_capacity(a.len());
            let mut it = cs.into_iter();
            for i in 0..a.len() {
                aligned.push(if a.is_null(i) {
                    1.0
                } else {
                    it.next().unwrap_or(1.0)
                });
            }
            conf.insert(c.clone(), aligned);
            new.push((c.clone(), out));
        }
        Ok(StepOutput {
            confidence: conf,
            ..text_output(batch, new)?
        })
    }
}

// ---------------------------------------------------------------- parse

/// Parses a number written with thousands separators, currency signs, percent
/// or accounting parentheses.
///
/// The decimal separator is a point; a comma groups thousands.
pub fn parse_number(v: &str) -> Option<f64> {
    parse_number_with(v, false)
}

/// [`parse_number`], with the decimals after a comma (`1.234,50`) when
/// `decimal_comma`, the point then grouping thousands. A grouping separator
/// must split the whole part in threes (`1,234,567`): `99,00` or `1,5` read
/// with a decimal point is no number rather than 9900 or 15, and so is a
/// value with its separators the other way round. A space (also no-break),
/// apostrophe (`1'234`) or underscore may group instead, by the same rule,
/// so `10 20` is no number rather than 1020; one value uses one kind.
pub fn parse_number_with(v: &str, decimal_comma: bool) -> Option<f64> {
    const ALT_GROUP: [char; 5] = [' ', '\u{a0}', '\u{202f}', '\'', '_'];
    let t = v.trim();
    let (neg, t) = match t.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        Some(x) => (true, x),
        None => (false, t),
    };
    let pct = t.ends_with('%');
    let signless: String = t
        .chars()
        .filter(|c| !matches!(c, '$' | '€' | '£' | '¥' | '%'))
        .collect();
    // A currency code before the number (`EUR 1 000`, `US$ 5`: two or
    // three capitals), then the spaces that stood between sign or code and
    // digits. One capital is no code (`E5` is no number).
    let body = signless.trim_matches(char::is_whitespace);
    let code = body.bytes().take_while(|b| b.is_ascii_uppercase()).count();
    let body = if (2..=3).contains(&code) {
        &body[code..]
    } else {
        body
    }
    .trim_matches(char::is_whitespace);
    let (point, group) = if decimal_comma {
        (',', '.')
    } else {
        ('.', ',')
    };
    let mut alt = body.chars().filter(|c| ALT_GROUP.contains(c));
    let cleaned: String = match alt.next() {
        None => body.to_string(),
        Some(a) => {
            if alt.any(|c| c != a) || body.contains(group) {
                return None;
            }
            body.chars()
                .map(|c| if c == a { group } else { c })
                .collect()
        }
    };
    // An exponent (`1,234e3`, `2.5E-4`) stands after the digits it scales:
    // the grouping rules are for the digits alone.
    let (cleaned, exp) = split_exponent(cleaned.as_str());
    let (whole, frac) = match cleaned.split_once(point) {
        Some((w, f)) => (w, Some(f)),
        None => (cleaned, None),
    };
    if frac.is_some_and(|f| f.contains([point, group])) {
        return None;
    }
    let digits = whole.trim_start_matches(['+', '-']);
    if digits.contains(group) {
        // In threes (1,234,567), or the Indian way (12,34,567: twos, then a
        // three); a first group never starts with 0.
        let groups: Vec<&str> = digits.split(group).collect();
        let (first, rest) = groups.split_first()?;
        let all_digits = groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
        let western = rest.iter().all(|g| g.len() == 3);
        let indian = rest.last().is_some_and(|g| g.len() == 3)
            && rest[..rest.len() - 1].iter().all(|g| g.len() == 2);
        if !all_digits
            || !(1..=3).contains(&first.len())
            || first.starts_with('0')
            || !(western || indian)
        {
            return None;
        }
    }
    let mut plain: String = whole.chars().filter(|c| *c != group).collect();
    if let Some(f) = frac {
        plain.push('.');
        plain.push_str(f);
    }
    // Without digits before it (`e5`, `-.e5`) the parse below refuses it.
    if let Some(e) = exp {
        plain.push('e');
        plain.push_str(e);
    }
    let x: f64 = plain.parse().ok()?;
    if !x.is_finite() {
        return None;
    }
    let x = if pct { x / 100.0 } else { x };
    Some(if neg { -x } else { x })
}

/// Splits a trailing exponent (`e`/`E`, an optional sign, digits) off a
/// number's text: (`1,234`, `Some("3")`) from `1,234e3`.
fn split_exponent(t: &str) -> (&str, Option<&str>) {
    if let Some(i) = t.rfind(['e', 'E']) {
        let e = &t[i + 1..];
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return (&t[..i], Some(e));
        }
    }
    (t, None)
}

struct Parse {
    columns: Vec<String>,
    to: ParseTarget,
    day_first: bool,
    decimal_comma: bool,
}

// Several arrays are indexed by the same row position.
#[allow(clippy::needless_range_loop)]
impl Op for Parse {
    fn mode(&self) -> Mode {
        Mode::Local
    }
    fn reads(&self, _: &Schema) -> Vec<String> {
        self.columns.clone()
    }
    fn writes(&self, _: &Schema) -> Vec<String> {
        self.columns.clone()
    }
    fn apply(&mut self, batch: &RecordBatch) -> Result<StepOutput, CleanError> {
        let mut new = Vec::new();
        let mut conf = HashMap::new();
        for c in &self.columns {
            let a = col(batch, c)?;
            let s = as_text(a)?;
            let n = s.len();
            let mut cs = vec![1.0; n];
            let out: ArrayRef = match self.to {
                ParseTarget::Date => {
                    if a.data_type() == &DataType::Date32 {
                        a.clone()
                    } else {
                        let mut b = Date32Builder::with_capacity(n);
                        for i in 0..n {
                            if s.is_null(i) {
                                b.append_null();
                                continue;
                            }
                            let v = s.value(i).trim();
                            let d = parse_date(v).or_else(|| {
                                tamis_core::types::parse_datetime(v)
                                    .map(|dt| (dt.date(), DateFormat::IsoDatetime))
                            });
                            match d {
                                Some((d, f)) => {
                                    let mut d = d;
                                    if f == DateFormat::MdySlash {
                                        use chrono::Datelike;
                                        // Both parts ≤ 12: the order is a guess.
                                        if d.day() <= 12 {
                                            cs[i] = 0.9;
                                            if self.day_first
                                                && let Some(sw) = chrono::NaiveDate::from_ymd_opt(
                                                    d.year(),
                                                    d.day(),
                                                    d.month(),
                                                )
                                            {
                                                d = sw;
                                            }
                                        }
                                    }
                                    b.append_value(days(d));
                                }
                                None => {
                                    cs[i] = 0.0;
                                    b.append_null();
                                }
                            }
                        }
                        Arc::new(b.finish())
                    }
                }
                ParseTarget::Number => {
                    let mut b = Float64Builder::with_capacity(n);
                    for i in 0..n {
                        if s.is_null(i) {
                            b.append_null();
                        } else {
                            let x = parse_number_with(s.value(i), self.decimal_comma);
                            if x.is_none() {
                                cs[i] = 0.0;
                            }
                            b.append_option(x);
                        }
                    }
                    Arc::new(b.finish())
                }
                ParseTarget::Boolean => {
                    let mut b = BooleanBuilder::with_capacity(n);
                    for i in 0..n {
                        if s.is_null(i) {
                            b.append_null();
                        } else {
                            let v = s.value(i).trim();
                            let x = parse_bool(v).or(match v {
                                "1" => Some(true),
                                "0" => Some(false),
                                _ => None,
                            });
                            if x.is_none() {
                                cs[i] = 0.0;
                            }
                            b.append_option(x);
                        }
                    }
                    Arc::new(b.finish())
                }
            };
            conf.insert(c.clone(), cs);
            new.push((c.clone(), out));
        }
        Ok(StepOutput {
            batch: with_columns(batch, new)?,
            keep: None,
            reasons: Vec::new(),
            confidence: conf,
            changed: HashMap::new(),
            details: HashMap::new(),
            flagged: 0,
        })
    }
}

// ---------------------------------------------------------------- standardize

const US_STATES: [(&str, &str); 51] = [
    ("AL", "alabama"),
    ("AK", "alaska"),
    ("AZ", "arizona"),
    ("AR", "arkansas"),
    ("CA", "california"),
    ("CO", "colorado"),
    ("CT", "connecticut"),
    ("DE", "delaware"),
    ("DC", "district of columbia"),
    ("FL", "florida"),
    ("GA", "georgia"),
    ("HI", "hawaii"),
    ("ID", "idaho"),
    ("IL", "illinois"),
    ("IN", "indiana"),
    ("IA", "iowa"),
    ("KS", "kansas"),
    ("KY", "kentucky"),
    ("LA", "louisiana"),
    ("ME", "maine"),
    ("MD", "maryland"),
    ("MA", "massachusetts"),
    ("MI", "michigan"),
    ("MN", "minnesota"),
    ("MS", "mississippi"),
    ("MO", "missouri"),
    ("MT", "montana"),
    ("NE", "nebraska"),
    ("NV", "nevada"),
    ("NH", "new hampshire"),
    ("NJ", "new jersey"),
    ("NM", "new mexico"),
    ("NY", "new york"),
    ("NC", "north carolina"),
    ("ND", "north dakota"),
    ("OH", "ohio"),
    ("OK", "oklahoma"),
    ("OR", "oregon"),
    ("PA", "pennsylvania"),
    ("RI", "rhode island"),
    ("SC", "south carolina"),
    ("SD", "south dakota"),
    ("TN", "tennessee"),
    ("TX", "texas"),
    ("UT", "utah"),
    ("VT", "vermont"),
    ("VA", "virginia"),
    ("WA", "washington"),
    ("WV", "west virginia"),
    ("WI", "wisconsin"),
    ("WY", "wyoming"),
];

// ISO 3166-1 alpha-2 codes with English short names and common aliases.
const COUNTRIES: [(&str, &str); 60] = [
    (
        "US",
        "united states|usa|united states of america|u.s.|u.s.a.|america",
    ),
    ("GB", "united kingdom|uk|great britain|britain|england"),
    ("CA", "canada"),
    ("AU", "australia"),
    ("NZ", "new zealand"),
    ("IE", "ireland"),
    ("DE", "germany|deutschland"),
    ("FR", "france"),
    ("ES", "spain|españa"),
    ("IT", "italy|italia"),
    ("NL", "netherlands|holland"),
    ("BE", "belgium"),
    ("CH", "switzerland"),
    ("AT", "austria"),
    ("SE", "sweden"),
    ("NO", "norway"),
    ("DK", "denmark"),
    ("FI", "finland"),
    ("PL", "poland"),
    ("PT", "portugal"),
    ("GR", "greece"),
    ("CZ", "czech republic|czechia"),
    ("HU", "hungary"),
    ("RO", "romania"),
    ("BG", "bulgaria"),
    ("HR", "croatia"),
    ("SK", "slovakia"),
    ("SI", "slovenia"),
    ("RU", "russia|russian federation"),
    ("UA", "ukraine"),
    ("TR", "turkey|türkiye"),
    ("IL", "israel"),
    ("AE", "united arab emirates|uae"),
    ("SA", "saudi arabia"),
    ("IN", "india"),
    ("PK", "pakistan"),
    ("CN", "china"),
    ("JP", "japan"),
    ("KR", "south korea|korea"),
    ("TW", "taiwan"),
    ("HK", "hong kong"),
    ("SG", "singapore"),
    ("MY", "malaysia"),
    ("TH", "thailand"),
    ("VN", "vietnam|viet nam"),
    ("ID", "indonesia"),
    ("PH", "philippines"),
    ("MX", "mexico|méxico"),
    ("BR", "brazil|brasil"),
    ("AR", "argentina"),
    ("CL", "chile"),
    ("CO", "colombia"),
    ("PE", "peru"),
    ("ZA", "south africa"),
    ("NG", "nigeria"),
    ("EG", "egypt"),
    ("KE", "kenya"),
    ("MA", "morocco"),
    ("IS", "iceland"),
    ("LU", "luxembourg"),
];

/// Standardises one value; `None` when it cannot be (left unchanged).
pub fn standardize_value(kind: StandardKind, v: &str, cc: &str) -> Option<String> {
    let t = v.trim();
    match kind {
        StandardKind::Email => Some(t.to_lowercase()),
        StandardKind::Phone => {
            let plus = t.starts_with('+') || t.starts_with("00");
            let digits: String = t.chars().filter(|c| c.is_ascii_digit()).collect();
            let digits = if t.starts_with("00") {
                digits[2..].to_string()
            } else {
                digits
            };
            if plus {
                (8..=15)
                    .contains(&digits.len())
                    .then(|| format!("+{digits}"))
            } else if cc == "1" && digits.len() == 11 && digits.starts_with('1') {
                Some(format!("+{digits}"))
            } else if cc == "1" && digits.len() == 10 {
                Some(format!("+1{digits}"))
            } else if cc != "1" && (6..=12).contains(&digits.len()) {
                Some(format!("+{cc}{}", digits.trim_start_matches('0')))
            } else {
                None
            }
        }
        StandardKind::State => {
            let l = t.to_lowercase();
            US_STATES
                .iter()
                .find(|(code, name)| code.eq_ignore_ascii_case(&l) || *name == l)
                .map(|(code, _)| code.to_string())
        }
        StandardKind::Country => {
            let l = t.to_lowercase();
            COUNTRIES
                .iter()
                .find(|(code, names)| {
                    code.eq_ignore_ascii_case(&l) || names.split('|').any(|n| n == l)
                })
                .map(|(code, _)| code.to_string())
        }
    }
}

struct Standardize {
    columns: Vec<String>,
    kind: StandardKind,
    cc: String,
}

impl Op for Standardize {
    fn mode(&self) -> Mode {
        Mode::Local
    }
    fn reads(&self, _: &Schema) -> Vec<String> {
        self.columns.clone()
    }
    fn writes(&self, _: &Schema) -> Vec<String> {
        self.columns.clone()
    }
    fn apply(&mut self, batch: &RecordBatch) -> Result<StepOutput, CleanError> {
        let mut new = Vec::new();
        for c in &self.columns {
            let out = map_text(col(batch, c)?, |v| {
                Some(match standardize_value(self.kind, v, &self.cc) {
                    Some(x) if x != v => std::borrow::Cow::Owned(x),
                    _ => std::borrow::Cow::Borrowed(v),
                })
            })?;
            new.push((c.clone(), out));
        }
        text_output(batch, new)
    }
}

// ---------------------------------------------------------------- outliers

struct Outliers {
    columns: Vec<String>,
    method: OutlierMethod,
    k: f64,
    action: OutlierAction,
    values: HashMap<String, Vec<f64>>,
    fences: BTreeMap<String, (f64, f64)>,
    resolved: bool,
}

impl Op for Outliers {
    fn mode(&self) -> Mode {
        Mode::Stats
    }
    fn reads(&self, _: &Schema) -> Vec<String> {
        self.columns.clone()
    }
    fn writes(&self, _: &Schema) -> Vec<String> {
        match self.action {
            OutlierAction::Flag => self
                .columns
                .iter()
                .map(|c| format!("{c}_outlier"))
                .collect(),
            _ => self.columns.clone(),
        }
    }
    fn is_resolved(&self) -> bool {
        self.resolved
    }
    fn reset(&mut self) {
        self.values.clear();
        self.resolved = false;
    }
    fn observe(&mut self, batch: &RecordBatch) -> Result<Option<BooleanArray>, CleanError> {
        for c in &self.columns {
            let f = as_f64(col(batch, c)?)?;
            let v = self.values.entry(c.clone()).or_default();
            v.extend(f.iter().flatten().filter(|x| x.is_finite()));
        }
        Ok(None)
    }
    fn resolve(&mut self) -> Result<(), CleanError> {
        for (c, mut v) in std::mem::take(&mut self.values) {
            let f = match self.method {
                OutlierMethod::Iqr => {
                    let (Some(q1), Some(q3)) = (quantile(&mut v, 0.25), quantile(&mut v, 0.75))
                    else {
                        continue;
                    };
                    let iqr = q3 - q1;
                    (q1 - self.k * iqr, q3 + self.k * iqr)
                }
                OutlierMethod::RobustZ => {
                    let Some(m) = median(&mut v) else { continue };
                    let mut dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
                    let mad = median(&mut dev).unwrap_or(0.0);
                    let sigma = tamis_profile::numeric::robust_sigma(mad, || {
                        dev.iter().sum::<f64>() / dev.len() as f64
                    });
                    (m - self.k * sigma, m + self.k * sigma)
                }
            };
            self.fences.insert(c, f);
        }
        self.resolved = true;
        Ok(())
    }
    fn confidence(&self) -> (f64, Source) {
        (0.8, Source::Heuristic)
    }
    fn learned(&self) -> Value {
        json!(
            self.fences
                .iter()
                .map(|(c, (lo, hi))| (c.clone(), json!({"lower": lo, "upper": hi})))
                .collect::<serde_json::Map<_, _>>()
        )
    }
    fn apply(&mut self, batch: &RecordBatch) -> Result<StepOutput, CleanError> {
        let mut new = Vec::new();
        // Rows flagged in any column, counted once.
        let mut flagged = vec![false; batch.num_rows()];
        for c in &self.columns {
            let a = col(batch, c)?;
            let Some(&(lo, hi)) = self.fences.get(c) else {
                continue;
            };
            let f = as_f64(a)?;
            let t = a.data_type().clone();
            match self.action {
                OutlierAction::Flag => {
                    let flags: BooleanArray =
                        f.iter().map(|x| x.map(|x| x < lo || x > hi)).collect();
                    for (any, flag) in flagged.iter_mut().zip(flags.iter()) {
                        *any |= flag == Some(true);
                    }
                    new.push((format!("{c}_outlier"), Arc::new(flags) as ArrayRef));
                }
                OutlierAction::Clip | OutlierAction::Null => {
                    let integer = matches!(t, DataType::Int64);
                    let (lo, hi) = if integer {
                        (lo.ceil(), hi.floor())
                    } else {
                        (lo, hi)
                    };
                    let out: Float64Array = f
                        .iter()
                        .map(|x| {
                            x.and_then(|x| {
                                if x >= lo && x <= hi {
                                    Some(x)
                                } else if self.action == OutlierAction::Null {
                                    None
                                } else {
                                    Some(x.clamp(lo, hi))
                                }
                            })
                        })
                        .collect();
                    let out: ArrayRef = Arc::new(out);
                    new.push((c.clone(), cast(&out, &t)?));
                }
            }
        }
        Ok(StepOutput {
            flagged: flagged.iter().filter(|f| **f).count() as u64,
            ..StepOutput::same_rows(with_columns(batch, new)?)
        })
    }
}

// ---------------------------------------------------------------- filter

struct Filter {
    /// `id (filter)`, for errors.
    at: String,
    sql: String,
    reason: String,
    expr: Option<(SchemaRef, Arc<dyn PhysicalExpr>)>,
}

impl Op for Filter {
    fn mode(&self) -> Mode {
        Mode::Local
    }
    fn reads(&self, schema: &Schema) -> Vec<String> {
        data_columns(schema)
    }
    fn writes(&self, _: &Schema) -> Vec<String> {
        Vec::new()
    }
    fn drops_rows(&self) -> bool {
        true
    }
    fn apply(&mut self, batch: &RecordBatch) -> Result<StepOutput, CleanError> {
        let schema = batch.schema();
        if self.expr.as_ref().is_none_or(|(s, _)| s != &schema) {
            let expr = try_compile(&self.sql, &schema).map_err(|message| CleanError::Step {
                step: self.at.clone(),
                message,
            })?;
            self.expr = Some((schema.clone(), expr));
        }
        let Some((_, expr)) = &self.expr else {
            return Err(CleanError::Internal("filter expression".into()));
        };
        // A value the condition cannot take (text compared with a number)
        // is the plan's or the data's fault, not tamis's.
        let v = expr
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| CleanError::Step {
                step: self.at.clone(),
                message: format!(
                    "`drop_where: {}` cannot be evaluated: {}; a text column compared with a number must hold only numbers (parse it first: `type: parse`, `to: number`)",
                    self.sql,
                    e.find_root()
                ),
            })?;
        let pred = v
            .as_boolean_opt()
            .ok_or_else(|| CleanError::Step {
                step: self.at.clone(),
                message: format!("`{}` is not a true/false condition", self.sql),
            })?
            .clone();
        // Drop where the condition is true; a null (unknown) condition keeps the row.
        let drop: BooleanArray = pred.iter().map(|x| Some(x == Some(true))).collect();
        let reasons = (0..drop.true_count())
            .map(|_| self.reason.clone())
            .collect();
        Ok(StepOutput {
            batch: batch.clone(),
            keep: Some(not(&drop)?),
            reasons,
            confidence: HashMap::new(),
            changed: HashMap::new(),
            details: HashMap::new(),
            flagged: 0,
        })
    }
}

/// Why a `drop_where` condition does not compile against these columns, if
/// it does not: an unknown column named with a close one and the columns
/// there are (never the internal row id), else DataFusion's reason.
pub fn predicate_problem(
    sql: &str,
    columns: &[(String, tamis_core::ColumnType)],
) -> Option<String> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, t)| Field::new(n, arrow_type(*t), true))
        .collect();
    try_compile(sql, &Arc::new(Schema::new(fields))).err()
}

/// Compiles a SQL condition against a schema with DataFusion.
fn try_compile(sql: &str, schema: &SchemaRef) -> Result<Arc<dyn PhysicalExpr>, String> {
    use tamis_core::datafusion::common::SchemaError;
    use tamis_core::datafusion::error::DataFusionError;
    let bad = |e: DataFusionError| {
        if let DataFusionError::SchemaError(se, _) = e.find_root()
            && let SchemaError::FieldNotFound { field, .. } = se.as_ref()
        {
            let names: Vec<&str> = schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .filter(|n| *n != ROW_ID)
                .collect();
            return format!(
                "`drop_where: {sql}`: no column `{}`{}; columns are: {}",
                field.name,
                tamis_core::contract::did_you_mean(&field.name, names.iter().copied()),
                names.join(", ")
            );
        }
        format!("`drop_where: {sql}`: {e}")
    };
    let ctx = SessionContext::new();
    crate::udf::register(&ctx);
    let df = DFSchema::try_from(schema.as_ref().clone()).map_err(bad)?;
    let expr = ctx.parse_sql_expr(sql, &df).map_err(bad)?;
    ctx.create_physical_expr(expr, &df).map_err(bad)
}

// ---------------------------------------------------------------- pii

pub use tamis_privacy::anonymize::keyed_hash;

struct Pii {
    plan: Vec<(String, PiiStrategy, String)>,
    key: Vec<u8>,
    vault: Option<Arc<TokenVault>>,
}

impl Op for Pii {
    fn mode(&self) -> Mode {
        Mode::Local
    }
    fn learned(&self) -> Value {
        json!({
            "tokenized": self
                .plan
                .iter()
                .filter(|p| p.1 == PiiStrategy::Tokenize)
                .map(|p| p.0.clone())
                .collect::<Vec<_>>()
        })
    }
    fn reads(&self, _: &Schema) -> Vec<String> {
        self.plan.iter().map(|p| p.0.clone()).collect()
    }
    fn writes(&self, _: &Schema) -> Vec<String> {
        self.plan.iter().map(|p| p.0.clone()).collect()
    }
    fn apply(&mut self, batch: &RecordBatch) -> Result<StepOutput, CleanError> {
        let mut new = Vec::new();
        let mut dropped = Vec::new();
        for (c, st, label) in &self.plan {
            let s: ArrayRef = Arc::new(as_text(col(batch, c)?)?);
            match st {
                PiiStrategy::Hash => new.push((
                    c.clone(),
                    map_text(&s, |v| {
                        Some(std::borrow::Cow::Owned(keyed_hash(&self.key, v)))
                    })?
                    .0,
                )),
                PiiStrategy::Redact => new.push((
                    c.clone(),
                    map_text(&s, |_| Some(std::borrow::Cow::Owned(format!("<{label}>"))))?.0,
                )),
                PiiStrategy::RedactEntities => new.push((
                    c.clone(),
                    map_text(&s, |v| {
                        Some(
                            tamis_privacy::text::redact(v)
                                .map_or(std::borrow::Cow::Borrowed(v), std::borrow::Cow::Owned),
                        )
                    })?
                    .0,
                )),
                PiiStrategy::Exclude => dropped.push(c.clone()),
                PiiStrategy::Tokenize => {
                    let tv = self.vault.as_ref().ok_or_else(|| CleanError::Step {
                        step: "pii".into(),
                        message: format!("`{c}`: tokenize needs the token vault and its key"),
                    })?;
                    let id = tv.keys.current.clone().unwrap_or_default();
                    let mut vault = tv
                        .vault
                        .lock()
                        .map_err(|_| CleanError::Internal("vault lock".into()))?;
                    let mut failed = None;
                    let out = map_text(&s, |v| match vault.tokenise(&tv.keys, &id, v) {
                        Ok(t) => Some(std::borrow::Cow::Owned(t)),
                        Err(e) => {
                            failed = Some(e.to_string());
                            None
                        }
                    })?
                    .0;
                    if let Some(m) = failed {
                        return Err(CleanError::Step {
                            step: "pii".into(),
                            message: m,
                        });
                    }
                    new.push((c.clone(), out));
                }
            }
        }
        let b = with_columns(batch, new)?;
        Ok(StepOutput::same_rows(drop_columns(&b, &dropped)?))
    }
}

// ---------------------------------------------------------------- rename, drop, cast

fn drop_columns(batch: &RecordBatch, names: &[String]) -> Result<RecordBatch, CleanError> {
    let keep: Vec<usize> = batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !names.contains(f.name()))
        .map(|(i, _)| i)
        .collect();
    Ok(batch.project(&keep)?)
}

struct Rename {
    mapping: BTreeMap<String, String>,
}

impl Op for Rename {
    fn mode(&self) -> Mode {
        Mode::Local
    }
    fn reads(&self, _: &Schema) -> Vec<String> {
        self.mapping.keys().cloned().collect()
    }
    fn writes(&self, _: &Schema) -> Vec<String> {
        Vec::new()
    }
    fn apply(&mut self, batch: &RecordBatch) -> Result<StepOutput, CleanError> {
        let fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| match self.mapping.get(f.name()) {
                Some(n) => f.as_ref().clone().with_name(n),
                None => f.as_ref().clone(),
            })
            .collect();
        Ok(StepOutput::same_rows(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            batch.columns().to_vec(),
        )?))
    }
}

struct DropCols {
    columns: Vec<String>,
}

impl Op for DropCols {
    fn mode(&self) -> Mode {
        Mode::Local
    }
    fn reads(&self, _: &Schema) -> Vec<String> {
        Vec::new()
    }
    fn writes(&self, _: &Schema) -> Vec<String> {
        self.columns.clone()
    }
    fn apply(&mut self, batch: &RecordBatch) -> Result<StepOutput, CleanError> {
        Ok(StepOutput::same_rows(drop_columns(batch, &self.columns)?))
    }
}

struct Cast {
    types: BTreeMap<String, tamis_core::ColumnType>,
}

impl Op for Cast {
    fn mode(&self) -> Mode {
        Mode::Local
    }
    fn reads(&self, _: &Schema) -> Vec<String> {
        self.types.keys().cloned().collect()
    }
    fn writes(&self, _: &Schema) -> Vec<String> {
        self.types.keys().cloned().collect()
    }
    fn apply(&mut self, batch: &RecordBatch) -> Result<StepOutput, CleanError> {
        let mut new = Vec::new();
        for (c, t) in &self.types {
            let a = col(batch, c)?;
            let target = arrow_type(*t);
            let out = if a.data_type() == &DataType::Utf8 && target != DataType::Utf8 {
                // Text goes through tamis's own parsers (trimmed, null tokens, common date formats).
                convert_lenient(a.as_string::<i32>(), *t)
            } else {
                cast(a, &target)?
            };
            new.push((c.clone(), out));
        }
        Ok(StepOutput::same_rows(with_columns(batch, new)?))
    }
}

/// Converts text to a type; values that do not convert become null.
fn convert_lenient(s: &StringArray, t: tamis_core::ColumnType) -> ArrayRef {
    use tamis_core::ColumnType as T;
    use tamis_core::types::{parse_float, parse_int};
    let nulls = tamis_core::NullTokens::default();
    let ok = |v: &str| nulls.classify(v) == tamis_core::types::Missing::No;
    match t {
        T::Integer => Arc::new(
            s.iter()
                .map(|v| v.filter(|v| ok(v)).and_then(|v| parse_int(v.trim())))
                .collect::<tamis_core::datafusion::arrow::array::Int64Array>(),
        ),
        T::Float => Arc::new(
            s.iter()
                .map(|v| v.filter(|v| ok(v)).and_then(|v| parse_float(v.trim())))
                .collect::<Float64Array>(),
        ),
        T::Boolean => Arc::new(
            s.iter()
                .map(|v| v.filter(|v| ok(v)).and_then(|v| parse_bool(v.trim())))
                .collect::<BooleanArray>(),
        ),
        T::Date => Arc::new(
            s.iter()
                .map(|v| {
                    v.filter(|v| ok(v))
                        .and_then(|v| parse_date(v.trim()))
                        .map(|(d, _)| days(d))
                })
                .collect::<tamis_core::datafusion::arrow::array::Date32Array>(),
        ),
        T::Datetime | T::String => Arc::new(s.clone()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn row_hashes_tell_apart_cells_that_only_join_alike() {
        use tamis_core::datafusion::arrow::array::{BooleanArray, Int64Array};
        let a = StringArray::from(vec![
            Some("ab"),
            Some("a"),
            None,
            Some(""),
            Some("ab"),
            Some("ab"),
        ]);
        let b = StringArray::from(vec![
            Some("c"),
            Some("bc"),
            Some(""),
            None,
            Some("c"),
            Some("c"),
        ]);
        let n = Int64Array::from(vec![Some(0), Some(0), Some(0), Some(0), Some(0), None]);
        let f = Float64Array::from(vec![
            Some(1.5),
            Some(1.5),
            Some(1.5),
            Some(1.5),
            Some(1.5),
            Some(1.5),
        ]);
        let t = BooleanArray::from(vec![Some(true); 6]);
        let batch = RecordBatch::try_from_iter(vec![
            ("a", Arc::new(a) as ArrayRef),
            ("b", Arc::new(b) as ArrayRef),
            ("n", Arc::new(n) as ArrayRef),
            ("f", Arc::new(f) as ArrayRef),
            ("t", Arc::new(t) as ArrayRef),
        ])
        .unwrap();
        let cols: Vec<String> = ["a", "b", "n", "f", "t"].map(String::from).to_vec();
        let h = row_hashes(&batch, &cols).unwrap();
        // Equal rows hash alike; ("ab","c") is not ("a","bc"), (null,"") is
        // not ("",null), and a null number is not zero.
        assert_eq!(h[0], h[4]);
        for (x, y) in [(0, 1), (2, 3), (0, 2), (4, 5)] {
            assert_ne!(h[x], h[y], "rows {x} and {y}");
        }
        // A slice reads its own rows.
        assert_eq!(
            row_hashes(&batch.slice(2, 4), &cols).unwrap(),
            h[2..6].to_vec()
        );
        // The columns picked are the ones hashed.
        let some = row_hashes(&batch, &cols[2..]).unwrap();
        assert_eq!(some[0], some[1]);
    }

    #[test]
    fn medians_match_duckdb_definition() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
        assert_eq!(quantile(&mut [1.0, 2.0, 3.0, 4.0, 5.0], 0.25), Some(2.0));
    }

    #[test]
    fn text_normalisation() {
        let n = TextNorm {
            trim: true,
            collapse: true,
            case: Some(Case::Title),
            unicode: Some(NormalForm::Nfc),
            strip_accents: true,
            nullify: Some(tamis_core::NullTokens::default()),
        };
        assert_eq!(n.apply("  josé   MARÍA "), Some("Jose Maria".into()));
        assert_eq!(n.apply(" N/A "), None);
        let nfkc = TextNorm {
            trim: false,
            collapse: false,
            case: None,
            unicode: Some(NormalForm::Nfkc),
            strip_accents: false,
            nullify: None,
        };
        assert_eq!(nfkc.apply("ﬁle"), Some("file".into()));
    }

    #[test]
    fn numbers_dates_and_standards() {
        assert_eq!(parse_number("$1,234.50"), Some(1234.5));
        assert_eq!(parse_number("12.5%"), Some(0.125));
        assert_eq!(parse_number("(300)"), Some(-300.0));
        assert_eq!(parse_number("EUR 1 000"), Some(1000.0));
        assert_eq!(parse_number("abc"), None);
        // Grouping must be in threes: a decimal comma read as grouping is
        // no number, never a number a hundred times too big.
        assert_eq!(parse_number("1,234,567.5"), Some(1234567.5));
        assert_eq!(parse_number("-1,234"), Some(-1234.0));
        assert_eq!(parse_number("99,00"), None);
        assert_eq!(parse_number("1,5"), None);
        assert_eq!(parse_number("1.234,50"), None);
        assert_eq!(parse_number("1,2345"), None);
        assert_eq!(parse_number("0,750"), None);
        assert_eq!(parse_number("12,34,567"), Some(1234567.0));
        assert_eq!(parse_number("+1,000"), Some(1000.0));
        assert_eq!(parse_number(".5"), Some(0.5));
        assert_eq!(parse_number("1.5e3"), Some(1500.0));
        // An exponent after grouped digits; the groups are still checked.
        assert_eq!(parse_number("1,234e3"), Some(1_234_000.0));
        assert_eq!(parse_number("-1,234.5E-1"), Some(-123.45));
        assert_eq!(parse_number("1 234e+2"), Some(123_400.0));
        assert_eq!(parse_number("12,34e3"), None);
        assert_eq!(parse_number("e3"), None);
        assert_eq!(parse_number("1e"), None);
        assert_eq!(parse_number_with("1.234,5e1", true), Some(12345.0));
        // Spaces, apostrophes and underscores group by the same rule.
        assert_eq!(parse_number("10 20"), None);
        assert_eq!(parse_number("1 234 567.5"), Some(1234567.5));
        assert_eq!(parse_number("1'234.5"), Some(1234.5));
        assert_eq!(parse_number("1_000"), Some(1000.0));
        assert_eq!(parse_number("$ 1\u{a0}234"), Some(1234.0));
        assert_eq!(parse_number("1 234,567"), None);
        assert_eq!(parse_number("1 234_567"), None);
        assert_eq!(parse_number("12 5"), None);
        assert_eq!(parse_number("USD 12"), Some(12.0));
        assert_eq!(parse_number("US$ 5"), Some(5.0));
        assert_eq!(parse_number("E5"), None);
        assert_eq!(parse_number("ABCD 5"), None);
        // With the decimal comma.
        assert_eq!(parse_number_with("1.234,50", true), Some(1234.5));
        assert_eq!(parse_number_with("99,00 €", true), Some(99.0));
        assert_eq!(parse_number_with("-1.000.000", true), Some(-1_000_000.0));
        assert_eq!(parse_number_with("12,5%", true), Some(0.125));
        assert_eq!(parse_number_with("1.5", true), None);
        assert_eq!(parse_number_with("1,234.50", true), None);
        assert_eq!(parse_number_with("1 234,50 €", true), Some(1234.5));
        assert_eq!(
            parse_number_with("1\u{202f}234\u{202f}567,5", true),
            Some(1234567.5)
        );
        assert_eq!(parse_number_with("99 00", true), None);
        let p = |v| standardize_value(StandardKind::Phone, v, "1");
        assert_eq!(p("(555) 123-4567").as_deref(), Some("+15551234567"));
        assert_eq!(p("+1 555 123 4567").as_deref(), Some("+15551234567"));
        assert_eq!(p("555.123.4567").as_deref(), Some("+15551234567"));
        assert_eq!(p("123"), None);
        assert_eq!(
            standardize_value(StandardKind::Phone, "030 1234567", "49").as_deref(),
            Some("+49301234567")
        );
        assert_eq!(
            standardize_value(StandardKind::State, " new york", "1").as_deref(),
            Some("NY")
        );
        assert_eq!(
            standardize_value(StandardKind::State, "tx", "1").as_deref(),
            Some("TX")
        );
        assert_eq!(
            standardize_value(StandardKind::Country, "Deutschland", "1").as_deref(),
            Some("DE")
        );
        assert_eq!(
            standardize_value(StandardKind::Email, " A@B.COM ", "1").as_deref(),
            Some("a@b.com")
        );
    }

    #[test]
    fn canonical_mapping_uses_folding_then_similarity() {
        let canon = vec![
            "active".to_string(),
            "inactive".to_string(),
            "suspended".to_string(),
        ];
        assert_eq!(
            Canonicalize::map(&canon, 0.85, " ACTIVE"),
            Some(("active".into(), 1.0))
        );
        assert_eq!(Canonicalize::map(&canon, 0.85, "active"), None);
        let (v, s) = Canonicalize::map(&canon, 0.85, "suspnded").unwrap();
        assert_eq!(v, "suspended");
        assert!(s > 0.85 && s < 1.0);
        assert_eq!(Canonicalize::map(&canon, 0.85, "zzz"), None);
    }

    #[test]
    fn keyed_hashes_depend_on_the_key() {
        assert_eq!(keyed_hash(b"k", "a"), keyed_hash(b"k", "a"));
        assert_ne!(keyed_hash(b"k", "a"), keyed_hash(b"j", "a"));
        assert_eq!(keyed_hash(b"k", "a").len(), 64);
    }
}
