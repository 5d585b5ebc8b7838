//! Incremental matching: new records against a trained model and an existing
//! cluster table, without rescoring the records already clustered.
//!
//! An [`Index`] holds the records, the model, each blocking rule as a hash
//! map from key to rows, and the clusters as a union-find. Adding a record
//! interns its values (so term frequencies count it), looks its keys up in
//! every rule's map, scores the candidates it finds with the model, and joins
//! the clusters of its matches strongest link first under the same size guard
//! as a full run. The cost is the size of the record's blocks, not of the
//! table.
//!
//! With the model fixed, this finds the pairs a full rerun with `--model`
//! finds for the new records, and the same clusters, with two documented
//! exceptions at the margins: pairs among the old records are not rescored
//! (their term frequencies drift slightly as values are added), and a MinHash
//! bucket that grows past `max_bucket` stops generating new pairs but keeps
//! the ones it made.

use std::path::Path;
use std::time::Instant;

use foldhash::HashMap;
use serde::Serialize;
use tamis_core::datafusion::arrow::array::{Array, AsArray};
use tamis_core::datafusion::arrow::compute::cast;
use tamis_core::datafusion::arrow::datatypes::DataType;
use tamis_core::datafusion::arrow::record_batch::RecordBatch;
use tamis_core::{Quarantine, ReadOptions};

use crate::block::{minhash_text, row_key};
use crate::cluster::{Clusters, UnionFind};
use crate::compare::Comparator;
use crate::minhash::MinHashSpec;
use crate::model::{self, Model, Scorer, Weights};
use crate::settings::Settings;
use crate::table::{Input, Table};
use crate::{DedupError, Outcome, SavedModel, ScoredPair};

/// Rows by blocking key: the indexed rows as one sorted array (16 bytes a
/// row, no allocation per key), the rows added since in a small map.
#[derive(Debug, Default)]
struct Blocks {
    sorted: Vec<(u64, u32)>,
    added: HashMap<u64, Vec<u32>>,
}

impl Blocks {
    fn new(mut pairs: Vec<(u64, u32)>) -> Blocks {
        pairs.sort_unstable();
        Blocks {
            sorted: pairs,
            added: HashMap::default(),
        }
    }

    /// The rows holding key `k`, appended to `out`; returns how many.
    fn rows(&self, k: u64, out: &mut Vec<u32>) -> usize {
        let lo = self.sorted.partition_point(|p| p.0 < k);
        let hi = lo + self.sorted[lo..].partition_point(|p| p.0 == k);
        out.extend(self.sorted[lo..hi].iter().map(|p| p.1));
        let added = self.added.get(&k).map_or(&[][..], |v| v.as_slice());
        out.extend_from_slice(added);
        hi - lo + added.len()
    }

    fn push(&mut self, k: u64, row: u32) {
        self.added.entry(k).or_default().push(row);
    }
}

/// One blocking rule as a lookup: key → rows holding it.
#[derive(Debug)]
enum RuleMap {
    /// `l.x = r.x AND …`: rows by their key on the columns.
    On { cols: Vec<usize>, blocks: Blocks },
    /// `l.a = r.b AND l.b = r.a`: rows by their (a, b) key, looked up with a
    /// new row's (b, a) key.
    Swapped { a: usize, b: usize, blocks: Blocks },
    /// MinHash: rows by band key.
    MinHash {
        cols: Vec<usize>,
        spec: MinHashSpec,
        blocks: Blocks,
    },
}

/// What one [`Index::add`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    /// The table rows the new records took (`start..end`).
    pub rows: std::ops::Range<usize>,
    /// Candidate pairs scored (each with at least one new record).
    pub candidates: u64,
    /// Pairs at or above the threshold, as (smaller row, larger row).
    #[serde(skip)]
    pub matches: Vec<ScoredPair>,
    /// Matched pairs.
    pub matched_pairs: usize,
    /// Seconds spent matching (interning, lookup, scoring and clustering).
    pub seconds: f64,
}

/// Records, model, blocking maps and clusters, ready to take new records.
pub struct Index {
    table: Table,
    model: Model,
    weights: Weights,
    comparators: Vec<(usize, Comparator)>,
    rules: Vec<RuleMap>,
    uf: UnionFind,
    threshold: f64,
    max_cluster_size: usize,
    seed: u64,
    link: bool,
    settings: Settings,
    /// Per source: the row id the next added record takes.
    next_row_id: [u64; 2],
}

impl Index {
    /// The index of a finished run: its records, model and clusters.
    pub fn new(o: Outcome) -> Result<Index, DedupError> {
        let saved = o.saved_model();
        let mut uf = UnionFind::new(o.table.rows());
        for (r, &c) in o.clusters.cluster_of.iter().enumerate() {
            uf.union(r as u32, c, usize::MAX);
        }
        Index::build(o.table, o.comparators, &saved, uf, o.config.link)
    }

    /// The index of `inputs` (one, or two when linking) under a saved model,
    /// clustered as `clusters` says: a cluster table written by
    /// `tamis dedup --clusters` over the same inputs. Nothing is rescored.
    pub fn open(
        inputs: &[Input],
        model: &SavedModel,
        clusters: &Path,
        read: &ReadOptions,
    ) -> Result<Index, DedupError> {
        let p = crate::prepare(inputs, &Settings::default(), Some(model))?;
        let comparators = crate::bind_comparators(&p.comparisons, &p.table);
        let uf = read_clusters(&p.table, clusters, read)?;
        Index::build(p.table, comparators, model, uf, p.link)
    }

    fn build(
        mut table: Table,
        comparators: Vec<(usize, Comparator)>,
        saved: &SavedModel,
        uf: UnionFind,
        link: bool,
    ) -> Result<Index, DedupError> {
        let settings = saved.settings.clone();
        let seed = settings.seed.unwrap_or(42);
        // Lookups for new values are built now, so an addition costs what its records do.
        table.reopen();
        let idx = |c: &str| {
            table.column(c).ok_or_else(|| {
                DedupError::unknown_column(
                    c,
                    "the model's blocking rules",
                    table.columns.iter().map(|c| c.name.as_str()),
                )
            })
        };
        let mut rules = Vec::new();
        let keyed = |cols: &[usize]| {
            (0..table.rows())
                .filter_map(|r| {
                    let k = row_key(&table, cols, r);
                    (k != 0).then_some((k, r as u32))
                })
                .collect::<Vec<_>>()
        };
        for rule in &settings.blocking {
            let r = if let Some(spec) = &rule.minhash {
                let cols = spec
                    .columns
                    .iter()
                    .map(|c| idx(c))
                    .collect::<Result<Vec<_>, _>>()?;
                let texts = (0..table.rows())
                    .map(|r| minhash_text(&table, &cols, r))
                    .collect();
                let lsh = crate::minhash::lsh(texts, spec, seed)?;
                let pairs = lsh
                    .keys
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| **k != 0)
                    .map(|(i, k)| (*k, (i / lsh.bands) as u32))
                    .collect();
                RuleMap::MinHash {
                    cols,
                    spec: spec.clone(),
                    blocks: Blocks::new(pairs),
                }
            } else if let Some([a, b]) = &rule.swapped {
                let (a, b) = (idx(a)?, idx(b)?);
                RuleMap::Swapped {
                    a,
                    b,
                    blocks: Blocks::new(keyed(&[a, b])),
                }
            } else {
                let cols = rule
                    .on
                    .iter()
                    .map(|c| idx(c))
                    .collect::<Result<Vec<_>, _>>()?;
                let blocks = Blocks::new(keyed(&cols));
                RuleMap::On { cols, blocks }
            };
            rules.push(r);
        }
        // Headroom in the clusters, as in the columns.
        let mut uf = uf;
        uf.reserve(table.rows() / 4 + 1024);
        let mut next_row_id = [0u64; 2];
        for (s, id) in table.source.iter().zip(&table.row_ids) {
            next_row_id[*s as usize] = next_row_id[*s as usize].max(id + 1);
        }
        Ok(Index {
            next_row_id,
            weights: Weights::new(&saved.model),
            model: saved.model.clone(),
            threshold: settings.threshold.unwrap_or(crate::DEFAULT_THRESHOLD),
            max_cluster_size: settings
                .max_cluster_size
                .unwrap_or(crate::DEFAULT_MAX_CLUSTER_SIZE),
            seed,
            link,
            settings,
            table,
            comparators,
            rules,
            uf,
        })
    }

    /// The records.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// A scorer over the indexed records.
    pub fn scorer(&self) -> Scorer<'_> {
        Scorer {
            table: &self.table,
            fields: &self.comparators,
        }
    }

    /// Whether two inputs are linked.
    pub fn is_link(&self) -> bool {
        self.link
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Per row: its cluster id (the smallest row index in the cluster), with counts.
    pub fn clusters(&mut self) -> Clusters {
        self.uf.clusters()
    }

    /// The cluster id of one row.
    pub fn cluster_of(&mut self, row: usize) -> u32 {
        self.uf.cluster_of(row as u32)
    }

    /// Reads every record of `input` and adds them ([`Index::add`]). Rows
    /// the reader quarantines are refused: a record that cannot be read
    /// cannot be matched, and a partial add would be silent loss.
    pub fn add_input(&mut self, input: &Input, source: u8) -> Result<Added, DedupError> {
        let q = std::sync::Arc::new(Quarantine::in_memory());
        let batches = input.read_all(q.clone())?;
        let bad = q.summary().rows;
        if bad > 0 {
            return Err(DedupError::Settings {
                origin: input.name(),
                message: format!("{bad} rows could not be read; fix them and add again"),
            });
        }
        self.add(&batches, source)
    }

    /// Matches new records (batches with the indexed columns) from input
    /// `source` (0, or 1 for the linked side) against everything indexed so
    /// far, including each other, and joins them into the clusters. The
    /// records take the next row ids of their source, as if appended to it.
    pub fn add(&mut self, batches: &[RecordBatch], source: u8) -> Result<Added, DedupError> {
        let t0 = Instant::now();
        if source > 1 || (source == 1 && !self.link) {
            return Err(DedupError::Settings {
                origin: "incremental".into(),
                message: format!(
                    "records can come from input 0{}, not {source}",
                    if self.link { " or 1" } else { "" }
                ),
            });
        }
        let mut next = self.next_row_id[source as usize];
        let batches: Vec<RecordBatch> = batches
            .iter()
            .map(|b| {
                let b = with_row_ids(b, next)?;
                next += b.num_rows() as u64;
                Ok(b)
            })
            .collect::<Result<_, DedupError>>()?;
        let range = self.table.append(&batches, source)?;
        self.next_row_id[source as usize] = next;
        for (c, cmp) in &mut self.comparators {
            cmp.extend(&self.table.columns[*c]);
        }
        self.uf.grow(self.table.rows());
        // The new records' band keys, per MinHash rule, in one plan each.
        let mut bands: Vec<Option<(usize, Vec<u64>)>> = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            bands.push(match rule {
                RuleMap::MinHash { cols, spec, .. } => {
                    let texts = range
                        .clone()
                        .map(|r| minhash_text(&self.table, cols, r))
                        .collect();
                    let lsh = crate::minhash::lsh(texts, spec, self.seed)?;
                    Some((lsh.bands, lsh.keys))
                }
                _ => None,
            });
        }
        let mut candidates = 0u64;
        let mut matches = Vec::new();
        let mut found: Vec<u32> = Vec::new();
        for r in range.clone() {
            found.clear();
            for (rule, bands) in self.rules.iter_mut().zip(&bands) {
                match rule {
                    RuleMap::On { cols, blocks } => {
                        let k = row_key(&self.table, cols, r);
                        if k != 0 {
                            blocks.rows(k, &mut found);
                            blocks.push(k, r as u32);
                        }
                    }
                    RuleMap::Swapped { a, b, blocks } => {
                        let probe = row_key(&self.table, &[*b, *a], r);
                        if probe != 0 {
                            blocks.rows(probe, &mut found);
                        }
                        let k = row_key(&self.table, &[*a, *b], r);
                        if k != 0 {
                            blocks.push(k, r as u32);
                        }
                    }
                    RuleMap::MinHash { spec, blocks, .. } => {
                        let Some((n, keys)) = bands else { continue };
                        let i = r - range.start;
                        for &k in &keys[i * n..(i + 1) * n] {
                            if k == 0 {
                                continue;
                            }
                            // A full run skips buckets past the limit.
                            let before = found.len();
                            if blocks.rows(k, &mut found) >= spec.max_bucket {
                                found.truncate(before);
                            }
                            blocks.push(k, r as u32);
                        }
                    }
                }
            }
            found.sort_unstable();
            found.dedup();
            let scorer = Scorer {
                table: &self.table,
                fields: &self.comparators,
            };
            for &x in &found {
                let (a, b) = (x as usize, r);
                if self.link && self.table.source[a] == self.table.source[b] {
                    continue;
                }
                candidates += 1;
                let gamma = scorer.gamma(a, b);
                let weight = self.weights.weight(&scorer, gamma, a);
                let probability = model::probability(weight);
                if probability >= self.threshold {
                    matches.push(ScoredPair {
                        a: a as u32,
                        b: b as u32,
                        gamma,
                        weight,
                        probability,
                    });
                }
            }
        }
        let links: Vec<(u32, u32, f64)> =
            matches.iter().map(|p| (p.a, p.b, p.probability)).collect();
        self.uf.link_all(&links, self.max_cluster_size);
        matches.sort_unstable_by_key(|p| (p.a, p.b));
        Ok(Added {
            matched_pairs: matches.len(),
            rows: range,
            candidates,
            matches,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}

/// `b` with row ids `first..`, replacing any it has.
fn with_row_ids(b: &RecordBatch, first: u64) -> Result<RecordBatch, DedupError> {
    use std::sync::Arc;
    use tamis_core::datafusion::arrow::array::{ArrayRef, UInt64Array};
    use tamis_core::datafusion::arrow::datatypes::{Field, Schema};
    let ids: ArrayRef = Arc::new(UInt64Array::from_iter_values(
        first..first + b.num_rows() as u64,
    ));
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        if f.name() != tamis_core::ROW_ID {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    fields.push(Field::new(tamis_core::ROW_ID, DataType::UInt64, false));
    cols.push(ids);
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// A union-find over `t`'s rows from a cluster table (`row_id`, `cluster_id`,
/// and `source` when linking) written for the same inputs.
fn read_clusters(t: &Table, path: &Path, read: &ReadOptions) -> Result<UnionFind, DedupError> {
    let origin = path.display().to_string();
    let bad = |m: String| DedupError::Settings {
        origin: origin.clone(),
        message: m,
    };
    let input = Input::open(std::slice::from_ref(&origin), read)?;
    let cols = input.columns();
    for need in ["row_id", "cluster_id"] {
        if !cols.iter().any(|c| c == need) {
            return Err(DedupError::unknown_column(
                need,
                origin.clone(),
                cols.iter().map(String::as_str),
            ));
        }
    }
    let has_source = cols.iter().any(|c| c == "source");
    let mut row_of: HashMap<(u8, u64), u32> = HashMap::default();
    for r in 0..t.rows() {
        row_of.insert((t.source[r], t.row_ids[r]), r as u32);
    }
    let mut uf = UnionFind::new(t.rows());
    let mut first: HashMap<String, u32> = HashMap::default();
    let mut seen = 0usize;
    let q = std::sync::Arc::new(Quarantine::in_memory());
    for b in input.read_all(q.clone())? {
        let text = |name: &str| -> Result<_, DedupError> {
            let a = b
                .column_by_name(name)
                .ok_or_else(|| bad(format!("no column `{name}`")))?;
            Ok(cast(a, &DataType::Utf8)?)
        };
        let (rid, cid) = (text("row_id")?, text("cluster_id")?);
        let src = if has_source {
            Some(text("source")?)
        } else {
            None
        };
        let (rid, cid) = (rid.as_string::<i32>(), cid.as_string::<i32>());
        for i in 0..b.num_rows() {
            let line = || format!("data row {}", seen + 1);
            let id: u64 = rid
                .value(i)
                .trim()
                .parse()
                .map_err(|_| bad(format!("{}: `row_id` is not a row id", line())))?;
            let s: u8 = match &src {
                Some(a) => a
                    .as_string::<i32>()
                    .value(i)
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{}: `source` is not 0 or 1", line())))?,
                None => 0,
            };
            let Some(&row) = row_of.get(&(s, id)) else {
                return Err(bad(format!(
                    "{}: row id {id} is not in the input; the cluster table belongs to other data",
                    line()
                )));
            };
            if cid.is_null(i) {
                return Err(bad(format!("{}: `cluster_id` is empty", line())));
            }
            let c = *first.entry(cid.value(i).to_string()).or_insert(row);
            uf.union(c, row, usize::MAX);
            seen += 1;
        }
    }
    if q.summary().rows > 0 {
        return Err(bad(format!("{} rows could not be read", q.summary().rows)));
    }
    if seen != t.rows() {
        return Err(bad(format!(
            "it has {seen} rows but the input has {}; the cluster table belongs to other data",
            t.rows()
        )));
    }
    Ok(uf)
}
