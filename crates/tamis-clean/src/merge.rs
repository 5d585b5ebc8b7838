//! `dedupe_fuzzy`: near-duplicate rows merged into one survivor per cluster.
//!
//! Matching belongs to `tamis-dedup`, which sits below this crate's users but
//! not below this crate, so the step asks a [`Matcher`] (the service passes
//! one backed by `tamis-dedup`) for clusters. What this module owns is
//! survivorship: which row of a cluster survives, where each of its fields
//! comes from, and the provenance of both. Dropped rows go to the step's
//! dropped-rows file with the survivor they merged into; every field a
//! survivor takes from another row is a changed cell whose detail names that
//! row and the rule.
//!
//! The step holds the rows it sees in memory (matching needs them all).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use tamis_core::ROW_ID;
use tamis_core::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder,
};
use tamis_core::datafusion::arrow::compute::{cast, concat, interleave};
use tamis_core::datafusion::arrow::datatypes::{DataType, Schema};
use tamis_core::datafusion::arrow::record_batch::RecordBatch;
use tamis_core::datafusion::arrow::row::{RowConverter, Rows, SortField};

use crate::CleanError;
use crate::ops::{Mode, Op, Source, StepOutput, data_columns};
use crate::plan::{FieldRule, FuzzySpec, Survivor};

/// Clusters of near-duplicate rows, from a matcher.
#[derive(Debug, Clone, Default)]
pub struct Matched {
    /// Per row, in the order given: the index of its cluster's first row.
    pub cluster_of: Vec<u32>,
    /// Per row: the probability of its strongest link inside its cluster (1 alone).
    pub confidence: Vec<f64>,
    /// What the matcher chose (comparisons, blocking, model), for the audit log.
    pub summary: Value,
}

/// Finds near-duplicate rows.
pub trait Matcher: Send + Sync {
    /// Clusters the rows of `rows` (every row the step sees, in order, with
    /// the compared columns and `__row_id`) under the step's matching options.
    fn cluster(&self, rows: &[RecordBatch], spec: &FuzzySpec) -> Result<Matched, String>;
}

/// What happens to one input row.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Dropped: merged into the survivor with this row id.
    Merged {
        /// The survivor's row id.
        into: u64,
        /// Why, as recorded.
        reason: String,
    },
    /// Survives, taking some fields from other rows.
    Survives {
        /// (column index, source row position, detail) per changed field.
        fields: Vec<(usize, usize, String)>,
    },
}

/// The decisions for every row that is not alone in its cluster, by row id,
/// with the confidence of its cluster.
#[derive(Debug, Clone, Default)]
pub struct Merge {
    /// Row id → decision and confidence.
    pub decisions: HashMap<u64, (Decision, f64)>,
    /// Clusters of two or more rows.
    pub clusters: u64,
    /// Rows merged away.
    pub merged: u64,
    /// Fields a survivor took from another row.
    pub fields_taken: u64,
}

fn order_rows(a: &ArrayRef) -> Result<Rows, CleanError> {
    let conv = RowConverter::new(vec![SortField::new(a.data_type().clone())])?;
    Ok(conv.convert_columns(std::slice::from_ref(a))?)
}

/// Decides survivors and fields for every cluster.
///
/// `columns` are the full columns (every row the step saw, in order) named by
/// `names`; `row_ids` and `m` are per row in the same order.
pub fn survivorship(
    names: &[String],
    columns: &[ArrayRef],
    row_ids: &[u64],
    m: &Matched,
    spec: &FuzzySpec,
) -> Result<Merge, CleanError> {
    let n = row_ids.len();
    let pos = |c: &Option<String>| c.as_ref().and_then(|c| names.iter().position(|x| x == c));
    let recency = match pos(&spec.recency) {
        Some(i) => Some((i, order_rows(&columns[i])?)),
        None => None,
    };
    let source_rank: Option<(usize, Vec<usize>)> = match pos(&spec.source) {
        Some(i) => {
            let t = cast(&columns[i], &DataType::Utf8)?;
            let t = t.as_string::<i32>();
            let worst = spec.priority.len();
            Some((
                i,
                (0..n)
                    .map(|r| {
                        if t.is_null(r) {
                            worst + 1
                        } else {
                            let v = t.value(r).trim();
                            spec.priority
                                .iter()
                                .position(|p| p.eq_ignore_ascii_case(v))
                                .unwrap_or(worst)
                        }
                    })
                    .collect(),
            ))
        }
        None => None,
    };
    let complete: Vec<usize> = (0..n)
        .map(|r| columns.iter().filter(|c| c.is_valid(r)).count())
        .collect();
    // Members per cluster, in row order.
    let mut members: HashMap<u32, Vec<usize>> = HashMap::new();
    for (r, &c) in m.cluster_of.iter().enumerate() {
        members.entry(c).or_default().push(r);
    }
    let mut clusters: Vec<(u32, Vec<usize>)> =
        members.into_iter().filter(|(_, v)| v.len() > 1).collect();
    clusters.sort_unstable_by_key(|(c, _)| *c);
    // Per-column row encodings (ordering, and exact equality for "did it
    // change") and text lengths, computed once and only where needed.
    let rule_of = |name: &str| spec.fields.get(name).copied().unwrap_or(spec.default_field);
    let mut encoded: HashMap<usize, Rows> = HashMap::new();
    let mut lengths: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        match rule_of(name) {
            FieldRule::Max | FieldRule::Min | FieldRule::MostFrequent => {
                encoded.insert(i, order_rows(&columns[i])?);
            }
            FieldRule::Longest => {
                let t = cast(&columns[i], &DataType::Utf8)?;
                let t = t.as_string::<i32>();
                lengths.insert(
                    i,
                    (0..n)
                        .map(|r| {
                            if t.is_null(r) {
                                0
                            } else {
                                t.value(r).chars().count()
                            }
                        })
                        .collect(),
                );
            }
            _ => {}
        }
    }
    let mut out = Merge::default();
    for (_, rows) in clusters {
        // Survivor order: the rule's key, then completeness, then row order.
        let mut ranked = rows.clone();
        ranked.sort_by(|&a, &b| {
            let by_rule = match spec.survivor {
                Survivor::MostComplete | Survivor::First => std::cmp::Ordering::Equal,
                Survivor::MostRecent => match &recency {
                    Some((i, o)) => {
                        let (va, vb) = (columns[*i].is_valid(a), columns[*i].is_valid(b));
                        vb.cmp(&va).then(o.row(b).cmp(&o.row(a)))
                    }
                    None => std::cmp::Ordering::Equal,
                },
                Survivor::SourcePriority => match &source_rank {
                    Some((_, s)) => s[a].cmp(&s[b]),
                    None => std::cmp::Ordering::Equal,
                },
            };
            let by_completeness = if spec.survivor == Survivor::First {
                std::cmp::Ordering::Equal
            } else {
                complete[b].cmp(&complete[a])
            };
            by_rule.then(by_completeness).then(a.cmp(&b))
        });
        let survivor = ranked[0];
        let conf = rows
            .iter()
            .map(|&r| m.confidence.get(r).copied().unwrap_or(1.0))
            .fold(1.0, f64::min);
        let rule_name = match spec.survivor {
            Survivor::MostComplete => "most complete",
            Survivor::MostRecent => "most recent",
            Survivor::SourcePriority => "source priority",
            Survivor::First => "first",
        };
        for &r in &ranked[1..] {
            out.decisions.insert(
                row_ids[r],
                (
                    Decision::Merged {
                        into: row_ids[survivor],
                        reason: format!(
                            "merged into row {} (near-duplicate cluster of {}, survivor by {rule_name}; weakest match p={conf:.3})",
                            row_ids[survivor],
                            rows.len(),
                        ),
                    },
                    conf,
                ),
            );
            out.merged += 1;
        }
        let mut fields = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let col = &columns[i];
            let non_null = || ranked.iter().copied().filter(|&r| col.is_valid(r));
            let rule = rule_of(name);
            let chosen = match rule {
                FieldRule::Survivor => None,
                FieldRule::Coalesce => non_null().next(),
                FieldRule::MostRecent => match &recency {
                    Some((ri, o)) => non_null()
                        .filter(|&r| columns[*ri].is_valid(r))
                        .min_by(|&a, &b| o.row(b).cmp(&o.row(a)))
                        .or_else(|| non_null().next()),
                    None => non_null().next(),
                },
                FieldRule::SourcePriority => match &source_rank {
                    Some((_, s)) => non_null().min_by_key(|&r| s[r]),
                    None => non_null().next(),
                },
                FieldRule::MostFrequent => {
                    let o = &encoded[&i];
                    let mut best: Option<(usize, usize)> = None;
                    for r in non_null() {
                        let count = non_null().filter(|&x| o.row(x) == o.row(r)).count();
                        if best.is_none_or(|(_, c)| count > c) {
                            best = Some((r, count));
                        }
                    }
                    best.map(|(r, _)| r)
                }
                FieldRule::Longest => {
                    let l = &lengths[&i];
                    non_null().fold(None, |best: Option<usize>, r| match best {
                        Some(b) if l[b] >= l[r] => Some(b),
                        _ => Some(r),
                    })
                }
                FieldRule::Max | FieldRule::Min => {
                    let o = &encoded[&i];
                    non_null().fold(None, |best: Option<usize>, r| match best {
                        Some(b) => {
                            let better = if rule == FieldRule::Max {
                                o.row(r) > o.row(b)
                            } else {
                                o.row(r) < o.row(b)
                            };
                            Some(if better { r } else { b })
                        }
                        None => Some(r),
                    })
                }
            };
            let Some(src) = chosen else { continue };
            if src == survivor {
                continue;
            }
            let same = col.is_valid(survivor) && {
                let e = match encoded.entry(i) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => v.insert(order_rows(col)?),
                };
                e.row(src) == e.row(survivor)
            };
            if same {
                continue;
            }
            fields.push((
                i,
                src,
                format!("from row {} ({})", row_ids[src], rule.name()),
            ));
        }
        out.fields_taken += fields.len() as u64;
        out.decisions
            .insert(row_ids[survivor], (Decision::Survives { fields }, conf));
        out.clusters += 1;
    }
    Ok(out)
}

/// The `dedupe_fuzzy` op.
pub struct FuzzyDedupe {
    spec: FuzzySpec,
    matcher: Option<Arc<dyn Matcher>>,
    seen: Vec<RecordBatch>,
    names: Vec<String>,
    full: Vec<ArrayRef>,
    merge: Option<Merge>,
    summary: Value,
}

impl FuzzyDedupe {
    /// The op for `spec`, matching with `matcher`.
    pub fn new(spec: FuzzySpec, matcher: Option<Arc<dyn Matcher>>) -> FuzzyDedupe {
        FuzzyDedupe {
            spec,
            matcher,
            seen: Vec::new(),
            names: Vec::new(),
            full: Vec::new(),
            merge: None,
            summary: Value::Null,
        }
    }

    fn fail(&self, message: impl Into<String>) -> CleanError {
        CleanError::Step {
            step: "dedupe_fuzzy".into(),
            message: message.into(),
        }
    }
}

impl Op for FuzzyDedupe {
    fn mode(&self) -> Mode {
        Mode::Stats
    }
    fn reads(&self, schema: &Schema) -> Vec<String> {
        data_columns(schema)
    }
    fn writes(&self, schema: &Schema) -> Vec<String> {
        data_columns(schema)
    }
    fn drops_rows(&self) -> bool {
        true
    }
    fn is_resolved(&self) -> bool {
        self.merge.is_some()
    }
    fn reset(&mut self) {
        self.seen.clear();
        self.full.clear();
        self.merge = None;
    }
    fn observe(&mut self, batch: &RecordBatch) -> Result<Option<BooleanArray>, CleanError> {
        self.seen.push(batch.clone());
        Ok(None)
    }
    fn resolve(&mut self) -> Result<(), CleanError> {
        let seen = std::mem::take(&mut self.seen);
        let rows: usize = seen.iter().map(|b| b.num_rows()).sum();
        let Some(first) = seen.first() else {
            self.merge = Some(Merge::default());
            return Ok(());
        };
        let schema = first.schema();
        self.names = data_columns(&schema);
        let mut row_ids = Vec::with_capacity(rows);
        for b in &seen {
            row_ids.extend_from_slice(tamis_core::row_ids(b)?.values());
        }
        self.full = self
            .names
            .iter()
            .map(|n| {
                let parts: Vec<&dyn Array> = seen
                    .iter()
                    .filter_map(|b| b.column_by_name(n).map(|c| c.as_ref()))
                    .collect();
                concat(&parts)
            })
            .collect::<Result<_, _>>()?;
        if rows < 2 {
            self.merge = Some(Merge::default());
            return Ok(());
        }
        let matcher = self.matcher.clone().ok_or_else(|| {
            self.fail("no matcher: dedupe_fuzzy runs through `tamis clean` (or the service), which match with tamis-dedup")
        })?;
        // The matcher sees the compared columns only.
        let compared: Vec<String> = match &self.spec.columns {
            Some(c) => c.clone(),
            None => self.names.clone(),
        };
        let projected: Vec<RecordBatch> = seen
            .iter()
            .map(|b| {
                let mut idx: Vec<usize> = compared
                    .iter()
                    .filter_map(|c| b.schema().index_of(c).ok())
                    .collect();
                idx.extend(b.schema().index_of(ROW_ID).ok());
                b.project(&idx)
            })
            .collect::<Result<_, _>>()?;
        drop(seen);
        let m = matcher
            .cluster(&projected, &self.spec)
            .map_err(|e| self.fail(e))?;
        if m.cluster_of.len() != rows {
            return Err(CleanError::Internal(format!(
                "the matcher clustered {} rows of {rows}",
                m.cluster_of.len()
            )));
        }
        let merge = survivorship(&self.names, &self.full, &row_ids, &m, &self.spec)?;
        self.summary = json!({
            "matching": m.summary,
            "clusters_merged": merge.clusters,
            "rows_merged": merge.merged,
            "fields_taken": merge.fields_taken,
        });
        tracing::info!(
            clusters = merge.clusters,
            rows_merged = merge.merged,
            "near duplicates merged"
        );
        self.merge = Some(merge);
        Ok(())
    }
    fn apply(&mut self, batch: &RecordBatch) -> Result<StepOutput, CleanError> {
        let Some(merge) = &self.merge else {
            // Schema probes run before the statistics: same rows, same columns.
            return Ok(StepOutput::same_rows(batch.clone()));
        };
        let ids = tamis_core::row_ids(batch)?;
        let mut keep = BooleanBuilder::with_capacity(batch.num_rows());
        let mut reasons = Vec::new();
        // Per column: interleave indices (0 = this batch, 1 = the full column).
        let mut takes: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
        let mut details: HashMap<usize, Vec<Option<String>>> = HashMap::new();
        let mut conf: Vec<f64> = vec![1.0; batch.num_rows()];
        for (r, id) in ids.values().iter().enumerate() {
            match merge.decisions.get(id) {
                Some((Decision::Merged { reason, .. }, _)) => {
                    keep.append_value(false);
                    reasons.push(reason.clone());
                }
                Some((Decision::Survives { fields }, c)) => {
                    keep.append_value(true);
                    conf[r] = *c;
                    for (ci, src, detail) in fields {
                        let t = takes
                            .entry(*ci)
                            .or_insert_with(|| (0..batch.num_rows()).map(|i| (0, i)).collect());
                        t[r] = (1, *src);
                        details
                            .entry(*ci)
                            .or_insert_with(|| vec![None; batch.num_rows()])[r] =
                            Some(detail.clone());
                    }
                }
                None => keep.append_value(true),
            }
        }
        let mut out = StepOutput::same_rows(batch.clone());
        let mut new_cols = Vec::new();
        for (ci, idx) in takes {
            let name = &self.names[ci];
            let cur = batch
                .column_by_name(name)
                .ok_or_else(|| CleanError::Internal(format!("column `{name}` is missing")))?;
            let full = &self.full[ci];
            let merged = interleave(&[cur.as_ref(), full.as_ref()], &idx)?;
            let changed: BooleanArray = idx.iter().map(|(s, _)| Some(*s == 1)).collect();
            out.changed.insert(name.clone(), changed);
            out.confidence.insert(name.clone(), conf.clone());
            if let Some(d) = details.remove(&ci) {
                out.details.insert(name.clone(), d);
            }
            new_cols.push((name.clone(), merged));
        }
        out.batch = crate::ops::with_columns(batch, new_cols)?;
        out.keep = Some(keep.finish());
        out.reasons = reasons;
        Ok(out)
    }
    fn confidence(&self) -> (f64, Source) {
        (self.spec.threshold.unwrap_or(0.5), Source::Heuristic)
    }
    fn learned(&self) -> Value {
        self.summary.clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;
    use tamis_core::datafusion::arrow::array::{Date32Array, Int64Array, StringArray};

    fn spec(survivor: Survivor) -> FuzzySpec {
        FuzzySpec {
            columns: None,
            threshold: None,
            settings: None,
            model: None,
            survivor,
            recency: Some("updated".into()),
            source: Some("origin".into()),
            priority: vec!["crm".into(), "web".into()],
            fields: BTreeMap::new(),
            default_field: FieldRule::Coalesce,
        }
    }

    /// Rows 10..15: 10, 11, 12 are one entity, 13 and 14 another, 15 alone.
    fn table() -> (Vec<String>, Vec<ArrayRef>, Vec<u64>, Matched) {
        let names = ["name", "email", "phone", "updated", "origin", "visits"]
            .map(String::from)
            .to_vec();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![
                Some("Ann Lee"),
                Some("Ann  Lee"),
                Some("Anne Lee"),
                Some("Bo Chan"),
                None,
                Some("Cy Oh"),
            ])),
            Arc::new(StringArray::from(vec![
                None,
                Some("ann@old.test"),
                Some("ann@new.test"),
                Some("bo@x.test"),
                Some("bo@x.test"),
                None,
            ])),
            Arc::new(StringArray::from(vec![
                Some("555-0100"),
                None,
                None,
                None,
                Some("555-0199"),
                None,
            ])),
            // 2020-01-01, 2021-06-01, 2023-03-01, null, 2022-01-01, null (days since 1970)
            Arc::new(Date32Array::from(vec![
                Some(18262),
                Some(18779),
                Some(19417),
                None,
                Some(18993),
                None,
            ])),
            Arc::new(StringArray::from(vec![
                Some("web"),
                Some("crm"),
                Some("import"),
                Some("web"),
                Some("crm"),
                None,
            ])),
            Arc::new(Int64Array::from(vec![
                Some(3),
                Some(9),
                Some(3),
                Some(1),
                Some(2),
                Some(7),
            ])),
        ];
        let m = Matched {
            cluster_of: vec![0, 0, 0, 3, 3, 5],
            confidence: vec![0.99, 0.97, 0.95, 0.9, 0.9, 1.0],
            summary: Value::Null,
        };
        (names, cols, (10..16).collect(), m)
    }

    /// Survivor row id, the merged row ids, and (column, source row id) per taken field.
    fn outcome(merge: &Merge, cluster: &[u64]) -> (u64, Vec<u64>, Vec<(String, u64)>) {
        let names = ["name", "email", "phone", "updated", "origin", "visits"];
        let mut survivor = 0;
        let mut merged = Vec::new();
        let mut fields = Vec::new();
        for id in cluster {
            match &merge.decisions[id].0 {
                Decision::Survives { fields: f } => {
                    survivor = *id;
                    fields = f
                        .iter()
                        .map(|(c, src, _)| (names[*c].to_string(), 10 + *src as u64))
                        .collect();
                }
                Decision::Merged { into, .. } => merged.push((*id, *into)),
            }
        }
        assert!(merged.iter().all(|(_, into)| *into == survivor));
        (survivor, merged.into_iter().map(|m| m.0).collect(), fields)
    }

    #[test]
    fn most_complete_survives_and_fills_its_gaps_in_order() {
        let (n, c, ids, m) = table();
        let merge = survivorship(&n, &c, &ids, &m, &spec(Survivor::MostComplete)).unwrap();
        assert_eq!(merge.clusters, 2);
        assert_eq!(merge.merged, 3);
        assert!(
            !merge.decisions.contains_key(&15),
            "a row alone is untouched"
        );
        // 10, 11, 12 have 5 non-null cells each: the first wins; its null
        // email comes from 11, the next most complete in row order.
        let (s, merged, fields) = outcome(&merge, &[10, 11, 12]);
        assert_eq!((s, merged), (10, vec![11, 12]));
        assert_eq!(fields, vec![("email".into(), 11)]);
        // 14 has 5 cells, 13 has 3: 14 survives and takes 13's name.
        let (s, _, fields) = outcome(&merge, &[13, 14]);
        assert_eq!(s, 14);
        assert_eq!(fields, vec![("name".into(), 13)]);
        // Confidence: the weakest link of the cluster; the reason names the survivor.
        let (d, conf) = &merge.decisions[&12];
        assert_eq!(*conf, 0.95);
        match d {
            Decision::Merged { reason, .. } => {
                assert!(reason.starts_with("merged into row 10 (near-duplicate cluster of 3"));
            }
            _ => panic!(),
        }
    }

    #[test]
    fn most_recent_and_source_priority_pick_their_survivors() {
        let (n, c, ids, m) = table();
        let merge = survivorship(&n, &c, &ids, &m, &spec(Survivor::MostRecent)).unwrap();
        let (s, _, fields) = outcome(&merge, &[10, 11, 12]);
        assert_eq!(s, 12);
        // 12 lacks a phone: the next in recency order with one is 10 (11 has none).
        assert_eq!(fields, vec![("phone".into(), 10)]);
        // A null recency ranks last: 14 (2022) beats 13 (null).
        assert_eq!(outcome(&merge, &[13, 14]).0, 14);

        let merge = survivorship(&n, &c, &ids, &m, &spec(Survivor::SourcePriority)).unwrap();
        let (s, _, fields) = outcome(&merge, &[10, 11, 12]);
        assert_eq!(s, 11, "crm before web before unlisted");
        // 11 lacks a phone; web (10) is the next source with one.
        assert_eq!(fields, vec![("phone".into(), 10)]);

        let merge = survivorship(&n, &c, &ids, &m, &spec(Survivor::First)).unwrap();
        assert_eq!(outcome(&merge, &[13, 14]).0, 13);
    }

    #[test]
    fn field_rules_choose_each_value() {
        let (n, c, ids, m) = table();
        let mut sp = spec(Survivor::MostComplete);
        sp.fields = BTreeMap::from([
            ("email".to_string(), FieldRule::MostRecent),
            ("name".to_string(), FieldRule::Longest),
            ("visits".to_string(), FieldRule::Max),
            ("origin".to_string(), FieldRule::SourcePriority),
            ("updated".to_string(), FieldRule::Min),
        ]);
        let merge = survivorship(&n, &c, &ids, &m, &sp).unwrap();
        let (s, _, fields) = outcome(&merge, &[10, 11, 12]);
        assert_eq!(s, 10);
        assert_eq!(
            fields,
            vec![
                ("name".into(), 11),   // "Ann  Lee" is longest (ties go to survivor order)
                ("email".into(), 12),  // the newest e-mail
                ("origin".into(), 11), // crm
                ("visits".into(), 11), // 9
            ],
            "updated: min is the survivor's own 2020-01-01, so unchanged"
        );

        // most_frequent: two of three say 3 visits; survivor: keeps even a null.
        let mut sp = spec(Survivor::MostRecent);
        sp.fields = BTreeMap::from([
            ("visits".to_string(), FieldRule::MostFrequent),
            ("phone".to_string(), FieldRule::Survivor),
        ]);
        let merge = survivorship(&n, &c, &ids, &m, &sp).unwrap();
        let (s, _, fields) = outcome(&merge, &[10, 11, 12]);
        assert_eq!(s, 12);
        assert!(
            fields.is_empty(),
            "12 already has 3 visits and keeps its null phone: {fields:?}"
        );
        sp.default_field = FieldRule::Survivor;
        sp.fields.clear();
        let merge = survivorship(&n, &c, &ids, &m, &sp).unwrap();
        assert_eq!(merge.fields_taken, 0);
    }

    #[test]
    fn the_same_input_gives_the_same_decisions() {
        let (n, c, ids, m) = table();
        let a = survivorship(&n, &c, &ids, &m, &spec(Survivor::MostComplete)).unwrap();
        let b = survivorship(&n, &c, &ids, &m, &spec(Survivor::MostComplete)).unwrap();
        assert_eq!(a.decisions, b.decisions);
    }
}
