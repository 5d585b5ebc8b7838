//! tamis duplicates: records that are the same entity written differently,
//! inside one dataset (dedupe) or across two (link), without labelled data.
//!
//! The path of a run:
//! 1. every column gets a role from its header and values ([`roles`]);
//! 2. roles give comparisons ([`settings::Role::levels`]) and candidate
//!    blocking rules, whose comparison counts are measured before any pair is
//!    generated ([`block`]);
//! 3. u is estimated from random pairs, m and the match rate by EM over the
//!    candidates ([`model`]);
//! 4. every candidate gets a match weight and probability, with a per-field
//!    explanation; pairs above the threshold are clustered ([`cluster`]).
//!
//! A settings file overrides any part; a trained model can be saved and
//! reused.

pub mod block;
pub mod cluster;
pub mod compare;
pub mod incremental;
pub mod minhash;
pub mod model;
pub mod output;
pub mod roles;
pub mod settings;
pub mod table;

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tamis_core::{CoreError, Quarantine, ReadOptions};

use crate::block::{CompiledRule, RuleCount};
use crate::cluster::Clusters;
use crate::compare::Comparator;
use crate::model::{FieldParams, MAX_FIELDS, MAX_LEVELS, Model, Scorer, Training, Weights};
use crate::roles::RoleGuess;
use crate::settings::{BlockingRule, ComparisonSpec, Role, Settings};
use crate::table::{Input, LoadSpec, Table};

/// Errors of matching.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// Reading the input failed.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// An Arrow conversion failed.
    #[error("internal error (a bug in tamis, please report it): {0}")]
    Arrow(#[from] tamis_core::datafusion::arrow::error::ArrowError),
    /// A column named in settings or rules does not exist.
    #[error("{input}: no column `{column}`{hint}")]
    UnknownColumn {
        /// The column asked for.
        column: String,
        /// Where it was asked for.
        input: String,
        /// " (did you mean `x`?)" or empty.
        hint: String,
    },
    /// Settings cannot be read or do not make sense.
    #[error("{origin}: {message}")]
    Settings {
        /// The settings file or part.
        origin: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Writing an output failed.
    #[error("cannot write `{path}`: {message}")]
    Write {
        /// The output.
        path: String,
        /// Why.
        message: String,
    },
}

impl DedupError {
    /// `column` is not among `known`: names where it was asked for and the nearest known name.
    pub(crate) fn unknown_column<'a>(
        column: &str,
        input: impl Into<String>,
        known: impl IntoIterator<Item = &'a str>,
    ) -> DedupError {
        DedupError::UnknownColumn {
            column: column.to_string(),
            input: input.into(),
            hint: tamis_core::contract::did_you_mean(column, known),
        }
    }
}

/// A matching job.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The dataset (path, glob or URL).
    pub inputs: Vec<String>,
    /// The second dataset when linking; pairs then always join one row of each.
    pub link: Option<Vec<String>>,
    /// Reader options.
    pub read: ReadOptions,
    /// Settings (empty = automatic).
    pub settings: Settings,
    /// A trained model to reuse instead of training.
    pub model: Option<SavedModel>,
    /// Raised to stop the run between its stages (with `CoreError::Cancelled`).
    pub cancel: tamis_core::Cancel,
}

/// A blocking rule considered by auto-configuration.
#[derive(Debug, Clone, Serialize)]
pub struct RuleChoice {
    /// The rule.
    pub rule: String,
    /// Pairs it would generate.
    pub comparisons: u64,
    /// Whether it is used.
    pub chosen: bool,
    /// Why (not).
    pub why: String,
}

/// What was chosen and why: shown to the user before the pairs.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Per column: its role and why.
    pub roles: Vec<RoleGuess>,
    /// The comparisons in force.
    pub comparisons: Vec<ComparisonSpec>,
    /// The blocking rules in force.
    pub blocking: Vec<BlockingRule>,
    /// Every blocking rule auto-configuration measured.
    pub blocking_considered: Vec<RuleChoice>,
    /// The output key column (`None`: row ids).
    pub id_column: Option<String>,
    /// The match threshold.
    pub threshold: f64,
    /// Whether the settings were chosen automatically (no settings file, no model).
    pub automatic: bool,
    /// The cluster-size guard.
    pub max_cluster_size: usize,
    /// The seed of sampling and MinHash.
    pub seed: u64,
    /// Whether two inputs are linked.
    pub link: bool,
}

/// A trained model with the settings it was trained under: what `--save-model` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedModel {
    /// Always `tamis.dedup-model/1`.
    pub schema: String,
    /// The resolved settings (comparisons and blocking).
    pub settings: Settings,
    /// The parameters (m, u, λ).
    pub model: Model,
}

/// One scored candidate pair.
#[derive(Debug, Clone, Copy)]
pub struct ScoredPair {
    /// The smaller row index.
    pub a: u32,
    /// The larger row index.
    pub b: u32,
    /// Packed comparison levels.
    pub gamma: u64,
    /// Match weight (log2 odds).
    pub weight: f64,
    /// Match probability.
    pub probability: f64,
}

/// Seconds per phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Reading and interning the data.
    pub load: f64,
    /// Measuring and generating candidates.
    pub blocking: f64,
    /// u sampling and EM.
    pub training: f64,
    /// Scoring candidates.
    pub scoring: f64,
    /// Clustering.
    pub clustering: f64,
}

/// Everything a run produced.
pub struct Outcome {
    /// What was chosen.
    pub config: Config,
    /// The model used.
    pub model: Model,
    /// The records.
    pub table: Table,
    /// Comparisons per blocking rule.
    pub rule_counts: Vec<RuleCount>,
    /// Candidate pairs scored.
    pub candidates: u64,
    /// Pairs at or above the threshold, sorted by (a, b).
    pub matches: Vec<ScoredPair>,
    /// Clusters of the matches.
    pub clusters: Clusters,
    /// Rows the reader quarantined.
    pub quarantined: u64,
    /// Seconds per phase.
    pub timings: Timings,
    pub(crate) comparators: Vec<(usize, Comparator)>,
}

impl Outcome {
    /// The trained model with the resolved settings it ran under: what
    /// `--save-model` writes and what reproduces this run's scoring.
    pub fn saved_model(&self) -> SavedModel {
        SavedModel {
            schema: "tamis.dedup-model/1".into(),
            settings: Settings {
                id_column: self.config.id_column.clone(),
                comparisons: self.config.comparisons.clone(),
                blocking: self.config.blocking.clone(),
                threshold: Some(self.config.threshold),
                seed: Some(self.config.seed),
                max_cluster_size: Some(self.config.max_cluster_size),
                ..Default::default()
            },
            model: self.model.clone(),
        }
    }

    /// A scorer over this outcome's table.
    pub fn scorer(&self) -> Scorer<'_> {
        Scorer {
            table: &self.table,
            fields: &self.comparators,
        }
    }
}

/// The default match threshold.
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// The default cluster-size guard.
pub const DEFAULT_MAX_CLUSTER_SIZE: usize = 50;

/// Resolves comparisons: automatic per role, then the settings' overrides.
fn resolve_comparisons(
    roles: &[RoleGuess],
    settings: &Settings,
    columns: &[String],
) -> Result<Vec<ComparisonSpec>, DedupError> {
    let known = |c: &str| -> Result<(), DedupError> {
        if columns.iter().any(|x| x == c) {
            Ok(())
        } else {
            Err(DedupError::unknown_column(
                c,
                "settings",
                columns.iter().map(String::as_str),
            ))
        }
    };
    for c in settings
        .comparisons
        .iter()
        .map(|c| c.column.as_str())
        .chain(settings.exclude.iter().map(String::as_str))
    {
        known(c)?;
    }
    let mut out = Vec::new();
    for g in roles {
        if settings.exclude.contains(&g.column) {
            continue;
        }
        if let Some(c) = settings.comparisons.iter().find(|c| c.column == g.column) {
            out.push(c.clone());
        } else if g.role.compared() {
            out.push(ComparisonSpec {
                column: g.column.clone(),
                role: g.role,
                levels: None,
                term_frequency: None,
            });
        }
    }
    if out.len() > MAX_FIELDS {
        return Err(DedupError::Settings {
            origin: "comparisons".into(),
            message: format!(
                "{} columns would be compared; at most {MAX_FIELDS} are: list the ones that identify an entity under `exclude:` or `comparisons:`",
                out.len()
            ),
        });
    }
    for c in &out {
        if c.levels().len() + 2 > MAX_LEVELS {
            return Err(DedupError::Settings {
                origin: format!("comparisons `{}`", c.column),
                message: format!("at most {} levels per comparison", MAX_LEVELS - 2),
            });
        }
    }
    if out.is_empty() {
        return Err(DedupError::Settings {
            origin: "comparisons".into(),
            message: "no column to compare: every column is a record key or free text; list columns under `comparisons:`".into(),
        });
    }
    Ok(out)
}

/// Candidate blocking rules from the roles, most useful first.
fn auto_rules(comparisons: &[ComparisonSpec]) -> Vec<BlockingRule> {
    let col = |r: Role| {
        comparisons
            .iter()
            .find(|c| c.role == r)
            .map(|c| c.column.clone())
    };
    let on = |rs: &[Role]| -> Option<BlockingRule> {
        let cols: Option<Vec<String>> = rs.iter().map(|r| col(*r)).collect();
        cols.map(|on| BlockingRule {
            on,
            ..Default::default()
        })
    };
    use Role::*;
    let mut v: Vec<Option<BlockingRule>> = vec![
        on(&[PersonId]),
        on(&[Email]),
        on(&[Phone]),
        on(&[DateOfBirth]),
        on(&[Postcode]),
        on(&[FirstName, LastName]),
        match (col(FirstName), col(LastName)) {
            (Some(a), Some(b)) => Some(BlockingRule {
                swapped: Some([a, b]),
                ..Default::default()
            }),
            _ => None,
        },
        on(&[FullName]),
        on(&[LastName]),
        on(&[FirstName]),
        on(&[HouseNumber, Address]),
        on(&[State, Address]),
        on(&[City, Address]),
        on(&[LastName, DateOfBirth]),
        on(&[FirstName, DateOfBirth]),
        on(&[LastName, Postcode]),
        on(&[FirstName, Postcode]),
        on(&[FirstName, LastName, City]),
        on(&[FullName, City]),
        on(&[LastName, City]),
        on(&[Address]),
    ];
    // Without people fields, block on every short text column on its own.
    if v.iter().all(Option::is_none) {
        v = comparisons
            .iter()
            .filter(|c| !matches!(c.role, Number | Category | State | Country))
            .map(|c| {
                Some(BlockingRule {
                    on: vec![c.column.clone()],
                    ..Default::default()
                })
            })
            .collect();
    }
    let mut out: Vec<BlockingRule> = Vec::new();
    for r in v.into_iter().flatten() {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// Roles a rule over the budget may be narrowed with: attributes that rarely
/// differ between two records of one person (a creation date or an amount
/// would not do).
const REFINE_WITH: &[Role] = &[Role::DateOfBirth, Role::Postcode, Role::City, Role::State];

/// Rows up to which comparison counts are exact (above: estimated from a sample).
const EXACT_COUNT_ROWS: usize = 2_000_000;

/// Measures the candidate rules and keeps those under the budget; a rule over
/// it is narrowed with one more stable column when that brings it under.
/// Returns the chosen rules compiled (they are measured compiled, and reused).
fn choose_rules(
    t: &Table,
    link: bool,
    rules: Vec<BlockingRule>,
    comparisons: &[ComparisonSpec],
    per_rule: u64,
    seed: u64,
) -> Result<(Vec<CompiledRule>, Vec<RuleChoice>), DedupError> {
    let total_budget = per_rule.saturating_mul(2);
    let mut chosen: Vec<CompiledRule> = Vec::new();
    let mut considered = Vec::new();
    let mut total = 0u64;
    let mut queue: std::collections::VecDeque<BlockingRule> = rules.into();
    let mut seen: Vec<BlockingRule> = Vec::new();
    while let Some(r) = queue.pop_front() {
        if seen.contains(&r) {
            continue;
        }
        seen.push(r.clone());
        // A rule on a superset of a chosen rule's columns adds nothing.
        if let Some(sub) = chosen.iter().map(|c| &c.rule).find(|c| {
            c.swapped.is_none()
                && r.swapped.is_none()
                && c.minhash.is_none()
                && r.minhash.is_none()
                && c.on.iter().all(|x| r.on.contains(x))
        }) {
            considered.push(RuleChoice {
                rule: r.describe(),
                comparisons: 0,
                chosen: false,
                why: format!(
                    "every pair it finds is already found by `{}`",
                    sub.describe()
                ),
            });
            continue;
        }
        let compiled = CompiledRule::new(&r, t, seed)?;
        let (n, estimated) = compiled.comparisons(t, link, EXACT_COUNT_ROWS);
        let about = if estimated { "about " } else { "" };
        let (ok, why) = if n == 0 {
            (false, "generates no pair".to_string())
        } else if n > per_rule {
            // Narrow it with the first stable column that is not in it yet.
            if r.swapped.is_none() && r.minhash.is_none() {
                for role in REFINE_WITH {
                    if let Some(c) = comparisons.iter().find(|c| c.role == *role)
                        && !r.on.contains(&c.column)
                    {
                        let mut on = r.on.clone();
                        on.push(c.column.clone());
                        queue.push_front(BlockingRule {
                            on,
                            ..Default::default()
                        });
                        break;
                    }
                }
            }
            (
                false,
                format!("{about}{n} comparisons is over the budget of {per_rule} per rule"),
            )
        } else if total + n > total_budget {
            (
                false,
                format!(
                    "{about}{n} comparisons; the rules chosen already make {total} and the total budget is {total_budget}"
                ),
            )
        } else {
            (true, format!("{about}{n} comparisons"))
        };
        if ok {
            total += n;
            chosen.push(compiled);
        }
        considered.push(RuleChoice {
            rule: r.describe(),
            comparisons: n,
            chosen: ok,
            why,
        });
    }
    if chosen.is_empty() {
        // No exact key works: near-duplicate text over every compared text column.
        let cols: Vec<String> = comparisons
            .iter()
            .filter(|c| {
                !matches!(
                    c.role,
                    Role::Number | Role::Category | Role::State | Role::Country
                )
            })
            .map(|c| c.column.clone())
            .collect();
        if !cols.is_empty() {
            let r = BlockingRule {
                minhash: Some(crate::minhash::MinHashSpec::new(cols)),
                ..Default::default()
            };
            let compiled = CompiledRule::new(&r, t, seed)?;
            let (n, _) = compiled.comparisons(t, link, EXACT_COUNT_ROWS);
            let ok = n > 0 && n <= total_budget;
            considered.push(RuleChoice {
                rule: r.describe(),
                comparisons: n,
                chosen: ok,
                why: if ok {
                    format!("{n} comparisons; no exact blocking rule fits the budget")
                } else {
                    format!("{n} comparisons is over the total budget of {total_budget}")
                },
            });
            if ok {
                chosen.push(compiled);
            }
        }
    }
    if chosen.is_empty() {
        return Err(DedupError::Settings {
            origin: "blocking".into(),
            message: format!(
                "no automatic blocking rule fits the budget of {per_rule} comparisons; name rules under `blocking:` or raise `max_comparisons_per_rule`"
            ),
        });
    }
    Ok((chosen, considered))
}

/// Runs a dedupe or link job.
pub fn run(req: &Request) -> Result<Outcome, DedupError> {
    let mut inputs = vec![Input::open(&req.inputs, &req.read)?];
    if let Some(l) = &req.link {
        inputs.push(Input::open(l, &req.read)?);
    }
    run_stages(&inputs, &req.settings, req.model.as_ref(), &req.cancel)
}

/// Matches one input (dedupe) or two (link) under `settings`, or under a
/// trained model's settings and parameters when `model` is given.
pub fn run_inputs(
    inputs: &[Input],
    settings: &Settings,
    model: Option<&SavedModel>,
) -> Result<Outcome, DedupError> {
    run_stages(inputs, settings, model, &tamis_core::Cancel::new())
}

/// [`run_inputs`], checking `cancel` between stages (loading, blocking,
/// comparing, training, scoring, clustering).
fn run_stages(
    inputs: &[Input],
    settings: &Settings,
    model: Option<&SavedModel>,
    cancel: &tamis_core::Cancel,
) -> Result<Outcome, DedupError> {
    let t0 = Instant::now();
    let Prepared {
        settings,
        roles,
        comparisons,
        id_column,
        table: t,
        quarantined,
        link,
    } = prepare(inputs, settings, model)?;
    cancel.check()?;
    let mut timings = Timings {
        load: t0.elapsed().as_secs_f64(),
        ..Timings::default()
    };
    let t1 = Instant::now();
    let n = t.rows() as u64;
    let per_rule = settings
        .max_comparisons_per_rule
        .unwrap_or_else(|| (5 * n).max(250_000));
    let automatic = model.is_none() && settings == Settings::default();
    let seed = settings.seed.unwrap_or(42);
    let (compiled, considered) = if settings.blocking.is_empty() {
        choose_rules(
            &t,
            link,
            auto_rules(&comparisons),
            &comparisons,
            per_rule,
            seed,
        )?
    } else {
        let given = settings
            .blocking
            .iter()
            .map(|r| CompiledRule::new(r, &t, seed))
            .collect::<Result<_, _>>()?;
        (given, Vec::new())
    };
    let blocking: Vec<BlockingRule> = compiled.iter().map(|c| c.rule.clone()).collect();
    cancel.check()?;
    let (cands, rule_counts) = block::candidates(&t, &compiled, link);
    cancel.check()?;
    timings.blocking = t1.elapsed().as_secs_f64();
    tracing::info!(
        candidates = cands.len(),
        rules = blocking.len(),
        "blocking done"
    );

    let t2 = Instant::now();
    let comparators = bind_comparators(&comparisons, &t);
    let scorer = Scorer {
        table: &t,
        fields: &comparators,
    };
    let gammas: Vec<u64> = par_range(cands.len(), |i| {
        scorer.gamma(cands[i].0 as usize, cands[i].1 as usize)
    });
    cancel.check()?;
    let model = match model {
        Some(m) => m.model.clone(),
        None => train(
            &scorer,
            &comparisons,
            &cands,
            &gammas,
            &compiled,
            link,
            &settings,
        ),
    };
    drop(compiled);
    cancel.check()?;
    timings.training = t2.elapsed().as_secs_f64();

    let t3 = Instant::now();
    let threshold = settings.threshold.unwrap_or(DEFAULT_THRESHOLD);
    let weights = Weights::new(&model);
    let matches: Vec<ScoredPair> = par_chunks(cands.len(), |range| {
        range
            .filter_map(|i| {
                let (a, b) = cands[i];
                let w = weights.weight(&scorer, gammas[i], a as usize);
                let p = model::probability(w);
                (p >= threshold).then_some(ScoredPair {
                    a,
                    b,
                    gamma: gammas[i],
                    weight: w,
                    probability: p,
                })
            })
            .collect()
    });
    timings.scoring = t3.elapsed().as_secs_f64();
    cancel.check()?;
    let t4 = Instant::now();
    let links: Vec<(u32, u32, f64)> = matches.iter().map(|p| (p.a, p.b, p.probability)).collect();
    let max_cluster_size = settings
        .max_cluster_size
        .unwrap_or(DEFAULT_MAX_CLUSTER_SIZE);
    let clusters = cluster::cluster(t.rows(), &links, max_cluster_size);
    timings.clustering = t4.elapsed().as_secs_f64();
    Ok(Outcome {
        config: Config {
            roles,
            comparisons,
            blocking,
            blocking_considered: considered,
            id_column,
            threshold,
            automatic,
            max_cluster_size,
            seed,
            link,
        },
        model,
        candidates: cands.len() as u64,
        rule_counts,
        matches,
        clusters,
        quarantined,
        timings,
        comparators,
        table: t,
    })
}

/// The records loaded and what is compared: everything before blocking.
pub(crate) struct Prepared {
    pub settings: Settings,
    pub roles: Vec<RoleGuess>,
    pub comparisons: Vec<ComparisonSpec>,
    pub id_column: Option<String>,
    pub table: Table,
    pub quarantined: u64,
    pub link: bool,
}

/// Each comparison bound to its loaded column.
pub(crate) fn bind_comparators(
    comparisons: &[ComparisonSpec],
    t: &Table,
) -> Vec<(usize, Comparator)> {
    comparisons
        .iter()
        .map(|c| {
            let i = t.column(&c.column).unwrap_or(0);
            (i, Comparator::new(c.levels(), &t.columns[i]))
        })
        .collect()
}

/// Roles, comparisons and the key column from the settings (or a model's),
/// then the compared and blocking columns loaded.
pub(crate) fn prepare(
    inputs: &[Input],
    settings: &Settings,
    model: Option<&SavedModel>,
) -> Result<Prepared, DedupError> {
    let (ds0, ds1) = match inputs {
        [a] => (a, None),
        [a, b] => (a, Some(b)),
        _ => {
            return Err(DedupError::Settings {
                origin: "inputs".into(),
                message: format!("matching takes one input or two, not {}", inputs.len()),
            });
        }
    };
    let link = ds1.is_some();
    let settings = match model {
        Some(m) => m.settings.clone(),
        None => settings.clone(),
    };
    let all = ds0.columns();
    let mut columns: Vec<String> = all.clone();
    if let Some(d) = &ds1 {
        let other = d.columns();
        columns.retain(|c| other.contains(c));
    }
    let sample = ds0.sample_text(2000)?;
    let roles: Vec<RoleGuess> = columns
        .iter()
        .map(|c| {
            let i = all.iter().position(|x| x == c).unwrap_or(0);
            roles::guess(c, &sample[i])
        })
        .collect();
    let comparisons = resolve_comparisons(&roles, &settings, &columns)?;
    let id_column = match &settings.id_column {
        Some(c) => {
            if !columns.contains(c) {
                return Err(DedupError::unknown_column(
                    c,
                    "settings `id_column`",
                    columns.iter().map(String::as_str),
                ));
            }
            Some(c.clone())
        }
        None => roles
            .iter()
            .find(|g| g.role == Role::RecordKey)
            .map(|g| g.column.clone()),
    };
    // Load the compared columns and any column a given blocking rule reads.
    let mut load_cols: Vec<(String, table::Norm)> = comparisons
        .iter()
        .map(|c| (c.column.clone(), c.role.norm()))
        .collect();
    for r in &settings.blocking {
        for c in r.columns() {
            if !load_cols.iter().any(|(x, _)| x == c) {
                let role = roles
                    .iter()
                    .find(|g| g.column == c)
                    .map(|g| g.role)
                    .ok_or_else(|| {
                        DedupError::unknown_column(
                            c,
                            format!("blocking rule `{}`", r.describe()),
                            columns.iter().map(String::as_str),
                        )
                    })?;
                load_cols.push((c.to_string(), role.norm()));
            }
        }
    }
    let quarantine = Arc::new(Quarantine::in_memory());
    let t = table::load(
        &inputs.iter().collect::<Vec<_>>(),
        &LoadSpec {
            columns: load_cols,
            key: id_column.clone(),
        },
        quarantine.clone(),
    )?;
    Ok(Prepared {
        settings,
        roles,
        comparisons,
        id_column,
        table: t,
        quarantined: quarantine.summary().rows,
        link,
    })
}

/// The least mean exact-agreement (m of the exact level, over the fields an
/// EM run estimates) for the run's m to be used: duplicates agree exactly on
/// most fields.
const MIN_AGREEMENT: f64 = 0.5;

/// Distinct comparison vectors with their counts, in a fixed order (determinism).
fn patterns(gammas: impl Iterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut counts: foldhash::HashMap<u64, u64> = foldhash::HashMap::default();
    for g in gammas {
        *counts.entry(g).or_default() += 1;
    }
    let mut p: Vec<(u64, u64)> = counts.into_iter().collect();
    p.sort_unstable();
    p
}

/// Trains a model: u from random pairs; m by EM once per blocking rule over
/// that rule's pairs with the rule's own columns left out, averaged per field
/// over the runs that could estimate it (as Splink trains); then the share of
/// matches among all candidates with m and u fixed, which gives λ.
#[allow(clippy::too_many_arguments)]
fn train(
    scorer: &Scorer,
    comparisons: &[ComparisonSpec],
    cands: &[(u32, u32)],
    gammas: &[u64],
    rules: &[CompiledRule],
    link: bool,
    settings: &Settings,
) -> Model {
    let t = scorer.table;
    let rows = t.rows() as u64;
    let all_pairs = if link {
        t.rows_per_source[0] * t.rows_per_source[1]
    } else {
        rows * rows.saturating_sub(1) / 2
    };
    // u of a rare level (an exact match on a near-unique field is about 1/rows)
    // needs about 50 × rows random pairs to be seen ~50 times; 250,000 at least,
    // 1,000,000 at most (Splink's default).
    let want = settings
        .u_max_pairs
        .unwrap_or_else(|| (50 * rows).clamp(250_000, 1_000_000))
        .min(all_pairs);
    let sample = model::random_pairs(t, link, want, settings.seed.unwrap_or(42));
    let tu = Instant::now();
    let u = model::estimate_u(scorer, &sample);
    tracing::debug!(
        pairs = sample.len(),
        seconds = tu.elapsed().as_secs_f64(),
        "u estimated"
    );
    let tm = Instant::now();
    let nf = comparisons.len();
    let mut sums: Vec<Vec<f64>> = u.iter().map(|x| vec![0.0; x.len()]).collect();
    let mut runs_per_field = vec![0u32; nf];
    let mut m_cur = model::initial(&u);
    let mut runs = Vec::new();
    let min_pairs = 100.min(cands.len() as u64 / 2).max(1);
    for rule in rules {
        // An exact rule makes its columns agree; a MinHash rule forces no
        // single column, so EM estimates every field on its pairs.
        let cols = if rule.rule.minhash.is_some() {
            Vec::new()
        } else {
            rule.rule.columns()
        };
        let skip: Vec<bool> = comparisons
            .iter()
            .map(|c| cols.contains(&c.column.as_str()))
            .collect();
        if skip.iter().all(|s| *s) {
            continue;
        }
        let mine: Vec<u64> = cands
            .iter()
            .zip(gammas)
            .filter(|((a, b), _)| rule.generates(*a as usize, *b as usize))
            .map(|(_, g)| *g)
            .collect();
        if (mine.len() as u64) < min_pairs {
            continue;
        }
        let pats = patterns(mine.iter().copied());
        if let Ok(p) = std::env::var("TAMIS_DEDUP_DUMP") {
            let _ = std::fs::write(
                format!("{p}.{}", runs.len()),
                serde_json::to_string(&(&pats, &u, &skip)).unwrap_or_default(),
            );
        }
        let (m, share, iters, converged) = model::em(&pats, &u, &m_cur, &skip, true, true, 1000);
        // A run whose "matches" do not agree exactly on most fields found
        // some other structure (a rule with no real duplicates in it): its
        // m is not used.
        let free: Vec<usize> = (0..nf).filter(|k| !skip[*k]).collect();
        let agreement = free.iter().map(|k| m[*k][1]).sum::<f64>() / free.len().max(1) as f64;
        let used = agreement >= MIN_AGREEMENT;
        for k in 0..nf {
            if used && !skip[k] {
                for (s, v) in sums[k].iter_mut().zip(&m[k]) {
                    *s += v;
                }
                runs_per_field[k] += 1;
            }
        }
        if used {
            m_cur = m;
        }
        runs.push(model::EmRun {
            rule: rule.rule.describe(),
            pairs: mine.len() as u64,
            patterns: pats.len() as u64,
            fixed: comparisons
                .iter()
                .zip(&skip)
                .filter(|(_, s)| **s)
                .map(|(c, _)| c.column.clone())
                .collect(),
            iterations: iters,
            converged,
            match_share: share,
            exact_agreement: agreement,
            used,
        });
    }
    let m: Vec<Vec<f64>> = (0..nf)
        .map(|k| {
            if runs_per_field[k] == 0 {
                m_cur[k].clone()
            } else {
                sums[k]
                    .iter()
                    .map(|s| s / runs_per_field[k] as f64)
                    .collect()
            }
        })
        .collect();
    tracing::debug!(seconds = tm.elapsed().as_secs_f64(), "m estimated");
    let all = patterns(gammas.iter().copied());
    let (_, share, _, _) = model::em(&all, &u, &m, &vec![false; nf], false, false, 1000);
    let expected = share * gammas.len() as f64;
    let lambda = if all_pairs == 0 {
        0.0
    } else {
        (expected / all_pairs as f64).clamp(1e-12, 0.5)
    };
    Model {
        lambda,
        fields: comparisons
            .iter()
            .zip(scorer.fields)
            .zip(m.into_iter().zip(u))
            .map(|((c, (_, cmp)), (m, u))| FieldParams {
                column: c.column.clone(),
                levels: (0..cmp.n_levels()).map(|l| cmp.level_label(l)).collect(),
                m,
                u,
                term_frequency: c.tf(),
            })
            .collect(),
        training: Training {
            u_pairs: sample.len() as u64,
            em_runs: runs,
            candidate_pairs: gammas.len() as u64,
            expected_matches: expected,
        },
    }
}

/// Computes `f(i)` for `i in 0..n` on the available cores, keeping order.
pub fn par_range<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    par_chunks(n, |r| r.map(&f).collect())
}

/// Runs `f` over contiguous chunks of `0..n` on the available cores and
/// concatenates the results in order. A panic in a worker is re-raised,
/// never turned into missing results.
pub fn par_chunks<R: Send>(
    n: usize,
    f: impl Fn(std::ops::Range<usize>) -> Vec<R> + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(16);
    if threads <= 1 || n < 10_000 {
        return f(0..n);
    }
    let chunk = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let f = &f;
                let (lo, hi) = (k * chunk, ((k + 1) * chunk).min(n));
                s.spawn(move || f(lo..hi))
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        out
    })
}
