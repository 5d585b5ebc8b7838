//! The Fellegi-Sunter model, trained without labels.
//!
//! For every field and level: m = P(level | match), u = P(level | non-match).
//! u comes from random pairs (nearly all non-matches); m and the share of
//! matches among the candidates come from expectation-maximisation over the
//! candidates' comparison vectors with u held fixed. A pair's match weight is
//! log2 of the prior odds plus, per field, log2(m/u) of its level; exact
//! matches on fields with term-frequency adjustment swap the average u for
//! the frequency of the shared value, so agreeing on "smith" counts less than
//! agreeing on "zbyszewski".

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::compare::Comparator;
use crate::table::Table;

/// Bits per field in a packed comparison vector.
const BITS: u32 = 4;
/// Most fields a model compares (64 bits / 4).
pub const MAX_FIELDS: usize = 16;
/// Most levels per field, null and else included.
pub const MAX_LEVELS: usize = 1 << BITS;

/// The parameters of one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldParams {
    /// The column.
    pub column: String,
    /// Level labels (index 0 = null, last = else).
    pub levels: Vec<String>,
    /// P(level | match), per level (index 0 unused).
    pub m: Vec<f64>,
    /// P(level | non-match), per level (index 0 unused).
    pub u: Vec<f64>,
    /// Whether exact matches get the term-frequency adjustment.
    pub term_frequency: bool,
}

/// A trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// P(two random records match) (λ).
    pub lambda: f64,
    /// Per compared field.
    pub fields: Vec<FieldParams>,
    /// How the parameters were estimated.
    pub training: Training,
}

/// What training did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// Random pairs sampled for u.
    pub u_pairs: u64,
    /// One EM run per blocking rule.
    pub em_runs: Vec<EmRun>,
    /// Candidate pairs the match share was estimated over.
    pub candidate_pairs: u64,
    /// Expected matches among the candidates.
    pub expected_matches: f64,
}

/// One EM run: over the pairs of one blocking rule, with the rule's own
/// columns left out (the rule made them agree).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmRun {
    /// The blocking rule.
    pub rule: String,
    /// Its pairs.
    pub pairs: u64,
    /// Distinct comparison vectors among them.
    pub patterns: u64,
    /// Columns left out.
    pub fixed: Vec<String>,
    /// Iterations run.
    pub iterations: u32,
    /// Whether it converged (largest parameter change below 1e-6).
    pub converged: bool,
    /// Share of matches among the rule's pairs.
    pub match_share: f64,
    /// Mean m of the exact level over the fields it estimated.
    pub exact_agreement: f64,
    /// Whether its m was used (agreement at least 0.5: otherwise the rule's
    /// pairs hold too few duplicates to learn from).
    pub used: bool,
}

/// The comparators of a model, bound to the loaded columns.
pub struct Scorer<'a> {
    /// The table.
    pub table: &'a Table,
    /// Per field: (column index, comparator).
    pub fields: &'a [(usize, Comparator)],
}

impl Scorer<'_> {
    /// The packed comparison vector of the pair (a, b).
    #[inline]
    pub fn gamma(&self, a: usize, b: usize) -> u64 {
        let mut g = 0u64;
        for (k, (c, cmp)) in self.fields.iter().enumerate() {
            let col = &self.table.columns[*c];
            let l = cmp.level(col, col.ids[a], col.ids[b]) as u64;
            g |= l << (BITS * k as u32);
        }
        g
    }
}

/// Level of field `k` in a packed vector.
#[inline]
pub fn level_of(g: u64, k: usize) -> usize {
    ((g >> (BITS * k as u32)) & (MAX_LEVELS as u64 - 1)) as usize
}

/// Uniform random pairs drawn from a counter-based hash, so the sample depends
/// only on the seed. In link mode one side comes from each input.
pub fn random_pairs(t: &Table, link: bool, n: u64, seed: u64) -> Vec<(usize, usize)> {
    let rows = t.rows() as u64;
    let n0 = t.rows_per_source[0];
    let mut out = Vec::with_capacity(n as usize);
    let mut i = 0u64;
    while (out.len() as u64) < n && rows >= 2 && i < n * 4 + 16 {
        let h1 = xxh3_64_with_seed(&i.to_le_bytes(), seed);
        let h2 = xxh3_64_with_seed(&i.to_le_bytes(), seed ^ 0xa5a5_a5a5_a5a5_a5a5);
        i += 1;
        let (a, b) = if link {
            let n1 = rows - n0;
            if n0 == 0 || n1 == 0 {
                break;
            }
            (h1 % n0, n0 + h2 % n1)
        } else {
            (h1 % rows, h2 % rows)
        };
        if a != b {
            out.push((a as usize, b as usize));
        }
    }
    out
}

/// Estimates u per field and level from random pairs (add-half smoothing, so
/// no level has u = 0).
pub fn estimate_u(s: &Scorer, pairs: &[(usize, usize)]) -> Vec<Vec<f64>> {
    let mut counts: Vec<Vec<f64>> = s
        .fields
        .iter()
        .map(|(_, c)| vec![0.0; c.n_levels()])
        .collect();
    let gammas = crate::par_range(pairs.len(), |i| s.gamma(pairs[i].0, pairs[i].1));
    for g in gammas {
        for (k, c) in counts.iter_mut().enumerate() {
            c[level_of(g, k)] += 1.0;
        }
    }
    counts
        .into_iter()
        .map(|c| {
            let levels = c.len() - 1;
            let total: f64 = c[1..].iter().sum::<f64>() + 0.5 * levels as f64;
            let mut u = vec![0.0; c.len()];
            for l in 1..c.len() {
                u[l] = (c[l] + 0.5) / total;
            }
            u
        })
        .collect()
}

/// Starting m: most matches agree exactly, fewer at each looser level.
fn initial_m(levels: usize) -> Vec<f64> {
    // levels includes null (0) and else (last).
    let mut m = vec![0.0; levels];
    let real = levels - 1;
    let mut w = 0.0;
    for (l, x) in m.iter_mut().enumerate().skip(1) {
        *x = if l == real {
            0.05
        } else {
            1.0 / (l as f64).powi(2)
        };
        w += *x;
    }
    for x in &mut m[1..] {
        *x /= w;
    }
    m
}

/// EM over packed comparison vectors with their counts. Fields with
/// `skip[k]` are left out (the blocking rule made them agree, so they carry
/// no information about m) and keep their m; with `update_m` false only the
/// match share moves. With `float_u`, u is re-estimated too, starting from
/// `u0`: the non-matches inside a block are not random pairs (people who
/// share an e-mail address share their names too), and holding u at its
/// random-pair value would push EM into calling them matches. Returns m per
/// field, the share of matches among the pairs, iterations and whether it
/// converged.
pub fn em(
    patterns: &[(u64, u64)],
    u0: &[Vec<f64>],
    m0: &[Vec<f64>],
    skip: &[bool],
    update_m: bool,
    float_u: bool,
    max_iter: u32,
) -> (Vec<Vec<f64>>, f64, u32, bool) {
    let mut u: Vec<Vec<f64>> = u0.to_vec();
    let mut m: Vec<Vec<f64>> = m0.to_vec();
    let mut lambda: f64 = 0.1;
    let total: f64 = patterns.iter().map(|p| p.1 as f64).sum();
    if total == 0.0 {
        return (m, 0.0, 0, true);
    }
    let mut it = 0;
    let mut converged = false;
    while it < max_iter {
        it += 1;
        let mut mc: Vec<Vec<f64>> = u.iter().map(|x| vec![0.0; x.len()]).collect();
        let mut uc: Vec<Vec<f64>> = u.iter().map(|x| vec![0.0; x.len()]).collect();
        let mut matches = 0.0;
        // log m - log u per field and level, once per iteration (0 where skipped or null).
        let llr: Vec<Vec<f64>> = (0..u.len())
            .map(|k| {
                (0..u[k].len())
                    .map(|l| {
                        if l == 0 || skip[k] {
                            0.0
                        } else {
                            m[k][l].ln() - u[k][l].ln()
                        }
                    })
                    .collect()
            })
            .collect();
        let prior = lambda.ln() - (1.0 - lambda).ln();
        for &(g, n) in patterns {
            let mut lr = prior;
            for (k, t) in llr.iter().enumerate() {
                lr += t[level_of(g, k)];
            }
            let p = 1.0 / (1.0 + (-lr).exp());
            let w = p * n as f64;
            matches += w;
            for (k, (c, d)) in mc.iter_mut().zip(uc.iter_mut()).enumerate() {
                c[level_of(g, k)] += w;
                d[level_of(g, k)] += n as f64 - w;
            }
        }
        let mut delta: f64 = 0.0;
        let mut update = |counts: &[Vec<f64>], target: &mut [Vec<f64>]| {
            for (k, c) in counts.iter().enumerate() {
                let seen: f64 = c[1..].iter().sum();
                if skip[k] || seen <= 0.0 {
                    continue;
                }
                for l in 1..c.len() {
                    let v = (c[l] / seen).clamp(1e-9, 1.0 - 1e-9);
                    delta = delta.max((v - target[k][l]).abs());
                    target[k][l] = v;
                }
            }
        };
        if update_m {
            update(&mc, &mut m);
        }
        if float_u {
            update(&uc, &mut u);
        }
        let nl = (matches / total).clamp(1e-9, 1.0 - 1e-9);
        delta = delta.max((nl - lambda).abs());
        lambda = nl;
        if delta < 1e-6 {
            converged = true;
            break;
        }
    }
    (m, lambda, it, converged)
}

/// Starting m for every field (see [`initial_m`]).
pub fn initial(u: &[Vec<f64>]) -> Vec<Vec<f64>> {
    u.iter().map(|x| initial_m(x.len())).collect()
}

/// Weights of a model bound to a scorer: per field and level log2(m/u).
pub struct Weights {
    /// log2 prior odds.
    pub prior: f64,
    /// Per field, per level.
    pub w: Vec<Vec<f64>>,
    /// Per field: u of the exact level, when TF adjustment is on.
    pub tf_u: Vec<Option<f64>>,
}

impl Weights {
    /// From a model.
    pub fn new(model: &Model) -> Weights {
        let lam = model.lambda.clamp(1e-12, 1.0 - 1e-12);
        Weights {
            prior: (lam / (1.0 - lam)).log2(),
            w: model
                .fields
                .iter()
                .map(|f| {
                    (0..f.m.len())
                        .map(|l| {
                            if l == 0 {
                                0.0
                            } else {
                                (f.m[l] / f.u[l]).log2()
                            }
                        })
                        .collect()
                })
                .collect(),
            tf_u: model
                .fields
                .iter()
                .map(|f| f.term_frequency.then(|| f.u[1]))
                .collect(),
        }
    }

    /// Per-field contribution (log2 Bayes factor) of a pair, TF included.
    #[inline]
    pub fn field_weight(&self, s: &Scorer, g: u64, k: usize, a: usize) -> f64 {
        let l = level_of(g, k);
        let mut w = self.w[k][l];
        if l == 1
            && let Some(u) = self.tf_u[k]
        {
            let col = &s.table.columns[s.fields[k].0];
            let tf = col.tf(col.ids[a]).max(1.0 / col.non_null.max(1) as f64);
            w += (u / tf).log2();
        }
        w
    }

    /// The match weight of a pair.
    #[inline]
    pub fn weight(&self, s: &Scorer, g: u64, a: usize) -> f64 {
        self.prior
            + (0..self.w.len())
                .map(|k| self.field_weight(s, g, k, a))
                .sum::<f64>()
    }
}

/// The match probability of a weight.
pub fn probability(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Simulated comparison vectors from known m and u: EM must give them back.
    #[test]
    fn em_recovers_known_m_and_u() {
        // Three fields, levels: null, exact, fuzzy, else.
        let m_true = [
            [0.0, 0.9, 0.08, 0.02],
            [0.0, 0.8, 0.15, 0.05],
            [0.0, 0.95, 0.0, 0.05],
        ];
        let u_true = [
            [0.0, 0.01, 0.04, 0.95],
            [0.0, 0.02, 0.08, 0.90],
            [0.0, 0.1, 0.0, 0.9],
        ];
        let lambda_true: f64 = 0.2;
        let mut counts = std::collections::BTreeMap::new();
        // Expected counts over 1,000,000 pairs (exact enumeration of the product distribution).
        for a in 1..4 {
            for b in 1..4 {
                for c in 1..4 {
                    let pm = m_true[0][a] * m_true[1][b] * m_true[2][c];
                    let pu = u_true[0][a] * u_true[1][b] * u_true[2][c];
                    let n = ((lambda_true * pm + (1.0 - lambda_true) * pu) * 1e6).round() as u64;
                    if n > 0 {
                        let g = a as u64 | (b as u64) << 4 | (c as u64) << 8;
                        counts.insert(g, n);
                    }
                }
            }
        }
        let patterns: Vec<(u64, u64)> = counts.into_iter().collect();
        let u: Vec<Vec<f64>> = u_true.iter().map(|x| x.to_vec()).collect();
        let (m, lambda, _, converged) =
            em(&patterns, &u, &initial(&u), &[false; 3], true, false, 500);
        assert!(converged);
        assert!((lambda - lambda_true).abs() < 0.01, "lambda {lambda}");
        for k in 0..3 {
            for l in 1..4 {
                assert!(
                    (m[k][l] - m_true[k][l]).abs() < 0.02,
                    "m[{k}][{l}] = {} want {}",
                    m[k][l],
                    m_true[k][l]
                );
            }
        }
    }

    /// Inside a block the non-matches agree on the blocking field's relatives
    /// (here: field 0 always agrees): with u floating, EM still finds the
    /// matches by the other fields.
    #[test]
    fn em_with_floating_u_is_not_fooled_by_correlated_non_matches() {
        // Field 0 (names): agrees for everyone in the block. Fields 1, 2:
        // agree for matches (share 0.25), random for non-matches.
        let mut patterns = vec![];
        let g = |a: u64, b: u64, c: u64| a | b << 4 | c << 8;
        patterns.push((g(1, 1, 1), 250_000)); // matches
        patterns.push((g(1, 3, 3), 740_000)); // non-matches
        patterns.push((g(1, 1, 3), 5_000));
        patterns.push((g(1, 3, 1), 5_000));
        patterns.sort_unstable();
        let u_random = vec![
            vec![0.0, 0.01, 0.01, 0.98],
            vec![0.0, 0.005, 0.005, 0.99],
            vec![0.0, 0.005, 0.005, 0.99],
        ];
        let skip = [false; 3];
        let (_, fixed_share, _, _) = em(
            &patterns,
            &u_random,
            &initial(&u_random),
            &skip,
            true,
            false,
            1000,
        );
        let (m, share, _, _) = em(
            &patterns,
            &u_random,
            &initial(&u_random),
            &skip,
            true,
            true,
            1000,
        );
        assert!(
            fixed_share > 0.9,
            "u fixed: everything looks like a match ({fixed_share})"
        );
        assert!((share - 0.25).abs() < 0.015, "u floating: {share}");
        assert!(m[1][1] > 0.98, "{:?}", m[1]);
    }

    #[test]
    fn probability_of_weights() {
        assert!((probability(0.0) - 0.5).abs() < 1e-12);
        assert!((probability(10.0) - 1024.0 / 1025.0).abs() < 1e-12);
    }
}
