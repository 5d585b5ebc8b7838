//! The records being matched, held as dictionary-encoded columns.
//!
//! Every compared column is normalised once (trim, collapse whitespace,
//! lower-case; digits only for phones) and interned: a row holds a `u32` id
//! per column, and everything that depends only on the value (its hash, its
//! frequency, its parsed date or number) is computed once per distinct value.
//! Exact comparisons and blocking keys are then integer operations, and the
//! fuzzy ones run on the distinct strings.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use foldhash::HashMap;
use tamis_core::datafusion::arrow::array::{Array, AsArray, LargeStringArray, LargeStringBuilder};
use tamis_core::datafusion::arrow::compute::cast;
use tamis_core::datafusion::arrow::datatypes::DataType;
use tamis_core::datafusion::arrow::record_batch::RecordBatch;
use tamis_core::{ColumnType, Dataset, Quarantine, ReadOptions, SchemaSpec};
use xxhash_rust::xxh3::xxh3_64;

use crate::DedupError;

/// How a column's values are normalised before comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Norm {
    /// Trim only (record keys: kept as written).
    Raw,
    /// Trim, collapse inner whitespace, lower-case.
    #[default]
    Text,
    /// Digits only; numbers longer than 10 digits keep their last 10, so
    /// `+1 555 123 4567` and `(555) 123-4567` are the same phone.
    Phone,
    /// Lower-case with all whitespace removed.
    Email,
}

/// Normalises `v` into `out` (cleared first).
pub fn normalize(v: &str, norm: Norm, out: &mut String) {
    out.clear();
    let v = v.trim();
    match norm {
        Norm::Raw => out.push_str(v),
        Norm::Text => {
            let mut space = false;
            for c in v.chars() {
                if c.is_whitespace() {
                    space = true;
                    continue;
                }
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                if c.is_ascii() {
                    out.push(c.to_ascii_lowercase());
                } else {
                    out.extend(c.to_lowercase());
                }
            }
        }
        Norm::Phone => {
            out.extend(v.chars().filter(char::is_ascii_digit));
            if out.len() > 10 {
                out.drain(..out.len() - 10);
            }
        }
        Norm::Email => {
            for c in v.chars().filter(|c| !c.is_whitespace()) {
                out.extend(c.to_lowercase());
            }
        }
    }
}

/// One dictionary-encoded column.
#[derive(Debug, Default)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// Per row: the value id; 0 means null.
    pub ids: Vec<u32>,
    /// Per value id: the normalised value (`values[0]` is the empty null slot).
    pub values: Vec<Box<str>>,
    /// Per value id: a 64-bit hash of the normalised value (0 for null).
    pub hashes: Vec<u64>,
    /// Per value id: how many rows hold it.
    pub counts: Vec<u32>,
    /// Rows with a value.
    pub non_null: u64,
    index: HashMap<Box<str>, u32>,
    norm: Norm,
    /// Whether `values` is filled (the loading index is gone).
    sealed: bool,
    /// After sealing, for incremental additions: value hash → id.
    by_hash: HashMap<u64, u32>,
    /// Values whose hash another value already has (practically never).
    collided: HashMap<Box<str>, u32>,
}

impl Column {
    fn new(name: &str, norm: Norm) -> Column {
        Column {
            name: name.to_string(),
            ids: Vec::new(),
            values: vec!["".into()],
            hashes: vec![0],
            counts: vec![0],
            non_null: 0,
            index: HashMap::default(),
            norm,
            sealed: false,
            by_hash: HashMap::default(),
            collided: HashMap::default(),
        }
    }

    /// Interns one normalised value, returning its id (0 for empty).
    fn push(&mut self, normalized: &str) {
        if normalized.is_empty() {
            self.ids.push(0);
            return;
        }
        let id = if self.sealed {
            self.sealed_id(normalized)
        } else {
            match self.index.get(normalized) {
                Some(&id) => id,
                None => {
                    // The string lives in the index while loading and moves to
                    // `values` when the column is sealed: one copy, not two.
                    let id = self.hashes.len() as u32;
                    self.hashes.push(xxh3_64(normalized.as_bytes()) | 1);
                    self.counts.push(0);
                    self.index.insert(normalized.into(), id);
                    id
                }
            }
        };
        self.counts[id as usize] += 1;
        self.non_null += 1;
        self.ids.push(id);
    }

    /// The normalised value of a row, if any.
    pub fn value(&self, row: usize) -> Option<&str> {
        match self.ids[row] {
            0 => None,
            id => Some(&self.values[id as usize]),
        }
    }

    /// The share of non-null rows holding value `id` (its term frequency).
    pub fn tf(&self, id: u32) -> f64 {
        if self.non_null == 0 {
            return 0.0;
        }
        self.counts[id as usize] as f64 / self.non_null as f64
    }

    /// Distinct non-null values.
    pub fn distinct(&self) -> usize {
        self.hashes.len() - 1
    }

    /// Moves the interned strings from the index to `values`, by id.
    fn seal(&mut self) {
        let mut values: Vec<Box<str>> = vec![Box::from(""); self.hashes.len()];
        for (v, id) in std::mem::take(&mut self.index) {
            values[id as usize] = v;
        }
        self.values = values;
        self.sealed = true;
    }

    /// Rebuilds the lookup index of a sealed column so more rows can be
    /// interned (a copy of each distinct value, kept from then on).
    fn reopen(&mut self) {
        if self.sealed && self.by_hash.is_empty() && self.hashes.len() > 1 {
            // Values by their hash, which every value already has: no copy of
            // the strings. Headroom, so the first additions do not rehash.
            let extra = self.values.len() / 4 + 1024;
            self.by_hash.reserve(self.values.len() + extra);
            for id in 1..self.hashes.len() {
                match self.by_hash.entry(self.hashes[id]) {
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(id as u32);
                    }
                    std::collections::hash_map::Entry::Occupied(_) => {
                        self.collided.insert(self.values[id].clone(), id as u32);
                    }
                }
            }
            self.values.reserve(extra);
            self.hashes.reserve(extra);
            self.counts.reserve(extra);
            self.ids.reserve(self.ids.len() / 4 + 1024);
        }
    }

    /// The id of a value of a sealed column, interning it when new.
    fn sealed_id(&mut self, v: &str) -> u32 {
        let h = xxh3_64(v.as_bytes()) | 1;
        let known = self.by_hash.get(&h).copied();
        if let Some(id) = known
            && &*self.values[id as usize] == v
        {
            return id;
        }
        if let Some(&id) = self.collided.get(v) {
            return id;
        }
        let id = self.hashes.len() as u32;
        self.hashes.push(h);
        self.counts.push(0);
        self.values.push(v.into());
        if known.is_some() {
            // Another value has this 64-bit hash: told apart by its text.
            self.collided.insert(v.into(), id);
        } else {
            self.by_hash.insert(h, id);
        }
        id
    }
}

/// The records of one dataset (dedupe) or two (link: source 0 then source 1).
#[derive(Debug)]
pub struct Table {
    /// The compared columns, in the order asked for.
    pub columns: Vec<Column>,
    /// Per row: which input it came from (0, or 1 for the `--link` side).
    pub source: Vec<u8>,
    /// Per row: its row id in its own input.
    pub row_ids: Vec<u64>,
    /// Per row: the record key written to the output (the id column, or the row id).
    pub keys: LargeStringArray,
    /// Rows per source.
    pub rows_per_source: [u64; 2],
    /// The column the keys come from (`None`: row ids).
    pub key_column: Option<String>,
}

impl Table {
    /// Rows in the table.
    pub fn rows(&self) -> usize {
        self.source.len()
    }

    /// The index of a column by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// Opens a dataset with every column read as text: matching compares what was written.
pub fn open_as_text(spec: &[String], read: &ReadOptions) -> Result<Dataset, DedupError> {
    let probe = Dataset::open(spec, read.clone())?;
    let mut types = std::collections::HashMap::new();
    for c in probe.columns() {
        types.insert(c.clone(), ColumnType::String);
    }
    let mut opts = read.clone();
    opts.schema = Some(SchemaSpec {
        types,
        spec: "every column as text (dedup)".into(),
    });
    Ok(Dataset::open(spec, opts)?)
}

/// Records to match: files read by tamis, or batches already in memory (a
/// cleaning plan's rows, a batch sent to an index). Memory batches carry the
/// [`tamis_core::ROW_ID`] column as every tamis batch does.
#[derive(Debug)]
pub enum Input {
    /// A dataset on disk or at a URL, every column read as text.
    Dataset(Dataset),
    /// Batches in memory.
    Memory {
        /// What to call the input in messages.
        name: String,
        /// The batches, all of one schema.
        batches: Vec<RecordBatch>,
    },
}

impl Input {
    /// Opens files as an input (every column as text).
    pub fn open(spec: &[String], read: &ReadOptions) -> Result<Input, DedupError> {
        Ok(Input::Dataset(open_as_text(spec, read)?))
    }

    /// Column names, without the row-id column.
    pub fn columns(&self) -> Vec<String> {
        match self {
            Input::Dataset(d) => d.columns().to_vec(),
            Input::Memory { batches, .. } => batches
                .first()
                .map(|b| {
                    b.schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .filter(|n| n != tamis_core::ROW_ID)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The input's name in messages.
    pub fn name(&self) -> String {
        match self {
            Input::Dataset(d) => d
                .files()
                .first()
                .map(|f| f.name.clone())
                .unwrap_or_default(),
            Input::Memory { name, .. } => name.clone(),
        }
    }

    /// Up to `n` non-empty trimmed values per column (in [`Input::columns`] order).
    pub fn sample_text(&self, n: usize) -> Result<Vec<Vec<String>>, DedupError> {
        match self {
            Input::Dataset(d) => Ok(d.sample_text(n)?),
            Input::Memory { batches, .. } => Ok(tamis_core::sample_text(
                batches.iter().cloned().map(Ok::<_, DedupError>),
                &self.columns(),
                n,
            )?),
        }
    }

    /// Every row, in memory; rows the reader quarantines are counted in `quarantine`.
    pub fn read_all(&self, quarantine: Arc<Quarantine>) -> Result<Vec<RecordBatch>, DedupError> {
        self.batches(quarantine)?.collect()
    }

    /// Every row, in order, as batches; rows the reader quarantines are counted in `quarantine`.
    fn batches(
        &self,
        quarantine: Arc<Quarantine>,
    ) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, DedupError>> + Send>, DedupError> {
        match self {
            Input::Dataset(d) => Ok(Box::new(
                d.batches(quarantine, Arc::new(AtomicU64::new(0)))?
                    .map(|b| b.map_err(DedupError::from)),
            )),
            Input::Memory { batches, .. } => Ok(Box::new(batches.clone().into_iter().map(Ok))),
        }
    }
}

/// What to load: the compared columns with their normalisation, and the key column.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Column name and normalisation, in comparison order.
    pub columns: Vec<(String, Norm)>,
    /// The column written as the record key (`None`: the row id).
    pub key: Option<String>,
}

/// Loads one or two inputs into a [`Table`]. Rows the reader quarantines
/// are counted in `quarantine` and skipped; nothing else is dropped.
pub fn load(
    inputs: &[&Input],
    spec: &LoadSpec,
    quarantine: Arc<Quarantine>,
) -> Result<Table, DedupError> {
    let mut t = Table {
        columns: spec
            .columns
            .iter()
            .map(|(n, norm)| Column::new(n, *norm))
            .collect(),
        source: Vec::new(),
        row_ids: Vec::new(),
        keys: LargeStringArray::from(Vec::<&str>::new()),
        rows_per_source: [0; 2],
        key_column: spec.key.clone(),
    };
    let mut keys = LargeStringBuilder::new();
    for (source, input) in inputs.iter().enumerate() {
        // Fail on a missing column before reading a row.
        let names = input.columns();
        for n in spec.columns.iter().map(|(n, _)| n).chain(&spec.key) {
            if !names.contains(n) {
                return Err(DedupError::unknown_column(
                    n,
                    input.name(),
                    names.iter().map(String::as_str),
                ));
            }
        }
        // The reader parses on its own thread while this one interns.
        let batches = input.batches(quarantine.clone())?;
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let outcome: Result<(), DedupError> = std::thread::scope(|scope| {
            scope.spawn(move || {
                for b in batches {
                    if tx.send(b).is_err() {
                        break;
                    }
                }
            });
            for b in rx {
                t.push_batch(&b?, source as u8, &mut keys)?;
            }
            Ok(())
        });
        outcome?;
    }
    for c in &mut t.columns {
        c.seal();
    }
    t.keys = keys.finish();
    Ok(t)
}

impl Table {
    /// Normalises, interns and appends the rows of one batch from input `source`.
    fn push_batch(
        &mut self,
        b: &RecordBatch,
        source: u8,
        keys: &mut LargeStringBuilder,
    ) -> Result<(), DedupError> {
        let mut buf = String::new();
        let rid = tamis_core::row_ids(b)?;
        let get = |name: &str| {
            b.column_by_name(name).ok_or_else(|| {
                DedupError::unknown_column(
                    name,
                    "a batch to match",
                    b.schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>(),
                )
            })
        };
        for c in self.columns.iter_mut() {
            let a = cast(get(&c.name)?, &DataType::Utf8)?;
            let norm = c.norm;
            for v in a.as_string::<i32>().iter() {
                match v {
                    Some(v) => {
                        normalize(v, norm, &mut buf);
                        c.push(&buf);
                    }
                    None => c.push(""),
                }
            }
        }
        match &self.key_column {
            Some(k) => {
                let a = cast(get(k)?, &DataType::Utf8)?;
                let a = a.as_string::<i32>();
                for r in 0..a.len() {
                    keys.append_value(if a.is_null(r) { "" } else { a.value(r).trim() });
                }
            }
            None => {
                for r in rid.values() {
                    keys.append_value(r.to_string());
                }
            }
        }
        self.row_ids.extend_from_slice(rid.values());
        self.source
            .extend(std::iter::repeat_n(source, b.num_rows()));
        self.rows_per_source[source as usize] += b.num_rows() as u64;
        Ok(())
    }

    /// Makes every column ready to intern more values (a one-time cost,
    /// linear in the distinct values, paid when an incremental index is built).
    pub(crate) fn reopen(&mut self) {
        for c in &mut self.columns {
            c.reopen();
        }
        let extra = self.rows() / 4 + 1024;
        self.row_ids.reserve(extra);
        self.source.reserve(extra);
    }

    /// Appends rows to a loaded table (incremental matching): values are
    /// interned into the existing dictionaries, so term frequencies include
    /// them. Returns the range of the new rows.
    pub fn append(
        &mut self,
        batches: &[RecordBatch],
        source: u8,
    ) -> Result<std::ops::Range<usize>, DedupError> {
        let start = self.rows();
        self.reopen();
        let mut keys = LargeStringBuilder::new();
        for b in batches {
            // A failed batch leaves the table as it was.
            if let Err(e) = self.push_batch(b, source, &mut keys) {
                self.truncate(start);
                return Err(e);
            }
        }
        let added = keys.finish();
        self.keys = tamis_core::datafusion::arrow::compute::concat(&[&self.keys, &added])?
            .as_string::<i64>()
            .clone();
        Ok(start..self.rows())
    }

    /// Drops rows from `rows` on (undoing a failed append).
    fn truncate(&mut self, rows: usize) {
        for c in &mut self.columns {
            for &id in &c.ids[rows.min(c.ids.len())..] {
                if id != 0 {
                    c.counts[id as usize] -= 1;
                    c.non_null -= 1;
                }
            }
            c.ids.truncate(rows);
        }
        for &s in &self.source[rows.min(self.source.len())..] {
            self.rows_per_source[s as usize] -= 1;
        }
        self.source.truncate(rows);
        self.row_ids.truncate(rows);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn normalisation() {
        let mut s = String::new();
        normalize("  Mary   Ann ", Norm::Text, &mut s);
        assert_eq!(s, "mary ann");
        normalize("+1 (555) 123-4567", Norm::Phone, &mut s);
        assert_eq!(s, "5551234567");
        normalize("555.123.4567", Norm::Phone, &mut s);
        assert_eq!(s, "5551234567");
        normalize(" John.Smith @Example.COM", Norm::Email, &mut s);
        assert_eq!(s, "john.smith@example.com");
        normalize("ÉLODIE", Norm::Text, &mut s);
        assert_eq!(s, "élodie");
    }

    #[test]
    fn a_sealed_column_interns_more_values_and_tells_hash_twins_apart() {
        let mut c = Column::new("x", Norm::Text);
        for v in ["a", "b", "a"] {
            c.push(v);
        }
        c.seal();
        c.reopen();
        c.push("b");
        c.push("c");
        assert_eq!(c.ids, vec![1, 2, 1, 2, 3]);
        assert_eq!(c.value(4), Some("c"));
        assert_eq!(c.counts[2], 2);
        // A value whose hash another value has (forced: real 64-bit twins are
        // too rare to find) still gets its own id, and keeps it.
        let h = xxh3_64(b"twin") | 1;
        c.by_hash.insert(h, 1);
        c.push("twin");
        c.push("twin");
        c.push("a");
        assert_eq!(&c.ids[5..], &[4, 4, 1]);
        assert_eq!(c.value(5), Some("twin"));
    }

    #[test]
    fn interning_counts_values() {
        let mut c = Column::new("x", Norm::Text);
        for v in ["a", "b", "a", ""] {
            c.push(v);
        }
        c.seal();
        assert_eq!(c.ids, vec![1, 2, 1, 0]);
        assert_eq!(c.counts[1], 2);
        assert_eq!(c.non_null, 3);
        assert!((c.tf(1) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.value(3), None);
    }
}
