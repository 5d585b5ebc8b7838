//! The profile as it is written out (`--json`), schema version [`SCHEMA_VERSION`].
//!
//! Every field is documented in `docs/profile-json.md`; a test checks that
//! each field the output carries is documented there, and the reverse.

use serde::{Deserialize, Serialize};
use tamis_core::{ColumnType, FileInfo, QuarantineSummary};

/// The version of this output schema. Bumped on any incompatible change.
pub const SCHEMA_VERSION: &str = "tamis.profile/1";

/// A dataset profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: String,
    /// The tamis version that wrote it.
    pub tamis_version: String,
    /// Dataset-level facts.
    pub dataset: DatasetSummary,
    /// One entry per column, in source order.
    pub columns: Vec<ColumnProfile>,
    /// Strongest Pearson correlations between numeric columns.
    pub correlations: Vec<Correlation>,
    /// Pearson r for every pair of numeric columns (at most 50 columns).
    pub correlation_matrix: CorrelationMatrix,
    /// Strongest Cramér's V associations between categorical columns.
    pub associations: Vec<Correlation>,
    /// Exact duplicate rows.
    pub duplicates: Duplicates,
    /// Missing values per column over row ranges.
    pub missing_matrix: MissingMatrix,
    /// The quality score and its parts.
    pub quality: Quality,
    /// Everything found wrong, most severe first.
    pub issues: Vec<Issue>,
}

/// Dataset-level facts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSummary {
    /// The files read and what was detected about each.
    pub sources: Vec<FileInfo>,
    /// Rows profiled (quarantined rows not included).
    pub rows: u64,
    /// Number of columns.
    pub columns: usize,
    /// Rows that could not be read.
    pub quarantine: QuarantineSummary,
    /// `Some(N)` when only the first N rows were read (`--sample N`).
    pub sample_limit: Option<u64>,
    /// Columns with more than 50 % missing values.
    pub low_quality_columns: Vec<String>,
    /// Columns with at most one distinct value.
    pub constant_columns: Vec<String>,
    /// Columns whose values identify rows (unique, complete).
    pub id_like_columns: Vec<String>,
    /// Wall-clock seconds the profile took.
    pub seconds: f64,
}

/// A value and how often it occurs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ValueCount {
    /// The value.
    pub value: String,
    /// Rows holding it.
    pub count: u64,
}

/// A row id with the value found there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// The row id.
    pub row_id: u64,
    /// The value (cut to 100 characters).
    pub value: String,
}

/// The profile of one column.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnProfile {
    /// Column name.
    pub name: String,
    /// 0-based position.
    pub position: usize,
    /// The type after seeing every value.
    pub inferred_type: ColumnType,
    /// The type the sample (or `--schema`) gave.
    pub sample_type: ColumnType,
    /// Whether the type was forced (`--schema` or a typed format).
    pub type_forced: bool,
    /// What the column holds (email, age, identifier, categorical, ...).
    pub semantic_type: String,
    /// Rows.
    pub count: u64,
    /// True nulls (empty fields in CSV).
    pub nulls: u64,
    /// Empty or whitespace-only strings.
    pub empty: u64,
    /// Null tokens such as `NA`, `null`, `-`.
    pub null_tokens: u64,
    /// nulls + empty + null tokens.
    pub missing: u64,
    /// missing / count.
    pub missing_ratio: f64,
    /// Distinct non-missing values.
    pub distinct: u64,
    /// Whether `distinct` is exact (else a HyperLogLog estimate, ±2.5 %).
    pub distinct_exact: bool,
    /// distinct / non-missing values.
    pub unique_ratio: f64,
    /// Non-missing values that are not of `sample_type`.
    pub type_mismatches: u64,
    /// The first values that did not fit.
    pub mismatch_examples: Vec<Example>,
    /// Numeric statistics, for integer and float columns.
    pub numeric: Option<NumericStats>,
    /// Date statistics, for date and datetime columns.
    pub dates: Option<DateStats>,
    /// String statistics over non-missing values.
    pub text: TextStats,
    /// Most frequent values.
    pub top_values: Vec<ValueCount>,
    /// The most any top count may be low by (0 when exact).
    pub top_values_error: u64,
    /// Groups of values that differ only in case or whitespace.
    pub variants: Vec<VariantGroup>,
    /// Whether pattern and format counts are exact (false: estimated from a
    /// value-hash sample, on columns past the exact distinct-value limit).
    /// Profiles written before this field were exact.
    #[serde(default = "exact_before")]
    pub patterns_exact: bool,
    /// Most frequent shape patterns (`Aa`, `999-9999`).
    pub patterns: Vec<ValueCount>,
    /// Recognised formats and how many values have each.
    pub formats: Vec<ValueCount>,
    /// Values impossible for the column's meaning (age < 0 or > 130, birth dates in the future).
    pub impossible: Option<RuleCount>,
    /// Values not in the format the column's name promises (email, phone, ...).
    pub invalid_format: Option<RuleCount>,
}

/// Values breaking a rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleCount {
    /// The rule.
    pub rule: String,
    /// Values breaking it.
    pub count: u64,
    /// Some of them.
    pub examples: Vec<Example>,
}

/// Values equal up to case and whitespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantGroup {
    /// The canonical spelling ([`tamis_core::types::canonical_order`]).
    pub canonical: String,
    /// Every spelling with its count: the canonical first, then most frequent first.
    pub values: Vec<ValueCount>,
    /// Rows not spelled the canonical way.
    pub variant_rows: u64,
    /// First row id of each non-canonical spelling.
    pub example_row_ids: Vec<u64>,
}

/// String statistics.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TextStats {
    /// Shortest length in characters.
    pub min_length: u64,
    /// Mean length in characters.
    pub mean_length: f64,
    /// Longest length in characters.
    pub max_length: u64,
    /// Values starting with whitespace.
    pub leading_whitespace: u64,
    /// Values ending with whitespace.
    pub trailing_whitespace: u64,
    /// First row ids with leading or trailing whitespace.
    pub whitespace_examples: Vec<u64>,
}

/// Numeric statistics. Exact except quantiles, histogram counts and outlier counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericStats {
    /// Finite values.
    pub count: u64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub std: Option<f64>,
    /// Sample variance.
    pub variance: Option<f64>,
    /// Sum (exact for integers).
    pub sum: f64,
    /// Zeros.
    pub zeros: u64,
    /// Negative values.
    pub negatives: u64,
    /// Infinite values (`inf`, `-inf`).
    pub infinite: u64,
    /// Integers too large for 64 bits (read as floats).
    pub big_integers: u64,
    /// Whether the quantiles, histogram and outlier counts are exact (every
    /// value was counted exactly); else they are t-digest estimates.
    /// (Absent from profiles written before it: read as false.)
    #[serde(default)]
    pub exact: bool,
    /// Quantiles: exact (nearest rank), or from a t-digest (rank error < 1 %).
    pub quantiles: Quantiles,
    /// Equal-width histogram (counts exact, or from the t-digest).
    pub histogram: Histogram,
    /// Outliers by IQR fences and robust z.
    pub outliers: Outliers,
}

/// Quantiles.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantiles {
    /// 1st percentile.
    pub p1: f64,
    /// 5th percentile.
    pub p5: f64,
    /// 25th percentile.
    pub p25: f64,
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// A histogram.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Histogram {
    /// Bin edges (bins + 1 values).
    pub edges: Vec<f64>,
    /// Values per bin.
    pub counts: Vec<u64>,
    /// Values below the first edge (when the range is cut to p1..p99 because of extreme values).
    pub below: u64,
    /// Values above the last edge.
    pub above: u64,
}

/// Outlier summaries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outliers {
    /// Tukey fences: below p25 − 1.5·IQR or above p75 + 1.5·IQR.
    pub iqr: OutlierRule,
    /// Modified z (0.6745·|x − median| / MAD) above 3.5.
    pub robust_z: OutlierRule,
}

/// One outlier rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierRule {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// Estimated values outside the bounds.
    pub count: u64,
    /// The most extreme values outside, with row ids.
    pub examples: Vec<Example>,
}

/// Date statistics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateStats {
    /// Earliest date (ISO).
    pub min: Option<String>,
    /// Latest date (ISO).
    pub max: Option<String>,
    /// Formats seen with counts, most frequent first.
    pub formats: Vec<ValueCount>,
    /// Dates after the profile day.
    pub future: u64,
}

/// A pairwise measure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Correlation {
    /// First column.
    pub a: String,
    /// Second column.
    pub b: String,
    /// Pearson r (−1..1) or Cramér's V (0..1).
    pub value: f64,
    /// Rows of the sample it was computed on.
    pub rows: u64,
}

/// A square matrix of Pearson correlations.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CorrelationMatrix {
    /// The numeric columns, in order.
    pub columns: Vec<String>,
    /// `values[i][j]`: r between columns i and j (`None` when undefined).
    pub values: Vec<Vec<Option<f64>>>,
}

/// Exact duplicate rows.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Duplicates {
    /// Rows identical to an earlier row.
    pub rows: u64,
    /// Groups of identical rows.
    pub groups: u64,
    /// The first groups: row ids of each.
    pub examples: Vec<Vec<u64>>,
}

/// Missing values per column over equal row ranges.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MissingMatrix {
    /// Rows per bin.
    pub bin_rows: u64,
    /// Per column (source order): missing fraction per bin.
    pub columns: Vec<Vec<f64>>,
}

/// The quality score: `0.4·completeness + 0.3·validity + 0.15·uniqueness + 0.15·consistency`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Quality {
    /// The score, 0..1.
    pub score: f64,
    /// 1 − missing cells / cells.
    pub completeness: f64,
    /// 1 − (type mismatches + impossible + invalid-format values + quarantined rows × columns) / cells.
    pub validity: f64,
    /// 1 − duplicate rows / rows.
    pub uniqueness: f64,
    /// 1 − (case/whitespace variant cells + padded cells + minority date-format cells) / cells.
    pub consistency: f64,
}

/// Severity of an issue.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Likely to hurt analysis.
    Warning,
    /// Wrong data.
    Error,
}

/// Something wrong with the data: the input of cleaning suggestions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issue {
    /// The column, or `None` for dataset-level issues.
    pub column: Option<String>,
    /// Issue kind (`missing_values`, `type_mismatch`, `outliers`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// How bad.
    pub severity: Severity,
    /// Values or rows affected.
    pub count: u64,
    /// One sentence.
    pub description: String,
    /// Some affected rows.
    pub example_row_ids: Vec<u64>,
}

fn exact_before() -> bool {
    true
}
