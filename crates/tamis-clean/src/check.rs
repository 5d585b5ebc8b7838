//! Contract checks (`tamis check`) and contract inference (`tamis contract infer`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde_json::{Value, json};
use tamis_core::contract::{Contract, ContractColumn, PiiStrategy, Rule};
use tamis_core::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, StringBuilder, UInt64Builder,
};
use tamis_core::datafusion::arrow::compute::cast;
use tamis_core::datafusion::arrow::datatypes::{DataType, Field, Schema};
use tamis_core::datafusion::arrow::record_batch::RecordBatch;
use tamis_core::types::{Missing, parse_date, parse_datetime, parse_float};
use tamis_core::{ColumnType, Dataset, Quarantine, ReadOptions};
use tamis_profile::Profile;

use crate::CleanError;

/// One rule's result on one column.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleResult {
    /// Column.
    pub column: String,
    /// Rule name (`not_null`, `type`, `unique`, `range`, ...).
    pub rule: String,
    /// Failing cells.
    pub violations: u64,
    /// First failing row ids.
    pub example_row_ids: Vec<u64>,
}

/// The result of checking a dataset against a contract.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// Rows checked.
    pub rows: u64,
    /// Rows with at least one violation.
    pub failing_rows: u64,
    /// Failing cells in all.
    pub violations: u64,
    /// Contract columns missing from the data, and data columns the contract does not know.
    pub schema_problems: Vec<String>,
    /// Per column and rule.
    pub rules: Vec<RuleResult>,
    /// Whether everything passed.
    pub passed: bool,
}

impl CheckReport {
    /// As JSON.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

enum Check {
    NotNull,
    Type(ColumnType),
    Rule(Rule, Option<regex::Regex>, Option<HashSet<String>>),
}

impl Check {
    fn name(&self) -> &str {
        match self {
            Check::NotNull => "not_null",
            Check::Type(_) => "type",
            Check::Rule(r, _, _) => r.name(),
        }
    }
}

/// Checks a file (any format tamis reads) against a contract.
pub fn check_file(
    path: &Path,
    contract: &Contract,
    today: chrono::NaiveDate,
    violations_out: Option<&Path>,
) -> Result<CheckReport, CleanError> {
    let ds = Dataset::open(&[path.display().to_string()], ReadOptions::default())?;
    check(
        &ds,
        contract,
        today,
        violations_out,
        Arc::new(Quarantine::in_memory()),
    )
}

// Several arrays are indexed by the same row position.
#[allow(clippy::needless_range_loop)]
/// Checks a dataset against a contract in one streaming pass; every failing
/// cell is written to `violations_out` (Parquet, or CSV by extension) with its
/// row id, column, rule, value and reason.
pub fn check(
    ds: &Dataset,
    contract: &Contract,
    today: chrono::NaiveDate,
    violations_out: Option<&Path>,
    quarantine: Arc<Quarantine>,
) -> Result<CheckReport, CleanError> {
    let cols = ds.columns();
    let mut schema_problems = Vec::new();
    for c in &contract.columns {
        // A column the contract says to exclude may rightly be gone (a cleaned output).
        if !cols.contains(&c.name) && c.pii_strategy != Some(PiiStrategy::Exclude) {
            schema_problems.push(format!(
                "contract column `{}` is missing from the data",
                c.name
            ));
        }
    }
    for c in cols {
        if contract.column(c).is_none() {
            schema_problems.push(format!("column `{c}` is not in the contract"));
        }
    }
    // (column index, checks)
    let mut plan: Vec<(usize, &ContractColumn, Vec<Check>)> = Vec::new();
    for (i, name) in cols.iter().enumerate() {
        let Some(cc) = contract.column(name) else {
            continue;
        };
        let mut checks = Vec::new();
        if !cc.nullable {
            checks.push(Check::NotNull);
        }
        if let Some(t) = cc.ty
            && t != ColumnType::String
        {
            checks.push(Check::Type(t));
        }
        for r in &cc.rules {
            let re = match r {
                Rule::Regex(p) => {
                    Some(tamis_core::contract::whole_value_regex(p).map_err(|e| {
                        CleanError::Plan {
                            file: "contract".into(),
                            message: format!("column `{name}`: regex `{p}` does not compile: {e}"),
                        }
                    })?)
                }
                _ => None,
            };
            let set = match r {
                Rule::OneOf(v) | Rule::InSet { values: v, .. } => Some(v.iter().cloned().collect()),
                _ => None,
            };
            checks.push(Check::Rule(r.clone(), re, set));
        }
        plan.push((i, cc, checks));
    }

    let mut writer = match violations_out {
        Some(p) => Some(ViolationWriter::new(p)?),
        None => None,
    };
    let nulls = ds.options().null_tokens.clone();
    let mut counts: BTreeMap<(usize, usize), (u64, Vec<u64>)> = BTreeMap::new();
    let mut seen: HashMap<usize, HashMap<String, u64>> = HashMap::new();
    let mut failing: u64 = 0;
    let mut rows: u64 = 0;
    let mut total: u64 = 0;
    let today_s = today.to_string();
    for b in ds.batches(quarantine, Arc::new(AtomicU64::new(0)))? {
        let b = b?;
        rows += b.num_rows() as u64;
        let ids = tamis_core::row_ids(&b)?.clone();
        let mut bad_row = vec![false; b.num_rows()];
        for (pi, (ci, cc, checks)) in plan.iter().enumerate() {
            let a: ArrayRef = cast(b.column(*ci), &DataType::Utf8)?;
            let s = a.as_string::<i32>();
            for r in 0..s.len() {
                let v = if s.is_null(r) { None } else { Some(s.value(r)) };
                let missing = v.is_none_or(|v| nulls.classify(v) != Missing::No);
                for (k, check) in checks.iter().enumerate() {
                    let reason: Option<String> = match (check, v) {
                        (Check::NotNull, _) if missing => {
                            Some("missing value in a non-nullable column".into())
                        }
                        (_, None) | (Check::NotNull, _) => None,
                        _ if missing => None,
                        (Check::Type(t), Some(v)) => (!t.accepts(v))
                            .then(|| format!("`{v}` is not {} value", t.with_article())),
                        (Check::Rule(rule, re, set), Some(v)) => match rule {
                            Rule::Unique => {
                                let m = seen.entry(pi).or_default();
                                match m.get(v) {
                                    Some(first) => {
                                        Some(format!("`{v}` also appears in row {first}"))
                                    }
                                    None => {
                                        m.insert(v.to_string(), ids.value(r));
                                        None
                                    }
                                }
                            }
                            Rule::NonNegative => parse_float(v.trim())
                                .filter(|x| *x < 0.0)
                                .map(|x| format!("{x} is negative")),
                            Rule::Range { min, max } => parse_float(v.trim()).and_then(|x| {
                                let lo = min.is_some_and(|m| x < m);
                                let hi = max.is_some_and(|m| x > m);
                                (lo || hi).then(|| {
                                    format!(
                                        "{x} is outside [{}, {}]",
                                        min.map_or("-inf".into(), |m| m.to_string()),
                                        max.map_or("inf".into(), |m| m.to_string())
                                    )
                                })
                            }),
                            Rule::OneOf(_) | Rule::InSet { .. } => set
                                .as_ref()
                                .filter(|s| !s.contains(v))
                                .map(|_| format!("`{v}` is not an allowed value")),
                            Rule::Regex(p) => re
                                .as_ref()
                                .filter(|re| !re.is_match(v))
                                .map(|_| format!("`{v}` does not match /{p}/")),
                            Rule::NotFuture => {
                                let d = parse_date(v.trim())
                                    .map(|(d, _)| d)
                                    .or_else(|| parse_datetime(v.trim()).map(|t| t.date()));
                                d.filter(|d| *d > today)
                                    .map(|d| format!("{d} is after {today_s}"))
                            }
                        },
                    };
                    if let Some(reason) = reason {
                        total += 1;
                        bad_row[r] = true;
                        let e = counts.entry((pi, k)).or_default();
                        e.0 += 1;
                        if e.1.len() < 5 {
                            e.1.push(ids.value(r));
                        }
                        if let Some(w) = writer.as_mut() {
                            w.push(ids.value(r), &cc.name, check.name(), v, &reason)?;
                        }
                    }
                }
            }
        }
        failing += bad_row.iter().filter(|x| **x).count() as u64;
    }
    if let Some(w) = writer {
        w.finish()?;
    }
    let rules = counts
        .into_iter()
        .map(|((pi, k), (n, ex))| RuleResult {
            column: plan[pi].1.name.clone(),
            rule: plan[pi].2[k].name().to_string(),
            violations: n,
            example_row_ids: ex,
        })
        .collect();
    let missing_cols = schema_problems
        .iter()
        .any(|p| p.contains("missing from the data"));
    Ok(CheckReport {
        rows,
        failing_rows: failing,
        violations: total,
        passed: total == 0 && !missing_cols,
        schema_problems,
        rules,
    })
}

struct ViolationWriter {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    csv: bool,
    parquet: Option<tamis_core::datafusion::parquet::arrow::ArrowWriter<std::fs::File>>,
    csvw: Option<tamis_core::datafusion::arrow::csv::Writer<std::fs::File>>,
    row: UInt64Builder,
    column: StringBuilder,
    rule: StringBuilder,
    value: StringBuilder,
    reason: StringBuilder,
    len: usize,
}

impl ViolationWriter {
    fn new(path: &Path) -> Result<Self, CleanError> {
        let tmp = tamis_core::quarantine::tmp_name(path);
        let f = std::fs::File::create(&tmp).map_err(|e| CleanError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let (parquet, csvw) = if csv {
            (
                None,
                Some(
                    tamis_core::datafusion::arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(f),
                ),
            )
        } else {
            (
                Some(
                    tamis_core::datafusion::parquet::arrow::ArrowWriter::try_new(
                        f,
                        Self::schema(),
                        None,
                    )
                    .map_err(|e| CleanError::Internal(e.to_string()))?,
                ),
                None,
            )
        };
        Ok(ViolationWriter {
            path: path.to_path_buf(),
            tmp,
            csv,
            parquet,
            csvw,
            row: UInt64Builder::new(),
            column: StringBuilder::new(),
            rule: StringBuilder::new(),
            value: StringBuilder::new(),
            reason: StringBuilder::new(),
            len: 0,
        })
    }
    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("row_id", DataType::UInt64, false),
            Field::new("column", DataType::Utf8, false),
            Field::new("rule", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, true),
            Field::new("reason", DataType::Utf8, false),
        ]))
    }
    fn push(
        &mut self,
        row: u64,
        column: &str,
        rule: &str,
        value: Option<&str>,
        reason: &str,
    ) -> Result<(), CleanError> {
        self.row.append_value(row);
        self.column.append_value(column);
        self.rule.append_value(rule);
        self.value.append_option(value);
        self.reason.append_value(reason);
        self.len += 1;
        if self.len >= 65_536 {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), CleanError> {
        let b = RecordBatch::try_new(
            Self::schema(),
            vec![
                Arc::new(self.row.finish()),
                Arc::new(self.column.finish()),
                Arc::new(self.rule.finish()),
                Arc::new(self.value.finish()),
                Arc::new(self.reason.finish()),
            ],
        )?;
        self.len = 0;
        let e = |m: String| CleanError::Write {
            path: self.path.clone(),
            message: m,
        };
        if let Some(w) = self.parquet.as_mut() {
            w.write(&b).map_err(|x| e(x.to_string()))?;
        }
        if let Some(w) = self.csvw.as_mut() {
            w.write(&b).map_err(|x| e(x.to_string()))?;
        }
        Ok(())
    }
    fn finish(mut self) -> Result<(), CleanError> {
        if self.len > 0 || self.csv || self.parquet.is_some() {
            self.flush()?;
        }
        let e = |m: String| CleanError::Write {
            path: self.path.clone(),
            message: m,
        };
        if let Some(w) = self.parquet.take() {
            w.close().map_err(|x| e(x.to_string()))?;
        }
        drop(self.csvw.take());
        std::fs::rename(&self.tmp, &self.path).map_err(|x| e(x.to_string()))
    }
}

/// Non-empty values per text column that [`propose_redact_entities`] reads
/// (the sample `tamis pii scan` classifies a column by).
pub const FREE_TEXT_SAMPLE: usize = 5_000;

/// Rows read at most to gather [`FREE_TEXT_SAMPLE`] values: a column that
/// is nearly always empty does not make the sample read the whole file.
pub const FREE_TEXT_ROWS: usize = 200_000;

/// What [`propose_redact_entities`] found inside one column's free text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeTextPii {
    /// The column.
    pub column: String,
    /// Sampled cells of free text (holding whitespace).
    pub cells: u64,
    /// Of them, the cells with personal data inside.
    pub hits: u64,
    /// The entities found, by type (a cell may hold several).
    pub entities: BTreeMap<&'static str, u64>,
}

impl FreeTextPii {
    /// Whether the sample shows a pattern rather than a stray match: at
    /// least three cells, or one in a hundred. A lone match in thousands of
    /// notes (a version number read as an IP address) is left to review.
    pub fn proposed(&self) -> bool {
        self.hits > 0 && (self.hits >= 3 || self.hits * 100 >= self.cells)
    }

    /// The entities found, as `TYPE n, …`.
    pub fn summary(&self) -> String {
        tamis_privacy::entity_summary(&self.entities)
    }
}

/// Looks inside the free text of an inferred contract's text columns that
/// hold no personal data as a whole (notes, comments, descriptions) and
/// marks those whose sampled cells hold e-mail addresses, phones, cards,
/// SSNs, IBANs, IP addresses or URLs (the detector `tamis pii scan` reports
/// them with) as `pii: free_text` with `pii_strategy: redact_entities`, so
/// a `pii` step run with the contract replaces what is inside and keeps the
/// rest of the text. A column with any find loses the `one_of` rule and
/// canonical values inferred from its values, which would hold the data.
/// `samples` holds each of `columns`' sampled values (see
/// [`FREE_TEXT_SAMPLE`]). Returns what was found in every column looked at,
/// proposed or not, in contract order.
pub fn propose_redact_entities(
    contract: &mut Contract,
    columns: &[String],
    samples: &[Vec<String>],
) -> Vec<FreeTextPii> {
    let mut found = Vec::new();
    for c in contract
        .columns
        .iter_mut()
        .filter(|c| free_text_candidate(c))
    {
        let Some(values) = columns
            .iter()
            .position(|n| n == &c.name)
            .and_then(|i| samples.get(i))
        else {
            continue;
        };
        let mut f = FreeTextPii {
            column: c.name.clone(),
            cells: 0,
            hits: 0,
            entities: BTreeMap::new(),
        };
        for v in values.iter().filter(|v| v.contains(char::is_whitespace)) {
            f.cells += 1;
            let spans = tamis_privacy::text::find(v);
            f.hits += u64::from(!spans.is_empty());
            for sp in spans {
                *f.entities.entry(sp.ty.name()).or_default() += 1;
            }
        }
        if f.hits > 0 {
            // Lists of the column's values would copy the personal data
            // into the contract (and fail the text once it is redacted).
            c.rules.retain(|r| !matches!(r, Rule::OneOf(_)));
            c.canonical_values.clear();
        }
        if f.proposed() {
            c.pii = true;
            c.pii_type = Some("free_text".into());
            c.pii_strategy = Some(PiiStrategy::RedactEntities);
        }
        found.push(f);
    }
    found
}

/// Whether [`propose_redact_entities`] looks inside a contract column: text
/// not already marked as personal data.
pub fn free_text_candidate(c: &ContractColumn) -> bool {
    !c.pii && c.ty == Some(ColumnType::String)
}

/// Writes a starting contract from a profile.
pub fn infer_contract(profile: &Profile, dataset_id: &str, today: chrono::NaiveDate) -> Contract {
    let columns = profile
        .columns
        .iter()
        .map(|c| {
            let mut rules = Vec::new();
            let present = c.count.saturating_sub(c.missing);
            if c.semantic_type == "identifier"
                && c.distinct_exact
                && c.distinct == present
                && present > 0
            {
                rules.push(Rule::Unique);
            }
            if let Some(n) = &c.numeric {
                if c.semantic_type == "age" {
                    // The profile's own bound: the contract fails what it calls impossible.
                    rules.push(Rule::Range {
                        min: Some(0.0),
                        max: Some(tamis_profile::AGE_MAX),
                    });
                } else if n.min >= 0.0 {
                    rules.push(Rule::NonNegative);
                }
            }
            let canonical: Vec<String> = if c.inferred_type == ColumnType::String
                && c.distinct_exact
                && !c.variants.is_empty()
                && c.variants.len() <= 50
            {
                let mut v: Vec<String> = c.variants.iter().map(|g| g.canonical.clone()).collect();
                // Values that have no variants are canonical too.
                for t in &c.top_values {
                    let folded = t.value.trim().to_lowercase();
                    if !v.iter().any(|x| x.trim().to_lowercase() == folded) {
                        v.push(t.value.clone());
                    }
                }
                v.sort();
                v
            } else {
                Vec::new()
            };
            if c.semantic_type == "categorical"
                && c.distinct_exact
                && c.distinct <= 20
                && c.variants.is_empty()
            {
                let mut v: Vec<String> = c.top_values.iter().map(|t| t.value.clone()).collect();
                v.sort();
                if !v.is_empty() && c.top_values.iter().map(|t| t.count).sum::<u64>() == present {
                    rules.push(Rule::OneOf(v));
                }
            }
            if c.semantic_type == "email" {
                rules.push(Rule::Regex(r"[^@\s]+@[^@\s]+\.[^@\s]+".into()));
            }
            if matches!(c.inferred_type, ColumnType::Date | ColumnType::Datetime)
                && c.dates.as_ref().is_some_and(|d| d.future == 0)
            {
                rules.push(Rule::NotFuture);
            }
            let pii_type = match c.semantic_type.as_str() {
                "email" | "phone" | "person_name" | "address" | "birth_date" | "ip_address"
                | "payment_card" | "postcode" => Some(c.semantic_type.clone()),
                _ => None,
            };
            let _ = today;
            ContractColumn {
                name: c.name.clone(),
                ty: Some(c.inferred_type),
                nullable: c.missing > 0,
                pii: pii_type.is_some(),
                pii_strategy: pii_type.as_ref().map(|_| PiiStrategy::Hash),
                pii_type,
                canonical_values: canonical,
                rules,
            }
        })
        .collect();
    Contract {
        dataset_id: dataset_id.to_string(),
        version: json!(1),
        source: json!({
            "files": profile.dataset.sources.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            "rows_profiled": profile.dataset.rows,
        }),
        columns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(cells: u64, hits: u64) -> FreeTextPii {
        FreeTextPii {
            column: "notes".into(),
            cells,
            hits,
            entities: BTreeMap::new(),
        }
    }

    /// Three cells, or one in a hundred, make a pattern; fewer are left to review.
    #[test]
    fn free_text_is_proposed_from_three_cells_or_one_in_a_hundred() {
        assert!(found(100, 1).proposed());
        assert!(!found(101, 1).proposed());
        assert!(!found(1_000, 2).proposed());
        assert!(found(5_000, 3).proposed());
        assert!(!found(5, 0).proposed());
        assert!(!found(0, 0).proposed());
    }
}
