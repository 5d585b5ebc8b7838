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
        }
    }

    /// Interns one normalised value, returning its id (0 for empty).
    fn push(&mut self, normalized: &str) {
        if normalized.is_empty() {
            self.ids.push(0);
            return;
        }
        let id = match self.index.get(normalized) {
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

/// What to load: the compared columns with their normalisation, and the key column.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Column name and normalisation, in comparison order.
    pub columns: Vec<(String, Norm)>,
    /// The column written as the record key (`None`: the row id).
    pub key: Option<String>,
}

/// Loads one or two datasets into a [`Table`]. Rows the reader quarantines
/// are counted in `quarantine` and skipped; nothing else is dropped.
pub fn load(
    inputs: &[&Dataset],
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
    };
    let mut buf = String::new();
    let mut keys = LargeStringBuilder::new();
    for (source, ds) in inputs.iter().enumerate() {
        let names = ds.columns();
        let pos = |n: &str| -> Result<usize, DedupError> {
            names.iter().position(|c| c == n).ok_or_else(|| {
                DedupError::unknown_column(
                    n,
                    ds.files()
                        .first()
                        .map(|f| f.name.clone())
                        .unwrap_or_default(),
                    names.iter().map(String::as_str),
                )
            })
        };
        let idx: Vec<usize> = spec
            .columns
            .iter()
            .map(|(n, _)| pos(n))
            .collect::<Result<_, _>>()?;
        let key_idx = spec.key.as_deref().map(pos).transpose()?;
        // The reader parses on its own thread while this one interns.
        let batches = ds.batches(quarantine.clone(), Arc::new(AtomicU64::new(0)))?;
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
                let b = b?;
                let rid = tamis_core::row_ids(&b)?;
                for (c, &i) in t.columns.iter_mut().zip(&idx) {
                    let a = cast(b.column(i), &DataType::Utf8)?;
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
                match key_idx {
                    Some(k) => {
                        let a = cast(b.column(k), &DataType::Utf8)?;
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
                t.row_ids.extend_from_slice(rid.values());
                t.source
                    .extend(std::iter::repeat_n(source as u8, b.num_rows()));
                t.rows_per_source[source] += b.num_rows() as u64;
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
