//! The profile as DataFusion functions.
//!
//! - [`ColumnStateUdaf`] (`tamis_column_state(value, row_id)`): one column's
//!   [`ColumnState`]; partial states merge, so DataFusion runs it on every
//!   partition and combines (on one machine now, on a cluster later).
//! - [`RowsUdaf`] (`tamis_rows(row_hash, row_id)`): whole-row hashes as its
//!   state; its result is the [`DuplicateSummary`] of exact duplicate rows.
//! - [`SampleUdaf`] (`tamis_sample(row_id, c1, …)`): a bottom-k sample by a
//!   seeded hash of the row id — deterministic, mergeable, uniform.
//! - [`RowHashUdf`] (`tamis_row_hash(c1, …)`): a 64-bit hash of a whole row.
//!
//! States travel between partitions as one `Binary` value (postcard), but
//! for the row hashes: two lists of `u64`, shared rather than copied.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, ListArray, StringArray, UInt64Array,
};
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::column::{ColumnSpec, ColumnState, Ctx};
use crate::model::Duplicates;

fn encode<T: Serialize>(v: &T) -> Result<ScalarValue> {
    postcard::to_allocvec(v)
        .map(|b| ScalarValue::Binary(Some(b)))
        .map_err(|e| {
            datafusion::error::DataFusionError::Internal(format!("encoding profile state: {e}"))
        })
}

/// Decodes a state written by one of these aggregates.
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    postcard::from_bytes(b).map_err(|e| {
        datafusion::error::DataFusionError::Internal(format!("decoding profile state: {e}"))
    })
}

fn as_text(a: &ArrayRef) -> Result<Cow<'_, StringArray>> {
    Ok(match a.data_type() {
        DataType::Utf8 => Cow::Borrowed(a.as_string::<i32>()),
        _ => {
            let c = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
            Cow::Owned(c.as_string::<i32>().clone())
        }
    })
}

fn binary_state(name: &str) -> Vec<FieldRef> {
    vec![Arc::new(Field::new(
        format!("{name}[state]"),
        DataType::Binary,
        true,
    ))]
}

fn merge_states<T: DeserializeOwned>(states: &[ArrayRef], mut f: impl FnMut(T)) -> Result<()> {
    let arr: &BinaryArray = states[0].as_binary::<i32>();
    for b in arr.iter().flatten() {
        f(decode(b)?);
    }
    Ok(())
}

// ---------------------------------------------------------------- column state

/// `tamis_column_state(value, row_id)`: the profile state of one column.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ColumnStateUdaf {
    spec: ColumnSpec,
    signature: Signature,
}

impl ColumnStateUdaf {
    /// A function for the column described by `spec`.
    pub fn new(spec: ColumnSpec) -> Self {
        ColumnStateUdaf {
            spec,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for ColumnStateUdaf {
    fn name(&self) -> &str {
        "tamis_column_state"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }
    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ColumnAcc {
            state: ColumnState::new(self.spec.sample_type),
            pending: Vec::new(),
            ctx: Ctx::new(self.spec.clone()),
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(binary_state(args.name))
    }
}

#[derive(Debug)]
struct ColumnAcc {
    state: ColumnState,
    /// Partial states received, merged in a fixed order when asked for a result.
    pending: Vec<ColumnState>,
    ctx: Ctx,
}

impl ColumnAcc {
    fn settle(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut all = std::mem::take(&mut self.pending);
        all.push(std::mem::replace(
            &mut self.state,
            ColumnState::new(self.ctx.sample_type),
        ));
        if let Some(s) = ColumnState::merge_all(all, &self.ctx) {
            self.state = s;
        }
    }
}

impl Accumulator for ColumnAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let text = as_text(&values[0])?;
        let rows = values[1].as_primitive::<UInt64Type>();
        let ids = rows.values();
        if text.null_count() == 0 {
            for (i, row) in ids.iter().enumerate() {
                self.state.add(text.value(i), *row, &self.ctx);
            }
        } else {
            for (i, row) in ids.iter().enumerate() {
                if text.is_null(i) {
                    self.state.add_null(*row);
                } else {
                    self.state.add(text.value(i), *row, &self.ctx);
                }
            }
        }
        Ok(())
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.settle();
        encode(&self.state)
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.settle();
        Ok(vec![encode(&self.state)?])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        merge_states(states, |s: ColumnState| self.pending.push(s))
    }
}

// ---------------------------------------------------------------- rows

/// Row hashes in pieces. Hashes arrive one per row of the dataset, so a
/// single vector would double its capacity (and copy itself) as it grows
/// and hold up to twice the memory it needs; fixed-size chunks hold it
/// exactly. The first piece can be made as large as the rows expected
/// ([`Hashes::expect`]): a partition that gets no more hands its one piece
/// on as its state without copying it. A piece received from another
/// partition is that partition's state array itself, shared rather than
/// copied.
#[derive(Debug, Clone, Default)]
pub struct Hashes {
    pieces: Vec<ScalarBuffer<u64>>,
    open: Vec<u64>,
    len: usize,
    /// Capacity of the first piece (at least [`Hashes::CHUNK`]).
    first: usize,
}

impl Hashes {
    const CHUNK: usize = 1 << 16;

    /// Sizes the first piece for `n` hashes. Its memory is only reserved:
    /// pages a partition never fills are never touched.
    pub fn expect(&mut self, n: usize) {
        self.first = n;
    }

    /// Adds a hash.
    #[inline]
    pub fn push(&mut self, h: u64) {
        if self.open.capacity() == 0 {
            let cap = if self.pieces.is_empty() {
                self.first.max(Self::CHUNK)
            } else {
                Self::CHUNK
            };
            self.open.reserve_exact(cap);
        }
        self.open.push(h);
        if self.open.len() == self.open.capacity() {
            self.pieces
                .push(ScalarBuffer::from(std::mem::take(&mut self.open)));
        }
        self.len += 1;
    }

    /// Hashes held by one shared buffer.
    fn shared(b: ScalarBuffer<u64>) -> Self {
        Hashes {
            len: b.len(),
            pieces: vec![b],
            open: Vec::new(),
            first: 0,
        }
    }

    /// Hashes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces in order, the open one last.
    fn slices(&self) -> impl Iterator<Item = &[u64]> + '_ {
        self.pieces
            .iter()
            .map(|p| &p[..])
            .chain(std::iter::once(&self.open[..]))
    }

    /// The hashes in order.
    pub fn iter(&self) -> impl Iterator<Item = &u64> + '_ {
        self.slices().flatten()
    }

    /// `len` hashes from position `from` (within [`Hashes::len`]).
    pub fn range(&self, from: usize, len: usize) -> impl Iterator<Item = u64> + '_ {
        let end = from + len;
        self.slices()
            .scan(0usize, |base, s| {
                let b = *base;
                *base += s.len();
                Some((b, s))
            })
            .filter_map(move |(b, s)| {
                let (lo, hi) = (from.max(b), end.min(b + s.len()));
                (lo < hi).then(|| &s[lo - b..hi - b])
            })
            .flatten()
            .copied()
    }

    /// Bytes in use (of the open piece, what is filled: the rest of a
    /// large first piece is reserved, not touched).
    pub fn bytes(&self) -> usize {
        self.pieces.iter().map(|p| p.len() * 8).sum::<usize>() + self.open.len() * 8
    }

    /// The hashes in one buffer: the only piece as it is, or the pieces
    /// copied end to end (each freed once copied).
    fn into_buffer(mut self) -> ScalarBuffer<u64> {
        if self.pieces.len() == 1 && self.open.is_empty() {
            return self.pieces.remove(0);
        }
        if self.pieces.is_empty() {
            return ScalarBuffer::from(self.open);
        }
        let mut all = Vec::with_capacity(self.len);
        for p in self.pieces {
            all.extend_from_slice(&p);
        }
        all.extend_from_slice(&self.open);
        ScalarBuffer::from(all)
    }
}

/// Whole-row hashes in arrival order, with the row ids they belong to.
#[derive(Debug, Clone, Default)]
pub struct RowsState {
    /// Row hashes.
    pub hashes: Hashes,
    /// Row ids, parallel to `hashes`, run-length encoded as (first id, run length).
    pub runs: Vec<(u64, u64)>,
}

impl RowsState {
    fn push(&mut self, h: u64, row: u64) {
        self.hashes.push(h);
        match self.runs.last_mut() {
            Some((start, len)) if *start + *len == row => *len += 1,
            _ => self.runs.push((row, 1)),
        }
    }

    /// The state as two lists of `u64` (the hashes; the runs as
    /// start, length, start, length…). A `Binary` state would be copied
    /// twice more (encoded, then copied again into its array) and once
    /// more decoded: at 10M rows each copy is 80 MB of fresh memory. A list
    /// scalar becomes its one-row array as it is, and a merge reads the
    /// hashes where they are.
    fn into_scalars(self) -> [ScalarValue; 2] {
        let runs: Vec<u64> = self.runs.iter().flat_map(|&(s, l)| [s, l]).collect();
        [
            u64_list(self.hashes.into_buffer()),
            u64_list(ScalarBuffer::from(runs)),
        ]
    }

    /// The states in row `i` of the two state arrays, as [`RowsState::into_scalars`] wrote them.
    fn from_arrays(hashes: &ListArray, runs: &ListArray, i: usize) -> Result<Self> {
        let h = hashes.value(i);
        let r = runs.value(i);
        let (Some(h), Some(r)) = (
            h.as_primitive_opt::<UInt64Type>(),
            r.as_primitive_opt::<UInt64Type>(),
        ) else {
            return exec_err!("row-hash state: expected lists of UInt64");
        };
        let r = r.values();
        if !r.len().is_multiple_of(2) {
            return exec_err!("row-hash state: runs hold an odd number of values");
        }
        let runs: Vec<(u64, u64)> = r.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        let rows = runs
            .iter()
            .try_fold(0u64, |a, &(_, l)| a.checked_add(l))
            .unwrap_or(u64::MAX);
        if rows != h.len() as u64 {
            return exec_err!("row-hash state: {} hashes but {rows} row ids", h.len());
        }
        Ok(RowsState {
            hashes: Hashes::shared(h.values().clone()),
            runs,
        })
    }
}

/// A one-row list scalar of `values`, which it holds without copying.
fn u64_list(values: ScalarBuffer<u64>) -> ScalarValue {
    let n = values.len();
    ScalarValue::List(Arc::new(ListArray::new(
        u64_item(),
        OffsetBuffer::from_lengths([n]),
        Arc::new(UInt64Array::new(values, None)),
        None,
    )))
}

fn u64_item() -> FieldRef {
    Arc::new(Field::new_list_field(DataType::UInt64, false))
}

/// `tamis_rows(row_hash, row_id)`: all row hashes, for exact duplicates.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RowsUdaf {
    signature: Signature,
    /// Threads the final step may use to find the duplicates.
    threads: usize,
    /// Rows each partition is expected to see (0: unknown).
    expected: usize,
}

impl Default for RowsUdaf {
    fn default() -> Self {
        RowsUdaf::new(1)
    }
}

impl RowsUdaf {
    /// The aggregate, whose final step may use `threads` threads.
    pub fn new(threads: usize) -> Self {
        RowsUdaf {
            threads,
            expected: 0,
            signature: Signature::exact(
                vec![DataType::UInt64, DataType::UInt64],
                Volatility::Immutable,
            ),
        }
    }

    /// Expects about `rows` rows in each partition.
    pub fn expecting(mut self, rows: usize) -> Self {
        self.expected = rows;
        self
    }
}

impl AggregateUDFImpl for RowsUdaf {
    fn name(&self) -> &str {
        "tamis_rows"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }
    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let mut state = RowsState::default();
        state.hashes.expect(self.expected);
        Ok(Box::new(RowsAcc {
            state,
            threads: self.threads,
            ..RowsAcc::default()
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = |part: &str| {
            Arc::new(Field::new(
                format!("{}[{part}]", args.name),
                DataType::List(u64_item()),
                true,
            ))
        };
        Ok(vec![list("hashes"), list("runs")])
    }
}

/// What the final `tamis_rows` aggregate returns: the exact duplicate rows,
/// found where the row hashes already are, so the hashes of every row are
/// never copied out of the aggregate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DuplicateSummary {
    /// The duplicate rows, as the profile reports them.
    pub found: Duplicates,
    /// Rows seen.
    pub total: u64,
}

/// Groups of duplicate rows reported as examples.
const DUPLICATE_EXAMPLES: usize = 5;

#[derive(Debug, Default)]
struct RowsAcc {
    state: RowsState,
    /// Partial states received: kept apart rather than appended to one
    /// vector, which would hold every row hash twice while it grows.
    parts: Vec<RowsState>,
    threads: usize,
}

impl Accumulator for RowsAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let h = values[0].as_primitive::<UInt64Type>();
        let r = values[1].as_primitive::<UInt64Type>();
        for (h, r) in h.values().iter().zip(r.values()) {
            self.state.push(*h, *r);
        }
        Ok(())
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut parts = std::mem::take(&mut self.parts);
        parts.push(std::mem::take(&mut self.state));
        let total = parts.iter().map(|p| p.hashes.len() as u64).sum();
        let found = duplicates(&parts, DUPLICATE_EXAMPLES, self.threads);
        drop(parts);
        encode(&DuplicateSummary { found, total })
    }
    fn size(&self) -> usize {
        std::iter::once(&self.state)
            .chain(&self.parts)
            .map(|s| s.hashes.bytes() + s.runs.capacity() * 16)
            .sum()
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        // A partial aggregate is asked for its state once, at its end: the
        // hashes leave the accumulator (and are freed with the arrays).
        Ok(std::mem::take(&mut self.state).into_scalars().into())
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (Some(hashes), Some(runs)) = (states[0].as_list_opt::<i32>(), states[1].as_list_opt())
        else {
            return exec_err!("row-hash state: expected two list arrays");
        };
        for i in 0..hashes.len() {
            if hashes.is_valid(i) && runs.is_valid(i) {
                let s = RowsState::from_arrays(hashes, runs, i)?;
                if !s.hashes.is_empty() {
                    self.parts.push(s);
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- sample

/// A bottom-k sample: the `k` rows with the smallest seeded hash of their row id.
/// `V` holds a row's values: a value each in the state and the result, one
/// [`Packed`] buffer while rows are taken (most are dropped again later).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample<V = Vec<Option<String>>> {
    /// How many rows to keep.
    pub k: usize,
    /// (priority, row id, values) sorted by priority once finished.
    pub rows: Vec<(u64, u64, V)>,
    /// Largest priority kept while full (rows above it are skipped).
    threshold: u64,
}

/// A row's values in one allocation: each value as its length (u32, little
/// endian; `u32::MAX` for null) then its bytes. A sample takes several rows
/// for each one it keeps, and a string per value was most of its time.
#[derive(Debug, Clone, Default)]
struct Packed(Vec<u8>);

impl Packed {
    const NULL: u32 = u32::MAX;

    /// Row `i` of the text columns.
    fn new(texts: &[Cow<'_, StringArray>], i: usize) -> Self {
        Self::of(texts.iter().map(|t| (!t.is_null(i)).then(|| t.value(i))))
    }

    fn of<'a>(values: impl Iterator<Item = Option<&'a str>> + Clone) -> Self {
        let len: usize = values.clone().map(|v| 4 + v.map_or(0, str::len)).sum();
        let mut b = Vec::with_capacity(len);
        for v in values {
            match v {
                // A value past 4 GiB (no reader makes one) keeps its first bytes.
                Some(v) => {
                    let n = v.len().min(Self::NULL as usize - 1);
                    b.extend_from_slice(&(n as u32).to_le_bytes());
                    b.extend_from_slice(&v.as_bytes()[..n]);
                }
                None => b.extend_from_slice(&Self::NULL.to_le_bytes()),
            }
        }
        Packed(b)
    }

    fn unpack(&self) -> Vec<Option<String>> {
        let mut out = Vec::new();
        let mut rest = self.0.as_slice();
        while let Some((len, tail)) = rest.split_first_chunk::<4>() {
            let n = u32::from_le_bytes(*len);
            if n == Self::NULL {
                out.push(None);
                rest = tail;
            } else {
                let (v, tail) = tail.split_at((n as usize).min(tail.len()));
                out.push(Some(String::from_utf8_lossy(v).into_owned()));
                rest = tail;
            }
        }
        out
    }
}

impl<V> Sample<V> {
    fn new(k: usize) -> Self {
        Sample {
            k,
            rows: Vec::new(),
            threshold: u64::MAX,
        }
    }

    fn maybe_compact(&mut self) {
        if self.rows.len() >= 2 * self.k.max(1) {
            self.compact();
        }
    }

    /// Keeps the `k` smallest priorities, sorted.
    pub fn compact(&mut self) {
        self.rows.sort_unstable_by_key(|r| (r.0, r.1));
        self.rows.truncate(self.k);
        if self.rows.len() == self.k {
            self.threshold = self.rows.last().map(|r| r.0).unwrap_or(u64::MAX);
        }
    }

    fn merge(&mut self, o: Sample<V>) {
        self.rows.extend(o.rows);
        self.compact();
    }

    /// The same rows, each one's values turned by `f`.
    fn map<W>(&self, f: impl Fn(&V) -> W) -> Sample<W> {
        Sample {
            k: self.k,
            rows: self.rows.iter().map(|(p, id, v)| (*p, *id, f(v))).collect(),
            threshold: self.threshold,
        }
    }
}

impl Sample<Packed> {
    /// The sample with a value each, sorted: what states and results hold.
    fn unpacked(&mut self) -> Sample {
        self.compact();
        self.map(Packed::unpack)
    }
}

/// `tamis_sample(row_id, c1, …)`: a deterministic uniform sample of rows.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SampleUdaf {
    k: usize,
    seed: u64,
    signature: Signature,
}

impl SampleUdaf {
    /// A sample of `k` rows chosen by `seed`.
    pub fn new(k: usize, seed: u64) -> Self {
        SampleUdaf {
            k,
            seed,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for SampleUdaf {
    fn name(&self) -> &str {
        "tamis_sample"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }
    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SampleAcc {
            sample: Sample::new(self.k),
            seed: self.seed,
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(binary_state(args.name))
    }
}

#[derive(Debug)]
struct SampleAcc {
    sample: Sample<Packed>,
    seed: u64,
}

impl Accumulator for SampleAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some((ids, cols)) = values.split_first() else {
            return exec_err!("tamis_sample needs a row id");
        };
        let ids = ids.as_primitive::<UInt64Type>();
        let mut texts = Vec::with_capacity(cols.len());
        for c in cols {
            texts.push(as_text(c)?);
        }
        for (i, id) in ids.values().iter().enumerate() {
            let p = xxh3_64_with_seed(&id.to_le_bytes(), self.seed);
            if p > self.sample.threshold {
                continue;
            }
            self.sample.rows.push((p, *id, Packed::new(&texts, i)));
            self.sample.maybe_compact();
        }
        Ok(())
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        encode(&self.sample.unpacked())
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sample.rows.capacity() * 64
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![encode(&self.sample.unpacked())?])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        merge_states(states, |s: Sample| {
            self.sample
                .merge(s.map(|v| Packed::of(v.iter().map(Option::as_deref))))
        })
    }
}

// ---------------------------------------------------------------- row hash

/// `tamis_row_hash(c1, …)`: xxh3 of every value of a row, column by column;
/// null and empty differ, and so do values that only differ in where a field ends.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RowHashUdf {
    signature: Signature,
}

impl Default for RowHashUdf {
    fn default() -> Self {
        RowHashUdf {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

const NULL_MARK: u64 = 0x9E37_79B9_7F4A_7C15;

impl ScalarUDFImpl for RowHashUdf {
    fn name(&self) -> &str {
        "tamis_row_hash"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let h = row_hashes(&arrays, n)?;
        Ok(ColumnarValue::Array(Arc::new(UInt64Array::from(h))))
    }
}

/// The whole-row hashes of `n` rows of `arrays` (any type, read as text):
/// each column's value hashed with the hash so far as seed; a null marks
/// the hash in a way no value's text does.
fn row_hashes(arrays: &[ArrayRef], n: usize) -> Result<Vec<u64>> {
    let mut h = vec![0u64; n];
    for a in arrays {
        let t = as_text(a)?;
        // The values' bytes straight from the offsets: no per-row null or
        // bounds checks when the column has no nulls (the common case).
        let (offsets, data) = (t.value_offsets(), t.value_data());
        let bytes = offsets
            .windows(2)
            .map(|w| &data[w[0] as usize..w[1] as usize]);
        match t.nulls().filter(|n| n.null_count() > 0) {
            None => {
                for (acc, b) in h.iter_mut().zip(bytes) {
                    *acc = xxh3_64_with_seed(b, *acc);
                }
            }
            Some(nulls) => {
                for ((acc, b), valid) in h.iter_mut().zip(bytes).zip(nulls.iter()) {
                    *acc = if valid {
                        xxh3_64_with_seed(b, *acc)
                    } else {
                        acc.rotate_left(5) ^ NULL_MARK
                    };
                }
            }
        }
    }
    Ok(h)
}

/// A stable 64-bit hash of a string, for callers outside the functions.
pub fn hash_str(s: &str) -> u64 {
    xxh3_64(s.as_bytes())
}

/// Hashes any hashable value deterministically.
pub fn stable_hash<T: Hash>(v: &T) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    v.hash(&mut h);
    h.finish()
}

/// Duplicate rows, their groups, and the first example groups, over the
/// parts' rows.
///
/// Equal hashes are found by sorting, some slices of the hash space at a
/// time (see [`duplicate_hashes`]); with two threads or more, the two
/// halves of the hash space at once. The example groups are those whose
/// first rows come first: the rows are walked once in row-id order, and
/// the walk stops as soon as every example group has its rows.
pub fn duplicates(parts: &[RowsState], max_examples: usize, threads: usize) -> Duplicates {
    let half = SLICES / 2;
    let dup = if threads >= 2 {
        std::thread::scope(|s| {
            let upper = s.spawn(|| duplicate_hashes(parts, half..SLICES));
            let mut d = duplicate_hashes(parts, 0..half);
            d.extend(
                upper
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            );
            d
        })
    } else {
        duplicate_hashes(parts, 0..SLICES)
    };
    Duplicates {
        rows: dup.iter().map(|&(_, n)| n - 1).sum(),
        groups: dup.len() as u64,
        examples: first_groups(parts, &dup, max_examples),
    }
}

/// Slices of the hash space (by its top 4 bits) sorted one pass at a time.
const SLICES: u64 = 16;
/// Slices one pass over the row hashes gathers: a pass holds this many
/// sixteenths of the hashes, so fewer passes cost peak memory.
const SLICES_PER_PASS: u64 = 4;
/// Rows listed per example group.
const EXAMPLE_ROWS: usize = 10;

/// The hashes that repeat within `slices` (of [`SLICES`]) of the hash
/// space, each with its number of rows, in ascending hash order.
fn duplicate_hashes(parts: &[RowsState], slices: std::ops::Range<u64>) -> Vec<(u64, u64)> {
    let mut dup = Vec::new();
    // Reserved for a slice's share of uniform hashes and a margin: filled,
    // not grown (each growth would copy into fresh memory).
    let n: usize = parts.iter().map(|p| p.hashes.len()).sum();
    let share = n / SLICES as usize;
    let mut buckets: Vec<Vec<u64>> = (0..SLICES_PER_PASS)
        .map(|_| Vec::with_capacity(share + share / 16 + 1024))
        .collect();
    let (mut spread, mut inner) = (Vec::new(), Vec::new());
    let mut first = slices.start;
    while first < slices.end {
        let last = (first + SLICES_PER_PASS).min(slices.end);
        for b in &mut buckets {
            b.clear();
        }
        for p in parts {
            for &h in p.hashes.iter() {
                let slice = h >> 60;
                if (first..last).contains(&slice) {
                    buckets[(slice - first) as usize].push(h);
                }
            }
        }
        for b in &mut buckets[..(last - first) as usize] {
            repeats(b, &mut spread, &mut inner, &mut dup);
        }
        first = last;
    }
    dup
}

/// Appends to `dup` the values that repeat in `b` (hashes of one slice),
/// each with its number of occurrences, in ascending order.
///
/// Row hashes are uniform, so they are spread by the byte below the
/// slice's 4 bits into 256 buckets, each bucket by the next byte into 256
/// more (in a buffer the size of one bucket, which stays in the cache),
/// and those of a few hashes are sorted where they hold two or more. That
/// is two bytes' spreading (a counting pass and a moving pass each) where
/// a full radix sort takes eight, and each moving pass writes to 256 places
/// at a time: spreading by 16 bits at once wrote to 65,536, and took a
/// third longer on a slice of 625,000 hashes (a sixteenth of 10M rows).
fn repeats(b: &[u64], spread: &mut Vec<u64>, inner: &mut Vec<u64>, dup: &mut Vec<(u64, u64)>) {
    if u32::try_from(b.len()).is_err() {
        // Beyond u32 positions (billions of rows in one slice): sorted whole.
        spread.clear();
        spread.extend_from_slice(b);
        spread.sort_unstable();
        runs(spread, dup);
        return;
    }
    spread.clear();
    spread.resize(b.len(), 0);
    let mut from = 0;
    for end in spread_by_byte(b, spread, 52) {
        let outer = &spread[from..end as usize];
        from = end as usize;
        if outer.len() < 2 {
            continue;
        }
        inner.clear();
        inner.resize(outer.len(), 0);
        let mut at = 0;
        for end in spread_by_byte(outer, inner, 44) {
            let bucket = &mut inner[at..end as usize];
            at = end as usize;
            if bucket.len() > 1 {
                bucket.sort_unstable();
                runs(bucket, dup);
            }
        }
    }
}

/// Moves `src` into `dst` (as long, at most `u32::MAX`) in the order of
/// the byte at bit `shift` of each value, stably; returns the end of each
/// byte's run.
fn spread_by_byte(src: &[u64], dst: &mut [u64], shift: u32) -> [u32; 256] {
    let byte = |h: u64| ((h >> shift) & 0xff) as usize;
    let mut ends = [0u32; 256];
    for &h in src {
        ends[byte(h)] += 1;
    }
    // Each run's start (the counts before it)...
    let mut at = 0;
    for e in ends.iter_mut() {
        (*e, at) = (at, at + *e);
    }
    // ...moves on as the run fills, and ends at the next run's start.
    for &h in src {
        let k = byte(h);
        dst[ends[k] as usize] = h;
        ends[k] += 1;
    }
    ends
}

/// Appends to `dup` each run of equal values in `sorted` longer than one,
/// with its length.
fn runs(sorted: &[u64], dup: &mut Vec<(u64, u64)>) {
    for run in sorted.chunk_by(|x, y| x == y) {
        if run.len() > 1 {
            dup.push((run[0], run.len() as u64));
        }
    }
}

/// The rows of the `max` groups of duplicates whose first rows come
/// first (at most [`EXAMPLE_ROWS`] each, in row order), given the
/// repeating hashes with their row counts in ascending hash order.
fn first_groups(parts: &[RowsState], dup: &[(u64, u64)], max: usize) -> Vec<Vec<u64>> {
    if dup.is_empty() || max == 0 {
        return Vec::new();
    }
    // (hash, rows still wanted, rows): the groups chosen so far.
    let mut chosen: Vec<(u64, usize, Vec<u64>)> = Vec::with_capacity(max);
    let mut open = 0usize;
    // The rows in row-id order: each part's runs of consecutive ids, sorted.
    let mut runs: Vec<(u64, u64, usize, usize)> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let mut at = 0usize;
        for &(start, len) in &p.runs {
            runs.push((start, len, i, at));
            at += len as usize;
        }
    }
    runs.sort_unstable();
    'rows: for &(start, len, part, at) in &runs {
        for (row, h) in (start..start + len).zip(parts[part].hashes.range(at, len as usize)) {
            if let Some(g) = chosen.iter_mut().find(|g| g.0 == h) {
                if g.1 > 0 {
                    g.2.push(row);
                    g.1 -= 1;
                    if g.1 == 0 {
                        open -= 1;
                    }
                }
            } else if chosen.len() < max
                && let Ok(i) = dup.binary_search_by_key(&h, |d| d.0)
            {
                let want = (dup[i].1 as usize).min(EXAMPLE_ROWS);
                chosen.push((h, want - 1, vec![row]));
                open += 1;
            }
            if chosen.len() == max.min(dup.len()) && open == 0 {
                break 'rows;
            }
        }
    }
    chosen.into_iter().map(|g| g.2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two partitions of rows whose hashes repeat in known groups.
    fn parts() -> Vec<RowsState> {
        let mut a = RowsState::default();
        let mut b = RowsState::default();
        for row in 0..200_000u64 {
            // Every 7th row repeats the row 3 before it; the rest are unique.
            let key = if row % 7 == 6 { row - 3 } else { row };
            let h = xxhash_rust::xxh3::xxh3_64(&key.to_le_bytes());
            if row < 90_000 {
                a.push(h, row)
            } else {
                b.push(h, row)
            }
        }
        vec![a, b]
    }

    #[test]
    fn row_hashes_tell_nulls_from_empty_and_read_slices_in_place() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("x"),
            None,
            Some(""),
            Some("x"),
            Some("y"),
        ]));
        let b: ArrayRef = Arc::new(StringArray::from(vec!["1", "2", "2", "1", "1"]));
        let h = row_hashes(&[a.clone(), b.clone()], 5).unwrap();
        assert_eq!(h[0], h[3], "equal rows hash alike");
        assert_ne!(h[1], h[2], "a null is not an empty string");
        assert_ne!(h[0], h[4]);
        // The per-value definition, row by row.
        let want = |x: Option<&str>, y: &str| {
            let acc = match x {
                Some(x) => xxh3_64_with_seed(x.as_bytes(), 0),
                None => 0u64.rotate_left(5) ^ NULL_MARK,
            };
            xxh3_64_with_seed(y.as_bytes(), acc)
        };
        assert_eq!(h[1], want(None, "2"));
        assert_eq!(h[4], want(Some("y"), "1"));
        // A slice hashes as the rows it shows, and a column of numbers as its text.
        let sliced = row_hashes(&[a.slice(1, 4), b.slice(1, 4)], 4).unwrap();
        assert_eq!(sliced, h[1..].to_vec());
        let n: ArrayRef = Arc::new(datafusion::arrow::array::Int64Array::from(vec![
            1, 2, 2, 1, 1,
        ]));
        assert_eq!(row_hashes(&[a, n], 5).unwrap(), h);
    }

    #[test]
    fn an_expected_number_of_hashes_fills_one_piece_handed_on_as_it_is() {
        // Fewer than expected (the expectation has a margin).
        let n = Hashes::CHUNK * 3 - 10;
        let mut h = Hashes::default();
        h.expect(Hashes::CHUNK * 3);
        for i in 0..n as u64 {
            h.push(i);
        }
        assert!(h.pieces.is_empty(), "one open piece");
        assert_eq!(h.bytes(), n * 8);
        let ptr = h.open.as_ptr();
        let b = h.clone().into_buffer();
        assert_eq!(b.len(), n);
        assert!(b.iter().copied().eq(0..n as u64));
        let moved = h.into_buffer();
        assert_eq!(moved.as_ptr(), ptr, "not copied");
        // More than expected: chunks follow, and the whole comes out in order.
        let mut h = Hashes::default();
        h.expect(Hashes::CHUNK + 5);
        let m = 3 * Hashes::CHUNK as u64 + 7;
        for i in 0..m {
            h.push(i);
        }
        assert_eq!(h.len(), m as usize);
        assert!(h.iter().copied().eq(0..m));
        assert!(h.into_buffer().iter().copied().eq(0..m));
    }

    #[test]
    fn duplicates_are_the_same_on_one_thread_or_two() {
        let p = parts();
        let one = duplicates(&p, 5, 1);
        let two = duplicates(&p, 5, 2);
        assert_eq!(one.rows, 200_000 / 7);
        assert_eq!(one.groups, one.rows);
        assert_eq!((two.rows, two.groups), (one.rows, one.groups));
        assert_eq!(two.examples, one.examples);
        assert_eq!(one.examples[0], vec![3, 6]);
    }

    proptest::proptest! {
        /// The repeats of one slice's hashes, found by buckets, equal those
        /// of counting every hash: hashes crowd into a few buckets of either
        /// level (equal bucket bytes, different low bits) or differ only in
        /// a bucket byte.
        #[test]
        fn repeats_equal_counting_every_hash(
            keys in proptest::collection::vec((0u64..3, 0u64..4, 0u64..6), 0..2_000),
        ) {
            let slice = 5u64 << 60;
            let b: Vec<u64> = keys
                .iter()
                .map(|&(outer, inner, low)| slice | (outer << 58) | (inner << 50) | low)
                .collect();
            let mut count: std::collections::BTreeMap<u64, u64> = Default::default();
            for &h in &b {
                *count.entry(h).or_default() += 1;
            }
            let want: Vec<(u64, u64)> = count.into_iter().filter(|&(_, n)| n > 1).collect();
            let mut got = Vec::new();
            repeats(&b, &mut Vec::new(), &mut Vec::new(), &mut got);
            proptest::prop_assert_eq!(got, want);
        }

        /// Rows spread over parts in interleaved batches, with groups of
        /// every size: the counts and example groups equal those of
        /// grouping all rows by hash.
        #[test]
        fn duplicates_equal_grouping_every_row(
            keys in proptest::collection::vec(0u64..400, 1..3_000),
            batch in 1usize..50,
            max in 0usize..8,
        ) {
            let mut parts = vec![RowsState::default(), RowsState::default(), RowsState::default()];
            let mut groups: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
            for (row, k) in keys.iter().enumerate() {
                let h = xxhash_rust::xxh3::xxh3_64(&k.to_le_bytes());
                // Batches go to the parts in turn, as partitions get them.
                parts[(row / batch) % 3].push(h, row as u64);
                groups.entry(h).or_default().push(row as u64);
            }
            let dup: Vec<&Vec<u64>> = groups.values().filter(|g| g.len() > 1).collect();
            let mut want: Vec<Vec<u64>> = dup.iter().map(|g| g[..g.len().min(10)].to_vec()).collect();
            want.sort();
            want.truncate(max);
            for threads in [1, 2] {
                let got = duplicates(&parts, max, threads);
                proptest::prop_assert_eq!(got.groups, dup.len() as u64);
                proptest::prop_assert_eq!(got.rows, dup.iter().map(|g| g.len() as u64 - 1).sum::<u64>());
                proptest::prop_assert_eq!(&got.examples, &want);
            }
        }
    }

    /// A partial accumulator's state as the arrays DataFusion hands the final one.
    fn state_arrays(acc: &mut RowsAcc) -> Vec<ArrayRef> {
        acc.state()
            .unwrap()
            .iter()
            .map(|v| v.to_array().unwrap())
            .collect()
    }

    #[test]
    fn row_states_round_trip_through_their_arrays() {
        let mut fin = RowsAcc::default();
        for p in parts() {
            let (len, runs, hashes) = (p.hashes.len(), p.runs.clone(), p.hashes.clone());
            let mut acc = RowsAcc {
                state: p,
                ..RowsAcc::default()
            };
            fin.merge_batch(&state_arrays(&mut acc)).unwrap();
            let back = fin.parts.last().unwrap();
            assert_eq!(back.hashes.len(), len);
            assert!(back.hashes.iter().eq(hashes.iter()));
            assert_eq!(back.runs, runs);
        }
        // The states merged give the duplicates the parts give.
        let (whole, direct) = (duplicates(&fin.parts, 5, 1), duplicates(&parts(), 5, 1));
        assert_eq!(
            (whole.rows, whole.groups, whole.examples),
            (direct.rows, direct.groups, direct.examples)
        );
        // A state whose runs do not cover its hashes is an error, not a panic.
        let mut acc = RowsAcc {
            state: parts().remove(0),
            ..RowsAcc::default()
        };
        let mut arrays = state_arrays(&mut acc);
        arrays[1] = u64_list(ScalarBuffer::from(vec![0u64, 5]))
            .to_array()
            .unwrap();
        assert!(RowsAcc::default().merge_batch(&arrays).is_err());
    }

    /// The sample is the bottom k of all rows by priority, with every value
    /// (null, empty, non-ASCII) as read, however the rows were split
    /// between partitions and batches.
    #[test]
    fn sample_is_the_bottom_k_rows_with_their_values() {
        let (n, k, seed) = (6_000u64, 75, 9);
        let value = |c: usize, i: u64| -> Option<String> {
            match (c, i % 3) {
                (0, _) => Some(format!("v{i}")),
                (1, 0) => None,
                (1, 1) => Some(String::new()),
                (1, _) => Some("é".repeat(i as usize % 5)),
                _ => (!i.is_multiple_of(4)).then(|| format!("{}", i * 7)),
            }
        };
        let batch = |ids: std::ops::Range<u64>| -> Vec<ArrayRef> {
            let mut cols: Vec<ArrayRef> =
                vec![Arc::new(UInt64Array::from_iter_values(ids.clone()))];
            for c in 0..3 {
                let v: Vec<Option<String>> = ids.clone().map(|i| value(c, i)).collect();
                cols.push(Arc::new(StringArray::from(v)));
            }
            cols
        };
        let acc = || SampleAcc {
            sample: Sample::new(k),
            seed,
        };
        let (mut a, mut b) = (acc(), acc());
        for (j, start) in (0..n).step_by(250).enumerate() {
            let part = if j % 3 == 0 { &mut a } else { &mut b };
            part.update_batch(&batch(start..(start + 250).min(n)))
                .unwrap();
        }
        let state = b.state().unwrap().remove(0).to_array().unwrap();
        a.merge_batch(&[state]).unwrap();
        let ScalarValue::Binary(Some(bytes)) = a.evaluate().unwrap() else {
            panic!("not binary")
        };
        let got: Sample = decode(&bytes).unwrap();
        let mut want: Vec<(u64, u64, Vec<Option<String>>)> = (0..n)
            .map(|i| {
                let p = xxh3_64_with_seed(&i.to_le_bytes(), seed);
                (p, i, (0..3).map(|c| value(c, i)).collect())
            })
            .collect();
        want.sort_by_key(|r| (r.0, r.1));
        want.truncate(k);
        assert_eq!(got.rows, want);
    }
}
