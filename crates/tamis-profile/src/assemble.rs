//! From merged states to a [`Profile`]: dataset facts, pairwise measures on
//! the row sample, the missing-values matrix, the quality score and issues.

use std::collections::{BTreeMap, HashMap};

use tamis_core::{ColumnType, Dataset, QuarantineSummary};

use crate::column::{ColumnSpec, ColumnState, NULL_BINS, ratio};
use crate::model::*;
use crate::udaf::{DuplicateSummary, Sample};

/// Everything the aggregate query produced.
pub struct Parts<'a> {
    /// The dataset.
    pub dataset: &'a Dataset,
    /// Column specs, in order.
    pub specs: Vec<ColumnSpec>,
    /// Merged column states, in order.
    pub states: Vec<ColumnState>,
    /// Exact duplicate rows and the row count they were found in.
    pub rows: DuplicateSummary,
    /// Row sample.
    pub sample: Sample,
    /// What was quarantined.
    pub quarantine: QuarantineSummary,
    /// Seconds so far.
    pub seconds: f64,
}

/// Pairwise measures kept.
const TOP_PAIRS: usize = 10;
/// Most numeric columns correlated pairwise.
const MAX_NUMERIC: usize = 50;
/// Most categorical columns associated pairwise, and most categories each.
const MAX_CATEGORICAL: usize = 30;
const MAX_CATEGORIES: u64 = 50;

/// Builds the profile.
pub fn assemble(p: Parts<'_>) -> Profile {
    let rows = p.states.first().map(s_count).unwrap_or(p.rows.total);
    // Missing matrix: one bin width for every column.
    let width = p
        .states
        .iter()
        .map(|s| s.null_bins().width)
        .max()
        .unwrap_or(1)
        .max(rows.div_ceil(NULL_BINS as u64))
        .max(1);
    let width = width.next_power_of_two();
    let nbins = rows.div_ceil(width) as usize;
    let mut matrix = Vec::with_capacity(p.states.len());
    let mut null_examples = Vec::with_capacity(p.states.len());
    let mut states = p.states;
    for s in states.iter_mut() {
        null_examples.push(s.null_examples().to_vec());
        let b = s.null_bins_mut();
        b.widen_to(width);
        let counts = b.counts.clone();
        matrix.push(
            (0..nbins)
                .map(|i| {
                    let in_bin = (rows - (i as u64 * width)).min(width);
                    ratio(counts.get(i).copied().unwrap_or(0), in_bin)
                })
                .collect(),
        );
    }
    let columns: Vec<ColumnProfile> = states
        .into_iter()
        .zip(&p.specs)
        .map(|(s, spec)| s.finish(spec))
        .collect();
    let duplicates = p.rows.found;
    let dup_rows = duplicates.rows;
    let (correlations, correlation_matrix) = pearson(&columns, &p.sample);
    let associations = cramers_v(&columns, &p.sample);

    let low_quality_columns = columns
        .iter()
        .filter(|c| c.missing_ratio > 0.5)
        .map(|c| c.name.clone())
        .collect();
    let constant_columns = columns
        .iter()
        .filter(|c| c.distinct <= 1 && c.count > 0)
        .map(|c| c.name.clone())
        .collect();
    let id_like_columns = columns
        .iter()
        .filter(|c| {
            c.count > 1
                && c.missing == 0
                && c.unique_ratio >= 0.99
                && matches!(c.inferred_type, ColumnType::Integer | ColumnType::String)
                && c.semantic_type != "free_text"
        })
        .map(|c| c.name.clone())
        .collect();
    let quality = quality(&columns, rows, dup_rows, &p.quarantine);
    let issues = issues(&columns, &null_examples, &duplicates, &p.quarantine, rows);
    Profile {
        schema_version: SCHEMA_VERSION.to_string(),
        tamis_version: env!("CARGO_PKG_VERSION").to_string(),
        dataset: DatasetSummary {
            sources: p.dataset.files(),
            rows,
            columns: columns.len(),
            quarantine: p.quarantine,
            sample_limit: p.dataset.options().limit,
            low_quality_columns,
            constant_columns,
            id_like_columns,
            seconds: p.seconds,
        },
        columns,
        correlations,
        correlation_matrix,
        associations,
        duplicates,
        missing_matrix: MissingMatrix {
            bin_rows: width,
            columns: matrix,
        },
        quality,
        issues,
    }
}

fn s_count(s: &ColumnState) -> u64 {
    // count is private to the column module; missing + present via finish would consume it.
    s.count()
}

fn pearson(cols: &[ColumnProfile], sample: &Sample) -> (Vec<Correlation>, CorrelationMatrix) {
    let numeric: Vec<usize> = cols
        .iter()
        .filter(|c| c.numeric.is_some())
        .map(|c| c.position)
        .take(MAX_NUMERIC)
        .collect();
    let parsed: Vec<Vec<Option<f64>>> = numeric
        .iter()
        .map(|&i| {
            sample
                .rows
                .iter()
                .map(|r| {
                    r.2.get(i)
                        .and_then(|v| v.as_deref())
                        .and_then(|v| tamis_core::types::parse_float(v.trim()))
                })
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    let k = numeric.len();
    let mut values = vec![vec![None; k]; k];
    for (i, row) in values.iter_mut().enumerate() {
        row[i] = Some(1.0);
    }
    for a in 0..numeric.len() {
        for b in a + 1..numeric.len() {
            let (mut n, mut sx, mut sy, mut sxx, mut syy, mut sxy) =
                (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
            // Two passes over pairs for stability: means first.
            for (x, y) in parsed[a].iter().zip(&parsed[b]) {
                if let (Some(x), Some(y)) = (x, y) {
                    n += 1.0;
                    sx += x;
                    sy += y;
                }
            }
            if n < 3.0 {
                continue;
            }
            let (mx, my) = (sx / n, sy / n);
            for (x, y) in parsed[a].iter().zip(&parsed[b]) {
                if let (Some(x), Some(y)) = (x, y) {
                    sxx += (x - mx) * (x - mx);
                    syy += (y - my) * (y - my);
                    sxy += (x - mx) * (y - my);
                }
            }
            if sxx > 0.0 && syy > 0.0 {
                let r = sxy / (sxx * syy).sqrt();
                values[a][b] = Some(r);
                values[b][a] = Some(r);
                out.push(Correlation {
                    a: cols[numeric[a]].name.clone(),
                    b: cols[numeric[b]].name.clone(),
                    value: sxy / (sxx * syy).sqrt(),
                    rows: n as u64,
                });
            }
        }
    }
    out.sort_by(|x, y| {
        y.value
            .abs()
            .total_cmp(&x.value.abs())
            .then(x.a.cmp(&y.a))
            .then(x.b.cmp(&y.b))
    });
    out.truncate(TOP_PAIRS);
    let columns = numeric.iter().map(|&i| cols[i].name.clone()).collect();
    (out, CorrelationMatrix { columns, values })
}

fn cramers_v(cols: &[ColumnProfile], sample: &Sample) -> Vec<Correlation> {
    let cats: Vec<usize> = cols
        .iter()
        .filter(|c| {
            matches!(c.inferred_type, ColumnType::String | ColumnType::Boolean)
                && c.distinct >= 2
                && c.distinct <= MAX_CATEGORIES
                && c.distinct_exact
        })
        .map(|c| c.position)
        .take(MAX_CATEGORICAL)
        .collect();
    let mut out = Vec::new();
    for a in 0..cats.len() {
        for b in a + 1..cats.len() {
            let mut table: HashMap<(&str, &str), f64> = HashMap::new();
            // Ordered maps: the chi-squared sum must add up in the same order every run.
            let mut ra: BTreeMap<&str, f64> = BTreeMap::new();
            let mut rb: BTreeMap<&str, f64> = BTreeMap::new();
            let mut n = 0.0;
            for r in &sample.rows {
                if let (Some(Some(x)), Some(Some(y))) = (r.2.get(cats[a]), r.2.get(cats[b])) {
                    *table.entry((x.as_str(), y.as_str())).or_default() += 1.0;
                    *ra.entry(x.as_str()).or_default() += 1.0;
                    *rb.entry(y.as_str()).or_default() += 1.0;
                    n += 1.0;
                }
            }
            let k = ra.len().min(rb.len());
            if n < 3.0 || k < 2 {
                continue;
            }
            let mut chi2 = 0.0;
            for (x, cx) in &ra {
                for (y, cy) in &rb {
                    let e = cx * cy / n;
                    let o = table.get(&(*x, *y)).copied().unwrap_or(0.0);
                    chi2 += (o - e) * (o - e) / e;
                }
            }
            let v = (chi2 / (n * (k as f64 - 1.0))).sqrt().min(1.0);
            out.push(Correlation {
                a: cols[cats[a]].name.clone(),
                b: cols[cats[b]].name.clone(),
                value: v,
                rows: n as u64,
            });
        }
    }
    out.sort_by(|x, y| {
        y.value
            .total_cmp(&x.value)
            .then(x.a.cmp(&y.a))
            .then(x.b.cmp(&y.b))
    });
    out.truncate(TOP_PAIRS);
    out
}

fn consistency_cells(c: &ColumnProfile) -> u64 {
    let variants: u64 = c.variants.iter().map(|g| g.variant_rows).sum();
    let padded = c.text.leading_whitespace.max(c.text.trailing_whitespace);
    let minority_dates = c
        .dates
        .as_ref()
        .map(|d| d.formats.iter().skip(1).map(|f| f.count).sum())
        .unwrap_or(0);
    variants.max(padded) + minority_dates
}

fn invalid_cells(c: &ColumnProfile) -> u64 {
    c.type_mismatches
        + c.impossible.as_ref().map_or(0, |r| r.count)
        + c.invalid_format.as_ref().map_or(0, |r| r.count)
}

fn quality(cols: &[ColumnProfile], rows: u64, dup_rows: u64, q: &QuarantineSummary) -> Quality {
    let ncols = cols.len() as u64;
    let cells = rows * ncols;
    if cells == 0 {
        return Quality {
            score: if q.rows > 0 { 0.0 } else { 1.0 },
            completeness: 1.0,
            validity: if q.rows > 0 { 0.0 } else { 1.0 },
            uniqueness: 1.0,
            consistency: 1.0,
        };
    }
    let all_cells = cells + q.rows * ncols;
    let missing: u64 = cols.iter().map(|c| c.missing).sum();
    let invalid: u64 = cols.iter().map(invalid_cells).sum::<u64>() + q.rows * ncols;
    let inconsistent: u64 = cols.iter().map(consistency_cells).sum();
    let completeness = 1.0 - ratio(missing, cells);
    let validity = (1.0 - ratio(invalid, all_cells)).max(0.0);
    let uniqueness = 1.0 - ratio(dup_rows, rows);
    let consistency = (1.0 - ratio(inconsistent, cells)).max(0.0);
    let score = 0.4 * completeness + 0.3 * validity + 0.15 * uniqueness + 0.15 * consistency;
    Quality {
        score,
        completeness,
        validity,
        uniqueness,
        consistency,
    }
}

/// `1 row`, `2,500 rows`: a count with its noun, grouped in thousands (the
/// issue descriptions here and the cleaning suggestions built on them).
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", grouped(n))
    }
}

/// `2500` as `2,500`.
pub fn grouped(x: u64) -> String {
    let s = x.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pct(a: u64, b: u64) -> String {
    let r = 100.0 * ratio(a, b);
    if r > 0.0 && r < 0.1 {
        "<0.1%".to_string()
    } else {
        format!("{r:.1}%")
    }
}

fn issues(
    cols: &[ColumnProfile],
    null_examples: &[Vec<u64>],
    dups: &Duplicates,
    q: &QuarantineSummary,
    rows: u64,
) -> Vec<Issue> {
    let mut out = Vec::new();
    let mut push = |column: Option<&str>,
                    kind: &str,
                    severity: Severity,
                    count: u64,
                    description: String,
                    ex: Vec<u64>| {
        out.push(Issue {
            column: column.map(str::to_string),
            kind: kind.to_string(),
            severity,
            count,
            description,
            example_row_ids: ex,
        });
    };
    if q.rows > 0 {
        let ex = q.examples.iter().map(|e| e.row_id).take(5).collect();
        let reasons = q
            .by_reason
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        push(
            None,
            "quarantined_rows",
            Severity::Error,
            q.rows,
            format!(
                "{} could not be read and {} quarantined ({reasons})",
                plural(q.rows, "row"),
                if q.rows == 1 { "was" } else { "were" }
            ),
            ex,
        );
    }
    if dups.rows > 0 {
        let ex = dups
            .examples
            .iter()
            .flat_map(|g| g.iter().copied())
            .take(5)
            .collect();
        push(
            None,
            "duplicate_rows",
            Severity::Warning,
            dups.rows,
            format!(
                "{} ({}) exactly {} an earlier row, in {}",
                plural(dups.rows, "row"),
                pct(dups.rows, rows),
                if dups.rows == 1 { "repeats" } else { "repeat" },
                plural(dups.groups, "group")
            ),
            ex,
        );
    }
    for (c, nulls) in cols.iter().zip(null_examples) {
        let name = Some(c.name.as_str());
        let present = c.count - c.missing;
        if c.missing > 0 {
            let sev = if c.missing_ratio > 0.5 {
                Severity::Error
            } else if c.missing_ratio > 0.05 {
                Severity::Warning
            } else {
                Severity::Info
            };
            let mut d = format!(
                "`{}` is missing in {} ({})",
                c.name,
                plural(c.missing, "row"),
                pct(c.missing, c.count)
            );
            if c.missing_ratio > 0.5 {
                d.push_str(": more than half empty, low quality");
            }
            push(name, "missing_values", sev, c.missing, d, nulls.clone());
        }
        if c.null_tokens > 0 || c.empty > 0 {
            push(
                name,
                "null_tokens",
                Severity::Info,
                c.null_tokens + c.empty,
                format!(
                    "`{}` writes missing values as text ({} such as `NA`, {})",
                    c.name,
                    plural(c.null_tokens, "null token"),
                    plural(c.empty, "empty string")
                ),
                nulls.clone(),
            );
        }
        if c.type_mismatches > 0 {
            let ex = c.mismatch_examples.iter().map(|e| e.row_id).collect();
            let vals = c
                .mismatch_examples
                .iter()
                .take(3)
                .map(|e| format!("`{}`", e.value))
                .collect::<Vec<_>>()
                .join(", ");
            push(
                name,
                "type_mismatch",
                Severity::Error,
                c.type_mismatches,
                {
                    let values = format!(
                        "{} {}",
                        plural(c.type_mismatches, "value"),
                        if c.type_mismatches == 1 { "is" } else { "are" }
                    );
                    if c.type_forced {
                        // `--schema` said the type: the values are wrong, not the guess.
                        format!(
                            "`{}` is {} by the schema given but {values} not ({vals})",
                            c.name, c.sample_type
                        )
                    } else {
                        format!(
                            "`{}` samples as {} but {values} not ({vals}); it is read as {}",
                            c.name, c.sample_type, c.inferred_type
                        )
                    }
                },
                ex,
            );
        }
        if let Some(n) = &c.numeric {
            if n.big_integers > 0 {
                push(
                    name,
                    "integer_overflow",
                    Severity::Warning,
                    n.big_integers,
                    format!(
                        "`{}` has {} integers beyond 64 bits, read as floats (precision is lost)",
                        c.name, n.big_integers
                    ),
                    vec![],
                );
            }
            if n.infinite > 0 {
                push(
                    name,
                    "infinite_values",
                    Severity::Warning,
                    n.infinite,
                    format!("`{}` has {} infinite values", c.name, n.infinite),
                    vec![],
                );
            }
            let o = &n.outliers.iqr;
            if o.count > 0 {
                let ex = o.examples.iter().map(|e| e.row_id).collect();
                let sev = if n.outliers.robust_z.count > 0
                    && n.max > 10.0 * n.quantiles.p99.abs().max(1.0)
                {
                    Severity::Warning
                } else {
                    Severity::Info
                };
                push(
                    name,
                    "outliers",
                    sev,
                    o.count,
                    format!(
                        "`{}` has {}{} value{} outside the IQR fences [{}, {}] (max {})",
                        c.name,
                        if n.exact { "" } else { "about " },
                        o.count,
                        if o.count == 1 { "" } else { "s" },
                        crate::column::fmt_num(round3(o.lower)),
                        crate::column::fmt_num(round3(o.upper)),
                        crate::column::fmt_num(n.max)
                    ),
                    ex,
                );
            }
        }
        if let Some(r) = &c.impossible
            && r.count > 0
        {
            push(
                name,
                "impossible_values",
                Severity::Error,
                r.count,
                format!(
                    "`{}` has {} breaking \"{}\"",
                    c.name,
                    plural(r.count, "value"),
                    r.rule
                ),
                r.examples.iter().map(|e| e.row_id).collect(),
            );
        }
        if let Some(r) = &c.invalid_format
            && r.count > 0
            && present > 0
        {
            push(
                name,
                "invalid_format",
                Severity::Warning,
                r.count,
                format!(
                    "`{}` has {} ({}) that are not valid: {}",
                    c.name,
                    plural(r.count, "value"),
                    pct(r.count, present),
                    r.rule.trim_start_matches("values are ")
                ),
                r.examples.iter().map(|e| e.row_id).collect(),
            );
        }
        if let Some(d) = &c.dates
            && d.formats.len() > 1
        {
            let minority: u64 = d.formats.iter().skip(1).map(|f| f.count).sum();
            let list = d
                .formats
                .iter()
                .map(|f| format!("{} ({})", f.value, f.count))
                .collect::<Vec<_>>()
                .join(", ");
            push(
                name,
                "mixed_date_formats",
                Severity::Warning,
                minority,
                format!(
                    "`{}` mixes {} date formats: {list}",
                    c.name,
                    d.formats.len()
                ),
                vec![],
            );
        }
        let variant_rows: u64 = c.variants.iter().map(|g| g.variant_rows).sum();
        if variant_rows > 0 {
            let ex = c
                .variants
                .iter()
                .flat_map(|g| g.example_row_ids.iter().copied())
                .take(5)
                .collect();
            let canon = c
                .variants
                .iter()
                .take(3)
                .map(|g| format!("`{}`", g.canonical))
                .collect::<Vec<_>>()
                .join(", ");
            push(
                name,
                "case_whitespace_variants",
                Severity::Warning,
                variant_rows,
                format!(
                    "`{}` has {} that differ only in case or whitespace from {} ({canon})",
                    c.name,
                    plural(variant_rows, "value"),
                    plural(c.variants.len() as u64, "canonical value")
                ),
                ex,
            );
        }
        let ws = c.text.leading_whitespace.max(c.text.trailing_whitespace);
        if ws > 0 {
            push(
                name,
                "whitespace",
                Severity::Info,
                ws,
                format!(
                    "`{}` has {} with leading and {} with trailing whitespace",
                    c.name,
                    plural(c.text.leading_whitespace, "value"),
                    c.text.trailing_whitespace
                ),
                c.text.whitespace_examples.clone(),
            );
        }
        if c.distinct <= 1 && c.count > 1 {
            push(
                name,
                "constant_column",
                Severity::Info,
                c.count,
                format!("`{}` holds a single value", c.name),
                vec![],
            );
        }
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.count.cmp(&a.count))
            .then(a.column.cmp(&b.column))
            .then(a.kind.cmp(&b.kind))
    });
    out
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::{grouped, plural};

    #[test]
    fn counts_are_grouped_in_thousands_with_their_noun() {
        let cases = [(0, "0"), (7, "7"), (999, "999"), (1_000, "1,000")];
        for (n, want) in cases {
            assert_eq!(grouped(n), want);
        }
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(plural(1, "row"), "1 row");
        assert_eq!(plural(0, "row"), "0 rows");
        assert_eq!(plural(2_500, "null token"), "2,500 null tokens");
    }
}
