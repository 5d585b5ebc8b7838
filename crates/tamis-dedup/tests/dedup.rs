//! End-to-end matching on a generated people table with planted duplicates.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::Path;

use tamis_dedup::settings::{Role, Settings};
use tamis_dedup::{Request, output, run};
use xxhash_rust::xxh3::xxh3_64_with_seed;

const FIRST: &[&str] = &[
    "james",
    "mary",
    "john",
    "patricia",
    "robert",
    "jennifer",
    "michael",
    "linda",
    "william",
    "elizabeth",
    "david",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "charles",
    "karen",
    "chloe",
    "oliver",
    "amelia",
    "noah",
    "isla",
    "harry",
    "mia",
    "leo",
];
const LAST: &[&str] = &[
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
    "harris",
    "clark",
    "lewis",
    "walker",
    "hall",
    "young",
    "allen",
    "king",
    "wright",
    "scott",
    "green",
    "baker",
    "adams",
    "nelson",
];
const STREETS: &[&str] = &[
    "wallaby place",
    "hoseason street",
    "gundulu place",
    "pridham street",
    "kent road",
    "main street",
    "oak avenue",
    "maple drive",
    "cedar lane",
    "elm court",
    "pine crescent",
];
const CITIES: &[&str] = &[
    "marsden",
    "granville",
    "utakarra",
    "cleveland",
    "milton",
    "delmar",
    "kingston",
    "perth",
];

fn pick<'a>(v: &[&'a str], h: u64) -> &'a str {
    v[(h % v.len() as u64) as usize]
}

fn typo(s: &str, h: u64) -> String {
    let mut c: Vec<char> = s.chars().collect();
    if c.len() < 3 {
        return s.to_uppercase();
    }
    let i = 1 + (h as usize % (c.len() - 2));
    match h % 3 {
        0 => c.swap(i, i + 1),
        1 => {
            c.remove(i);
        }
        _ => c[i] = 'x',
    }
    c.into_iter().collect()
}

/// `n` base records and `dups` near duplicates (1-2 fields mutated), as CSV
/// text; returns the CSV and the true pairs (by rec_id).
fn people(n: usize, dups: usize, seed: u64) -> (String, BTreeSet<(String, String)>) {
    let h = |i: usize, k: u64| xxh3_64_with_seed(&(i as u64).to_le_bytes(), seed ^ k);
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    for i in 0..n {
        let f = vec![
            pick(FIRST, h(i, 1)).to_string(),
            pick(LAST, h(i, 2)).to_string(),
            format!("{}", 1 + h(i, 3) % 200),
            pick(STREETS, h(i, 4)).to_string(),
            pick(CITIES, h(i, 5)).to_string(),
            format!("{}", 2000 + h(i, 6) % 800),
            format!(
                "19{:02}{:02}{:02}",
                30 + h(i, 7) % 70,
                1 + h(i, 8) % 12,
                1 + h(i, 9) % 28
            ),
            format!("{}", 1_000_000 + h(i, 10) % 9_000_000),
        ];
        rows.push((format!("rec-{i}-org"), f));
    }
    let mut truth = BTreeSet::new();
    for d in 0..dups {
        let src = (h(d, 20) % n as u64) as usize;
        let mut f = rows[src].1.clone();
        for m in 0..1 + (h(d, 21) % 2) {
            let field = (h(d, 22 + m) % 8) as usize;
            f[field] = if field == 5 || field == 7 || field == 2 {
                // digits: one transposition
                typo(&f[field], 0)
            } else if h(d, 30 + m) % 4 == 0 {
                String::new() // missing
            } else {
                typo(&f[field], h(d, 40 + m))
            };
        }
        let id = format!("rec-{src}-dup-{d}");
        let org = rows[src].0.clone();
        truth.insert(if org < id {
            (org, id.clone())
        } else {
            (id.clone(), org)
        });
        rows.push((id, f));
    }
    // Duplicates of one source are duplicates of each other.
    let mut by_src: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (id, _) in &rows {
        let src = id.split('-').nth(1).unwrap().to_string();
        by_src.entry(src).or_default().push(id.clone());
    }
    for ids in by_src.values() {
        for a in ids {
            for b in ids {
                if a < b {
                    truth.insert((a.clone(), b.clone()));
                }
            }
        }
    }
    // Shuffle deterministically so duplicates are not next to their source.
    rows.sort_by_key(|(id, _)| xxh3_64_with_seed(id.as_bytes(), seed));
    let mut csv = String::from(
        "rec_id,given_name,surname,street_number,address_1,suburb,postcode,date_of_birth,soc_sec_id\n",
    );
    for (id, f) in rows {
        csv.push_str(&id);
        for v in f {
            csv.push(',');
            csv.push_str(&v);
        }
        csv.push('\n');
    }
    (csv, truth)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn pairs_of(o: &tamis_dedup::Outcome) -> BTreeSet<(String, String)> {
    o.matches
        .iter()
        .map(|p| {
            let a = o.table.keys.value(p.a as usize).to_string();
            let b = o.table.keys.value(p.b as usize).to_string();
            if a < b { (a, b) } else { (b, a) }
        })
        .collect()
}

fn f1(pred: &BTreeSet<(String, String)>, truth: &BTreeSet<(String, String)>) -> f64 {
    let tp = pred.intersection(truth).count() as f64;
    let p = tp / pred.len().max(1) as f64;
    let r = tp / truth.len().max(1) as f64;
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

#[test]
fn automatic_dedupe_finds_the_planted_duplicates_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, truth) = people(3000, 400, 7);
    let f = write(dir.path(), "people.csv", &csv);
    let req = Request {
        inputs: vec![f],
        ..Default::default()
    };
    let o = run(&req).unwrap();
    // Roles from the headers.
    let role = |c: &str| o.config.roles.iter().find(|r| r.column == c).unwrap().role;
    assert_eq!(role("rec_id"), Role::RecordKey);
    assert_eq!(role("given_name"), Role::FirstName);
    assert_eq!(role("date_of_birth"), Role::DateOfBirth);
    assert_eq!(o.config.id_column.as_deref(), Some("rec_id"));
    assert!(o.config.automatic);
    // Every blocking rule's count was measured, and the union is what was scored.
    assert!(!o.config.blocking.is_empty());
    let new: u64 = o
        .rule_counts
        .iter()
        .map(|r| r.new_comparisons.unwrap())
        .sum();
    assert_eq!(new, o.candidates);
    let pred = pairs_of(&o);
    let score = f1(&pred, &truth);
    assert!(
        score >= 0.97,
        "F1 {score} ({} predicted, {} true)",
        pred.len(),
        truth.len()
    );
    // The same input gives the same pairs and probabilities.
    let again = run(&req).unwrap();
    assert_eq!(pairs_of(&again), pred);
    let probs = |o: &tamis_dedup::Outcome| -> Vec<u64> {
        o.matches.iter().map(|p| p.probability.to_bits()).collect()
    };
    assert_eq!(probs(&again), probs(&o));
    // Clusters join the duplicates of one source.
    assert!(o.clusters.clusters > 0);
    for p in &o.matches {
        assert_eq!(
            o.clusters.cluster_of[p.a as usize],
            o.clusters.cluster_of[p.b as usize]
        );
    }
}

#[test]
fn explanations_add_up_to_the_match_weight() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, _) = people(800, 100, 3);
    let f = write(dir.path(), "p.csv", &csv);
    let o = run(&Request {
        inputs: vec![f],
        ..Default::default()
    })
    .unwrap();
    let b = output::pairs_batch(&o, true).unwrap();
    use tamis_core::datafusion::arrow::array::{AsArray, Float64Array};
    use tamis_core::datafusion::arrow::datatypes::Float64Type;
    let weight: &Float64Array = b
        .column_by_name("match_weight")
        .unwrap()
        .as_primitive::<Float64Type>();
    let prior = (o.model.lambda / (1.0 - o.model.lambda)).log2();
    let weight_cols: Vec<&Float64Array> = b
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name().ends_with("_weight") && f.name() != "match_weight")
        .map(|(i, _)| b.column(i).as_primitive::<Float64Type>())
        .collect();
    assert_eq!(weight_cols.len(), o.config.comparisons.len());
    for r in 0..b.num_rows() {
        let sum: f64 = prior + weight_cols.iter().map(|c| c.value(r)).sum::<f64>();
        assert!(
            (sum - weight.value(r)).abs() < 1e-6,
            "row {r}: {sum} vs {}",
            weight.value(r)
        );
    }
    let level = b
        .column_by_name("surname_level")
        .unwrap()
        .as_string::<i32>();
    assert!((0..b.num_rows()).any(|r| level.value(r) == "exact"));
}

#[test]
fn a_saved_model_gives_the_same_pairs_and_settings_override() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, _) = people(1000, 150, 11);
    let f = write(dir.path(), "p.csv", &csv);
    let req = Request {
        inputs: vec![f.clone()],
        ..Default::default()
    };
    let o = run(&req).unwrap();
    let m = dir.path().join("model.json");
    output::save_model(&o, &m).unwrap();
    let saved = output::load_model(&m).unwrap();
    let again = run(&Request {
        inputs: vec![f.clone()],
        model: Some(saved),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(pairs_of(&again), pairs_of(&o));
    assert!(!again.config.automatic);

    // A settings file overrides blocking and excludes a column.
    let s = Settings::from_text(
        "blocking:\n  - on: [surname]\nexclude: [soc_sec_id]\nthreshold: 0.9\n",
        "s.yaml",
    )
    .unwrap();
    let o2 = run(&Request {
        inputs: vec![f.clone()],
        settings: s,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(o2.config.blocking.len(), 1);
    assert!(
        o2.config
            .comparisons
            .iter()
            .all(|c| c.column != "soc_sec_id")
    );
    assert!(o2.matches.iter().all(|p| p.probability >= 0.9));

    // Unknown columns are named with a suggestion.
    let bad = Settings::from_text("blocking:\n  - on: [surnme]\n", "s.yaml").unwrap();
    let e = run(&Request {
        inputs: vec![f],
        settings: bad,
        ..Default::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("surnme") && e.contains("surname"), "{e}");
}

#[test]
fn linking_two_files_pairs_only_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, truth) = people(1500, 300, 5);
    let mut lines: Vec<&str> = csv.lines().collect();
    let header = lines.remove(0);
    let (mut a, mut b) = (String::from(header), String::from(header));
    a.push('\n');
    b.push('\n');
    for l in lines {
        // Originals on the left, duplicates on the right.
        if l.contains("-org,") {
            a.push_str(l);
            a.push('\n');
        } else {
            b.push_str(l);
            b.push('\n');
        }
    }
    let fa = write(dir.path(), "a.csv", &a);
    let fb = write(dir.path(), "b.csv", &b);
    let o = run(&Request {
        inputs: vec![fa],
        link: Some(vec![fb]),
        ..Default::default()
    })
    .unwrap();
    for p in &o.matches {
        assert_ne!(o.table.source[p.a as usize], o.table.source[p.b as usize]);
    }
    let cross: BTreeSet<(String, String)> = truth
        .into_iter()
        .filter(|(x, y)| x.ends_with("-org") != y.ends_with("-org"))
        .collect();
    let score = f1(&pairs_of(&o), &cross);
    assert!(score >= 0.95, "link F1 {score}");
    let c = output::clusters_batch(&o, true).unwrap();
    assert_eq!(c.num_rows(), o.table.rows());
    assert!(c.column_by_name("source").is_some());
}

#[test]
fn minhash_blocking_finds_duplicates_whatever_field_differs() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, truth) = people(2000, 300, 13);
    let f = write(dir.path(), "p.csv", &csv);
    let s = Settings::from_text(
        "blocking:\n  - minhash:\n      columns: [given_name, surname, street_number, address_1, suburb, postcode, date_of_birth]\n",
        "s.yaml",
    )
    .unwrap();
    let o = run(&Request {
        inputs: vec![f],
        settings: s,
        ..Default::default()
    })
    .unwrap();
    assert!(o.rule_counts[0].rule.starts_with("minhash("));
    let score = f1(&pairs_of(&o), &truth);
    assert!(score >= 0.9, "minhash F1 {score}");
}

/// The CSV's header plus the rows in `range` (data rows, 0-based).
fn slice_csv(csv: &str, range: std::ops::Range<usize>) -> String {
    let mut lines = csv.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for l in lines.skip(range.start).take(range.len()) {
        out.push_str(l);
        out.push('\n');
    }
    out
}

fn batches_of(path: &str) -> Vec<tamis_core::datafusion::arrow::record_batch::RecordBatch> {
    tamis_dedup::table::Input::open(&[path.to_string()], &Default::default())
        .unwrap()
        .read_all(std::sync::Arc::new(tamis_core::Quarantine::in_memory()))
        .unwrap()
}

#[test]
fn incremental_matching_gives_the_clusters_of_a_full_rerun() {
    use tamis_dedup::incremental::Index;
    use tamis_dedup::table::Input;
    let dir = tempfile::tempdir().unwrap();
    let (csv, truth) = people(2500, 400, 19);
    let total = csv.lines().count() - 1;
    let split = total - 60;
    let base = write(dir.path(), "base.csv", &slice_csv(&csv, 0..split));
    let one_by_one = write(dir.path(), "new1.csv", &slice_csv(&csv, split..split + 10));
    let batch = write(dir.path(), "new2.csv", &slice_csv(&csv, split + 10..total));
    let all = write(dir.path(), "all.csv", &csv);

    let o = run(&Request {
        inputs: vec![base.clone()],
        ..Default::default()
    })
    .unwrap();
    let saved = o.saved_model();
    let clusters_file = dir.path().join("clusters.parquet");
    output::write(&clusters_file, &output::clusters_batch(&o, false).unwrap()).unwrap();
    let mut index = Index::new(o).unwrap();

    // Ten records one at a time, then fifty as one batch.
    let mut new_pairs = BTreeSet::new();
    let key = |i: &Index, r: u32| i.table().keys.value(r as usize).to_string();
    let mut collect = |index: &Index, added: &tamis_dedup::incremental::Added| {
        for p in &added.matches {
            let (a, b) = (key(index, p.a), key(index, p.b));
            new_pairs.insert(if a < b { (a, b) } else { (b, a) });
        }
    };
    let first = batches_of(&one_by_one);
    let mut rows_added = 0;
    for b in &first {
        for i in 0..b.num_rows() {
            let added = index.add(&[b.slice(i, 1)], 0).unwrap();
            assert_eq!(added.rows.len(), 1);
            rows_added += 1;
            collect(&index, &added);
        }
    }
    let added = index
        .add_input(
            &Input::open(std::slice::from_ref(&batch), &Default::default()).unwrap(),
            0,
        )
        .unwrap();
    rows_added += added.rows.len();
    collect(&index, &added);
    assert_eq!(rows_added, 60);
    assert_eq!(index.table().rows(), total);
    // The new records found their duplicates (the test is not vacuous).
    let with_new: BTreeSet<(String, String)> = truth
        .iter()
        .filter(|(a, b)| new_pairs.contains(&(a.clone(), b.clone())))
        .cloned()
        .collect();
    assert!(with_new.len() >= 5, "{} true pairs found", with_new.len());

    // A full rerun with the same model over all the records.
    let full = run(&Request {
        inputs: vec![all],
        model: Some(saved.clone()),
        ..Default::default()
    })
    .unwrap();
    let incremental = index.clusters();
    assert_eq!(incremental.cluster_of, full.clusters.cluster_of);
    assert_eq!(incremental.clusters, full.clusters.clusters);
    // The pairs the full run finds with a new record are the incremental ones.
    let full_new: BTreeSet<(String, String)> = full
        .matches
        .iter()
        .filter(|p| p.b as usize >= split)
        .map(|p| {
            let (a, b) = (
                full.table.keys.value(p.a as usize).to_string(),
                full.table.keys.value(p.b as usize).to_string(),
            );
            if a < b { (a, b) } else { (b, a) }
        })
        .collect();
    assert_eq!(new_pairs, full_new);
    // Row ids continue the base's.
    assert_eq!(index.table().row_ids, full.table.row_ids);

    // From files: the base, the model and its cluster table; nothing rescored.
    let mut reopened = Index::open(
        &[Input::open(std::slice::from_ref(&base), &Default::default()).unwrap()],
        &saved,
        &clusters_file,
        &Default::default(),
    )
    .unwrap();
    reopened
        .add_input(
            &Input::open(
                &[all_new(dir.path(), &csv, split, total)],
                &Default::default(),
            )
            .unwrap(),
            0,
        )
        .unwrap();
    assert_eq!(reopened.clusters().cluster_of, full.clusters.cluster_of);

    // A cluster table of other data is refused, naming the file.
    let other = write(dir.path(), "other.csv", &slice_csv(&csv, 0..100));
    let small = run(&Request {
        inputs: vec![other],
        ..Default::default()
    })
    .unwrap();
    let wrong = dir.path().join("wrong.parquet");
    output::write(&wrong, &output::clusters_batch(&small, false).unwrap()).unwrap();
    let e = Index::open(
        &[Input::open(&[base], &Default::default()).unwrap()],
        &saved,
        &wrong,
        &Default::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("wrong.parquet") && e.contains("other data"),
        "{e}"
    );
}

fn all_new(dir: &Path, csv: &str, split: usize, total: usize) -> String {
    write(dir, "new_all.csv", &slice_csv(csv, split..total))
}

/// A raised cancellation flag stops a run at its next stage boundary.
#[test]
fn a_cancelled_run_stops_with_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, _) = people(300, 30, 7);
    let f = write(dir.path(), "people.csv", &csv);
    let req = Request {
        inputs: vec![f],
        ..Default::default()
    };
    let stopped = req.clone();
    stopped.cancel.cancel();
    let e = run(&stopped).err().expect("a cancelled run fails");
    assert!(
        matches!(
            e,
            tamis_dedup::DedupError::Core(tamis_core::CoreError::Cancelled)
        ),
        "{e}"
    );
    // Clones share the flag; a request with a fresh one runs to the end.
    let fresh = Request {
        cancel: Default::default(),
        ..req
    };
    assert!(run(&fresh).is_ok());
}
