//! One column's profile state: updated per value, merged across partitions,
//! and finished into a [`ColumnProfile`].
//!
//! Values arrive as text. While a column has few distinct values (the
//! exact map of [`Freq`] holds them all), a value is only counted there;
//! what depends on the value alone is measured once per distinct value and
//! weighted by its count when the map is given up or the profile finished.
//! After that, each non-missing value is checked against the column's
//! sample type (so the run never aborts on a stray value; the mismatch is
//! counted), counted in [`Freq`], measured (length, whitespace), and, for
//! numeric and date types, parsed into their statistics. Shape patterns and
//! formats are exact while the column is exact; after, they are counted on
//! the values whose hash falls in one [`SHAPE_SAMPLE`]-th of the hash space,
//! each counted `SHAPE_SAMPLE` times (an estimate, flagged
//! `patterns_exact: false`).
//!
//! Examples (row ids of whitespace, mismatches, invalid formats, future
//! dates, impossible values, outliers) are the first rows found: of a
//! column measured per distinct value, the first rows of the first
//! offending values.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tamis_core::ColumnType;
use tamis_core::types::{
    DateFormat, Missing, NullTokens, is_big_int, parse_bool, parse_date, parse_datetime,
    parse_float, parse_int,
};

use crate::freq::{EXACT_EARLY, EXACT_LIMIT, Freq, value_hash};
use crate::model::*;
use crate::numeric::{Num, NumState};
use crate::shape::{NameHint, ValueFormat, detect_format, detect_if, name_hint, pattern_into};

/// Examples kept per finding.
pub const EXAMPLES: usize = 5;
/// Distinct patterns counted before the rest go to `(other)`.
const PATTERNS_MAX: usize = 64;
/// Bins of the missing-values matrix.
pub const NULL_BINS: usize = 100;
/// Past [`EXACT_LIMIT`] distinct values, shapes (patterns and formats) are
/// counted on one value in this many, chosen by value hash (so a value is
/// always in or always out, in every partition and run), and scaled up.
pub const SHAPE_SAMPLE: u64 = 16;

/// What a column's accumulator is told before it sees data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColumnSpec {
    /// Column name.
    pub name: String,
    /// 0-based position.
    pub position: usize,
    /// The type every value is checked against.
    pub sample_type: ColumnType,
    /// Whether the type was forced.
    pub forced: bool,
    /// Null tokens, as given.
    pub null_tokens: Vec<String>,
    /// The day against which "future" dates are judged.
    pub today: NaiveDate,
}

/// Counts of missing values per range of row ids; ranges double in width as rows grow.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NullBins {
    /// Rows per bin (a power of two).
    pub width: u64,
    /// Missing values per bin.
    pub counts: Vec<u64>,
}

impl NullBins {
    #[inline]
    fn add(&mut self, row: u64) {
        if self.width == 0 {
            self.width = 1;
        }
        let mut idx = row / self.width;
        while idx as usize >= NULL_BINS {
            self.coarsen();
            idx = row / self.width;
        }
        if self.counts.len() <= idx as usize {
            self.counts.resize(idx as usize + 1, 0);
        }
        self.counts[idx as usize] += 1;
    }

    fn coarsen(&mut self) {
        self.width *= 2;
        let c = std::mem::take(&mut self.counts);
        self.counts = c.chunks(2).map(|p| p.iter().sum()).collect();
    }

    /// Widens to at least `width` rows per bin.
    pub fn widen_to(&mut self, width: u64) {
        if self.width == 0 {
            self.width = width.max(1);
            return;
        }
        while self.width < width {
            self.coarsen();
        }
    }

    fn merge(&mut self, mut o: NullBins) {
        if o.width == 0 {
            return;
        }
        let w = self.width.max(o.width);
        self.widen_to(w);
        o.widen_to(w);
        if self.counts.len() < o.counts.len() {
            self.counts.resize(o.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(o.counts) {
            *a += b;
        }
    }
}

/// A bounded list of examples.
fn push_example<T>(v: &mut Vec<T>, x: T) {
    if v.len() < EXAMPLES {
        v.push(x);
    }
}

fn cut(s: &str) -> String {
    if s.chars().count() <= 100 {
        s.to_string()
    } else {
        s.chars().take(100).collect::<String>() + "…"
    }
}

/// The mergeable state of one column.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnState {
    count: u64,
    /// The smallest row id seen: orders partial states for a deterministic merge.
    first_row: u64,
    nulls: u64,
    empty: u64,
    tokens: u64,
    null_examples: Vec<u64>,
    freq: Freq,
    len_min: u64,
    len_max: u64,
    len_sum: u64,
    leading_ws: u64,
    trailing_ws: u64,
    ws_examples: Vec<u64>,
    streamed: bool,
    /// Values whose shape was estimated by sampling (0: patterns and formats exact).
    shape_sampled: u64,
    patterns: HashMap<String, u64, foldhash::fast::FixedState>,
    formats: BTreeMap<ValueFormat, u64>,
    mismatches: u64,
    mismatch_float: u64,
    mismatch_datetime: u64,
    mismatch_examples: Vec<(u64, String)>,
    big_ints: u64,
    num: Option<NumState>,
    date_min: Option<NaiveDate>,
    date_max: Option<NaiveDate>,
    date_formats: BTreeMap<DateFormat, u64>,
    future: u64,
    future_examples: Vec<(u64, String)>,
    impossible: u64,
    impossible_examples: Vec<(u64, String)>,
    invalid_format: u64,
    invalid_examples: Vec<(u64, String)>,
    null_bins: NullBins,
    #[serde(skip)]
    scratch: String,
    /// Numbers measured with their counts, waiting to be folded in together.
    #[serde(skip)]
    staged: Vec<(Num, u64, u64)>,
}

impl ColumnState {
    /// An empty state for a column of `sample_type`.
    pub fn new(sample_type: ColumnType) -> Self {
        ColumnState {
            count: 0,
            first_row: u64::MAX,
            nulls: 0,
            empty: 0,
            tokens: 0,
            null_examples: Vec::new(),
            freq: Freq::default(),
            len_min: u64::MAX,
            len_max: 0,
            len_sum: 0,
            leading_ws: 0,
            trailing_ws: 0,
            ws_examples: Vec::new(),
            streamed: false,
            shape_sampled: 0,
            patterns: HashMap::default(),
            formats: BTreeMap::new(),
            mismatches: 0,
            mismatch_float: 0,
            mismatch_datetime: 0,
            mismatch_examples: Vec::new(),
            big_ints: 0,
            num: matches!(sample_type, ColumnType::Integer | ColumnType::Float)
                .then(NumState::default),
            date_min: None,
            date_max: None,
            date_formats: BTreeMap::new(),
            future: 0,
            future_examples: Vec::new(),
            impossible: 0,
            impossible_examples: Vec::new(),
            invalid_format: 0,
            invalid_examples: Vec::new(),
            null_bins: NullBins::default(),
            scratch: String::new(),
            staged: Vec::new(),
        }
    }

    /// Counts a missing (null) value at `row`.
    #[inline]
    pub fn add_null(&mut self, row: u64) {
        self.count += 1;
        self.first_row = self.first_row.min(row);
        self.nulls += 1;
        self.null_bins.add(row);
        push_example(&mut self.null_examples, row);
    }

    /// Counts one present value at `row`.
    ///
    /// While the column is exact (and no merge has streamed it), a value is
    /// only counted in the exact map: everything else about it (length,
    /// whitespace, type, numeric and date statistics, format) depends on the
    /// value alone, so it is measured once per distinct value, weighted by
    /// its count, when the map is given up or the profile finished
    /// ([`ColumnState::stream_from_exact`]). Most columns are exact (names,
    /// codes, dates, small numbers), and most of their values repeat.
    #[inline]
    pub fn add(&mut self, raw: &str, row: u64, ctx: &Ctx) {
        self.count += 1;
        self.first_row = self.first_row.min(row);
        match ctx.nulls.classify(raw) {
            Missing::No => {}
            Missing::Empty => {
                self.empty += 1;
                self.null_bins.add(row);
                push_example(&mut self.null_examples, row);
                return;
            }
            Missing::Token => {
                self.tokens += 1;
                self.null_bins.add(row);
                push_example(&mut self.null_examples, row);
                return;
            }
        }
        // Frequencies. The exact map gives way to the sketch at EXACT_LIMIT
        // distinct values, or already at EXACT_EARLY when most values are new
        // (an id, an email: it would only fill up); what it holds is
        // measured and classified first.
        // A value the exact map holds is counted by one lookup; only a new one
        // may switch the column to the sketch.
        let counted = self.freq.bump(raw);
        if !counted
            && let Some(m) = self.freq.exact()
            && m.len() >= EXACT_EARLY
        {
            let seen = (self.count - self.missing()) as usize;
            if m.len() >= EXACT_LIMIT || m.len() * 4 > seen {
                self.stream_from_exact(ctx);
                self.freq.degrade();
            }
        }
        let shape = if self.freq.is_exact() {
            if !counted {
                self.freq.add_new(raw, row);
            }
            if !self.streamed {
                // Measured with its count later.
                return;
            }
            // Once a merge has measured the exact values (and streamed the
            // state), each further value is measured and classified as it comes.
            Some(1)
        } else {
            let h = value_hash(raw);
            self.freq.add_hashed(raw, h, row);
            self.shape_sampled += 1;
            // Sampled by value: every occurrence of a sampled value is counted.
            h.is_multiple_of(SHAPE_SAMPLE).then_some(SHAPE_SAMPLE)
        };
        self.measure(raw, row, 1, shape, ctx, false);
    }

    /// Measures a present value seen `n` times, first (or here) at `row`:
    /// length, whitespace, the sample type's parse and statistics, the
    /// expected format, and (with `shape`, counted that many times) its
    /// pattern and format. With `staged`, numbers wait in `self.staged` to
    /// be folded in together ([`NumState::add_counted`]).
    fn measure(
        &mut self,
        raw: &str,
        row: u64,
        n: u64,
        shape: Option<u64>,
        ctx: &Ctx,
        staged: bool,
    ) {
        // Length in characters (bytes when ASCII, which is the common case).
        let len = if raw.is_ascii() {
            raw.len()
        } else {
            raw.chars().count()
        } as u64;
        self.len_min = self.len_min.min(len);
        self.len_max = self.len_max.max(len);
        self.len_sum += len * n;
        let bytes = raw.as_bytes();
        let lead = bytes[0].is_ascii_whitespace() || raw.starts_with(char::is_whitespace);
        let trail =
            bytes[bytes.len() - 1].is_ascii_whitespace() || raw.ends_with(char::is_whitespace);
        if lead || trail {
            self.leading_ws += lead as u64 * n;
            self.trailing_ws += trail as u64 * n;
            push_example(&mut self.ws_examples, row);
        }
        let v = if lead || trail { raw.trim() } else { raw };
        // The format, when already detected for this value (classified values).
        let detected = shape.map(|k| self.classify(v, k * n));

        match ctx.sample_type {
            ColumnType::Integer => match parse_int(v) {
                Some(i) => {
                    self.number(Num::Int(i), row, n, staged);
                    self.check_numeric(i as f64, row, n, v, ctx);
                }
                None => match parse_float(v) {
                    Some(f) => {
                        if is_big_int(v) {
                            self.big_ints += n;
                        } else {
                            self.mismatch(row, n, v, true, false);
                        }
                        self.number(Num::Float(f), row, n, staged);
                        self.check_numeric(f, row, n, v, ctx);
                    }
                    None => self.mismatch(row, n, v, false, false),
                },
            },
            ColumnType::Float => match parse_float(v) {
                Some(f) => {
                    if is_big_int(v) {
                        self.big_ints += n;
                    }
                    self.number(Num::Float(f), row, n, staged);
                    self.check_numeric(f, row, n, v, ctx);
                }
                None => self.mismatch(row, n, v, false, false),
            },
            ColumnType::Boolean => {
                if parse_bool(v).is_none() {
                    self.mismatch(row, n, v, false, false);
                }
            }
            ColumnType::Date | ColumnType::Datetime => {
                let parsed = parse_date(v)
                    .or_else(|| parse_datetime(v).map(|dt| (dt.date(), DateFormat::IsoDatetime)));
                match parsed {
                    Some((d, f)) => {
                        if ctx.sample_type == ColumnType::Date && f == DateFormat::IsoDatetime {
                            self.mismatch(row, n, v, false, true);
                        }
                        *self.date_formats.entry(f).or_default() += n;
                        self.date_min = Some(self.date_min.map_or(d, |m| m.min(d)));
                        self.date_max = Some(self.date_max.map_or(d, |m| m.max(d)));
                        if d > ctx.spec.today {
                            self.future += n;
                            push_example(&mut self.future_examples, (row, cut(v)));
                        }
                    }
                    None => self.mismatch(row, n, v, false, false),
                }
            }
            ColumnType::String => {}
        }
        if let Some(want) = ctx.expect_format
            && detected.unwrap_or_else(|| detect_if(v, want)) != Some(want)
        {
            self.invalid_format += n;
            push_example(&mut self.invalid_examples, (row, cut(v)));
        }
    }

    /// Adds a number seen `n` times: now, or staged (see [`ColumnState::measure`]).
    #[inline]
    fn number(&mut self, x: Num, row: u64, n: u64, staged: bool) {
        if staged {
            self.staged.push((x, n, row));
        } else if let Some(s) = self.num.as_mut() {
            s.add(x, row);
        }
    }

    #[inline]
    fn check_numeric(&mut self, x: f64, row: u64, n: u64, v: &str, ctx: &Ctx) {
        if ctx.hint == Some(NameHint::Age) && !(0.0..=crate::AGE_MAX).contains(&x) {
            self.impossible += n;
            push_example(&mut self.impossible_examples, (row, cut(v)));
        }
    }

    fn mismatch(&mut self, row: u64, n: u64, v: &str, as_float: bool, as_datetime: bool) {
        self.mismatches += n;
        self.mismatch_float += as_float as u64 * n;
        self.mismatch_datetime += as_datetime as u64 * n;
        push_example(&mut self.mismatch_examples, (row, cut(v)));
    }

    /// Pattern and format of one value, counted `n` times; returns the format.
    fn classify(&mut self, v: &str, n: u64) -> Option<ValueFormat> {
        let v = v.trim();
        let mut scratch = std::mem::take(&mut self.scratch);
        pattern_into(v, &mut scratch);
        if let Some(c) = self.patterns.get_mut(scratch.as_str()) {
            *c += n;
        } else if self.patterns.len() < PATTERNS_MAX {
            self.patterns.insert(scratch.clone(), n);
        } else {
            *self.patterns.entry("(other)".to_string()).or_default() += n;
        }
        self.scratch = scratch;
        let format = detect_format(v);
        if let Some(f) = format {
            *self.formats.entry(f).or_default() += n;
        }
        format
    }

    /// Measures every value held exactly, once each and weighted by its
    /// count (see [`ColumnState::add`]), then switches to measuring each
    /// value as it comes. Values go in the order of their first rows, so the
    /// examples are the first rows of the first offending values, and the
    /// result does not depend on the map's order.
    fn stream_from_exact(&mut self, ctx: &Ctx) {
        if self.streamed {
            return;
        }
        let mut entries: Vec<(String, u64, u64)> = self
            .freq
            .known()
            .into_iter()
            .map(|(k, c, first)| (k.to_string(), c, first))
            .collect();
        entries.sort_unstable_by_key(|e| e.2);
        for (k, c, first) in &entries {
            self.measure(k, *first, *c, Some(1), ctx, true);
        }
        if !self.staged.is_empty() {
            let staged = std::mem::take(&mut self.staged);
            if let Some(num) = self.num.as_mut() {
                num.add_counted(&staged);
            }
        }
        self.streamed = true;
    }

    /// Merges another partition's state into this one.
    pub fn merge(&mut self, mut o: ColumnState, ctx: &Ctx) {
        self.first_row = self.first_row.min(o.first_row);
        let union_may_overflow = match (self.freq.exact(), o.freq.exact()) {
            (Some(a), Some(b)) => a.len() + b.len() > EXACT_LIMIT,
            _ => true,
        };
        if self.streamed || o.streamed || union_may_overflow {
            self.stream_from_exact(ctx);
            o.stream_from_exact(ctx);
            for (k, c) in o.patterns.drain() {
                if let Some(x) = self.patterns.get_mut(&k) {
                    *x += c;
                } else if self.patterns.len() < PATTERNS_MAX {
                    self.patterns.insert(k, c);
                } else {
                    *self.patterns.entry("(other)".to_string()).or_default() += c;
                }
            }
            for (k, c) in std::mem::take(&mut o.formats) {
                *self.formats.entry(k).or_default() += c;
            }
        }
        self.count += o.count;
        self.nulls += o.nulls;
        self.empty += o.empty;
        self.tokens += o.tokens;
        merge_examples(&mut self.null_examples, o.null_examples);
        self.freq.merge(o.freq);
        self.shape_sampled += o.shape_sampled;
        self.len_min = self.len_min.min(o.len_min);
        self.len_max = self.len_max.max(o.len_max);
        self.len_sum += o.len_sum;
        self.leading_ws += o.leading_ws;
        self.trailing_ws += o.trailing_ws;
        merge_examples(&mut self.ws_examples, o.ws_examples);
        self.mismatches += o.mismatches;
        self.mismatch_float += o.mismatch_float;
        self.mismatch_datetime += o.mismatch_datetime;
        merge_examples(&mut self.mismatch_examples, o.mismatch_examples);
        self.big_ints += o.big_ints;
        match (self.num.as_mut(), o.num) {
            (Some(a), Some(b)) => a.merge(b),
            (None, Some(b)) => self.num = Some(b),
            _ => {}
        }
        self.date_min = opt_min(self.date_min, o.date_min);
        self.date_max = opt_max(self.date_max, o.date_max);
        for (k, c) in o.date_formats {
            *self.date_formats.entry(k).or_default() += c;
        }
        self.future += o.future;
        merge_examples(&mut self.future_examples, o.future_examples);
        self.impossible += o.impossible;
        merge_examples(&mut self.impossible_examples, o.impossible_examples);
        self.invalid_format += o.invalid_format;
        merge_examples(&mut self.invalid_examples, o.invalid_examples);
        self.null_bins.merge(o.null_bins);
    }

    /// Widens the missing-value bins to the dataset's final bin width.
    pub fn null_bins_mut(&mut self) -> &mut NullBins {
        &mut self.null_bins
    }

    /// Missing values (nulls, empties, tokens).
    pub fn missing(&self) -> u64 {
        self.nulls + self.empty + self.tokens
    }

    /// Finishes into the profile of the column.
    pub fn finish(mut self, spec: &ColumnSpec) -> ColumnProfile {
        self.stream_from_exact(&Ctx::new(spec.clone()));
        let present = self.count - self.missing();
        let hint = name_hint(&spec.name);
        let inferred = if self.mismatches == 0 {
            if spec.sample_type == ColumnType::Integer && self.big_ints > 0 {
                ColumnType::Float
            } else {
                spec.sample_type
            }
        } else if spec.forced {
            spec.sample_type
        } else if spec.sample_type == ColumnType::Integer && self.mismatch_float == self.mismatches
        {
            ColumnType::Float
        } else if spec.sample_type == ColumnType::Date && self.mismatch_datetime == self.mismatches
        {
            ColumnType::Datetime
        } else {
            ColumnType::String
        };
        let distinct = self.freq.distinct();
        // A column sampled as numeric keeps its statistics over the values that
        // parse even when later text makes it a string column.
        let numeric = if matches!(inferred, ColumnType::Integer | ColumnType::Float)
            || matches!(spec.sample_type, ColumnType::Integer | ColumnType::Float)
        {
            self.num.take().filter(|n| n.n > 0).map(|mut n| {
                n.finish();
                numeric_stats(&n, self.big_ints)
            })
        } else {
            None
        };
        // Likewise dates: their formats and range stay beside the values that do not parse.
        let dates = (matches!(inferred, ColumnType::Date | ColumnType::Datetime)
            || matches!(spec.sample_type, ColumnType::Date | ColumnType::Datetime))
        .then(|| {
            let mut formats: Vec<ValueCount> = self
                .date_formats
                .iter()
                .map(|(f, c)| ValueCount {
                    value: f.label().to_string(),
                    count: *c,
                })
                .collect();
            formats.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
            DateStats {
                min: self.date_min.map(|d| d.to_string()),
                max: self.date_max.map(|d| d.to_string()),
                formats,
                future: self.future,
            }
        });
        let mut patterns: Vec<ValueCount> = self
            .patterns
            .iter()
            .map(|(p, c)| ValueCount {
                value: p.clone(),
                count: *c,
            })
            .collect();
        patterns.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
        patterns.truncate(10);
        let mut formats: Vec<ValueCount> = self
            .formats
            .iter()
            .map(|(f, c)| ValueCount {
                value: f.name().to_string(),
                count: *c,
            })
            .collect();
        formats.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
        let top_values: Vec<ValueCount> = self
            .freq
            .top(10)
            .into_iter()
            .map(|(v, c)| ValueCount {
                value: cut(&v),
                count: c,
            })
            .collect();
        let variants = variant_groups(&self.freq);
        let semantic_type = semantic_type(
            inferred,
            hint,
            &formats,
            present,
            distinct,
            self.len_sum,
            &self.freq,
        );
        let impossible = (hint == Some(NameHint::Age) && numeric.is_some()).then(|| RuleCount {
            rule: format!("age between 0 and {}", crate::AGE_MAX),
            count: self.impossible,
            examples: examples(&self.impossible_examples),
        });
        let impossible = impossible.or_else(|| {
            (hint == Some(NameHint::BirthDate) && dates.is_some()).then(|| RuleCount {
                rule: format!("birth date not after {}", spec.today),
                count: self.future,
                examples: examples(&self.future_examples),
            })
        });
        let invalid_format = expected_format(hint).map(|f| RuleCount {
            rule: format!("values are {}", f.name()),
            count: self.invalid_format,
            examples: examples(&self.invalid_examples),
        });
        ColumnProfile {
            name: spec.name.clone(),
            position: spec.position,
            inferred_type: inferred,
            sample_type: spec.sample_type,
            type_forced: spec.forced,
            semantic_type,
            count: self.count,
            nulls: self.nulls,
            empty: self.empty,
            null_tokens: self.tokens,
            missing: self.missing(),
            missing_ratio: ratio(self.missing(), self.count),
            distinct,
            distinct_exact: self.freq.is_exact(),
            unique_ratio: ratio(distinct.min(present), present),
            type_mismatches: self.mismatches,
            mismatch_examples: examples(&self.mismatch_examples),
            numeric,
            dates,
            text: TextStats {
                min_length: if present == 0 { 0 } else { self.len_min },
                mean_length: ratio(self.len_sum, present),
                max_length: self.len_max,
                leading_whitespace: self.leading_ws,
                trailing_whitespace: self.trailing_ws,
                whitespace_examples: self.ws_examples.clone(),
            },
            top_values,
            top_values_error: self.freq.error(),
            variants,
            patterns_exact: self.shape_sampled == 0,
            patterns,
            formats,
            impossible,
            invalid_format,
        }
    }

    /// Row ids of the first missing values.
    pub fn null_examples(&self) -> &[u64] {
        &self.null_examples
    }

    /// The missing-value bins.
    pub fn null_bins(&self) -> &NullBins {
        &self.null_bins
    }
}

/// Per-column context the hot loop reads (built once per accumulator).
#[derive(Debug)]
pub struct Ctx {
    /// The spec.
    pub spec: ColumnSpec,
    /// The sample type.
    pub sample_type: ColumnType,
    /// Null tokens.
    pub nulls: NullTokens,
    /// The name's hint.
    pub hint: Option<NameHint>,
    /// The format the name promises, checked per value.
    pub expect_format: Option<ValueFormat>,
}

impl Ctx {
    /// Builds the context of a column.
    pub fn new(spec: ColumnSpec) -> Self {
        let hint = name_hint(&spec.name);
        Ctx {
            sample_type: spec.sample_type,
            nulls: NullTokens::new(spec.null_tokens.iter().cloned()),
            hint,
            expect_format: if spec.sample_type == ColumnType::String {
                expected_format(hint)
            } else {
                None
            },
            spec,
        }
    }
}

fn expected_format(hint: Option<NameHint>) -> Option<ValueFormat> {
    match hint? {
        NameHint::Email => Some(ValueFormat::Email),
        NameHint::Phone => Some(ValueFormat::Phone),
        NameHint::Url => Some(ValueFormat::Url),
        NameHint::Ip => Some(ValueFormat::Ipv4),
        _ => None,
    }
}

fn merge_examples<T: Ord>(a: &mut Vec<T>, b: Vec<T>) {
    a.extend(b);
    a.sort();
    a.truncate(EXAMPLES);
}

fn examples(v: &[(u64, String)]) -> Vec<Example> {
    v.iter()
        .map(|(r, s)| Example {
            row_id: *r,
            value: s.clone(),
        })
        .collect()
}

fn opt_min<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn opt_max<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// `a / b`, 0 when `b` is 0.
pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn normalize_variant(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn variant_groups(freq: &Freq) -> Vec<VariantGroup> {
    let mut groups: HashMap<String, Vec<(&str, u64, u64)>> = HashMap::new();
    for (k, c, first) in freq.known() {
        groups
            .entry(normalize_variant(k))
            .or_default()
            .push((k, c, first));
    }
    let mut out: Vec<VariantGroup> = groups
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort_by(|a, b| tamis_core::types::canonical_order((a.0, a.1), (b.0, b.1)));
            // The canonical spelling first, the others most frequent first.
            g[1..].sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let variant_rows = g[1..].iter().map(|x| x.1).sum();
            let mut example_row_ids: Vec<u64> = g[1..].iter().map(|x| x.2).collect();
            example_row_ids.sort();
            example_row_ids.truncate(EXAMPLES);
            VariantGroup {
                canonical: g[0].0.to_string(),
                values: g
                    .iter()
                    .take(10)
                    .map(|x| ValueCount {
                        value: cut(x.0),
                        count: x.1,
                    })
                    .collect(),
                variant_rows,
                example_row_ids,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.variant_rows
            .cmp(&a.variant_rows)
            .then(a.canonical.cmp(&b.canonical))
    });
    out.truncate(20);
    out
}

fn semantic_type(
    t: ColumnType,
    hint: Option<NameHint>,
    formats: &[ValueCount],
    present: u64,
    distinct: u64,
    len_sum: u64,
    freq: &Freq,
) -> String {
    let dominant = formats
        .first()
        .filter(|f| present > 0 && f.count as f64 >= 0.8 * present as f64)
        .map(|f| f.value.as_str());
    let unique = present > 0 && distinct as f64 >= 0.99 * present as f64;
    let s = match (t, hint, dominant) {
        (_, Some(NameHint::Id), _) if unique => "identifier",
        (ColumnType::Date | ColumnType::Datetime, Some(NameHint::BirthDate), _) => "birth_date",
        (ColumnType::Date, _, _) => "date",
        (ColumnType::Datetime, _, _) => "datetime",
        (ColumnType::Boolean, _, _) => "boolean",
        (ColumnType::Integer | ColumnType::Float, Some(NameHint::Age), _) => "age",
        (ColumnType::Integer | ColumnType::Float, Some(NameHint::Money), _) => "money",
        (_, Some(NameHint::Postcode), _) => "postcode",
        (_, Some(NameHint::Phone), _) | (ColumnType::String, _, Some("phone")) => "phone",
        (_, _, Some("email")) | (_, Some(NameHint::Email), _) => "email",
        (_, _, Some("url")) => "url",
        (_, _, Some("ipv4" | "ipv6")) => "ip_address",
        (_, _, Some("uuid")) => "uuid",
        (_, _, Some("card_like")) => "payment_card",
        (ColumnType::String, Some(NameHint::PersonName), _) => "person_name",
        (ColumnType::String, Some(NameHint::City), _) => "city",
        (ColumnType::String, Some(NameHint::State), _) => "state",
        (ColumnType::String, Some(NameHint::Country), _) => "country",
        (ColumnType::String, Some(NameHint::Address), _) => "address",
        (ColumnType::Integer, _, _) if unique && present > 1 => "identifier",
        (ColumnType::Integer | ColumnType::Float, _, _) => "numeric",
        (ColumnType::String, _, Some("date")) => "date_text",
        (ColumnType::String, _, _) => {
            let mean_len = ratio(len_sum, present);
            let spaces = freq.top(20).iter().filter(|(v, _)| v.contains(' ')).count();
            if distinct <= 50 || (present > 0 && (distinct as f64) < 0.01 * present as f64) {
                "categorical"
            } else if mean_len > 30.0 || spaces > 10 {
                "free_text"
            } else if unique {
                "identifier"
            } else {
                "text"
            }
        }
    };
    s.to_string()
}

fn numeric_stats(n: &NumState, big_ints: u64) -> NumericStats {
    let q = |p: f64| n.quantile(p).unwrap_or(f64::NAN);
    let quantiles = Quantiles {
        p1: q(0.01),
        p5: q(0.05),
        p25: q(0.25),
        p50: q(0.5),
        p75: q(0.75),
        p95: q(0.95),
        p99: q(0.99),
    };
    let count_outside = |lo: f64, hi: f64| -> u64 {
        let below = if lo <= n.min { 0.0 } else { n.cdf_below(lo) };
        let above = if hi >= n.max { 0.0 } else { 1.0 - n.cdf(hi) };
        ((below + above) * n.n as f64).round() as u64
    };
    let outside_examples = |lo: f64, hi: f64| -> Vec<Example> {
        let mut ex: Vec<(f64, u64)> = n
            .highest
            .iter()
            .filter(|x| x.0 > hi)
            .chain(n.lowest.iter().filter(|x| x.0 < lo))
            .copied()
            .collect();
        ex.sort_by_key(|a| a.1);
        ex.dedup_by_key(|x| x.1);
        ex.into_iter()
            .take(EXAMPLES)
            .map(|(v, r)| Example {
                row_id: r,
                value: fmt_num(v),
            })
            .collect()
    };
    // Exact from the values themselves when the column had few enough of
    // them; else from the digest and the kept extremes.
    let outside = |lo: f64, hi: f64| -> (u64, Vec<Example>) {
        match n.exact_outside(lo, hi) {
            Some((count, firsts)) => (
                count,
                firsts
                    .into_iter()
                    .map(|(v, r)| Example {
                        row_id: r,
                        value: fmt_num(v),
                    })
                    .collect(),
            ),
            None => (
                exact_or(count_outside(lo, hi), n, lo, hi),
                outside_examples(lo, hi),
            ),
        }
    };
    let iqr = quantiles.p75 - quantiles.p25;
    let (lo, hi) = (quantiles.p25 - 1.5 * iqr, quantiles.p75 + 1.5 * iqr);
    let (count, examples) = outside(lo, hi);
    let iqr_rule = OutlierRule {
        lower: lo,
        upper: hi,
        count,
        examples,
    };
    let median = quantiles.p50;
    let spread = crate::numeric::robust_sigma(mad_estimate(n, median), || n.mean_abs_dev(median));
    let (zlo, zhi) = (median - 3.5 * spread, median + 3.5 * spread);
    let (count, examples) = if spread > 0.0 {
        outside(zlo, zhi)
    } else {
        (0, Vec::new())
    };
    let z_rule = OutlierRule {
        lower: zlo,
        upper: zhi,
        count,
        examples,
    };
    NumericStats {
        count: n.n,
        min: n.min,
        max: n.max,
        mean: n.mean,
        std: n.variance().map(f64::sqrt),
        variance: n.variance(),
        sum: n.total(),
        zeros: n.zeros,
        negatives: n.negatives,
        infinite: n.infinite,
        big_integers: big_ints,
        exact: n.is_exact(),
        histogram: histogram(n, &quantiles),
        quantiles,
        outliers: Outliers {
            iqr: iqr_rule,
            robust_z: z_rule,
        },
    }
}

/// When every value outside the bounds is among the kept extremes, the
/// count is exact; otherwise the t-digest estimate stands.
fn exact_or(estimate: u64, n: &NumState, lo: f64, hi: f64) -> u64 {
    let above = n.highest.iter().filter(|x| x.0 > hi).count();
    let below = n.lowest.iter().filter(|x| x.0 < lo).count();
    let k = crate::numeric::EXTREMES;
    let exact_above = (above < k || n.highest.len() < k).then_some(above as u64);
    let exact_below = (below < k || n.lowest.len() < k).then_some(below as u64);
    match (exact_above, exact_below) {
        (Some(a), Some(b)) => a + b,
        _ => estimate.max((above + below) as u64),
    }
}

fn mad_estimate(n: &NumState, median: f64) -> f64 {
    // Half the values or more at the median: the MAD is 0 (bisecting would
    // only approach it).
    if n.cdf(median) - n.cdf_below(median) >= 0.5 {
        return 0.0;
    }
    // The MAD is the d with F(m + d) − F(m − d) = 1/2; bisect on d.
    let (mut lo, mut hi) = (0.0, (n.max - n.min).max(0.0));
    if hi == 0.0 {
        return 0.0;
    }
    for _ in 0..60 {
        let d = (lo + hi) / 2.0;
        if n.cdf(median + d) - n.cdf_below(median - d) < 0.5 {
            lo = d
        } else {
            hi = d
        }
    }
    (lo + hi) / 2.0
}

fn histogram(n: &NumState, q: &Quantiles) -> Histogram {
    const BINS: usize = 20;
    let (mut lo, mut hi) = (n.min, n.max);
    // Extreme values would squeeze everything into one bin: cut to p1..p99.
    if (q.p99 - q.p1) > 0.0 && (n.max - n.min) > 20.0 * (q.p99 - q.p1) {
        lo = q.p1;
        hi = q.p99;
    }
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return Histogram {
            edges: vec![lo, hi],
            counts: vec![n.n],
            below: 0,
            above: 0,
        };
    }
    let edges: Vec<f64> = (0..=BINS)
        .map(|i| lo + (hi - lo) * i as f64 / BINS as f64)
        .collect();
    let total = n.n as f64;
    let cdf = |x: f64| {
        if x >= n.max {
            1.0
        } else if x < n.min {
            0.0
        } else {
            n.cdf(x)
        }
    };
    // Round the cumulative counts, not each bin, so that below + bins + above
    // add up to exactly the values counted.
    let mut counts = Vec::with_capacity(BINS);
    let below = if lo <= n.min {
        0
    } else {
        (n.cdf_below(lo) * total).round() as u64
    };
    let mut prev_cum = below;
    for e in &edges[1..] {
        let cum = ((cdf(*e) * total).round() as u64).max(prev_cum);
        counts.push(cum - prev_cum);
        prev_cum = cum;
    }
    let above = n.n.saturating_sub(prev_cum);
    Histogram {
        edges,
        counts,
        below,
        above,
    }
}

/// Formats a number without needless decimals.
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.is_finite() && v != 0.0 && !(1e-5..1e15).contains(&v.abs()) {
        // Plain notation would spell 1e308 in 309 digits.
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

impl ColumnState {
    /// Rows seen (present and missing).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Merges partial states in a fixed order (by the first row each saw), so
    /// that the order in which partitions finish cannot change the result:
    /// sketches (t-digest, pattern caps) and float sums depend on merge order.
    /// `None` when every state is empty.
    pub fn merge_all(mut states: Vec<ColumnState>, ctx: &Ctx) -> Option<ColumnState> {
        // Empty partials (a partition that got no batch) add nothing.
        states.retain(|s| s.count > 0);
        states.sort_by_key(|s| (s.first_row, s.count));
        let mut it = states.into_iter();
        let mut acc = it.next()?;
        for s in it {
            acc.merge(s, ctx);
        }
        Some(acc)
    }
}
