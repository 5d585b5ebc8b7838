//! Value frequencies: exact while a column has few distinct values, a sketch after.
//!
//! Up to [`EXACT_LIMIT`] distinct values per column, every value and its
//! count is kept: distinct counts, top values, case/whitespace variants and
//! shape patterns are then exact. Past it the state degrades, once, to a
//! HyperLogLog (distinct, ±2.5 % at 99 %) and a Misra–Gries summary of
//! [`MG_CAPACITY`] counters (top values: every value more frequent than
//! n / `MG_CAPACITY` is kept, each count low by at most the reported
//! `topk_error`). Both degrade and merge deterministically.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::hll::Hll;

/// Distinct values kept exactly per column (and per partition) before the sketch takes over.
pub const EXACT_LIMIT: usize = 16_384;
/// Counters kept by the Misra–Gries summary.
pub const MG_CAPACITY: usize = 1_024;

/// Value -> (count, first row id seen).
/// A fast string-keyed map. foldhash with a fixed seed: far quicker than SipHash
/// on short values, and the same layout every run (determinism).
pub type FastMap = HashMap<String, (u64, u64), foldhash::fast::FixedState>;

fn new_map(cap: usize) -> FastMap {
    HashMap::with_capacity_and_hasher(cap, foldhash::fast::FixedState::default())
}

/// Frequencies of a column's non-missing values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Freq {
    /// Every distinct value with its count.
    Exact(FastMap),
    /// A distinct-count sketch plus heavy hitters.
    Sketch {
        /// Distinct values.
        hll: Hll,
        /// Misra–Gries counters (lower bounds).
        mg: FastMap,
        /// Total decrement applied: the most any counter is low by.
        error: u64,
    },
}

impl Default for Freq {
    fn default() -> Self {
        Freq::Exact(new_map(64))
    }
}

impl Freq {
    /// Counts one value. Returns `true` when this call turned the state into a sketch.
    #[inline]
    pub fn add(&mut self, v: &str, row: u64) -> bool {
        match self {
            Freq::Exact(m) => {
                if let Some(c) = m.get_mut(v) {
                    c.0 += 1;
                    return false;
                }
                m.insert(v.to_string(), (1, row));
                if m.len() > EXACT_LIMIT {
                    self.degrade();
                    return true;
                }
                false
            }
            Freq::Sketch { hll, mg, error } => {
                hll.add_hash(xxh3_64(v.as_bytes()));
                if let Some(c) = mg.get_mut(v) {
                    c.0 += 1;
                } else {
                    mg.insert(v.to_string(), (1, row));
                    if mg.len() >= 2 * MG_CAPACITY {
                        *error += shrink(mg);
                    }
                }
                false
            }
        }
    }

    /// Whether the state is still exact.
    pub fn is_exact(&self) -> bool {
        matches!(self, Freq::Exact(_))
    }

    fn degrade(&mut self) {
        if let Freq::Exact(m) = self {
            let mut hll = Hll::default();
            for k in m.keys() {
                hll.add_hash(xxh3_64(k.as_bytes()));
            }
            let mut mg = std::mem::replace(m, new_map(0));
            let error = if mg.len() > MG_CAPACITY {
                shrink(&mut mg)
            } else {
                0
            };
            *self = Freq::Sketch { hll, mg, error };
        }
    }

    /// Merges another partition's frequencies.
    pub fn merge(&mut self, other: Freq) {
        match other {
            Freq::Exact(om) => {
                if let Freq::Exact(m) = self {
                    for (k, c) in om {
                        add_entry(m, k, c);
                    }
                    if m.len() > EXACT_LIMIT {
                        self.degrade();
                    }
                } else if let Freq::Sketch { hll, mg, error } = self {
                    for (k, c) in om {
                        hll.add_hash(xxh3_64(k.as_bytes()));
                        add_entry(mg, k, c);
                    }
                    if mg.len() > MG_CAPACITY {
                        *error += shrink(mg);
                    }
                }
            }
            Freq::Sketch {
                hll: oh,
                mg: om,
                error: oe,
            } => {
                self.degrade();
                if let Freq::Sketch { hll, mg, error } = self {
                    hll.merge(&oh);
                    for (k, c) in om {
                        add_entry(mg, k, c);
                    }
                    *error += oe;
                    if mg.len() > MG_CAPACITY {
                        *error += shrink(mg);
                    }
                }
            }
        }
    }

    /// Distinct non-missing values (exact, or the HyperLogLog estimate).
    pub fn distinct(&self) -> u64 {
        match self {
            Freq::Exact(m) => m.len() as u64,
            Freq::Sketch { hll, .. } => hll.estimate(),
        }
    }

    /// The `k` most frequent values, most frequent first, ties by value.
    pub fn top(&self, k: usize) -> Vec<(String, u64)> {
        let m = match self {
            Freq::Exact(m) => m,
            Freq::Sketch { mg, .. } => mg,
        };
        let mut v: Vec<(&String, &u64)> = m.iter().map(|(k, c)| (k, &c.0)).collect();
        let k = k.min(v.len());
        if k == 0 {
            return Vec::new();
        }
        let cmp =
            |a: &(&String, &u64), b: &(&String, &u64)| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0));
        v.select_nth_unstable_by(k - 1, cmp);
        v.truncate(k);
        v.sort_by(cmp);
        v.into_iter().map(|(s, c)| (s.clone(), *c)).collect()
    }

    /// The most a reported top count can be low by (0 when exact).
    pub fn error(&self) -> u64 {
        match self {
            Freq::Exact(_) => 0,
            Freq::Sketch { error, .. } => *error,
        }
    }

    /// The exact map, if still exact.
    pub fn exact(&self) -> Option<&FastMap> {
        match self {
            Freq::Exact(m) => Some(m),
            Freq::Sketch { .. } => None,
        }
    }

    /// The values known with their counts (all when exact, the heavy hitters otherwise).
    pub fn known(&self) -> &FastMap {
        match self {
            Freq::Exact(m) => m,
            Freq::Sketch { mg, .. } => mg,
        }
    }
}

fn add_entry(m: &mut FastMap, k: String, c: (u64, u64)) {
    let e = m.entry(k).or_insert((0, c.1));
    e.0 += c.0;
    e.1 = e.1.min(c.1);
}

/// Misra–Gries reduction: subtract the (capacity+1)-th largest count from
/// every counter and drop those that reach zero. Returns the amount subtracted.
fn shrink(mg: &mut FastMap) -> u64 {
    if mg.len() <= MG_CAPACITY {
        return 0;
    }
    let mut counts: Vec<u64> = mg.values().map(|c| c.0).collect();
    let idx = MG_CAPACITY; // 0-based: the (capacity+1)-th largest
    counts.select_nth_unstable_by(idx, |a, b| b.cmp(a));
    let cut = counts[idx];
    mg.retain(|_, c| {
        c.0 = c.0.saturating_sub(cut);
        c.0 > 0
    });
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_then_sketch() {
        let mut f = Freq::default();
        for i in 0..(EXACT_LIMIT as u64 + 10) {
            f.add(&format!("v{i}"), i);
            if i % 2 == 0 {
                f.add("hot", i);
            }
        }
        assert!(!f.is_exact());
        let d = f.distinct() as f64;
        assert!((d - (EXACT_LIMIT as f64 + 11.0)).abs() / d < 0.03, "{d}");
        let top = f.top(1);
        assert_eq!(top[0].0, "hot");
        let true_hot = (EXACT_LIMIT as u64 + 10).div_ceil(2);
        assert!(top[0].1 <= true_hot && top[0].1 + f.error() >= true_hot);
    }

    #[test]
    fn merge_exact_is_exact() {
        let (mut a, mut b) = (Freq::default(), Freq::default());
        a.add("x", 0);
        a.add("y", 1);
        b.add("x", 2);
        a.merge(b);
        assert_eq!(a.top(2), vec![("x".to_string(), 2), ("y".to_string(), 1)]);
        assert_eq!(a.distinct(), 2);
    }
}
