//! Property tests of the per-column state: states built on any split of the
//! rows and merged equal one pass over all of them, and the exact statistics
//! equal a plain reference computation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::NaiveDate;
use proptest::prelude::*;
use tamis_core::ColumnType;
use tamis_core::types::DEFAULT_NULL_TOKENS;
use tamis_profile::ColumnProfile;
use tamis_profile::column::{ColumnSpec, ColumnState, Ctx};

fn spec(name: &str, t: ColumnType) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        position: 0,
        sample_type: t,
        forced: false,
        null_tokens: DEFAULT_NULL_TOKENS
            .iter()
            .map(|s| s.to_lowercase())
            .collect(),
        today: NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(),
    }
}

/// A cell: `None` is a true null.
fn cell() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(String::new())),
        1 => prop::sample::select(vec!["NA", "null", "-", "?", "None"]).prop_map(|s| Some(s.to_string())),
        4 => (-1000i64..1000).prop_map(|v| Some(v.to_string())),
        3 => (-1e4f64..1e4).prop_map(|v| Some(format!("{v:.2}"))),
        2 => prop::sample::select(vec!["Oslo", "oslo", " Oslo", "Rome ", "ROME", "Lima"]).prop_map(|s| Some(s.to_string())),
        1 => (2000i32..2030, 1u32..13, 1u32..29).prop_map(|(y, m, d)| Some(format!("{y}-{m:02}-{d:02}"))),
        1 => "[a-z]{1,6}@[a-z]{2,5}\\.com".prop_map(Some),
        1 => "x[A-Za-z0-9 ]{0,11}".prop_map(Some),
        1 => Just(Some("   ".to_string())),
    ]
}

fn feed(state: &mut ColumnState, ctx: &Ctx, cells: &[(u64, &Option<String>)]) {
    for (row, c) in cells {
        match c {
            None => state.add_null(*row),
            Some(v) => state.add(v, *row, ctx),
        }
    }
}

/// The fields of a profile that are exact (not sketch estimates), as JSON.
fn exact_view(p: &ColumnProfile) -> serde_json::Value {
    let mut v = serde_json::to_value(p).unwrap();
    if let Some(n) = v.get_mut("numeric").and_then(|n| n.as_object_mut()) {
        for k in [
            "quantiles",
            "histogram",
            "outliers",
            "mean",
            "std",
            "variance",
            "sum",
        ] {
            n.remove(k);
        }
    }
    v
}

fn profile_of(
    name: &str,
    t: ColumnType,
    cells: &[Option<String>],
    parts: &[usize],
) -> (ColumnProfile, ColumnProfile) {
    let s = spec(name, t);
    let ctx = Ctx::new(s.clone());
    let indexed: Vec<(u64, &Option<String>)> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| (i as u64, c))
        .collect();
    let mut one = ColumnState::new(t);
    feed(&mut one, &ctx, &indexed);
    // Partition k gets the rows whose `parts` entry is k (interleaved, as a
    // round-robin repartition hands them out).
    let nparts = parts.iter().copied().max().unwrap_or(0) + 1;
    let mut states: Vec<ColumnState> = (0..nparts).map(|_| ColumnState::new(t)).collect();
    for (i, c) in indexed.iter().enumerate() {
        let k = parts.get(i).copied().unwrap_or(0);
        feed(&mut states[k], &ctx, std::slice::from_ref(c));
    }
    let mut merged = states.remove(0);
    for s in states {
        merged.merge(s, &ctx);
    }
    (one.finish(&s), merged.finish(&s))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merged_states_equal_one_pass(
        cells in prop::collection::vec(cell(), 0..400),
        parts in prop::collection::vec(0usize..4, 400),
        t in prop::sample::select(vec![ColumnType::Integer, ColumnType::Float, ColumnType::String, ColumnType::Date]),
        name in prop::sample::select(vec!["value", "age", "email", "city", "birth_date"]),
    ) {
        let (one, merged) = profile_of(name, t, &cells, &parts);
        prop_assert_eq!(exact_view(&one), exact_view(&merged));
        if let (Some(a), Some(b)) = (&one.numeric, &merged.numeric) {
            prop_assert!((a.mean - b.mean).abs() <= 1e-9 * (1.0 + a.mean.abs()));
            prop_assert!((a.sum - b.sum).abs() <= 1e-9 * (1.0 + a.sum.abs()));
            match (a.variance, b.variance) {
                (Some(x), Some(y)) => prop_assert!((x - y).abs() <= 1e-7 * (1.0 + x.abs())),
                (x, y) => prop_assert_eq!(x, y),
            }
        }
    }

    #[test]
    fn exact_statistics_equal_a_reference(
        cells in prop::collection::vec(cell(), 1..400),
        parts in prop::collection::vec(0usize..3, 400),
    ) {
        let (_, p) = profile_of("value", ColumnType::Float, &cells, &parts);
        let tokens = ["na", "null", "-", "?", "none"];
        let nulls = cells.iter().filter(|c| c.is_none()).count() as u64;
        let empty = cells.iter().flatten().filter(|v| v.trim().is_empty()).count() as u64;
        let toks = cells
            .iter()
            .flatten()
            .filter(|v| tokens.contains(&v.trim().to_lowercase().as_str()))
            .count() as u64;
        prop_assert_eq!(p.count, cells.len() as u64);
        prop_assert_eq!(p.nulls, nulls);
        prop_assert_eq!(p.empty, empty);
        prop_assert_eq!(p.null_tokens, toks);
        prop_assert_eq!(p.missing, nulls + empty + toks);
        let present: Vec<&str> = cells
            .iter()
            .flatten()
            .map(|v| v.as_str())
            .filter(|v| !v.trim().is_empty() && !tokens.contains(&v.trim().to_lowercase().as_str()))
            .collect();
        let nums: Vec<f64> = present.iter().filter_map(|v| v.trim().parse::<f64>().ok()).collect();
        prop_assert_eq!(p.type_mismatches, (present.len() - nums.len()) as u64);
        let mut distinct: Vec<&str> = present.clone();
        distinct.sort();
        distinct.dedup();
        prop_assert_eq!(p.distinct, distinct.len() as u64);
        if nums.is_empty() {
            prop_assert!(p.numeric.is_none() || p.numeric.as_ref().unwrap().count == 0);
        } else {
            let n = p.numeric.as_ref().unwrap();
            let mean = nums.iter().sum::<f64>() / nums.len() as f64;
            prop_assert_eq!(n.count, nums.len() as u64);
            prop_assert_eq!(n.min, nums.iter().cloned().fold(f64::INFINITY, f64::min));
            prop_assert_eq!(n.max, nums.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
            prop_assert!((n.mean - mean).abs() <= 1e-9 * (1.0 + mean.abs()));
            prop_assert_eq!(n.zeros, nums.iter().filter(|v| **v == 0.0).count() as u64);
            prop_assert_eq!(n.negatives, nums.iter().filter(|v| **v < 0.0).count() as u64);
            if nums.len() > 1 {
                let var = nums.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (nums.len() - 1) as f64;
                prop_assert!((n.variance.unwrap() - var).abs() <= 1e-6 * (1.0 + var));
            }
        }
        if !present.is_empty() {
            let lens: Vec<u64> = present.iter().map(|v| v.chars().count() as u64).collect();
            prop_assert_eq!(p.text.min_length, *lens.iter().min().unwrap());
            prop_assert_eq!(p.text.max_length, *lens.iter().max().unwrap());
            prop_assert_eq!(p.text.leading_whitespace, present.iter().filter(|v| v.starts_with(char::is_whitespace)).count() as u64);
            prop_assert_eq!(p.text.trailing_whitespace, present.iter().filter(|v| v.ends_with(char::is_whitespace)).count() as u64);
        }
    }
}

#[test]
fn distinct_and_top_values_stay_within_documented_bounds_above_the_exact_limit() {
    let t = ColumnType::String;
    let s = spec("key", t);
    let ctx = Ctx::new(s.clone());
    let n = 200_000u64;
    let mut parts: Vec<ColumnState> = (0..2).map(|_| ColumnState::new(t)).collect();
    for i in 0..n {
        // 100,000 distinct keys, plus one heavy hitter in every 10th row.
        let v = if i % 10 == 0 {
            "HEAVY".to_string()
        } else {
            format!("k{}", i % 100_000)
        };
        parts[(i % 2) as usize].add(&v, i, &ctx);
    }
    let mut m = parts.remove(0);
    m.merge(parts.remove(0), &ctx);
    let p = m.finish(&s);
    assert!(!p.distinct_exact);
    let truth = 100_000.0 - 10_000.0 + 1.0; // keys k{i} with i % 10 != 0 (as i % 100000), + HEAVY
    let err = (p.distinct as f64 - truth).abs() / truth;
    assert!(err < 0.025, "distinct {} vs {truth}: {err}", p.distinct);
    assert_eq!(p.top_values[0].value, "HEAVY");
    let heavy = p.top_values[0].count;
    assert!(
        heavy <= 20_000 && heavy + p.top_values_error >= 20_000,
        "{heavy} ± {}",
        p.top_values_error
    );
}

#[test]
fn shapes_past_the_exact_limit_are_estimated_within_the_documented_error() {
    let t = ColumnType::String;
    let s = spec("contact", t);
    let ctx = Ctx::new(s.clone());
    // 300,000 distinct values: 70 % emails, 30 % seven-digit numbers.
    let n = 300_000u64;
    let mut parts: Vec<ColumnState> = (0..2).map(|_| ColumnState::new(t)).collect();
    let mut one = ColumnState::new(t);
    for i in 0..n {
        let v = if i % 10 < 7 {
            format!("user{i}@mail.test")
        } else {
            format!("{}", 1_000_000 + i)
        };
        parts[(i % 2) as usize].add(&v, i, &ctx);
        one.add(&v, i, &ctx);
    }
    let mut m = parts.remove(0);
    m.merge(parts.remove(0), &ctx);
    let p = m.finish(&s);
    let o = one.finish(&s);
    for p in [&p, &o] {
        assert!(!p.patterns_exact);
        let share = |name: &str| {
            p.formats
                .iter()
                .find(|f| f.value == name)
                .map_or(0, |f| f.count) as f64
                / n as f64
        };
        let email = share("email");
        // About 300,000 / 16 values sampled: √(0.21 / 18,750) ≈ 0.33 %; 3σ ≈ 1 %.
        assert!((email - 0.7).abs() < 0.01, "email share {email}");
        let digits: u64 = p
            .patterns
            .iter()
            .filter(|x| x.value == "9999999")
            .map(|x| x.count)
            .sum();
        let d = digits as f64 / n as f64;
        assert!((d - 0.3).abs() < 0.01, "digit share {d}");
    }
    // Below the limit, exact.
    let mut small = ColumnState::new(t);
    for i in 0..1000u64 {
        small.add(&format!("user{i}@mail.test"), i, &ctx);
    }
    let q = small.finish(&s);
    assert!(q.patterns_exact);
    assert_eq!(q.formats[0].count, 1000);
}

#[test]
fn heavy_hitters_serialise_the_same_whatever_the_insertion_order() {
    use tamis_profile::freq::{Heavy, value_hash};
    let values: Vec<String> = (0..3000).map(|i| format!("v{}", i % 2000)).collect();
    let (mut a, mut b) = (Heavy::default(), Heavy::default());
    for (i, v) in values.iter().enumerate() {
        a.add(value_hash(v), v, 1, i as u64);
    }
    for (i, v) in values.iter().enumerate().rev() {
        b.add(value_hash(v), v, 1, i as u64);
    }
    assert_eq!(a.len(), 2000);
    let (ja, jb) = (
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap(),
    );
    assert_eq!(ja, jb);
    // Shrinking keeps the heaviest and says by how much counts are low.
    let cut = a.shrink(1500);
    assert_eq!(cut, 1);
    assert_eq!(a.len(), 1000);
    let back: Heavy = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    let mut e: Vec<_> = back
        .entries()
        .map(|(_, v, c, r)| (v.to_string(), c, r))
        .collect();
    e.sort();
    assert_eq!(e[0], ("v0".to_string(), 1, 0));
}

#[test]
fn repeated_values_stay_exact_past_the_early_limit_and_ids_do_not() {
    let t = ColumnType::String;
    let s = spec("name", t);
    let ctx = Ctx::new(s.clone());
    let (mut names, mut ids) = (ColumnState::new(t), ColumnState::new(t));
    // Names: 100,000 rows of 10,000 common ones, then 50,000 rows cycling
    // through 30,000 (20,000 rarer ones appear); 30,000 ids, all new.
    for i in 0..150_000u64 {
        let k = if i < 100_000 { i % 10_000 } else { i % 30_000 };
        names.add(&format!("name{k}"), i, &ctx);
    }
    for i in 0..30_000u64 {
        ids.add(&format!("id{i}"), i, &ctx);
    }
    let n = names.finish(&s);
    assert!(n.distinct_exact && n.patterns_exact);
    assert_eq!(n.distinct, 30_000);
    assert_eq!(n.top_values_error, 0);
    let d = ids.finish(&s);
    assert!(!d.distinct_exact && !d.patterns_exact);
    assert!(
        (d.distinct as f64 - 30_000.0).abs() < 750.0,
        "{}",
        d.distinct
    );
}

#[test]
fn an_exact_column_has_exact_quantiles_and_outlier_counts() {
    let t = ColumnType::Float;
    let s = spec("value", t);
    let ctx = Ctx::new(s.clone());
    // 1,000 rows: 0..=9 a hundred times each but 9, which is 91 times,
    // and 1000 nine times (the outliers).
    let mut parts: Vec<ColumnState> = (0..2).map(|_| ColumnState::new(t)).collect();
    for i in 0..1000u64 {
        let v = if i % 10 == 9 && i >= 910 {
            "1000".to_string()
        } else {
            (i % 10).to_string()
        };
        parts[(i % 2) as usize].add(&v, i, &ctx);
    }
    let mut m = parts.remove(0);
    m.merge(parts.remove(0), &ctx);
    let p = m.finish(&s);
    let n = p.numeric.unwrap();
    assert!(n.exact);
    // Nearest rank over the sorted values: 0 ×100, 1 ×100, …, 9 ×91, 1000 ×9.
    assert_eq!(n.quantiles.p25, 2.0);
    assert_eq!(n.quantiles.p50, 5.0);
    assert_eq!(n.quantiles.p75, 7.0);
    assert_eq!(n.quantiles.p99, 9.0); // rank 989 of 0..=999
    // Fences 2 - 7.5 and 7 + 7.5: exactly the nine 1000s are outside.
    assert_eq!(n.outliers.iqr.count, 9);
    let rows: Vec<u64> = n.outliers.iqr.examples.iter().map(|e| e.row_id).collect();
    assert_eq!(rows, vec![919], "the first row of the one outlying value");
    assert_eq!(
        n.histogram.below + n.histogram.above + n.histogram.counts.iter().sum::<u64>(),
        1000
    );
    // Mostly new values give the map up: the rest are estimates, and say so.
    let mut ids = ColumnState::new(t);
    for i in 0..40_000u64 {
        ids.add(&i.to_string(), i, &ctx);
    }
    let d = ids.finish(&s).numeric.unwrap();
    assert!(!d.exact);
    assert!(
        (d.quantiles.p50 - 20_000.0).abs() < 400.0,
        "{}",
        d.quantiles.p50
    );
}

/// The robust-z rule of a column fed `values`.
fn robust_z(values: &[String]) -> tamis_profile::model::OutlierRule {
    let t = ColumnType::Float;
    let s = spec("income", t);
    let ctx = Ctx::new(s.clone());
    let mut c = ColumnState::new(t);
    for (i, v) in values.iter().enumerate() {
        c.add(v, i as u64, &ctx);
    }
    c.finish(&s).numeric.unwrap().outliers.robust_z
}

#[test]
fn a_column_mostly_at_its_median_has_robust_outliers_only_far_from_the_rest() {
    // 12 zeros and 8 incomes near 1,100: the MAD is 0, which must not make
    // every income an outlier; the mean absolute deviation scales instead.
    let mut v: Vec<String> = (0..20)
        .map(|i| if i < 12 { 0 } else { 1000 + i * 10 }.to_string())
        .collect();
    let z = robust_z(&v);
    assert_eq!(z.count, 0, "{z:?}");
    assert!(z.upper > 1_500.0 && z.lower < -1_500.0, "{z:?}");
    // One income far beyond them is.
    v.push("1000000".into());
    let z = robust_z(&v);
    assert_eq!(z.count, 1, "{z:?}");
    assert_eq!(z.examples[0].row_id, 20);
    // Two values: neither is an outlier of the other.
    assert_eq!(robust_z(&["1".into(), "5".into()]).count, 0);
    // Every value the same: nothing is outside, and the fences sit on it.
    let z = robust_z(&vec!["3".to_string(); 10]);
    assert_eq!((z.count, z.lower, z.upper), (0, 3.0, 3.0));
    // Past the exact map (estimates from the digest), the same: 60 % of the
    // values 0, the rest 40,000 distinct ones between 1,000 and 1,100; only
    // a value far beyond them is outlying.
    let mut spread: Vec<String> = (0..100_000u64)
        .map(|i| match i % 5 {
            0..=2 => "0".to_string(),
            _ => format!("{}", 1000.0 + i as f64 / 1000.0),
        })
        .collect();
    spread.push("1e9".into());
    let z = robust_z(&spread);
    assert_eq!(z.count, 1, "{z:?}");
    assert_eq!(z.examples[0].row_id, 100_000);
}

#[test]
fn examples_of_a_column_measured_per_distinct_value_are_first_rows_of_the_first_offenders() {
    let t = ColumnType::Integer;
    let s = spec("age", t);
    let ctx = Ctx::new(s.clone());
    let mut c = ColumnState::new(t);
    // " 7" at rows 1, 2, 3; "8 " at row 5; "x" at rows 0, 4, 6; "-3" at row 9.
    let cells = ["x", " 7", " 7", " 7", "x", "8 ", "x", "40", "41", "-3"];
    for (i, v) in cells.iter().enumerate() {
        c.add(v, i as u64, &ctx);
    }
    let p = c.finish(&s);
    assert_eq!(p.text.leading_whitespace, 3);
    assert_eq!(p.text.trailing_whitespace, 1);
    assert_eq!(p.text.whitespace_examples, vec![1, 5]);
    assert_eq!(p.type_mismatches, 3);
    let rows: Vec<u64> = p.mismatch_examples.iter().map(|e| e.row_id).collect();
    assert_eq!(rows, vec![0]);
    let imp = p.impossible.unwrap();
    assert_eq!(imp.count, 1);
    assert_eq!(imp.examples[0].row_id, 9);
    let n = p.numeric.unwrap();
    assert_eq!((n.count, n.min, n.max), (7, -3.0, 41.0));
}

#[test]
fn numbers_are_written_short_whatever_their_size() {
    use tamis_profile::column::fmt_num;
    assert_eq!(fmt_num(42.0), "42");
    assert_eq!(fmt_num(-3.25), "-3.25");
    assert_eq!(fmt_num(0.0), "0");
    assert_eq!(fmt_num(1e308), "1e308");
    assert_eq!(fmt_num(-2.5e20), "-2.5e20");
    assert_eq!(fmt_num(1.5e-7), "1.5e-7");
    assert_eq!(fmt_num(0.001), "0.001");
    assert_eq!(fmt_num(f64::INFINITY), "inf");
}
