//! Comparison levels: how similar two values of one field are.
//!
//! A comparison is an ordered list of levels, most similar first; a pair of
//! values gets the first level that holds. Level 0 is "null" (either side
//! missing: no evidence either way) and the level after the last is "else".
//! String distances come from `rapidfuzz` (bit-parallel, with score cutoffs,
//! on bytes when both strings are ASCII); dates and numbers are parsed once
//! per distinct value.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::table::Column;

/// One comparison level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Level {
    /// The normalised values are equal.
    Exact,
    /// Jaro-Winkler similarity at least `at_least`.
    JaroWinkler {
        /// Lower bound, 0..1.
        at_least: f64,
    },
    /// Levenshtein distance at most `at_most`.
    Levenshtein {
        /// Upper bound on edits.
        at_most: usize,
    },
    /// Damerau-Levenshtein distance (optimal string alignment: adjacent
    /// transpositions count one edit) at most `at_most`.
    DamerauLevenshtein {
        /// Upper bound on edits.
        at_most: usize,
    },
    /// Both parse as dates no more than `days` apart.
    DaysWithin {
        /// Upper bound on the difference in days.
        days: i64,
    },
    /// Both parse as numbers within `abs`, or within `rel` of the larger magnitude.
    NumberWithin {
        /// Absolute tolerance.
        #[serde(default)]
        abs: f64,
        /// Relative tolerance (0.05 = 5 %).
        #[serde(default)]
        rel: f64,
    },
    /// E-mail addresses with the same part before `@`.
    SameEmailUser,
}

impl Level {
    /// A short label for explanations.
    pub fn label(&self) -> String {
        match self {
            Level::Exact => "exact".into(),
            Level::JaroWinkler { at_least } => format!("jaro_winkler>={at_least}"),
            Level::Levenshtein { at_most } => format!("levenshtein<={at_most}"),
            Level::DamerauLevenshtein { at_most } => format!("damerau_levenshtein<={at_most}"),
            Level::DaysWithin { days } => format!("within {days} days"),
            Level::NumberWithin { abs, rel } => format!("within {abs} or {}%", rel * 100.0),
            Level::SameEmailUser => "same e-mail user".into(),
        }
    }
}

/// Parses a date as written in the data: the common formats tamis reads, and
/// `YYYYMMDD` digit strings (as dates of birth are often stored).
pub fn parse_day(v: &str) -> Option<i32> {
    let d = tamis_core::types::parse_date(v)
        .map(|(d, _)| d)
        .or_else(|| {
            let b = v.as_bytes();
            if b.len() == 8 && b.iter().all(u8::is_ascii_digit) {
                NaiveDate::parse_from_str(v, "%Y%m%d").ok()
            } else {
                None
            }
        })?;
    Some(d.num_days_from_ce())
}

/// Jaro-Winkler similarity (prefix weight 0.1), or 0 below `cutoff`.
pub fn jaro_winkler(x: &str, y: &str, cutoff: f64) -> f64 {
    use rapidfuzz::distance::jaro_winkler as jw;
    let args = jw::Args::default().score_cutoff(cutoff);
    if x.is_ascii() && y.is_ascii() {
        jw::similarity_with_args(x.bytes(), y.bytes(), &args)
    } else {
        jw::similarity_with_args(x.chars(), y.chars(), &args)
    }
    .unwrap_or(0.0)
}

/// Levenshtein distance, or `None` when above `cutoff`.
pub fn levenshtein(x: &str, y: &str, cutoff: usize) -> Option<usize> {
    use rapidfuzz::distance::levenshtein as l;
    let args = l::Args::default().score_cutoff(cutoff);
    if x.is_ascii() && y.is_ascii() {
        l::distance_with_args(x.bytes(), y.bytes(), &args)
    } else {
        l::distance_with_args(x.chars(), y.chars(), &args)
    }
}

/// Optimal-string-alignment distance (Damerau-Levenshtein where a
/// transposition is not edited again), or `None` when above `cutoff`.
pub fn osa(x: &str, y: &str, cutoff: usize) -> Option<usize> {
    use rapidfuzz::distance::osa as o;
    let args = o::Args::default().score_cutoff(cutoff);
    if x.is_ascii() && y.is_ascii() {
        o::distance_with_args(x.bytes(), y.bytes(), &args)
    } else {
        o::distance_with_args(x.chars(), y.chars(), &args)
    }
}

/// A comparison bound to a loaded column: its levels and per-value caches.
#[derive(Debug)]
pub struct Comparator {
    /// The levels, most similar first.
    pub levels: Vec<Level>,
    days: Option<Vec<Option<i32>>>,
    numbers: Option<Vec<Option<f64>>>,
    /// The loosest bound of each similarity among the levels: computations
    /// stop early beyond it.
    jw_min: f64,
    lev_max: usize,
    osa_max: usize,
}

/// Lazily computed similarities of one pair of values.
struct Memo {
    jw: Option<f64>,
    lev: Option<Option<usize>>,
    osa: Option<Option<usize>>,
}

impl Comparator {
    /// Binds `levels` to `col`, parsing dates and numbers once per distinct value.
    pub fn new(levels: Vec<Level>, col: &Column) -> Comparator {
        let days = levels
            .iter()
            .any(|l| matches!(l, Level::DaysWithin { .. }))
            .then(|| col.values.iter().map(|v| parse_day(v)).collect());
        let numbers = levels
            .iter()
            .any(|l| matches!(l, Level::NumberWithin { .. }))
            .then(|| {
                col.values
                    .iter()
                    .map(|v| tamis_core::types::parse_float(v.trim()))
                    .collect()
            });
        let jw_min = levels
            .iter()
            .filter_map(|l| match l {
                Level::JaroWinkler { at_least } => Some(*at_least),
                _ => None,
            })
            .fold(1.0, f64::min);
        let lev_max = levels
            .iter()
            .filter_map(|l| match l {
                Level::Levenshtein { at_most } => Some(*at_most),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let osa_max = levels
            .iter()
            .filter_map(|l| match l {
                Level::DamerauLevenshtein { at_most } => Some(*at_most),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        Comparator {
            levels,
            days,
            numbers,
            jw_min,
            lev_max,
            osa_max,
        }
    }

    /// Parses the values `col` gained since this comparator was bound (incremental matching).
    pub fn extend(&mut self, col: &Column) {
        if let Some(d) = &mut self.days {
            let from = d.len();
            d.extend(col.values[from..].iter().map(|v| parse_day(v)));
        }
        if let Some(n) = &mut self.numbers {
            let from = n.len();
            n.extend(
                col.values[from..]
                    .iter()
                    .map(|v| tamis_core::types::parse_float(v.trim())),
            );
        }
    }

    /// Number of levels including null (0) and else (last).
    pub fn n_levels(&self) -> usize {
        self.levels.len() + 2
    }

    /// The label of level `g`.
    pub fn level_label(&self, g: usize) -> String {
        if g == 0 {
            "null".into()
        } else if g <= self.levels.len() {
            self.levels[g - 1].label()
        } else {
            "else".into()
        }
    }

    /// The level of the value pair (`a`, `b`), ids into `col`.
    #[inline]
    pub fn level(&self, col: &Column, a: u32, b: u32) -> u8 {
        if a == 0 || b == 0 {
            return 0;
        }
        if a == b {
            return 1;
        }
        let (x, y) = (&*col.values[a as usize], &*col.values[b as usize]);
        let mut memo = Memo {
            jw: None,
            lev: None,
            osa: None,
        };
        for (k, l) in self.levels.iter().enumerate() {
            if self.holds(l, a, b, x, y, &mut memo) {
                return (k + 1) as u8;
            }
        }
        (self.levels.len() + 1) as u8
    }

    fn holds(&self, l: &Level, a: u32, b: u32, x: &str, y: &str, memo: &mut Memo) -> bool {
        match *l {
            Level::Exact => false, // equal ids were handled by the caller
            Level::JaroWinkler { at_least } => {
                *memo
                    .jw
                    .get_or_insert_with(|| jaro_winkler(x, y, self.jw_min))
                    >= at_least
            }
            Level::Levenshtein { at_most } => memo
                .lev
                .get_or_insert_with(|| levenshtein(x, y, self.lev_max))
                .is_some_and(|d| d <= at_most),
            Level::DamerauLevenshtein { at_most } => memo
                .osa
                .get_or_insert_with(|| osa(x, y, self.osa_max))
                .is_some_and(|d| d <= at_most),
            Level::DaysWithin { days } => {
                let d = self.days.as_ref();
                match (d.and_then(|d| d[a as usize]), d.and_then(|d| d[b as usize])) {
                    (Some(p), Some(q)) => ((p - q) as i64).abs() <= days,
                    _ => false,
                }
            }
            Level::NumberWithin { abs, rel } => {
                let n = self.numbers.as_ref();
                match (n.and_then(|n| n[a as usize]), n.and_then(|n| n[b as usize])) {
                    (Some(p), Some(q)) => {
                        let diff = (p - q).abs();
                        diff <= abs || diff <= rel * p.abs().max(q.abs())
                    }
                    _ => false,
                }
            }
            Level::SameEmailUser => match (x.split_once('@'), y.split_once('@')) {
                (Some((u, _)), Some((v, _))) => u == v && !u.is_empty(),
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::table::Norm;

    fn col(values: &[&str]) -> Column {
        let mut c = Column::default();
        c.values.push("".into());
        c.hashes.push(0);
        c.counts.push(0);
        for v in values {
            let mut s = String::new();
            crate::table::normalize(v, Norm::Text, &mut s);
            c.values.push(s.into());
            c.hashes.push(0);
            c.counts.push(1);
        }
        c
    }

    #[test]
    fn known_distances() {
        // Textbook values: Jaro-Winkler(MARTHA, MARHTA) = 0.9611, (DIXON, DICKSONX) = 0.8133.
        assert!((jaro_winkler("martha", "marhta", 0.0) - 0.9611).abs() < 1e-3);
        assert!((jaro_winkler("dixon", "dicksonx", 0.0) - 0.8133).abs() < 1e-3);
        assert!(
            (jaro_winkler("jürgen", "jurgen", 0.0) - strsim::jaro_winkler("jürgen", "jurgen"))
                .abs()
                < 1e-9
        );
        assert_eq!(jaro_winkler("dixon", "dicksonx", 0.9), 0.0);
        assert_eq!(levenshtein("kitten", "sitting", 5), Some(3));
        assert_eq!(levenshtein("kitten", "sitting", 2), None);
        assert_eq!(levenshtein("crème", "creme", 2), Some(1));
        assert_eq!(osa("ca", "ac", 3), Some(1));
        assert_eq!(levenshtein("ca", "ac", 3), Some(2));
        assert_eq!(osa("ca", "abc", 3), Some(3)); // OSA, not unrestricted Damerau (2)
    }

    #[test]
    fn names_fall_into_the_first_level_that_holds() {
        let c = col(&["martha", "marhta", "dixon", "dicksonx", "zzz"]);
        let cmp = Comparator::new(
            vec![
                Level::Exact,
                Level::JaroWinkler { at_least: 0.92 },
                Level::JaroWinkler { at_least: 0.8 },
            ],
            &c,
        );
        assert_eq!(cmp.level(&c, 1, 1), 1);
        assert_eq!(cmp.level(&c, 1, 2), 2);
        assert_eq!(cmp.level(&c, 3, 4), 3);
        assert_eq!(cmp.level(&c, 1, 5), 4);
        assert_eq!(cmp.level(&c, 0, 5), 0);
        assert_eq!(cmp.level_label(4), "else");
        assert_eq!(cmp.level_label(2), "jaro_winkler>=0.92");
    }

    #[test]
    fn dates_and_numbers() {
        let c = col(&[
            "19560409",
            "1956-04-19",
            "1957-04-01",
            "x",
            "41",
            "42",
            "100",
        ]);
        let cmp = Comparator::new(
            vec![
                Level::Exact,
                Level::DaysWithin { days: 31 },
                Level::DaysWithin { days: 366 },
            ],
            &c,
        );
        assert_eq!(cmp.level(&c, 1, 2), 2);
        assert_eq!(cmp.level(&c, 1, 3), 3);
        assert_eq!(cmp.level(&c, 1, 4), 4);
        let num = Comparator::new(
            vec![Level::Exact, Level::NumberWithin { abs: 1.0, rel: 0.0 }],
            &c,
        );
        assert_eq!(num.level(&c, 5, 6), 2);
        assert_eq!(num.level(&c, 5, 7), 3);
        assert_eq!(parse_day("19560409"), parse_day("1956-04-09"));
    }

    #[test]
    fn edit_distance_levels() {
        let c = col(&["2119", "2191", "2911", "john@x.com", "john@y.org"]);
        let cmp = Comparator::new(
            vec![
                Level::Exact,
                Level::DamerauLevenshtein { at_most: 1 },
                Level::Levenshtein { at_most: 2 },
            ],
            &c,
        );
        assert_eq!(cmp.level(&c, 1, 2), 2); // one transposition
        assert_eq!(cmp.level(&c, 1, 3), 3);
        let e = Comparator::new(vec![Level::Exact, Level::SameEmailUser], &c);
        assert_eq!(e.level(&c, 4, 5), 2);
    }
}
