//! Data contracts: what a dataset promises (columns, types, nullability, PII
//! handling, canonical values, business rules).
//!
//! The shape is the common dataset-contract shape: `dataset_id`, `version`,
//! `schema.columns[]` with `name`, `type`, `nullable`, `pii`, `pii_strategy`,
//! `canonical_values` and `business_rules`, and a free-form `source`. YAML and
//! JSON are both read (JSON is YAML); rules may be written as a bare name
//! (`unique`), as `{range: {min: 0, max: 120}}` or as `{rule: range, min: 0}`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::types::ColumnType;

/// How a PII column is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiStrategy {
    /// Salted (keyed) SHA-256 of the value.
    Hash,
    /// Replaced by a `<TYPE>` marker.
    Redact,
    /// Free text kept, with the personal data found inside it (e-mail
    /// addresses, phones, cards, SSNs, IBANs, IP addresses, URLs) replaced by
    /// `<TYPE>` markers.
    RedactEntities,
    /// The column is dropped.
    Exclude,
    /// Reversible tokens in a key-held vault (the privacy vault).
    Tokenize,
}

impl PiiStrategy {
    /// The names a contract or plan may give, for messages.
    pub const NAMES: &str = "hash, redact, redact_entities, exclude, tokenize";

    /// The name used in contracts.
    pub fn name(self) -> &'static str {
        match self {
            PiiStrategy::Hash => "hash",
            PiiStrategy::Redact => "redact",
            PiiStrategy::RedactEntities => "redact_entities",
            PiiStrategy::Exclude => "exclude",
            PiiStrategy::Tokenize => "tokenize",
        }
    }

    /// Parses a strategy name.
    pub fn parse(s: &str) -> Option<PiiStrategy> {
        Some(match s {
            "hash" => PiiStrategy::Hash,
            "redact" => PiiStrategy::Redact,
            "redact_entities" => PiiStrategy::RedactEntities,
            "exclude" => PiiStrategy::Exclude,
            "tokenize" | "tokenise" => PiiStrategy::Tokenize,
            _ => return None,
        })
    }
}

/// A business rule on one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// No two rows share a (non-null) value.
    Unique,
    /// Numeric values are ≥ 0.
    NonNegative,
    /// The value is one of these.
    OneOf(Vec<String>),
    /// Numeric values lie within bounds (inclusive).
    Range {
        /// Lower bound.
        min: Option<f64>,
        /// Upper bound.
        max: Option<f64>,
    },
    /// The whole value matches a regular expression.
    Regex(String),
    /// Dates and datetimes are not after today.
    NotFuture,
    /// The value is one of the lines of a file.
    InSet {
        /// The file, relative to the contract's directory.
        file: PathBuf,
        /// Its values (one per non-empty line).
        values: Vec<String>,
    },
}

/// A `regex` rule's pattern compiled as checks use it: the whole value must match.
pub fn whole_value_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

impl Rule {
    /// The rule's name.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Unique => "unique",
            Rule::NonNegative => "non_negative",
            Rule::OneOf(_) => "one_of",
            Rule::Range { .. } => "range",
            Rule::Regex(_) => "regex",
            Rule::NotFuture => "not_future",
            Rule::InSet { .. } => "in_set",
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Rule::Unique | Rule::NonNegative | Rule::NotFuture => json!(self.name()),
            Rule::OneOf(v) => json!({ "one_of": v }),
            Rule::Range { min, max } => {
                let mut m = Map::new();
                if let Some(x) = min {
                    m.insert("min".into(), json!(x));
                }
                if let Some(x) = max {
                    m.insert("max".into(), json!(x));
                }
                json!({ "range": m })
            }
            Rule::Regex(r) => json!({ "regex": r }),
            Rule::InSet { file, .. } => json!({ "in_set": { "file": file.display().to_string() } }),
        }
    }
}

/// One column of a contract.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractColumn {
    /// Column name.
    pub name: String,
    /// Expected type (`None`: any).
    pub ty: Option<ColumnType>,
    /// Whether nulls are allowed.
    pub nullable: bool,
    /// Whether the column holds personal data.
    pub pii: bool,
    /// The PII type, when `pii` was given as a type name (`email`, `phone`, ...).
    pub pii_type: Option<String>,
    /// How PII is protected.
    pub pii_strategy: Option<PiiStrategy>,
    /// The allowed spellings, for `canonicalize`.
    pub canonical_values: Vec<String>,
    /// Business rules.
    pub rules: Vec<Rule>,
}

/// A dataset contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    /// The dataset's identifier.
    pub dataset_id: String,
    /// The contract's version (kept as written).
    pub version: Value,
    /// Where the data comes from (free-form, kept as written).
    pub source: Value,
    /// Columns.
    pub columns: Vec<ContractColumn>,
}

/// A contract that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ContractError {
    /// The contract file.
    pub file: String,
    /// What is wrong, with the path inside the contract.
    pub message: String,
}

impl Contract {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ContractColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Reads a YAML or JSON contract; `in_set` files are read relative to it.
    pub fn read(path: &Path) -> Result<Contract, ContractError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ContractError {
            file: file.clone(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Contract::parse(&text, &file, base)
    }

    /// Parses contract text (YAML or JSON); `name` is used in messages.
    pub fn parse(text: &str, name: &str, base: &Path) -> Result<Contract, ContractError> {
        let err = |message: String| ContractError {
            file: name.to_string(),
            message,
        };
        let v: Value =
            serde_yaml_ng::from_str(text).map_err(|e| err(format!("not YAML or JSON: {e}")))?;
        let Value::Object(top) = v else {
            return Err(err(
                "a contract is a mapping with `dataset_id` and `schema`".into(),
            ));
        };
        let dataset_id = match top.get("dataset_id") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let cols = top
            .get("schema")
            .and_then(|s| s.get("columns"))
            .and_then(|c| c.as_array())
            .ok_or_else(|| err("`schema.columns` must be a list of columns".into()))?;
        let mut columns = Vec::new();
        for (i, c) in cols.iter().enumerate() {
            columns.push(parse_column(c, i, base).map_err(err)?);
        }
        Ok(Contract {
            dataset_id,
            version: top.get("version").cloned().unwrap_or(json!(1)),
            source: top.get("source").cloned().unwrap_or(Value::Null),
            columns,
        })
    }

    /// The contract as a JSON value in the canonical shape.
    pub fn to_value(&self) -> Value {
        let cols: Vec<Value> = self
            .columns
            .iter()
            .map(|c| {
                let mut m = Map::new();
                m.insert("name".into(), json!(c.name));
                if let Some(t) = c.ty {
                    m.insert("type".into(), json!(t.name()));
                }
                m.insert("nullable".into(), json!(c.nullable));
                match &c.pii_type {
                    Some(t) => m.insert("pii".into(), json!(t)),
                    None => m.insert("pii".into(), json!(c.pii)),
                };
                if let Some(s) = c.pii_strategy {
                    m.insert("pii_strategy".into(), json!(s.name()));
                }
                if !c.canonical_values.is_empty() {
                    m.insert("canonical_values".into(), json!(c.canonical_values));
                }
                if !c.rules.is_empty() {
                    m.insert(
                        "business_rules".into(),
                        Value::Array(c.rules.iter().map(Rule::to_value).collect()),
                    );
                }
                Value::Object(m)
            })
            .collect();
        json!({
            "dataset_id": self.dataset_id,
            "version": self.version,
            "source": self.source,
            "schema": { "columns": cols },
        })
    }

    /// The contract as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.to_value()).unwrap_or_default()
    }
}

fn parse_column(c: &Value, i: usize, base: &Path) -> Result<ContractColumn, String> {
    let at = format!("schema.columns[{i}]");
    let Value::Object(m) = c else {
        return Err(format!("{at} must be a mapping with at least `name`"));
    };
    let name = m
        .get("name")
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("{at}.name is missing"))?
        .to_string();
    let at = format!("{at} (`{name}`)");
    const KNOWN: [&str; 8] = [
        "name",
        "type",
        "nullable",
        "pii",
        "pii_strategy",
        "canonical_values",
        "business_rules",
        "description",
    ];
    for k in m.keys() {
        if !KNOWN.contains(&k.as_str()) {
            return Err(format!(
                "{at}: unknown field `{k}`{}",
                did_you_mean(k, KNOWN.iter().copied())
            ));
        }
    }
    let ty = match m.get("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(ColumnType::parse(t).ok_or_else(|| {
            format!(
                "{at}.type `{t}` is not a type; use one of {}",
                ColumnType::ALL.map(|t| t.name()).join(", ")
            )
        })?),
        Some(v) => return Err(format!("{at}.type must be a string, not {v}")),
    };
    let nullable = m.get("nullable").and_then(|v| v.as_bool()).unwrap_or(true);
    let (pii, pii_type) = match m.get("pii") {
        None | Some(Value::Null) => (false, None),
        Some(Value::Bool(b)) => (*b, None),
        Some(Value::String(s)) => (true, Some(s.clone())),
        Some(v) => {
            return Err(format!(
                "{at}.pii must be true/false or a PII type, not {v}"
            ));
        }
    };
    let pii_strategy = match m.get("pii_strategy") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(PiiStrategy::parse(s).ok_or_else(|| {
            format!(
                "{at}.pii_strategy `{s}` must be one of {}",
                PiiStrategy::NAMES
            )
        })?),
        Some(v) => return Err(format!("{at}.pii_strategy must be a string, not {v}")),
    };
    let canonical_values = match m.get("canonical_values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().map(value_text).collect(),
        Some(v) => return Err(format!("{at}.canonical_values must be a list, not {v}")),
    };
    let rules = match m.get("business_rules") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(j, r)| parse_rule(r, &format!("{at}.business_rules[{j}]"), base))
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(format!("{at}.business_rules must be a list, not {v}")),
    };
    Ok(ContractColumn {
        name,
        ty,
        nullable,
        pii,
        pii_type,
        pii_strategy,
        canonical_values,
        rules,
    })
}

/// A value as text (strings unquoted).
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

const RULES: [&str; 7] = [
    "unique",
    "non_negative",
    "one_of",
    "range",
    "regex",
    "not_future",
    "in_set",
];

fn parse_rule(r: &Value, at: &str, base: &Path) -> Result<Rule, String> {
    // Normalise the three accepted spellings to (name, arguments).
    let (name, args): (String, Value) = match r {
        Value::String(s) => (s.clone(), Value::Null),
        Value::Object(m) if m.contains_key("rule") || m.contains_key("type") => {
            let n = m
                .get("rule")
                .or_else(|| m.get("type"))
                .map(value_text)
                .unwrap_or_default();
            let mut rest = m.clone();
            rest.remove("rule");
            rest.remove("type");
            (n, Value::Object(rest))
        }
        Value::Object(m) if m.len() == 1 => {
            let (k, v) = m
                .iter()
                .next()
                .map(|(k, v)| (k.clone(), v.clone()))
                .unwrap_or_default();
            (k, v)
        }
        other => {
            return Err(format!(
                "{at}: a rule is a name or a one-key mapping, not {other}"
            ));
        }
    };
    let num = |k: &str| -> Result<Option<f64>, String> {
        match args.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("{at}: `{k}` must be a number, not {v}")),
        }
    };
    Ok(match name.as_str() {
        "unique" => Rule::Unique,
        "non_negative" => Rule::NonNegative,
        "not_future" => Rule::NotFuture,
        "one_of" => {
            let list = args
                .as_array()
                .or_else(|| args.get("values").and_then(|v| v.as_array()))
                .ok_or_else(|| format!("{at}: one_of needs a list of values"))?;
            if list.is_empty() {
                // Every value would fail it.
                return Err(format!("{at}: one_of lists no values"));
            }
            Rule::OneOf(list.iter().map(value_text).collect())
        }
        "range" => {
            // `{min: 0, max: 130}`, or `[0, 130]` with `null` for an open end.
            let (min, max) = match args.as_array() {
                Some(ends) if ends.len() == 2 => {
                    let end = |v: &Value, k: &str| match v {
                        Value::Null => Ok(None),
                        v => v.as_f64().map(Some).ok_or_else(|| {
                            format!("{at}: the range's {k} must be a number or null, not {v}")
                        }),
                    };
                    (end(&ends[0], "min")?, end(&ends[1], "max")?)
                }
                Some(_) => {
                    return Err(format!(
                        "{at}: a range list is `[min, max]`, two numbers (null for an open end)"
                    ));
                }
                None => (num("min")?, num("max")?),
            };
            if min.is_none() && max.is_none() {
                return Err(format!(
                    "{at}: range needs `min`, `max` or both (`range: {{min: 0, max: 130}}` or `range: [0, 130]`)"
                ));
            }
            if let (Some(lo), Some(hi)) = (min, max)
                && lo > hi
            {
                return Err(format!("{at}: the range's min {lo} is above its max {hi}"));
            }
            Rule::Range { min, max }
        }
        "regex" => {
            let p = args
                .as_str()
                .or_else(|| args.get("pattern").and_then(|v| v.as_str()))
                .ok_or_else(|| format!("{at}: regex needs a pattern string"))?;
            // Compiled as the check compiles it, so a bad pattern is
            // reported here, with its place.
            if let Err(e) = whole_value_regex(p) {
                return Err(format!("{at}: regex `{p}` does not compile: {e}"));
            }
            Rule::Regex(p.to_string())
        }
        "in_set" => {
            let f = args
                .as_str()
                .or_else(|| args.get("file").and_then(|v| v.as_str()))
                .ok_or_else(|| format!("{at}: in_set needs `file`"))?;
            let path = base.join(f);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{at}: cannot read in_set file `{}`: {e}", path.display()))?;
            let values: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            if values.is_empty() {
                return Err(format!(
                    "{at}: the in_set file `{}` holds no values (one a line)",
                    path.display()
                ));
            }
            Rule::InSet {
                file: PathBuf::from(f),
                values,
            }
        }
        other => {
            return Err(format!(
                "{at}: unknown rule `{other}`{}; rules are {}",
                did_you_mean(other, RULES.iter().copied()),
                RULES.join(", ")
            ));
        }
    })
}

/// ` (did you mean `x`?)` when a known name is close to `word`, else empty.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let w = word.to_lowercase();
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(&w, &k.to_lowercase()), k))
        .filter(|(s, _)| *s >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const C: &str = r#"
dataset_id: customers
version: 2
source: {system: crm}
schema:
  columns:
    - name: customer_id
      type: integer
      nullable: false
      business_rules: [unique, non_negative]
    - name: email
      type: string
      pii: email
      pii_strategy: hash
    - name: age
      type: int
      business_rules:
        - range: {min: 0, max: 120}
    - name: status
      canonical_values: [active, inactive, suspended]
      business_rules:
        - {rule: one_of, values: [active, inactive, suspended]}
"#;

    #[test]
    fn contracts_parse_in_every_rule_spelling() {
        let c = Contract::parse(C, "c.yaml", Path::new(".")).unwrap();
        assert_eq!(c.dataset_id, "customers");
        assert_eq!(c.columns.len(), 4);
        assert_eq!(c.columns[0].rules, vec![Rule::Unique, Rule::NonNegative]);
        assert!(!c.columns[0].nullable);
        assert_eq!(c.columns[1].pii_type.as_deref(), Some("email"));
        assert_eq!(c.columns[1].pii_strategy, Some(PiiStrategy::Hash));
        assert_eq!(c.columns[2].ty, Some(ColumnType::Integer));
        assert_eq!(
            c.columns[2].rules,
            vec![Rule::Range {
                min: Some(0.0),
                max: Some(120.0)
            }]
        );
        assert_eq!(
            c.columns[3].rules[0],
            Rule::OneOf(vec!["active".into(), "inactive".into(), "suspended".into()])
        );
        let again = Contract::parse(&c.to_yaml(), "again", Path::new(".")).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn bad_contracts_name_the_place() {
        let e = Contract::parse(
            "schema:\n  columns:\n    - name: a\n      business_rules: [uniqe]\n",
            "c.yaml",
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("business_rules[0]"), "{e}");
        assert!(e.to_string().contains("did you mean `unique`"), "{e}");
        let e = Contract::parse(
            "schema:\n  columns:\n    - name: a\n      nulable: true\n",
            "c",
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("did you mean `nullable`"), "{e}");
        // Rules that cannot hold are refused where they are written.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty.txt"), "\n  \n").unwrap();
        for (rule, says) in [
            ("regex: \"[0-9\"", "regex `[0-9` does not compile"),
            ("one_of: []", "one_of lists no values"),
            ("in_set: empty.txt", "holds no values"),
        ] {
            let e = Contract::parse(
                &format!(
                    "schema:\n  columns:\n    - name: a\n      business_rules:\n        - unique\n        - {rule}\n"
                ),
                "c.yaml",
                dir.path(),
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("c.yaml") && e.contains("business_rules[1]") && e.contains(says),
                "{rule}: {e}"
            );
        }
    }

    #[test]
    fn a_range_is_a_mapping_or_a_pair_with_open_ends() {
        let rule = |r: &str| {
            Contract::parse(
                &format!("schema:\n  columns:\n    - name: a\n      business_rules:\n        - range: {r}\n"),
                "c.yaml",
                Path::new("."),
            )
            .map(|c| c.columns[0].rules[0].clone())
            .map_err(|e| e.to_string())
        };
        let range = |min, max| Ok(Rule::Range { min, max });
        assert_eq!(rule("[0, 130]"), range(Some(0.0), Some(130.0)));
        assert_eq!(rule("[null, 5.5]"), range(None, Some(5.5)));
        assert_eq!(rule("{min: 1}"), range(Some(1.0), None));
        for (bad, says) in [
            ("[1, 2, 3]", "two numbers"),
            ("[null, null]", "min`, `max` or both"),
            ("[a, 3]", "min must be a number or null"),
            ("[9, 1]", "min 9 is above its max 1"),
        ] {
            let e = rule(bad).unwrap_err();
            assert!(
                e.contains("business_rules[0]") && e.contains(says),
                "{bad}: {e}"
            );
        }
    }
}
