//! Plans: an ordered list of steps, read from YAML or JSON and validated
//! against the dataset's columns before any row is read.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use tamis_core::contract::{Contract, PiiStrategy, did_you_mean};
use tamis_core::types::{ColumnType, Missing, NullTokens};

use crate::CleanError;

/// Which duplicate survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The first occurrence in row order.
    First,
    /// The last occurrence in row order.
    Last,
}

/// How missing values are filled.
#[derive(Debug, Clone, PartialEq)]
pub enum ImputeMethod {
    /// Arithmetic mean of the non-null values.
    Mean,
    /// Median (the mean of the two middle values for an even count, as DuckDB and Polars).
    Median,
    /// The most frequent value (ties: the smallest).
    Mode,
    /// A given value.
    Constant(String),
    /// The last non-null value above, in row order.
    ForwardFill,
}

/// Letter case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// lower case
    Lower,
    /// UPPER CASE
    Upper,
    /// Title Case
    Title,
}

/// Unicode normal form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormalForm {
    /// Canonical composition.
    Nfc,
    /// Compatibility composition.
    Nfkc,
}

/// What `parse` turns text into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseTarget {
    /// ISO dates from mixed formats.
    Date,
    /// Numbers from text with thousands separators, currency signs, percent.
    Number,
    /// Booleans from yes/no, true/false, 1/0.
    Boolean,
}

/// What `standardize` knows how to standardise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandardKind {
    /// Phone numbers to E.164.
    Phone,
    /// E-mail addresses to lower case, trimmed.
    Email,
    /// Country names and codes to ISO 3166-1 alpha-2.
    Country,
    /// US state names and codes to USPS codes.
    State,
}

/// Outlier rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutlierMethod {
    /// Outside Q1 − k·IQR, Q3 + k·IQR.
    Iqr,
    /// |x − median| / (1.4826·MAD) > k.
    RobustZ,
}

/// What happens to an outlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutlierAction {
    /// Add a boolean column `<col>_outlier`.
    Flag,
    /// Clip to the fences.
    Clip,
    /// Replace by null.
    Null,
}

/// Which row of a cluster of near duplicates survives (and the order in
/// which the others are consulted for field values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Survivor {
    /// The row with the most non-null cells.
    MostComplete,
    /// The row with the greatest `recency` value.
    MostRecent,
    /// The row whose `source` value comes first in `priority`.
    SourcePriority,
    /// The first row in input order.
    First,
}

/// Where a surviving row takes each field's value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRule {
    /// The survivor's own value, even when null.
    Survivor,
    /// The first non-null value in survivor order.
    Coalesce,
    /// The non-null value of the most recent row (by `recency`).
    MostRecent,
    /// The non-null value of the row with the best `source` (by `priority`).
    SourcePriority,
    /// The most frequent non-null value (ties: survivor order).
    MostFrequent,
    /// The longest non-null value as text (ties: survivor order).
    Longest,
    /// The greatest non-null value.
    Max,
    /// The least non-null value.
    Min,
}

impl FieldRule {
    /// Every rule by name.
    pub const ALL: [(&'static str, FieldRule); 8] = [
        ("survivor", FieldRule::Survivor),
        ("coalesce", FieldRule::Coalesce),
        ("most_recent", FieldRule::MostRecent),
        ("source_priority", FieldRule::SourcePriority),
        ("most_frequent", FieldRule::MostFrequent),
        ("longest", FieldRule::Longest),
        ("max", FieldRule::Max),
        ("min", FieldRule::Min),
    ];

    /// The rule's name.
    pub fn name(self) -> &'static str {
        FieldRule::ALL
            .iter()
            .find(|(_, r)| *r == self)
            .map_or("coalesce", |(n, _)| n)
    }
}

/// A `dedupe_fuzzy` step: how rows are matched and merged.
#[derive(Debug, Clone, PartialEq)]
pub struct FuzzySpec {
    /// Columns compared (`None`: every column, by role).
    pub columns: Option<Vec<String>>,
    /// Match probability at or above which rows are the same entity.
    pub threshold: Option<f64>,
    /// A matching settings file (as `tamis dedup --settings`).
    pub settings: Option<String>,
    /// A saved model (as `tamis dedup --model`).
    pub model: Option<String>,
    /// Which row survives.
    pub survivor: Survivor,
    /// The column that says how recent a row is.
    pub recency: Option<String>,
    /// The column that says where a row comes from.
    pub source: Option<String>,
    /// Sources, best first.
    pub priority: Vec<String>,
    /// Per column: where the survivor takes its value from.
    pub fields: BTreeMap<String, FieldRule>,
    /// The rule for columns not in `fields`.
    pub default_field: FieldRule,
}

/// One step's operation and parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// Merge near-duplicate rows: one survivor per cluster, fields chosen by rule.
    DedupeFuzzy(FuzzySpec),
    /// Drop exact duplicate rows.
    DedupeExact {
        /// Columns compared (`None`: the whole row).
        columns: Option<Vec<String>>,
        /// Which occurrence survives.
        keep: Keep,
    },
    /// Fill missing values.
    Impute {
        /// Columns filled.
        columns: Vec<String>,
        /// How.
        method: ImputeMethod,
        /// Group-wise statistics by these columns (median/mode/mean).
        by: Vec<String>,
    },
    /// Normalise text.
    NormalizeText {
        /// Columns.
        columns: Vec<String>,
        /// Trim both ends.
        trim: bool,
        /// Collapse inner runs of whitespace to one space.
        collapse_whitespace: bool,
        /// Letter case.
        case: Option<Case>,
        /// Unicode normal form.
        unicode: Option<NormalForm>,
        /// Strip accents (after NFD).
        strip_accents: bool,
        /// Turn null tokens (NA, N/A, ...) and blank strings into nulls.
        nullify_tokens: bool,
    },
    /// Fold variants and map to canonical values.
    Canonicalize {
        /// Columns.
        columns: Vec<String>,
        /// The canonical values (`None`: the contract's, else the data's most frequent spelling per variant group).
        values: Option<Vec<String>>,
        /// Least similarity (0..1) to map a value.
        threshold: f64,
    },
    /// Parse text into typed values.
    Parse {
        /// Columns.
        columns: Vec<String>,
        /// Target.
        to: ParseTarget,
        /// Read ambiguous dd/mm dates day-first.
        day_first: bool,
        /// Numbers write their decimals after a comma (`1.234,50`), not a point.
        decimal_comma: bool,
    },
    /// Standardise well-known formats.
    Standardize {
        /// Columns.
        columns: Vec<String>,
        /// What they hold.
        kind: StandardKind,
        /// Country calling code for national phone numbers (default 1).
        default_country_code: String,
    },
    /// Handle numeric outliers.
    Outliers {
        /// Columns.
        columns: Vec<String>,
        /// Rule.
        method: OutlierMethod,
        /// Fence multiplier (default 1.5 for IQR, 3.5 for robust z).
        k: f64,
        /// Action.
        action: OutlierAction,
    },
    /// Drop rows where a SQL predicate is true.
    Filter {
        /// The predicate (DataFusion SQL), e.g. `age < 0 OR age > 120`.
        drop_where: String,
        /// Reason recorded with each dropped row.
        reason: String,
    },
    /// Protect PII columns.
    Pii {
        /// Columns (`None`: every contract column marked PII).
        columns: Option<Vec<String>>,
        /// Strategy (`None`: each column's contract `pii_strategy`).
        strategy: Option<PiiStrategy>,
    },
    /// Rename columns.
    Rename {
        /// Old name → new name.
        mapping: BTreeMap<String, String>,
    },
    /// Drop columns.
    Drop {
        /// Columns.
        columns: Vec<String>,
    },
    /// Cast columns to types; values that do not convert become null (recorded).
    Cast {
        /// Column → type.
        types: BTreeMap<String, ColumnType>,
    },
}

/// A step of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Identifier (given, or `s1`, `s2`, ... by position).
    pub id: String,
    /// Operation.
    pub kind: StepKind,
    /// Its parameters as written (for the audit log and lineage).
    pub params: Value,
    /// Confidence of a suggested step (suggestions only).
    pub confidence: Option<f64>,
    /// Why it was suggested (suggestions only).
    pub rationale: Option<String>,
}

/// Every step type.
pub const STEP_TYPES: [&str; 13] = [
    "dedupe_exact",
    "impute",
    "normalize_text",
    "canonicalize",
    "parse",
    "standardize",
    "outliers",
    "filter",
    "pii",
    "rename",
    "drop",
    "cast",
    "dedupe_fuzzy",
];

impl Step {
    /// The step's type name.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            StepKind::DedupeExact { .. } => "dedupe_exact",
            StepKind::DedupeFuzzy(_) => "dedupe_fuzzy",
            StepKind::Impute { .. } => "impute",
            StepKind::NormalizeText { .. } => "normalize_text",
            StepKind::Canonicalize { .. } => "canonicalize",
            StepKind::Parse { .. } => "parse",
            StepKind::Standardize { .. } => "standardize",
            StepKind::Outliers { .. } => "outliers",
            StepKind::Filter { .. } => "filter",
            StepKind::Pii { .. } => "pii",
            StepKind::Rename { .. } => "rename",
            StepKind::Drop { .. } => "drop",
            StepKind::Cast { .. } => "cast",
        }
    }

    /// Whether each change is certain (1.0) or a heuristic with a lower confidence.
    pub fn is_heuristic(&self) -> bool {
        matches!(
            self.kind,
            StepKind::Canonicalize { .. }
                | StepKind::DedupeFuzzy(_)
                | StepKind::Outliers { .. }
                | StepKind::Impute { .. }
                | StepKind::Parse { .. }
        )
    }
}

/// A plan: ordered steps.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Plan {
    /// Reads a plan file (YAML or JSON).
    pub fn read(path: &std::path::Path) -> Result<Plan, CleanError> {
        let text = std::fs::read_to_string(path).map_err(|e| CleanError::Plan {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        Plan::parse(&text, &path.display().to_string())
    }

    /// Parses plan text; `name` names it in errors.
    pub fn parse(text: &str, name: &str) -> Result<Plan, CleanError> {
        let err = |message: String| CleanError::Plan {
            file: name.to_string(),
            message,
        };
        let v: Value =
            serde_yaml_ng::from_str(text).map_err(|e| err(format!("not YAML or JSON: {e}")))?;
        let steps = match &v {
            Value::Array(a) => a.clone(),
            Value::Object(m) => {
                for k in m.keys() {
                    if !["steps", "name", "description", "dataset", "seed"].contains(&k.as_str()) {
                        return Err(err(format!(
                            "unknown top-level field `{k}`{}; a plan is `steps: [...]`",
                            did_you_mean(k, ["steps"])
                        )));
                    }
                }
                m.get("steps")
                    .and_then(|s| s.as_array())
                    .cloned()
                    .ok_or_else(|| err("a plan needs `steps:`, a list of steps".into()))?
            }
            _ => return Err(err("a plan is `steps: [...]`".into())),
        };
        let mut out = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            out.push(parse_step(s, i).map_err(err)?);
        }
        let mut seen = std::collections::HashSet::new();
        for s in &out {
            if !seen.insert(s.id.clone()) {
                return Err(err(format!("two steps have the id `{}`", s.id)));
            }
        }
        Ok(Plan { steps: out })
    }

    /// The plan as JSON (`{"steps": [...]}`), each step with its type and parameters.
    pub fn to_value(&self) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|s| {
                let mut m = Map::new();
                m.insert("id".into(), json!(s.id));
                m.insert("type".into(), json!(s.type_name()));
                if let Value::Object(p) = &s.params {
                    for (k, v) in p {
                        m.insert(k.clone(), v.clone());
                    }
                }
                if let Some(c) = s.confidence {
                    m.insert("confidence".into(), json!((c * 1000.0).round() / 1000.0));
                }
                if let Some(r) = &s.rationale {
                    m.insert("rationale".into(), json!(r));
                }
                Value::Object(m)
            })
            .collect();
        json!({ "steps": steps })
    }

    /// The plan as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.to_value()).unwrap_or_default()
    }

    /// Checks every step against the columns (and their sampled types) as they
    /// are when the step runs; names the step, the field and a close column name.
    /// `empty` names the input columns that had no value where they were
    /// sampled (their type is text on no evidence); `nulls` are the values
    /// read as missing (a constant fill may not be one).
    pub fn validate(
        &self,
        columns: &[(String, ColumnType)],
        empty: &[String],
        contract: Option<&Contract>,
        nulls: &NullTokens,
    ) -> Result<(), CleanError> {
        let mut cols: Vec<(String, ColumnType)> = columns.to_vec();
        for (i, s) in self.steps.iter().enumerate() {
            let at = format!("step {} (`{}`, {})", i + 1, s.id, s.type_name());
            let bad = |message: String| CleanError::PlanStep {
                step: at.clone(),
                message,
            };
            let find = |cols: &[(String, ColumnType)],
                        c: &str,
                        field: &str|
             -> Result<ColumnType, CleanError> {
                find_column(cols, c, field, &at)
            };
            match &s.kind {
                StepKind::DedupeExact { columns, .. } => {
                    for c in columns.iter().flatten() {
                        find(&cols, c, "columns")?;
                    }
                }
                StepKind::DedupeFuzzy(f) => {
                    for c in f.columns.iter().flatten() {
                        find(&cols, c, "columns")?;
                    }
                    for c in f.fields.keys() {
                        find(&cols, c, "fields")?;
                    }
                    if let Some(c) = &f.recency {
                        find(&cols, c, "recency")?;
                    }
                    if let Some(c) = &f.source {
                        find(&cols, c, "source")?;
                    }
                }
                StepKind::Impute {
                    columns,
                    method,
                    by,
                } => {
                    for c in by {
                        find(&cols, c, "by")?;
                    }
                    for c in columns {
                        let t = find(&cols, c, "columns")?;
                        let numeric = matches!(t, ColumnType::Integer | ColumnType::Float);
                        if matches!(method, ImputeMethod::Mean | ImputeMethod::Median) && !numeric {
                            // Text on no evidence: say so, not that it is text.
                            return Err(bad(if empty.contains(c) {
                                format!(
                                    "`{c}` has no value in the rows read to type it, so it has no mean or median; fill it with `method: constant` and a `value`, or give its type with --schema if its values come later"
                                )
                            } else {
                                format!(
                                    "`{c}` is {} column; mean and median need numbers (use `mode` or `constant`)",
                                    t.with_article()
                                )
                            }));
                        }
                        if let ImputeMethod::Constant(v) = method {
                            if nulls.classify(v) != Missing::No {
                                return Err(bad(format!(
                                    "`value: {v:?}` for `{c}` is itself read as a missing value (empty, or a null token), so the filled cells would read back as missing; choose another value, or set the null tokens with --null-token"
                                )));
                            }
                            if !t.accepts(v) {
                                return Err(bad(format!(
                                    "`value: {v}` is not {} value for `{c}`",
                                    t.with_article()
                                )));
                            }
                        }
                    }
                }
                StepKind::NormalizeText { columns, .. } | StepKind::Standardize { columns, .. } => {
                    for c in columns {
                        let t = find(&cols, c, "columns")?;
                        if t != ColumnType::String {
                            return Err(bad(format!(
                                "`{c}` is {} column; this step works on text (turn it to text first with a `cast` step, or read it as text with --schema)",
                                t.with_article()
                            )));
                        }
                    }
                }
                StepKind::Canonicalize {
                    columns, values, ..
                } => {
                    for c in columns {
                        let t = find(&cols, c, "columns")?;
                        if t != ColumnType::String {
                            return Err(bad(format!(
                                "`{c}` is {} column; canonicalize works on text (turn it to text first with a `cast` step, or read it as text with --schema)",
                                t.with_article()
                            )));
                        }
                        let _ = (values, contract);
                    }
                }
                StepKind::Parse { columns, to, .. } => {
                    for c in columns {
                        find(&cols, c, "columns")?;
                    }
                    for c in columns {
                        if let Some(x) = cols.iter_mut().find(|x| &x.0 == c) {
                            x.1 = match to {
                                ParseTarget::Date => ColumnType::Date,
                                ParseTarget::Number => ColumnType::Float,
                                ParseTarget::Boolean => ColumnType::Boolean,
                            };
                        }
                    }
                }
                StepKind::Outliers {
                    columns, action, ..
                } => {
                    for c in columns {
                        let t = find(&cols, c, "columns")?;
                        if !matches!(t, ColumnType::Integer | ColumnType::Float) {
                            return Err(bad(format!(
                                "`{c}` is {} column; outliers need numbers",
                                t.with_article()
                            )));
                        }
                    }
                    if *action == OutlierAction::Flag {
                        for c in columns {
                            cols.push((format!("{c}_outlier"), ColumnType::Boolean));
                        }
                    }
                }
                StepKind::Filter { drop_where, .. } => {
                    if drop_where.trim().is_empty() {
                        return Err(bad("`drop_where` is empty".into()));
                    }
                    if let Some(problem) = crate::ops::predicate_problem(drop_where, &cols) {
                        return Err(bad(problem));
                    }
                }
                StepKind::Pii { columns, strategy } => {
                    let list = pii_columns(columns, contract);
                    if list.is_empty() {
                        return Err(bad(
                            "no columns: give `columns`, or a contract with `pii: true` columns (`--contract`)"
                                .into(),
                        ));
                    }
                    for c in &list {
                        find(&cols, c, "columns")?;
                        let st = strategy.or_else(|| {
                            contract
                                .and_then(|k| k.column(c))
                                .and_then(|k| k.pii_strategy)
                        });
                        match st {
                            None => {
                                return Err(bad(format!(
                                    "no strategy for `{c}`: give `strategy` or the contract's `pii_strategy`"
                                )));
                            }
                            Some(PiiStrategy::Exclude) => cols.retain(|x| &x.0 != c),
                            Some(
                                PiiStrategy::Hash
                                | PiiStrategy::Redact
                                | PiiStrategy::RedactEntities
                                | PiiStrategy::Tokenize,
                            ) => {
                                if let Some(x) = cols.iter_mut().find(|x| &x.0 == c) {
                                    x.1 = ColumnType::String;
                                }
                            }
                        }
                    }
                }
                StepKind::Rename { mapping } => {
                    for (old, new) in mapping {
                        find(&cols, old, "mapping")?;
                        if old != new && cols.iter().any(|x| &x.0 == new) {
                            return Err(bad(format!("`{old}` → `{new}`: `{new}` already exists")));
                        }
                    }
                    for x in cols.iter_mut() {
                        if let Some(n) = mapping.get(&x.0) {
                            x.0 = n.clone();
                        }
                    }
                }
                StepKind::Drop { columns } => {
                    for c in columns {
                        find(&cols, c, "columns")?;
                    }
                    cols.retain(|x| !columns.contains(&x.0));
                    if cols.is_empty() {
                        return Err(bad("this drops every column".into()));
                    }
                }
                StepKind::Cast { types } => {
                    for (c, t) in types {
                        find(&cols, c, "types")?;
                        if let Some(x) = cols.iter_mut().find(|x| &x.0 == c) {
                            x.1 = *t;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The columns a `pii` step protects: its own, or every contract column marked PII.
pub fn pii_columns(columns: &Option<Vec<String>>, contract: Option<&Contract>) -> Vec<String> {
    match columns {
        Some(c) => c.clone(),
        None => contract
            .map(|k| {
                k.columns
                    .iter()
                    .filter(|c| c.pii)
                    .map(|c| c.name.clone())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn find_column(
    cols: &[(String, ColumnType)],
    c: &str,
    field: &str,
    at: &str,
) -> Result<ColumnType, CleanError> {
    cols.iter()
        .find(|x| x.0 == c)
        .map(|x| x.1)
        .ok_or_else(|| CleanError::PlanStep {
            step: at.to_string(),
            message: format!(
                "`{field}`: no column `{c}`{}; {}",
                did_you_mean(c, cols.iter().map(|x| x.0.as_str())),
                if cols.is_empty() {
                    "no columns remain at this step (is the input empty?)".to_string()
                } else {
                    format!(
                        "columns here are: {}",
                        cols.iter()
                            .map(|x| x.0.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
        })
}

type Fields<'a> = &'a Map<String, Value>;

fn parse_step(v: &Value, i: usize) -> Result<Step, String> {
    let at = format!("steps[{i}]");
    let Value::Object(m) = v else {
        return Err(format!("{at} must be a mapping with `type`"));
    };
    let ty = m.get("type").and_then(|t| t.as_str()).ok_or_else(|| {
        format!(
            "{at}: `type` is missing; types are {}",
            STEP_TYPES.join(", ")
        )
    })?;
    let id = match m.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => format!("s{}", i + 1),
    };
    let at = format!("{at} (`{id}`, {ty})");
    let allowed: &[&str] = match ty {
        "dedupe_exact" => &["columns", "keep"],
        "impute" => &["columns", "method", "value", "by"],
        "normalize_text" => &[
            "columns",
            "trim",
            "collapse_whitespace",
            "case",
            "unicode",
            "strip_accents",
            "null_tokens",
        ],
        "canonicalize" => &["columns", "values", "threshold"],
        "parse" => &["columns", "to", "day_first", "decimal"],
        "standardize" => &["columns", "kind", "default_country_code"],
        "outliers" => &["columns", "method", "k", "action"],
        "filter" => &["drop_where", "reason"],
        "pii" => &["columns", "strategy"],
        "rename" => &["mapping"],
        "drop" => &["columns"],
        "cast" => &["types"],
        "dedupe_fuzzy" => &[
            "columns",
            "threshold",
            "settings",
            "model",
            "survivor",
            "recency",
            "source",
            "priority",
            "fields",
            "default",
        ],
        other => {
            return Err(format!(
                "{at}: unknown step type `{other}`{}; types are {}",
                did_you_mean(other, STEP_TYPES),
                STEP_TYPES.join(", ")
            ));
        }
    };
    let mut params = Map::new();
    for (k, v) in m {
        if ["type", "id", "confidence", "rationale"].contains(&k.as_str()) {
            continue;
        }
        if !allowed.contains(&k.as_str()) {
            return Err(format!(
                "{at}: unknown field `{k}`{}; {ty} takes {}",
                did_you_mean(k, allowed.iter().copied()),
                allowed.join(", ")
            ));
        }
        params.insert(k.clone(), v.clone());
    }
    let p: Fields = &params;
    let kind = parse_kind(ty, p).map_err(|e| format!("{at}: {e}"))?;
    Ok(Step {
        id,
        kind,
        params: Value::Object(params),
        confidence: m.get("confidence").and_then(|c| c.as_f64()),
        rationale: m
            .get("rationale")
            .and_then(|c| c.as_str())
            .map(String::from),
    })
}

fn strings(p: Fields, k: &str) -> Result<Option<Vec<String>>, String> {
    match p.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                other => Ok(other.to_string()),
            })
            .collect::<Result<Vec<_>, String>>()
            .map(Some),
        Some(v) => Err(format!("`{k}` must be a list of names, not {v}")),
    }
}

fn need_columns(p: Fields) -> Result<Vec<String>, String> {
    match strings(p, "columns")? {
        Some(c) if !c.is_empty() => Ok(c),
        _ => Err("`columns` is missing: name the columns this step changes".into()),
    }
}

fn flag(p: Fields, k: &str, default: bool) -> Result<bool, String> {
    match p.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(format!("`{k}` must be true or false, not {v}")),
    }
}

fn word<'a>(p: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, String> {
    match p.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(v) => Err(format!("`{k}` must be a word, not {v}")),
    }
}

fn choice<T: Copy>(p: Fields, k: &str, options: &[(&str, T)]) -> Result<Option<T>, String> {
    let Some(w) = word(p, k)? else {
        return Ok(None);
    };
    options
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(w))
        .map(|(_, t)| Some(*t))
        .ok_or_else(|| {
            format!(
                "`{k}: {w}` is not one of {}{}",
                options.iter().map(|o| o.0).collect::<Vec<_>>().join(", "),
                did_you_mean(w, options.iter().map(|o| o.0))
            )
        })
}

fn number(p: Fields, k: &str) -> Result<Option<f64>, String> {
    match p.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("`{k}` must be a number, not {v}")),
    }
}

fn parse_kind(ty: &str, p: Fields) -> Result<StepKind, String> {
    Ok(match ty {
        "dedupe_exact" => StepKind::DedupeExact {
            columns: strings(p, "columns")?.filter(|c| !c.is_empty()),
            keep: choice(p, "keep", &[("first", Keep::First), ("last", Keep::Last)])?
                .unwrap_or(Keep::First),
        },
        "dedupe_fuzzy" => StepKind::DedupeFuzzy(parse_fuzzy(p)?),
        "impute" => {
            let m = word(p, "method")?
                .ok_or("`method` is missing (mean, median, mode, constant, ffill)")?;
            let method = match m {
                "mean" => ImputeMethod::Mean,
                "median" => ImputeMethod::Median,
                "mode" => ImputeMethod::Mode,
                "ffill" | "forward_fill" => ImputeMethod::ForwardFill,
                "constant" => ImputeMethod::Constant(match p.get("value") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => {
                        return Err("`method: constant` needs `value`".into());
                    }
                    Some(v) => v.to_string(),
                }),
                other => {
                    return Err(format!(
                        "`method: {other}` is not one of mean, median, mode, constant, ffill{}",
                        did_you_mean(other, ["mean", "median", "mode", "constant", "ffill"])
                    ));
                }
            };
            let by = strings(p, "by")?.unwrap_or_default();
            if !by.is_empty()
                && matches!(
                    method,
                    ImputeMethod::Constant(_) | ImputeMethod::ForwardFill
                )
            {
                return Err("`by` works with mean, median and mode".into());
            }
            StepKind::Impute {
                columns: need_columns(p)?,
                method,
                by,
            }
        }
        "normalize_text" => StepKind::NormalizeText {
            columns: need_columns(p)?,
            trim: flag(p, "trim", true)?,
            collapse_whitespace: flag(p, "collapse_whitespace", false)?,
            case: choice(
                p,
                "case",
                &[
                    ("lower", Case::Lower),
                    ("upper", Case::Upper),
                    ("title", Case::Title),
                ],
            )?,
            unicode: choice(
                p,
                "unicode",
                &[("nfc", NormalForm::Nfc), ("nfkc", NormalForm::Nfkc)],
            )?,
            strip_accents: flag(p, "strip_accents", false)?,
            nullify_tokens: flag(p, "null_tokens", false)?,
        },
        "canonicalize" => {
            let threshold = number(p, "threshold")?.unwrap_or(0.85);
            if !(0.0..=1.0).contains(&threshold) {
                return Err(format!("`threshold: {threshold}` must be between 0 and 1"));
            }
            StepKind::Canonicalize {
                columns: need_columns(p)?,
                values: strings(p, "values")?,
                threshold,
            }
        }
        "parse" => StepKind::Parse {
            columns: need_columns(p)?,
            to: choice(
                p,
                "to",
                &[
                    ("date", ParseTarget::Date),
                    ("number", ParseTarget::Number),
                    ("boolean", ParseTarget::Boolean),
                ],
            )?
            .ok_or("`to` is missing (date, number or boolean)")?,
            day_first: flag(p, "day_first", false)?,
            decimal_comma: choice(p, "decimal", &[("point", false), ("comma", true)])?
                .unwrap_or(false),
        },
        "standardize" => StepKind::Standardize {
            columns: need_columns(p)?,
            kind: choice(
                p,
                "kind",
                &[
                    ("phone", StandardKind::Phone),
                    ("email", StandardKind::Email),
                    ("country", StandardKind::Country),
                    ("state", StandardKind::State),
                ],
            )?
            .ok_or("`kind` is missing (phone, email, country or state)")?,
            default_country_code: match p.get("default_country_code") {
                None | Some(Value::Null) => "1".into(),
                Some(Value::String(s)) => s.trim_start_matches('+').to_string(),
                Some(v) => v.to_string(),
            },
        },
        "outliers" => {
            let method = choice(
                p,
                "method",
                &[
                    ("iqr", OutlierMethod::Iqr),
                    ("robust_z", OutlierMethod::RobustZ),
                ],
            )?
            .unwrap_or(OutlierMethod::Iqr);
            let k = number(p, "k")?.unwrap_or(match method {
                OutlierMethod::Iqr => 1.5,
                OutlierMethod::RobustZ => 3.5,
            });
            if k <= 0.0 {
                return Err(format!("`k: {k}` must be positive"));
            }
            StepKind::Outliers {
                columns: need_columns(p)?,
                method,
                k,
                // YAML reads a bare `action: null` as a null value: that spelling means "set to null".
                action: if p.get("action") == Some(&Value::Null) {
                    OutlierAction::Null
                } else {
                    choice(
                        p,
                        "action",
                        &[
                            ("flag", OutlierAction::Flag),
                            ("clip", OutlierAction::Clip),
                            ("null", OutlierAction::Null),
                            ("set_null", OutlierAction::Null),
                        ],
                    )?
                    .ok_or("`action` is missing (flag, clip or null)")?
                },
            }
        }
        "filter" => {
            let drop_where = word(p, "drop_where")?
                .ok_or(
                    "`drop_where` is missing: a SQL condition; rows where it is true are dropped",
                )?
                .to_string();
            StepKind::Filter {
                reason: word(p, "reason")?
                    .map(String::from)
                    .unwrap_or_else(|| format!("dropped where {drop_where}")),
                drop_where,
            }
        }
        "pii" => StepKind::Pii {
            columns: strings(p, "columns")?,
            strategy: match word(p, "strategy")? {
                None => None,
                Some(s) => Some(PiiStrategy::parse(s).ok_or_else(|| {
                    format!("`strategy: {s}` is not one of {}", PiiStrategy::NAMES)
                })?),
            },
        },
        "rename" => {
            let Some(Value::Object(m)) = p.get("mapping") else {
                return Err("`mapping` must be a mapping of old name to new name".into());
            };
            StepKind::Rename {
                mapping: m
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => Ok((k.clone(), s.clone())),
                        other => Err(format!("`mapping.{k}` must be a name, not {other}")),
                    })
                    .collect::<Result<_, _>>()?,
            }
        }
        "drop" => StepKind::Drop {
            columns: need_columns(p)?,
        },
        "cast" => {
            let Some(Value::Object(m)) = p.get("types") else {
                return Err("`types` must be a mapping of column to type".into());
            };
            StepKind::Cast {
                types: m
                    .iter()
                    .map(|(k, v)| {
                        let t = v.as_str().and_then(ColumnType::parse).ok_or_else(|| {
                            format!(
                                "`types.{k}: {v}` is not a type; use one of {}",
                                ColumnType::ALL.map(|t| t.name()).join(", ")
                            )
                        })?;
                        Ok((k.clone(), t))
                    })
                    .collect::<Result<_, String>>()?,
            }
        }
        _ => return Err(format!("unknown step type `{ty}`")),
    })
}

fn parse_fuzzy(p: Fields) -> Result<FuzzySpec, String> {
    let threshold = number(p, "threshold")?;
    if let Some(t) = threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(format!(
            "`threshold: {t}` must be a probability between 0 and 1"
        ));
    }
    let survivor = choice(
        p,
        "survivor",
        &[
            ("most_complete", 0),
            ("most_recent", 1),
            ("source_priority", 2),
            ("first", 3),
        ],
    )?
    .map_or(Survivor::MostComplete, |i| match i {
        1 => Survivor::MostRecent,
        2 => Survivor::SourcePriority,
        3 => Survivor::First,
        _ => Survivor::MostComplete,
    });
    let default_field = choice(p, "default", &FieldRule::ALL)?.unwrap_or(FieldRule::Coalesce);
    let mut fields = BTreeMap::new();
    match p.get("fields") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (c, v) in m {
                let w = v.as_str().unwrap_or_default();
                let rule = FieldRule::ALL
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(w))
                    .map(|(_, r)| *r)
                    .ok_or_else(|| {
                        format!(
                            "`fields.{c}: {v}` is not one of {}{}",
                            FieldRule::ALL.map(|r| r.0).join(", "),
                            did_you_mean(w, FieldRule::ALL.map(|r| r.0))
                        )
                    })?;
                fields.insert(c.clone(), rule);
            }
        }
        Some(v) => return Err(format!("`fields` must map columns to rules, not {v}")),
    }
    let recency = word(p, "recency")?.map(String::from);
    let source = word(p, "source")?.map(String::from);
    let priority = strings(p, "priority")?.unwrap_or_default();
    let uses = |r: FieldRule| default_field == r || fields.values().any(|x| *x == r);
    if (survivor == Survivor::MostRecent || uses(FieldRule::MostRecent)) && recency.is_none() {
        return Err(
            "`most_recent` needs `recency: COLUMN` (a date, time or number that grows)".into(),
        );
    }
    if (survivor == Survivor::SourcePriority || uses(FieldRule::SourcePriority))
        && (source.is_none() || priority.is_empty())
    {
        return Err(
            "`source_priority` needs `source: COLUMN` and `priority: [best, next, ...]`".into(),
        );
    }
    Ok(FuzzySpec {
        columns: strings(p, "columns")?.filter(|c| !c.is_empty()),
        threshold,
        settings: word(p, "settings")?.map(String::from),
        model: word(p, "model")?.map(String::from),
        survivor,
        recency,
        source,
        priority,
        fields,
        default_field,
    })
}
