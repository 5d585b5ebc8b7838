//! Runs the real `tamis` binary: output snapshots (volatile fields filtered),
//! exit codes, error messages, files written, stdin.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn tamis() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tamis"));
    c.env_remove("TAMIS_THREADS").env("NO_COLOR", "1");
    c
}

fn run(args: &[&str]) -> Output {
    tamis().args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A small messy table that fills every optional field of the profile.
fn messy(dir: &Path) -> PathBuf {
    let mut t = String::from("id,email,age,income,city,signup_date,birth_date,status,code\n");
    for i in 0..300u32 {
        let email = match i % 50 {
            7 => "broken-at-example.com".to_string(),
            9 => String::new(),
            _ => format!("user{i}@example.com"),
        };
        let age = match i {
            3 => "-4".to_string(),
            4 => "NA".to_string(),
            _ => (18 + i % 60).to_string(),
        };
        let income = if i == 5 {
            "12000000".into()
        } else {
            format!("{}.25", 40_000 + (i * 37) % 9000)
        };
        let city = match i % 30 {
            0 => "paris",
            1 => "Paris ",
            _ => ["Paris", "Lyon", "Nice"][(i % 3) as usize],
        };
        let signup = if i % 20 == 0 {
            format!("05/{}/2022", 13 + i % 15)
        } else {
            format!("2022-05-{:02}", 1 + i % 28)
        };
        let birth = if i == 6 {
            "2099-01-01".to_string()
        } else {
            format!("19{}-01-02", 60 + i % 30)
        };
        let status = ["active", "inactive"][(i % 2) as usize];
        let code = if i == 250 {
            "n/a-code".to_string()
        } else {
            (i * 3).to_string()
        };
        t.push_str(&format!(
            "{i},{email},{age},{income},{city},{signup},{birth},{status},{code}\n"
        ));
    }
    t.push_str("300,too,few\n");
    t.push_str("2,user2@example.com,20,40074.25,Nice,2022-05-03,1962-01-02,active,6\n");
    write(dir, "messy.csv", t.as_bytes())
}

fn filtered_snapshot(name: &str, value: &str, dir: &Path) {
    let dir = dir.display().to_string();
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(&dir), "[DIR]");
    settings.add_filter(r"\d+\.\d\ds\n", "[SECONDS]\n");
    settings.bind(|| insta::assert_snapshot!(name, value));
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

#[test]
fn version_and_help() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("tamis {}", env!("CARGO_PKG_VERSION"))
    );
    let out = run(&["profile", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for flag in [
        "--json",
        "--html",
        "--sample",
        "--threads",
        "--strict",
        "--quarantine",
        "--schema",
        "--format",
        "--delimiter",
        "--sheet",
        "--null-token",
        "--seed",
    ] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["profile"][..],
        &["profile", "x.csv", "--nope"],
        &["profile", "x.csv", "--threads", "0"],
        &["profile", "x.csv", "--schema", "age:colour"],
        &["profile", "x.csv", "--delimiter", "ab"],
        &["profile", "x.csv", "--today", "yesterday"],
        &["frobnicate"],
    ] {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).is_empty());
    }
}

#[test]
fn bad_input_exits_3_naming_the_file() {
    let out = run(&["profile", "/no/such/file.csv"]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(err.contains("/no/such/file.csv"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.csv", b"a,b\n1,2\n3,\"4\n5,6,7\n");
    let out = run(&["profile", p.to_str().unwrap(), "--strict"]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(err.contains("bad.csv:3:"), "{err}");
    assert!(out.stdout.is_empty(), "no half output on failure");
    // The reader's own message, not the engine's wrapper around it.
    assert!(err.starts_with("tamis: "), "{err}");
    assert!(!err.contains("External error"), "{err}");
    // The engine hands one error to every stream of a repartitioned plan;
    // which wrapper reaches the top varies from run to run, so several runs.
    let p = write(dir.path(), "ragged.csv", b"a,b\n1,2\n3,4,5\n");
    for _ in 0..20 {
        let out = run(&["profile", p.to_str().unwrap(), "--strict"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(
            err.starts_with("tamis: ") && err.contains("ragged.csv:3:4: wrong field count"),
            "{err}"
        );
        assert!(!err.contains("External error"), "{err}");
    }
}

#[test]
fn summary_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let p = messy(dir.path());
    let out = run(&["profile", p.to_str().unwrap(), "--today", "2025-01-01"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        out.stderr.is_empty(),
        "no progress bar off a terminal: {}",
        text(&out.stderr)
    );
    filtered_snapshot("summary", &text(&out.stdout), dir.path());
}

/// `tamis profile --json` of the messy fixture with a quarantine file and
/// `--sample` (so that every optional field is filled), plus `extra` flags.
fn messy_json(dir: &Path, quarantine: &str, extra: &[&str]) -> serde_json::Value {
    let p = messy(dir);
    let q = dir.join(quarantine);
    let mut args = vec![
        "profile",
        p.to_str().unwrap(),
        "--json",
        "--today",
        "2025-01-01",
        "--quarantine",
        q.to_str().unwrap(),
        "--sample",
        "100000",
    ];
    args.extend(extra);
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn json_output_is_stable_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("quarantine.jsonl");
    let mut v = messy_json(dir.path(), "quarantine.jsonl", &[]);
    assert_eq!(v["schema_version"], "tamis.profile/1");
    assert_eq!(v["dataset"]["rows"], 301);
    assert_eq!(v["dataset"]["quarantine"]["rows"], 1);
    assert_eq!(v["duplicates"]["rows"], 1);
    // The quarantine file holds the bad row with its line.
    let qtext = std::fs::read_to_string(&q).unwrap();
    let row: serde_json::Value = serde_json::from_str(qtext.lines().next().unwrap()).unwrap();
    assert_eq!(row["line"], 302);
    assert_eq!(row["row_id"], 300);
    assert_eq!(row["raw"], "300,too,few");
    // Same input, flags and seed: the same JSON apart from the timing.
    let mut again = messy_json(dir.path(), "quarantine.jsonl", &[]);
    v["dataset"]["seconds"] = 0.into();
    again["dataset"]["seconds"] = 0.into();
    let mut diffs = Vec::new();
    json_diff(&v, &again, "", &mut diffs);
    assert!(diffs.is_empty(), "two runs differ: {diffs:#?}");
    filtered_snapshot(
        "profile_json",
        &serde_json::to_string_pretty(&v).unwrap(),
        dir.path(),
    );
}

/// Paths where two JSON values differ, with both values.
fn json_diff(a: &serde_json::Value, b: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => json_diff(va, vb, &format!("{at}.{k}"), out),
                    None => out.push(format!("{at}.{k}: only in the first")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                json_diff(va, vb, &format!("{at}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{at}: {a} vs {b}")),
        _ => {}
    }
}

/// Every path in the JSON output (objects walked, arrays of objects walked
/// through `[]`, the one map through `{}`).
fn paths(v: &serde_json::Value, at: &str, out: &mut BTreeSet<String>) {
    use serde_json::Value;
    match v {
        Value::Object(m) if at == "dataset.quarantine.by_reason" => {
            for x in m.values() {
                out.insert(format!("{at}{{}}"));
                paths(x, &format!("{at}{{}}"), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                out.insert(p.clone());
                paths(x, &p, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                if x.is_object() {
                    paths(x, &format!("{at}[]"), out);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn json_fields_match_the_documented_schema() {
    let dir = tempfile::tempdir().unwrap();
    let v = messy_json(dir.path(), "q.csv", &["--schema", "code:integer"]);
    assert_eq!(v["columns"][8]["mismatch_examples"][0]["value"], "n/a-code");
    // A forced type is not a guess: the issue blames the values.
    let issue = v["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "type_mismatch" && i["column"] == "code")
        .unwrap();
    assert_eq!(
        issue["description"],
        "`code` is integer by the schema given but 1 value is not (`n/a-code`)"
    );
    let mut got = BTreeSet::new();
    paths(&v, "", &mut got);
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/profile-json.md"),
    )
    .unwrap();
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(p, _)| p.to_string()))
        .collect();
    let undocumented: Vec<_> = got.difference(&documented).collect();
    let absent: Vec<_> = documented.difference(&got).collect();
    assert!(
        undocumented.is_empty(),
        "fields missing from docs/profile-json.md: {undocumented:?}"
    );
    assert!(
        absent.is_empty(),
        "documented fields the fixture's output lacks: {absent:?}"
    );
}

#[test]
fn html_report_is_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let p = messy(dir.path());
    let html = dir.path().join("report.html");
    let out = run(&[
        "profile",
        p.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let h = std::fs::read_to_string(&html).unwrap();
    assert!(h.starts_with("<!doctype html>"));
    assert!(h.contains("<svg") && h.contains("<style"));
    assert!(h.contains("income"));
    assert!(!h.contains("src=\"http") && !h.contains("href=\"http"));
    // Nothing left beside it.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");

    // An unwritable destination fails without leaving a partial file.
    let bad = dir.path().join("no-such-dir/report.html");
    let out = run(&[
        "profile",
        p.to_str().unwrap(),
        "--html",
        bad.to_str().unwrap(),
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("no-such-dir"),
        "{}",
        text(&out.stderr)
    );
    assert!(!bad.exists());
}

#[test]
fn reads_stdin() {
    let mut child = tamis()
        .args(["profile", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // While it waits for input: the process runs without transparent huge
    // pages (see `no_huge_pages` in main.rs).
    #[cfg(target_os = "linux")]
    {
        let status = format!("/proc/{}/status", child.id());
        let thp = || {
            std::fs::read_to_string(&status)
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("THP_enabled:").map(|v| v.trim().to_string()))
        };
        let start = std::time::Instant::now();
        while thp().as_deref() == Some("1") && start.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Kernels before 5.0 do not show the line.
        assert_ne!(
            thp().as_deref(),
            Some("1"),
            "THP still on in the tamis process"
        );
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a\tb\n1\tx\n2\ty\n3\tx\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dataset"]["rows"], 3);
    assert_eq!(v["dataset"]["sources"][0]["name"], "<stdin>");
    assert_eq!(v["dataset"]["sources"][0]["delimiter"], "\t");
    assert_eq!(v["columns"][1]["top_values"][0]["value"], "x");
}

#[test]
fn gzip_glob_and_threads() {
    let dir = tempfile::tempdir().unwrap();
    for k in 0..3 {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"n,s\n").unwrap();
        for i in 0..1000 {
            writeln!(e, "{},v{}", k * 1000 + i, i % 7).unwrap();
        }
        write(dir.path(), &format!("part{k}.csv.gz"), &e.finish().unwrap());
    }
    let glob = dir.path().join("part*.csv.gz");
    let mut outs = Vec::new();
    for threads in ["1", "2"] {
        let out = run(&[
            "profile",
            glob.to_str().unwrap(),
            "--json",
            "--threads",
            threads,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["dataset"]["rows"], 3000);
        assert_eq!(v["columns"][0]["numeric"]["max"], 2999.0);
        assert_eq!(v["columns"][0]["distinct"], 3000);
        assert_eq!(v["dataset"]["id_like_columns"][0], "n");
        outs.push(v["columns"].clone());
    }
    assert_eq!(outs[0][1]["top_values"], outs[1][1]["top_values"]);
}

#[test]
fn json_lines_input() {
    let dir = tempfile::tempdir().unwrap();
    let j = write(
        dir.path(),
        "e.jsonl",
        b"{\"a\": {\"b\": 1}, \"t\": [1,2]}\n{\"a\": {\"b\": 2}, \"t\": []}\n",
    );
    let out = run(&["profile", j.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["columns"][0]["name"], "a.b");
    assert_eq!(v["columns"][0]["inferred_type"], "integer");
    assert_eq!(v["columns"][1]["name"], "t");
}

/// Exact duplicates compare the fields, not how a file writes them: quoted
/// or not, `""` or nothing, `,` or `;` between fields. A comma inside a field
/// keeps rows apart that would read alike with the fields run together.
#[test]
fn csv_duplicates_follow_the_fields_not_the_quoting() {
    let dir = tempfile::tempdir().unwrap();
    let profile = |name: &str, csv: &[u8]| {
        write(dir.path(), name, csv);
        let files = dir.path().join("d*.csv");
        let out = run(&["profile", files.to_str().unwrap(), "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let v = profile(
        "d1.csv",
        b"a,b,c\n1,x,y\n\"1\",\"x\",y\n1,\"x,y\",\n1,x,\"y,\"\n1,,z\n1,\"\",z\n",
    );
    assert_eq!(v["duplicates"]["rows"], 2);
    assert_eq!(v["duplicates"]["groups"], 2);
    assert_eq!(
        v["duplicates"]["examples"],
        serde_json::json!([[0, 1], [4, 5]])
    );
    // The same rows again, `;`-separated: each is a duplicate of its twin.
    let v = profile(
        "d2.csv",
        b"a;b;c\n1;x;y\n\"1\";\"x\";y\n1;\"x,y\";\n1;x;\"y,\"\n1;;z\n1;\"\";z\n",
    );
    assert_eq!(v["dataset"]["rows"], 12);
    assert_eq!(v["duplicates"]["rows"], 8);
    assert_eq!(
        v["duplicates"]["examples"],
        serde_json::json!([[0, 1, 6, 7], [2, 8], [3, 9], [4, 5, 10, 11]])
    );
}

#[test]
fn values_with_line_breaks_do_not_break_the_summary_table() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "breaks.csv",
        b"id,\"two\nlines\",b\n1,1,\"y\r\nz\"\n2,2,\"y\r\nz\"\n3,3,w\x1b[31m\n",
    );
    let o = run(&["profile", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("two\\nlines"), "{out}");
    assert!(out.contains("y\\r\\nz (2)"), "{out}");
    assert!(out.contains("w\\u{1b}[31m (1)"), "{out}");
    assert!(!out.contains('\r') && !out.contains('\x1b'), "{out}");
    // Every table line starts with a column name or the header.
    let table: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("column"))
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(table.len(), 4, "{out}");
}
