//! Settings: what to compare, how, and how to block. Written by
//! auto-configuration from the columns' roles, or read from YAML/JSON where
//! any part overrides the automatic choice.

use serde::{Deserialize, Serialize};

use crate::compare::Level;
use crate::table::Norm;

/// What a column holds, as far as matching is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A given name.
    FirstName,
    /// A family name.
    LastName,
    /// A whole name.
    FullName,
    /// A date of birth.
    DateOfBirth,
    /// Any other date.
    Date,
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
    /// A postcode / ZIP.
    Postcode,
    /// A house / street number.
    HouseNumber,
    /// A street address line.
    Address,
    /// A city, town or suburb.
    City,
    /// A state, province or region.
    State,
    /// A country.
    Country,
    /// A personal identifier (SSN, national id, passport, tax id...).
    PersonId,
    /// A number (age, amount, score).
    Number,
    /// A few repeated values (status, category).
    Category,
    /// Short text.
    Text,
    /// The record's own key (unique per row): written out, never compared.
    RecordKey,
    /// Long free text: not compared.
    FreeText,
}

impl Role {
    /// How values of this role are normalised.
    pub fn norm(self) -> Norm {
        match self {
            Role::Phone => Norm::Phone,
            Role::Email => Norm::Email,
            Role::RecordKey => Norm::Raw,
            _ => Norm::Text,
        }
    }

    /// Whether exact matches are weighted by how common the value is.
    pub fn term_frequency(self) -> bool {
        !matches!(self, Role::Date | Role::DateOfBirth | Role::Number)
    }

    /// The default comparison levels of this role (most similar first).
    pub fn levels(self) -> Vec<Level> {
        use Level::*;
        match self {
            Role::FirstName | Role::LastName | Role::FullName => vec![
                Exact,
                JaroWinkler { at_least: 0.92 },
                JaroWinkler { at_least: 0.88 },
                JaroWinkler { at_least: 0.7 },
            ],
            Role::DateOfBirth | Role::Date => vec![
                Exact,
                DamerauLevenshtein { at_most: 1 },
                DaysWithin { days: 31 },
                DaysWithin { days: 366 },
                DaysWithin { days: 3653 },
            ],
            Role::Email => vec![Exact, SameEmailUser, JaroWinkler { at_least: 0.88 }],
            Role::Phone => vec![Exact, DamerauLevenshtein { at_most: 1 }],
            Role::Postcode | Role::PersonId => vec![
                Exact,
                DamerauLevenshtein { at_most: 1 },
                DamerauLevenshtein { at_most: 2 },
            ],
            Role::Address => vec![
                Exact,
                Levenshtein { at_most: 1 },
                Levenshtein { at_most: 3 },
                JaroWinkler { at_least: 0.88 },
            ],
            Role::City | Role::Text => vec![
                Exact,
                Levenshtein { at_most: 1 },
                Levenshtein { at_most: 2 },
            ],
            Role::Number => vec![
                Exact,
                NumberWithin {
                    abs: 1.0,
                    rel: 0.02,
                },
            ],
            Role::HouseNumber | Role::State | Role::Country | Role::Category => vec![Exact],
            Role::RecordKey | Role::FreeText => Vec::new(),
        }
    }

    /// Whether the role is compared at all.
    pub fn compared(self) -> bool {
        !matches!(self, Role::RecordKey | Role::FreeText)
    }
}

/// One compared column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparisonSpec {
    /// The column (the same name in both inputs when linking).
    pub column: String,
    /// Its role (decides the defaults below).
    pub role: Role,
    /// Levels, most similar first; the role's defaults when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<Vec<Level>>,
    /// Term-frequency adjustment of exact matches; the role's default when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_frequency: Option<bool>,
}

impl ComparisonSpec {
    /// The levels in force.
    pub fn levels(&self) -> Vec<Level> {
        self.levels.clone().unwrap_or_else(|| self.role.levels())
    }

    /// Whether TF adjustment is on.
    pub fn tf(&self) -> bool {
        self.term_frequency
            .unwrap_or_else(|| self.role.term_frequency())
    }
}

/// A blocking rule: pairs are candidates when they agree on every column of
/// `on`, or, with `swapped: [a, b]`, when one's `a` equals the other's `b`
/// and the other way round (first and last name entered the wrong way round).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockingRule {
    /// Columns that must be equal (normalised).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<String>,
    /// Two columns that must be equal crosswise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swapped: Option<[String; 2]>,
    /// MinHash/LSH over the joined text of some columns: pairs sharing a band.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minhash: Option<crate::minhash::MinHashSpec>,
}

impl BlockingRule {
    /// `l.a = r.a and ...` as text.
    pub fn describe(&self) -> String {
        if let Some(m) = &self.minhash {
            return format!(
                "minhash({}; {} bands x {} rows, {}-grams)",
                m.columns.join(", "),
                m.bands,
                m.rows,
                m.ngram
            );
        }
        match &self.swapped {
            Some([a, b]) => format!("l.{a} = r.{b} and l.{b} = r.{a}"),
            None => self
                .on
                .iter()
                .map(|c| format!("l.{c} = r.{c}"))
                .collect::<Vec<_>>()
                .join(" and "),
        }
    }

    /// Every column the rule reads.
    pub fn columns(&self) -> Vec<&str> {
        if let Some(m) = &self.minhash {
            return m.columns.iter().map(String::as_str).collect();
        }
        match &self.swapped {
            Some([a, b]) => vec![a, b],
            None => self.on.iter().map(String::as_str).collect(),
        }
    }
}

/// Matching settings. Every field is optional in a file: what is left out is
/// chosen automatically.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The column written as `rec_id_l`/`rec_id_r` (default: the detected record key, else the row id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_column: Option<String>,
    /// Compared columns; a listed column replaces its automatic comparison.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comparisons: Vec<ComparisonSpec>,
    /// Columns never compared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Blocking rules; when given they replace the automatic ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocking: Vec<BlockingRule>,
    /// Match probability at or above which a pair is a match (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Random pairs sampled to estimate u (default 50 per row, at least 250,000, at most 1,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u_max_pairs: Option<u64>,
    /// Seed for the sampling (default 42).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Largest cluster formed; links that would grow a cluster past it are refused (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cluster_size: Option<usize>,
    /// Largest number of comparisons one automatic blocking rule may generate
    /// (default: 5 per row, at least 250,000; all rules together twice that).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_comparisons_per_rule: Option<u64>,
}

impl Settings {
    /// Reads settings from YAML or JSON (JSON is YAML).
    pub fn from_text(text: &str, source: &str) -> Result<Settings, crate::DedupError> {
        serde_yaml_ng::from_str(text).map_err(|e| crate::DedupError::Settings {
            origin: source.to_string(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn settings_parse_and_reject_unknown_fields() {
        let s = Settings::from_text(
            "comparisons:\n  - column: surname\n    role: last_name\n    levels:\n      - kind: exact\n      - kind: jaro_winkler\n        at_least: 0.9\nblocking:\n  - on: [surname]\n  - swapped: [given_name, surname]\nthreshold: 0.8\n",
            "s.yaml",
        )
        .unwrap();
        assert_eq!(s.comparisons[0].levels().len(), 2);
        assert_eq!(
            s.blocking[1].describe(),
            "l.given_name = r.surname and l.surname = r.given_name"
        );
        let e = Settings::from_text("treshold: 0.8\n", "s.yaml").unwrap_err();
        assert!(e.to_string().contains("treshold"), "{e}");
    }
}
