//! Blocking: which pairs are compared at all.
//!
//! A rule gives every row a 64-bit key (the hash of its normalised values on
//! the rule's columns; no key when one is null). Rows with equal keys form a
//! block and every pair inside a block is a candidate. Rules are unioned: a
//! pair that an earlier rule already produced is skipped by a later one, so
//! each candidate is scored once. Counting a rule's comparisons needs only
//! the block sizes, so it is reported before any pair is generated.

use serde::Serialize;

use crate::DedupError;
use crate::minhash::Lsh;
use crate::settings::BlockingRule;
use crate::table::Table;

/// A rule compiled to per-row keys.
#[derive(Debug)]
pub struct CompiledRule {
    /// The rule.
    pub rule: BlockingRule,
    /// Per row: the key on the left side of `l.x = r.x` (0 = no key).
    left: Vec<u64>,
    /// For swapped rules, the key on the right side; `None` when equal to `left`.
    right: Option<Vec<u64>>,
    /// For MinHash rules: the band keys and the buckets.
    lsh: Option<Lsh>,
}

/// (key, row) pairs of one side of a rule, sorted.
type Side = Vec<(u64, u32)>;

fn mix(h: u64, v: u64) -> u64 {
    // Order-sensitive combination of two 64-bit hashes (boost::hash_combine, widened).
    h ^ (v
        .wrapping_add(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(h << 6)
        .wrapping_add(h >> 2))
}

/// Row `r`'s blocking key on `cols` (0 when one of them is null).
#[inline]
pub(crate) fn row_key(t: &Table, cols: &[usize], r: usize) -> u64 {
    let mut h = 0x51_7cc1_b727_220a_u64;
    for &c in cols {
        let col = &t.columns[c];
        let id = col.ids[r];
        if id == 0 {
            return 0;
        }
        h = mix(h, col.hashes[id as usize]);
    }
    h | 1
}

fn keys(t: &Table, cols: &[usize]) -> Vec<u64> {
    (0..t.rows()).map(|r| row_key(t, cols, r)).collect()
}

/// The text a MinHash rule shingles for row `r`: its values on `cols`, joined by spaces.
pub(crate) fn minhash_text(t: &Table, cols: &[usize], r: usize) -> Option<String> {
    let parts: Vec<&str> = cols.iter().filter_map(|c| t.columns[*c].value(r)).collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

impl CompiledRule {
    /// Compiles `rule` against the loaded columns.
    pub fn new(rule: &BlockingRule, t: &Table, seed: u64) -> Result<CompiledRule, DedupError> {
        let idx = |c: &str| {
            t.column(c).ok_or_else(|| {
                DedupError::unknown_column(
                    c,
                    format!("blocking rule `{}`", rule.describe()),
                    t.columns.iter().map(|c| c.name.as_str()),
                )
            })
        };
        if let Some(spec) = &rule.minhash {
            let cols = spec
                .columns
                .iter()
                .map(|c| idx(c))
                .collect::<Result<Vec<_>, _>>()?;
            if cols.is_empty() {
                return Err(DedupError::Settings {
                    origin: "blocking".into(),
                    message: "a minhash rule needs `columns: [...]`".into(),
                });
            }
            let texts = (0..t.rows()).map(|r| minhash_text(t, &cols, r)).collect();
            let lsh = crate::minhash::lsh(texts, spec, seed)?;
            return Ok(CompiledRule {
                rule: rule.clone(),
                left: Vec::new(),
                right: None,
                lsh: Some(lsh),
            });
        }
        match &rule.swapped {
            Some([a, b]) => {
                let (a, b) = (idx(a)?, idx(b)?);
                Ok(CompiledRule {
                    rule: rule.clone(),
                    left: keys(t, &[a, b]),
                    right: Some(keys(t, &[b, a])),
                    lsh: None,
                })
            }
            None => {
                if rule.on.is_empty() {
                    return Err(DedupError::Settings {
                        origin: "blocking".into(),
                        message: "a blocking rule needs `on: [columns]` or `swapped: [a, b]`"
                            .into(),
                    });
                }
                let cols = rule
                    .on
                    .iter()
                    .map(|c| idx(c))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(CompiledRule {
                    rule: rule.clone(),
                    left: keys(t, &cols),
                    right: None,
                    lsh: None,
                })
            }
        }
    }

    /// Whether this rule makes (a, b) a candidate.
    #[inline]
    pub fn generates(&self, a: usize, b: usize) -> bool {
        if let Some(l) = &self.lsh {
            return Self::first_shared_band(l, a, b).is_some();
        }
        let right = self.right.as_deref().unwrap_or(&self.left);
        let k = self.left[a];
        k != 0 && k == right[b]
    }

    fn first_shared_band(l: &Lsh, a: usize, b: usize) -> Option<usize> {
        let (x, y) = (
            &l.keys[a * l.bands..(a + 1) * l.bands],
            &l.keys[b * l.bands..(b + 1) * l.bands],
        );
        x.iter().zip(y).position(|(p, q)| p == q && *p != 0)
    }

    /// LSH buckets skipped for being larger than the rule's `max_bucket`.
    pub fn skipped_buckets(&self) -> u64 {
        self.lsh.as_ref().map_or(0, |l| l.skipped)
    }

    /// A MinHash rule's pairs: each pair once, in the bucket of the first band it shares.
    fn lsh_pairs(
        l: &Lsh,
        t: &Table,
        link: bool,
        count_only: bool,
        mut emit: impl FnMut(u32, u32),
    ) -> u64 {
        let mut n = 0;
        for (key, rows) in &l.buckets {
            for (i, &a) in rows.iter().enumerate() {
                for &b in &rows[i + 1..] {
                    if link && t.source[a as usize] == t.source[b as usize] {
                        continue;
                    }
                    let first = Self::first_shared_band(l, a as usize, b as usize);
                    if first.map(|j| l.keys[a as usize * l.bands + j]) != Some(*key) {
                        continue;
                    }
                    n += 1;
                    if !count_only {
                        emit(a.min(b), a.max(b));
                    }
                }
            }
        }
        n
    }

    /// Sorted (key, row) lists of the two sides, over the rows `keep` accepts.
    fn sorted_sides(&self, keep: impl Fn(usize) -> bool) -> (Side, Option<Side>) {
        let side = |k: &[u64]| {
            let mut v: Vec<(u64, u32)> = k
                .iter()
                .enumerate()
                .filter(|(r, k)| **k != 0 && keep(*r))
                .map(|(r, k)| (*k, r as u32))
                .collect();
            v.sort_unstable();
            v
        };
        (side(&self.left), self.right.as_deref().map(side))
    }

    /// Every pair this rule generates, each as (smaller row, larger row);
    /// pairs of one source are skipped when `link`. Calls `emit` per pair and
    /// returns how many comparisons the rule makes.
    pub fn for_each_pair(
        &self,
        t: &Table,
        link: bool,
        count_only: bool,
        emit: impl FnMut(u32, u32),
    ) -> u64 {
        if let Some(l) = &self.lsh {
            return Self::lsh_pairs(l, t, link, count_only, emit);
        }
        let (l, r) = self.sorted_sides(|_| true);
        Self::pairs_in(t, l, r, link, count_only, emit)
    }

    /// The comparisons the rule makes, counted exactly up to `exact_up_to`
    /// rows; on larger tables estimated from a seeded 1-in-`s` row sample
    /// (each pair survives with probability 1/s², so the count is scaled by s²).
    /// Returns the count and whether it is an estimate.
    pub fn comparisons(&self, t: &Table, link: bool, exact_up_to: usize) -> (u64, bool) {
        let n = t.rows();
        if n <= exact_up_to || self.lsh.is_some() {
            return (self.for_each_pair(t, link, true, |_, _| {}), false);
        }
        let s = n.div_ceil(exact_up_to) as u64;
        let keep =
            |r: usize| xxhash_rust::xxh3::xxh3_64(&(r as u64).to_le_bytes()).is_multiple_of(s);
        let (l, r) = self.sorted_sides(keep);
        let c = Self::pairs_in(t, l, r, link, true, |_, _| {});
        (c.saturating_mul(s * s), true)
    }

    fn pairs_in(
        t: &Table,
        l: Side,
        r: Option<Side>,
        link: bool,
        count_only: bool,
        mut emit: impl FnMut(u32, u32),
    ) -> u64 {
        let mut n = 0u64;
        let ok = |a: u32, b: u32| !link || t.source[a as usize] != t.source[b as usize];
        match r {
            None => {
                let mut i = 0;
                while i < l.len() {
                    let mut j = i + 1;
                    while j < l.len() && l[j].0 == l[i].0 {
                        j += 1;
                    }
                    let block = &l[i..j];
                    if count_only && !link {
                        let c = block.len() as u64;
                        n += c * (c - 1) / 2;
                    } else if count_only {
                        let c1 = block
                            .iter()
                            .filter(|(_, r)| t.source[*r as usize] == 1)
                            .count();
                        n += (c1 * (block.len() - c1)) as u64;
                    } else {
                        for x in 0..block.len() {
                            for y in x + 1..block.len() {
                                let (a, b) = (block[x].1, block[y].1);
                                if ok(a, b) {
                                    n += 1;
                                    emit(a.min(b), a.max(b));
                                }
                            }
                        }
                    }
                    i = j;
                }
            }
            Some(r) => {
                // l.a = r.b and l.b = r.a: join the left keys with the right keys.
                let (mut i, mut j) = (0, 0);
                while i < l.len() && j < r.len() {
                    if l[i].0 < r[j].0 {
                        i += 1;
                    } else if l[i].0 > r[j].0 {
                        j += 1;
                    } else {
                        let k = l[i].0;
                        let i2 = i + l[i..].iter().take_while(|x| x.0 == k).count();
                        let j2 = j + r[j..].iter().take_while(|x| x.0 == k).count();
                        for x in &l[i..i2] {
                            for y in &r[j..j2] {
                                // l.a = r.b is symmetric: each unordered pair appears
                                // as (a, b) and as (b, a); keep a < b.
                                if x.1 < y.1 && ok(x.1, y.1) {
                                    n += 1;
                                    if !count_only {
                                        emit(x.1, y.1);
                                    }
                                }
                            }
                        }
                        i = i2;
                        j = j2;
                    }
                }
            }
        }
        n
    }
}

/// A rule with the comparisons it generates.
#[derive(Debug, Clone, Serialize)]
pub struct RuleCount {
    /// The rule as SQL-like text.
    pub rule: String,
    /// Pairs the rule generates on its own.
    pub comparisons: u64,
    /// Pairs it adds to the earlier rules (after removing overlaps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_comparisons: Option<u64>,
}

/// The union of the rules' candidate pairs, each once, sorted, with the
/// number each rule added.
pub fn candidates(
    t: &Table,
    rules: &[CompiledRule],
    link: bool,
) -> (Vec<(u32, u32)>, Vec<RuleCount>) {
    let mut out: Vec<(u32, u32)> = Vec::new();
    let mut counts = Vec::new();
    for (k, rule) in rules.iter().enumerate() {
        let before = out.len();
        let all = rule.for_each_pair(t, link, false, |a, b| {
            let (a, b) = (a as usize, b as usize);
            if !rules[..k].iter().any(|e| e.generates(a, b)) {
                out.push((a as u32, b as u32));
            }
        });
        counts.push(RuleCount {
            rule: rule.rule.describe(),
            comparisons: all,
            new_comparisons: Some((out.len() - before) as u64),
        });
    }
    out.sort_unstable();
    (out, counts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::settings::BlockingRule;
    use crate::table::{LoadSpec, Norm};

    pub(crate) fn table(rows: &[[&str; 3]]) -> Table {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        let mut s = String::from("first,last,zip\n");
        for r in rows {
            s.push_str(&r.join(","));
            s.push('\n');
        }
        std::fs::write(&p, s).unwrap();
        let ds = crate::table::Input::open(
            &[p.display().to_string()],
            &tamis_core::ReadOptions::default(),
        )
        .unwrap();
        crate::table::load(
            &[&ds],
            &LoadSpec {
                columns: vec![
                    ("first".into(), Norm::Text),
                    ("last".into(), Norm::Text),
                    ("zip".into(), Norm::Text),
                ],
                key: None,
            },
            std::sync::Arc::new(tamis_core::Quarantine::in_memory()),
        )
        .unwrap()
    }

    fn brute(t: &Table, rules: &[BlockingRule]) -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        let val = |c: &str, r: usize| t.columns[t.column(c).unwrap()].value(r).map(String::from);
        for a in 0..t.rows() {
            for b in a + 1..t.rows() {
                let hit = rules.iter().any(|rule| match &rule.swapped {
                    Some([x, y]) => {
                        val(x, a).is_some()
                            && val(y, a).is_some()
                            && val(x, a) == val(y, b)
                            && val(y, a) == val(x, b)
                    }
                    None => rule
                        .on
                        .iter()
                        .all(|c| val(c, a).is_some() && val(c, a) == val(c, b)),
                });
                if hit {
                    v.push((a as u32, b as u32));
                }
            }
        }
        v
    }

    #[test]
    fn union_of_rules_equals_brute_force_and_counts_before_running() {
        let rows = [
            ["john", "smith", "2000"],
            ["smith", "john", "2000"],
            ["John ", "SMITH", "2001"],
            ["mary", "jones", ""],
            ["mary", "jones", "3000"],
            ["jones", "mary", "3000"],
            ["smith", "john", "2002"],
            ["", "smith", "2000"],
            ["x", "x", "1"],
            ["x", "x", "1"],
        ];
        let t = table(&rows);
        let rules = vec![
            BlockingRule {
                on: vec!["first".into(), "last".into()],
                ..Default::default()
            },
            BlockingRule {
                on: vec!["zip".into()],
                ..Default::default()
            },
            BlockingRule {
                swapped: Some(["first".into(), "last".into()]),
                ..Default::default()
            },
        ];
        let compiled: Vec<CompiledRule> = rules
            .iter()
            .map(|r| CompiledRule::new(r, &t, 42).unwrap())
            .collect();
        let (pairs, counts) = candidates(&t, &compiled, false);
        assert_eq!(pairs, brute(&t, &rules));
        for (c, r) in counts.iter().zip(&compiled) {
            let n = r.for_each_pair(&t, false, true, |_, _| {});
            assert_eq!(n, c.comparisons, "{}", c.rule);
            assert_eq!(n, brute(&t, std::slice::from_ref(&r.rule)).len() as u64);
        }
        assert_eq!(
            counts
                .iter()
                .map(|c| c.new_comparisons.unwrap())
                .sum::<u64>(),
            pairs.len() as u64
        );
    }

    #[test]
    fn minhash_rule_pairs_each_shared_band_once() {
        let rows = [
            ["jonathan", "smithson", "2000"],
            ["jonathon", "smithson", "2000"],
            ["mary", "jones", "3000"],
            ["maria", "jones", "3000"],
            ["x", "y", "1"],
            ["jonathan", "smithson", "2000"],
        ];
        let t = table(&rows);
        let rule = BlockingRule {
            minhash: Some(crate::minhash::MinHashSpec::new(vec![
                "first".into(),
                "last".into(),
                "zip".into(),
            ])),
            ..Default::default()
        };
        let c = CompiledRule::new(&rule, &t, 42).unwrap();
        let (pairs, counts) = candidates(&t, std::slice::from_ref(&c), false);
        let mut brute = Vec::new();
        for a in 0..t.rows() {
            for b in a + 1..t.rows() {
                if c.generates(a, b) {
                    brute.push((a as u32, b as u32));
                }
            }
        }
        assert_eq!(pairs, brute);
        assert_eq!(counts[0].comparisons, pairs.len() as u64);
        assert!(
            pairs.contains(&(0, 5)) && pairs.contains(&(0, 1)),
            "{pairs:?}"
        );
        assert!(!pairs.iter().any(|p| p.0 == 4 || p.1 == 4));
    }
}
