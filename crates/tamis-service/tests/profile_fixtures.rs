//! End-to-end profiles of small messy fixtures: the numbers are checked
//! against values computed by hand or by a plain reference computation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use tamis_core::{ColumnType, ReadOptions};
use tamis_profile::{ColumnProfile, Profile, ProfileOptions};
use tamis_service::{ProfileRequest, ServiceError};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn today() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2025, 6, 1).unwrap()
}

fn run(inputs: &[&Path], read: ReadOptions, threads: usize) -> Result<Profile, ServiceError> {
    let request = ProfileRequest {
        inputs: inputs.iter().map(|p| p.display().to_string()).collect(),
        read,
        quarantine: None,
        profile: ProfileOptions {
            threads,
            today: today(),
            ..ProfileOptions::default()
        },
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(tamis_service::profile(request))
}

fn profile(p: &Path) -> Profile {
    run(&[p], ReadOptions::default(), 2).unwrap()
}

fn col<'a>(p: &'a Profile, name: &str) -> &'a ColumnProfile {
    p.columns
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + b.abs())
}

/// The customers-like fixture most tests share.
fn customers(dir: &Path) -> PathBuf {
    let mut t = String::from(
        "customer_id,name,email,age,income,city,status,signup_date,birth_date,country,notes\n",
    );
    let cities = ["Oslo", "Rome", "Lima", "Kyiv"];
    for i in 0..400u32 {
        let name = format!("Person {i}");
        let email = if i % 50 == 7 {
            "not-an-email".to_string()
        } else if i % 20 == 3 {
            String::new()
        } else {
            format!("p{i}@example.com")
        };
        let age = match i {
            10 => "-5".to_string(),
            11 => "240".to_string(),
            12 => "NA".to_string(),
            _ => (20 + i % 50).to_string(),
        };
        let income = if i == 13 {
            "90000000".to_string()
        } else {
            format!("{}.50", 30_000 + (i % 37) * 1000)
        };
        let city = match i % 40 {
            0 => "oslo".to_string(),
            1 => "Oslo ".to_string(),
            _ => cities[(i % 4) as usize].to_string(),
        };
        let status = if i % 3 == 0 { "active" } else { "inactive" };
        let signup = if i % 25 == 0 {
            format!("03/{:02}/2021", 13 + i % 15)
        } else {
            format!("2021-03-{:02}", 1 + i % 28)
        };
        let birth = if i == 14 {
            "2030-01-01".to_string()
        } else {
            format!("19{:02}-05-17", 50 + i % 40)
        };
        let notes = if i % 3 == 0 {
            format!("note {i}")
        } else {
            String::new()
        };
        t.push_str(&format!(
            "{i},{name},{email},{age},{income},{city},{status},{signup},{birth},NO,{notes}\n"
        ));
    }
    // Two exact duplicates of row 5 and one of row 6.
    let lines: Vec<String> = t.lines().map(String::from).collect();
    for src in [6usize, 6, 7] {
        t.push_str(&lines[src]);
        t.push('\n');
    }
    write(dir, "customers.csv", t.as_bytes())
}

#[test]
fn customers_fixture_profile() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(&customers(dir.path()));
    assert_eq!(p.schema_version, "tamis.profile/1");
    assert_eq!(p.dataset.rows, 403);
    assert_eq!(p.dataset.columns, 11);

    // Exact duplicate rows hashed over whole rows.
    assert_eq!(p.duplicates.rows, 3);
    assert_eq!(p.duplicates.groups, 2);
    assert!(p.duplicates.examples.contains(&vec![5, 400, 401]));
    assert!(p.duplicates.examples.contains(&vec![6, 402]));

    let age = col(&p, "age");
    assert_eq!(age.inferred_type, ColumnType::Integer);
    assert_eq!(age.semantic_type, "age");
    assert_eq!(age.null_tokens, 1);
    assert_eq!(age.missing, 1);
    let n = age.numeric.as_ref().unwrap();
    assert_eq!(n.min, -5.0);
    assert_eq!(n.max, 240.0);
    assert_eq!(n.negatives, 1);
    let imp = age.impossible.as_ref().unwrap();
    assert_eq!(imp.count, 2);
    let ids: Vec<u64> = imp.examples.iter().map(|e| e.row_id).collect();
    assert!(ids.contains(&10) && ids.contains(&11), "{ids:?}");

    let income = col(&p, "income");
    assert_eq!(income.inferred_type, ColumnType::Float);
    let n = income.numeric.as_ref().unwrap();
    assert_eq!(n.max, 90_000_000.0);
    assert!(n.outliers.iqr.count >= 1);
    assert!(n.outliers.iqr.examples.iter().any(|e| e.row_id == 13));
    assert!(n.outliers.robust_z.examples.iter().any(|e| e.row_id == 13));

    let email = col(&p, "email");
    assert_eq!(email.semantic_type, "email");
    assert_eq!(email.empty + email.nulls, 20);
    let inv = email.invalid_format.as_ref().unwrap();
    assert_eq!(inv.count, 8);
    assert!(inv.examples.iter().all(|e| e.value == "not-an-email"));

    let city = col(&p, "city");
    assert_eq!(city.text.trailing_whitespace, 10);
    let g = city
        .variants
        .iter()
        .find(|g| g.canonical == "Oslo")
        .unwrap();
    assert_eq!(g.variant_rows, 20);

    let signup = col(&p, "signup_date");
    assert_eq!(signup.inferred_type, ColumnType::Date);
    let d = signup.dates.as_ref().unwrap();
    assert_eq!(d.formats.len(), 2);
    assert_eq!(d.formats[1].count, 16);
    assert_eq!(d.min.as_deref(), Some("2021-03-01"));

    let birth = col(&p, "birth_date");
    assert_eq!(birth.semantic_type, "birth_date");
    assert_eq!(birth.impossible.as_ref().unwrap().count, 1);
    assert_eq!(birth.impossible.as_ref().unwrap().examples[0].row_id, 14);

    assert_eq!(p.dataset.constant_columns, ["country"]);
    // 400 distinct ids in 403 rows: unique above the 99 % threshold.
    assert!(
        p.dataset
            .id_like_columns
            .contains(&"customer_id".to_string()),
        "{:?}",
        p.dataset.id_like_columns
    );
    assert!(!p.dataset.id_like_columns.contains(&"city".to_string()));
    assert_eq!(p.dataset.low_quality_columns, ["notes"]);

    let kinds: Vec<&str> = p.issues.iter().map(|i| i.kind.as_str()).collect();
    for k in [
        "duplicate_rows",
        "missing_values",
        "null_tokens",
        "outliers",
        "impossible_values",
        "invalid_format",
        "mixed_date_formats",
        "case_whitespace_variants",
        "whitespace",
        "constant_column",
    ] {
        assert!(kinds.contains(&k), "missing issue {k}: {kinds:?}");
    }
    // Most severe first.
    let sev: Vec<_> = p.issues.iter().map(|i| i.severity).collect();
    let mut sorted = sev.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(sev, sorted);

    let q = &p.quality;
    assert!(q.score > 0.5 && q.score < 1.0, "{q:?}");
    assert!(close(
        q.score,
        0.4 * q.completeness + 0.3 * q.validity + 0.15 * q.uniqueness + 0.15 * q.consistency
    ));
    assert!(close(q.uniqueness, 1.0 - 3.0 / 403.0));
}

#[test]
fn exact_statistics_equal_a_reference_computation() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = String::from("x,label\n");
    let mut xs = Vec::new();
    let mut state = 12345u64;
    for i in 0..5000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v = ((state >> 33) % 2_000_000) as f64 / 100.0 - 5000.0;
        if i % 97 == 0 {
            t.push_str(",a\n");
        } else {
            xs.push(v);
            t.push_str(&format!("{v},{}\n", ["a", "b", "c"][i % 3]));
        }
    }
    let p = profile(&write(dir.path(), "x.csv", t.as_bytes()));
    let c = col(&p, "x");
    let n = c.numeric.as_ref().unwrap();
    let count = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / count;
    let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (count - 1.0);
    assert_eq!(n.count, xs.len() as u64);
    assert_eq!(c.nulls, 5000 - xs.len() as u64);
    assert_eq!(n.min, xs.iter().cloned().fold(f64::INFINITY, f64::min));
    assert_eq!(n.max, xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
    assert!(close(n.mean, mean), "{} vs {mean}", n.mean);
    assert!(close(n.sum, xs.iter().sum()));
    assert!((n.variance.unwrap() - var).abs() <= 1e-7 * var);
    assert_eq!(n.negatives, xs.iter().filter(|v| **v < 0.0).count() as u64);
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    let distinct = {
        let mut d = sorted.clone();
        d.dedup();
        d.len() as u64
    };
    assert_eq!(c.distinct, distinct);
    assert!(c.distinct_exact);
    // Quantiles within the documented 1 % rank error.
    for (q, est) in [
        (0.01, n.quantiles.p1),
        (0.25, n.quantiles.p25),
        (0.5, n.quantiles.p50),
        (0.75, n.quantiles.p75),
        (0.99, n.quantiles.p99),
    ] {
        let rank = sorted.partition_point(|v| *v < est) as f64 / count;
        assert!((rank - q).abs() <= 0.01, "q{q}: rank {rank}");
    }
    let hist_total: u64 =
        n.histogram.counts.iter().sum::<u64>() + n.histogram.below + n.histogram.above;
    assert_eq!(hist_total, n.count);
}

#[test]
fn partitions_and_threads_do_not_change_exact_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = customers(dir.path());
    // Batches of 7 rows: many partial states per partition.
    let with_threads = |threads| {
        let read = ReadOptions {
            batch_size: 7,
            ..ReadOptions::default()
        };
        run(&[&path], read, threads).unwrap()
    };
    let one = with_threads(1);
    let two = with_threads(2);
    let again = with_threads(2);
    let strip = |p: &Profile| {
        let mut v = serde_json::to_value(p).unwrap();
        v["dataset"]["seconds"] = 0.into();
        v
    };
    // Same input, options and seed: the same output, byte for byte.
    assert_eq!(strip(&two), strip(&again));
    for (a, b) in one.columns.iter().zip(&two.columns) {
        assert_eq!(a.count, b.count);
        assert_eq!(a.missing, b.missing);
        assert_eq!(a.distinct, b.distinct);
        assert_eq!(a.top_values, b.top_values);
        assert_eq!(a.type_mismatches, b.type_mismatches);
        if let (Some(x), Some(y)) = (&a.numeric, &b.numeric) {
            assert_eq!(x.min, y.min);
            assert_eq!(x.max, y.max);
            assert!(close(x.mean, y.mean));
        }
    }
    assert_eq!(one.duplicates.rows, two.duplicates.rows);
    assert_eq!(one.duplicates.examples, two.duplicates.examples);
}

#[test]
fn a_late_text_value_turns_an_integer_column_into_string_with_a_mismatch_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = String::from("n\n");
    for i in 0..3000 {
        t.push_str(&format!("{i}\n"));
    }
    t.push_str("three thousand\n");
    let p = profile(&write(dir.path(), "late.csv", t.as_bytes()));
    let c = col(&p, "n");
    assert_eq!(c.sample_type, ColumnType::Integer);
    assert_eq!(c.inferred_type, ColumnType::String);
    assert_eq!(c.type_mismatches, 1);
    assert_eq!(c.mismatch_examples[0].row_id, 3000);
    assert_eq!(c.mismatch_examples[0].value, "three thousand");
    assert!(p.issues.iter().any(|i| i.kind == "type_mismatch"));
}

#[test]
fn schema_forces_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "s.csv",
        b"zip,code\n01234,7\n98765,8\nabcde,9\n",
    );
    let read = ReadOptions {
        schema: Some(tamis_core::SchemaSpec::parse("zip:string,code:float").unwrap()),
        ..ReadOptions::default()
    };
    let p = run(&[&path], read, 2).unwrap();
    let zip = col(&p, "zip");
    assert_eq!(zip.inferred_type, ColumnType::String);
    assert!(zip.type_forced);
    assert_eq!(zip.type_mismatches, 0);
    let code = col(&p, "code");
    assert_eq!(code.inferred_type, ColumnType::Float);
    assert!(code.type_forced);
    let read = ReadOptions {
        schema: Some(tamis_core::SchemaSpec::parse("zip:integer").unwrap()),
        ..ReadOptions::default()
    };
    let p = run(&[&path], read, 2).unwrap();
    assert_eq!(col(&p, "zip").type_mismatches, 1);
    let read = ReadOptions {
        schema: Some(tamis_core::SchemaSpec::parse("nope:integer").unwrap()),
        ..ReadOptions::default()
    };
    let err = run(&[&path], read, 2).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn nan_infinity_and_integers_beyond_i64() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "n.csv",
        b"x,big\n1.5,1\nNaN,2\ninf,99999999999999999999999\n-inf,4\n2.5,-99999999999999999999\n",
    );
    let p = profile(&path);
    let x = col(&p, "x");
    let n = x.numeric.as_ref().unwrap();
    assert_eq!(n.infinite, 2);
    assert_eq!(n.count, 2);
    assert!(close(n.mean, 2.0));
    assert!(n.min.is_finite() && n.max.is_finite());
    assert_eq!(x.missing + n.count + n.infinite, 5);
    let big = col(&p, "big");
    let b = big.numeric.as_ref().unwrap();
    assert_eq!(b.big_integers, 2);
    assert_eq!(b.count, 5);
    assert_eq!(b.max, 99999999999999999999999.0);
    // The profile must serialize (no NaN in JSON).
    serde_json::to_string(&p).unwrap();
}

#[test]
fn correlations_and_associations() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = String::from("x,y,noise,colour,shade\n");
    for i in 0..300 {
        let colour = ["red", "green", "blue"][i % 3];
        let shade = ["dark", "light", "mid"][i % 3];
        t.push_str(&format!(
            "{i},{},{},{colour},{shade}\n",
            2 * i + 1,
            (i * 7919) % 13
        ));
    }
    let p = profile(&write(dir.path(), "c.csv", t.as_bytes()));
    let top = &p.correlations[0];
    assert_eq!((top.a.as_str(), top.b.as_str()), ("x", "y"));
    assert!(close(top.value, 1.0), "{top:?}");
    let m = &p.correlation_matrix;
    assert_eq!(m.columns, ["x", "y", "noise"]);
    assert!(close(m.values[0][1].unwrap(), 1.0));
    let a = &p.associations[0];
    assert_eq!((a.a.as_str(), a.b.as_str()), ("colour", "shade"));
    assert!(close(a.value, 1.0), "{a:?}");
}

#[test]
fn quarantined_rows_are_counted_in_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "r.csv", b"a,b\n1,2\n3\n4,5\n6,7,8\n");
    let p = profile(&path);
    assert_eq!(p.dataset.rows, 2);
    assert_eq!(p.dataset.quarantine.rows, 2);
    assert!(
        p.issues
            .iter()
            .any(|i| i.kind == "quarantined_rows" && i.count == 2)
    );
    assert!(p.quality.validity < 1.0);
}

#[test]
fn empty_header_only_and_wide_inputs_profile_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(&write(dir.path(), "empty.csv", b""));
    assert_eq!((p.dataset.rows, p.dataset.columns), (0, 0));
    assert_eq!(p.quality.score, 1.0);

    let p = profile(&write(dir.path(), "header.csv", b"a,b\n"));
    assert_eq!((p.dataset.rows, p.dataset.columns), (0, 2));
    assert_eq!(col(&p, "a").count, 0);
    serde_json::to_string(&p).unwrap();

    let header: Vec<String> = (0..5000).map(|i| format!("c{i}")).collect();
    let row: Vec<String> = (0..5000).map(|i| (i % 7).to_string()).collect();
    let t = format!(
        "{}\n{}\n{}\n",
        header.join(","),
        row.join(","),
        row.join(",")
    );
    let p = profile(&write(dir.path(), "wide.csv", t.as_bytes()));
    assert_eq!(p.dataset.columns, 5000);
    assert_eq!(p.duplicates.rows, 1);
    assert_eq!(col(&p, "c4999").count, 2);
    tamis_report::render_html(&p);
}

#[test]
fn a_100_column_html_report_stays_under_5_mb_and_offline() {
    let dir = tempfile::tempdir().unwrap();
    let mut t: String = (0..100)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(",");
    t.push('\n');
    let mut state = 7u64;
    for r in 0..20_000u64 {
        let row: Vec<String> = (0..100u64)
            .map(|c| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let x = state >> 40;
                match c % 4 {
                    0 => format!("{}", x % 1000),
                    1 => format!("{:.3}", (x as f64) / 7.0),
                    2 => format!("val_{}_{}", x % 5000, "x".repeat((x % 90) as usize)),
                    _ if r % 10 == 0 => String::new(),
                    _ => format!("cat{}", x % 20),
                }
            })
            .collect();
        t.push_str(&row.join(","));
        t.push('\n');
    }
    let p = profile(&write(dir.path(), "wide100.csv", t.as_bytes()));
    assert_eq!(p.dataset.columns, 100);
    let html = tamis_report::render_html(&p);
    assert!(html.len() < 5 * 1024 * 1024, "{} bytes", html.len());
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    assert!(!html.contains("<script src") && !html.contains("<link"));
    assert!(html.contains("<svg"));
}

#[test]
fn glob_profile_spans_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p1.csv", b"id,v\n1,a\n2,b\n");
    write(dir.path(), "p2.csv", b"id,v\n3,c\n1,a\n");
    let p = profile(&dir.path().join("p*.csv"));
    assert_eq!(p.dataset.rows, 4);
    assert_eq!(p.dataset.sources.len(), 2);
    assert_eq!(p.duplicates.examples, vec![vec![0, 3]]);
}

#[test]
fn sample_limits_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = customers(dir.path());
    let read = ReadOptions {
        limit: Some(50),
        ..ReadOptions::default()
    };
    let p = run(&[&path], read, 2).unwrap();
    assert_eq!(p.dataset.rows, 50);
    assert_eq!(p.dataset.sample_limit, Some(50));
}
