//! Runs the real `tamis` binary through the cleaning commands: suggest → clean
//! → provenance → revert → lineage verify, contract infer → check, and the
//! exit codes pipelines rely on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tamis"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("TAMIS_PII_KEY", "cli-test-key")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn example() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/customers.csv").to_string()
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// Writes `csv` to DIR/NAME and runs `tamis suggest` on it, which must
/// succeed: the input, the plan file and the plan.
fn suggest_for(dir: &Path, name: &str, csv: &str) -> (PathBuf, PathBuf, String) {
    let input = dir.join(name);
    std::fs::write(&input, csv).unwrap();
    let plan = dir.join("plan.yaml");
    let o = run(&["suggest", p(&input), "-o", p(&plan)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let yaml = std::fs::read_to_string(&plan).unwrap();
    (input, plan, yaml)
}

/// `tamis clean INPUT --plan PLAN -o OUT --json`, which must succeed: its summary.
fn clean_json(input: &Path, plan: &Path, out: &Path) -> serde_json::Value {
    let o = run(&["clean", p(input), "--plan", p(plan), "-o", p(out), "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn suggest_then_clean_then_revert_then_verify() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    let o = run(&["suggest", &example(), "-o", p(&plan)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let yaml = std::fs::read_to_string(&plan).unwrap();
    for want in [
        "dedupe_exact",
        "canonicalize",
        "standardize",
        "impute",
        "rationale",
        "confidence",
    ] {
        assert!(yaml.contains(want), "suggested plan lacks {want}:\n{yaml}");
    }
    assert!(yaml.contains("differ only in case or whitespace"), "{yaml}");
    // signup_date samples as a date but is written six ways further on.
    assert!(
        yaml.contains("`signup_date` holds dates written in 6 formats; parse them to ISO dates (the time of its 8 datetimes is dropped)"),
        "{yaml}"
    );

    let out = dir.path().join("clean.parquet");
    let report = dir.path().join("report.html");
    let example = example();
    let clean = |out: &Path, more: &[&str]| {
        let mut args = vec!["clean", example.as_str(), "--plan", p(&plan), "-o", p(out)];
        args.extend(more);
        run(&args)
    };
    let o = clean(&out, &["--report", p(&report), "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["rows_in"], 2000);
    assert_eq!(summary["quarantined"], 2);
    assert!(summary["rows_out"].as_u64().unwrap() < 2000);
    let schema = summary["output_schema"].as_array().unwrap();
    assert!(
        schema.contains(&serde_json::json!(["signup_date", "Date32"])),
        "{schema:?}"
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("quality score") && html.contains("Sample of changed rows"));
    assert!(html.contains("<th>rows flagged</th>"));
    // The suggested outlier steps flag rows for review; the summary says how many.
    let flagged: Vec<u64> = summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["type"] == "outliers")
        .map(|s| s["rows_flagged"].as_u64().unwrap())
        .collect();
    assert!(
        !flagged.is_empty() && flagged.iter().all(|n| *n > 0),
        "{flagged:?}"
    );
    let o = clean(&dir.path().join("again.csv"), &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let listing = text(&o.stdout);
    let line = listing.lines().find(|l| l.contains(" outliers ")).unwrap();
    assert!(
        line.ends_with(&format!("flagged rows {:>9}", flagged[0])),
        "{listing}"
    );

    // Provenance of one changed row.
    let o = run(&["provenance", p(&out), "--step", "2", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let q: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let first = &q["cells"][0];
    let row = first["row_id"].as_u64().unwrap().to_string();
    let o = run(&["provenance", p(&out), "--row", &row]);
    assert!(o.status.success());
    assert!(text(&o.stdout).contains(first["column"].as_str().unwrap()));

    // Revert rebuilds every input row.
    let back = dir.path().join("back.csv");
    let o = run(&["revert", p(&out), "-o", p(&back)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lines = std::fs::read_to_string(&back).unwrap().lines().count();
    assert_eq!(lines, 2001);

    // Lineage: intact, then the output changes.
    let o = run(&["lineage", "verify", p(&out), "--data", p(&out)]);
    assert!(o.status.success(), "{}", text(&o.stdout));
    assert!(text(&o.stdout).starts_with("intact"));
    let mut bytes = std::fs::read(&out).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&out, bytes).unwrap();
    let o = run(&["lineage", "verify", p(&out), "--data", p(&out)]);
    assert_eq!(o.status.code(), Some(4));
    assert!(text(&o.stdout).contains("no longer matches"));

    // A chain file cut short is a broken chain (4), not an internal error;
    // a chain that is not there is bad input (3).
    let chain = dir.path().join("clean.parquet.tamis/lineage.json");
    let full = std::fs::read_to_string(&chain).unwrap();
    std::fs::write(&chain, &full[..full.len() / 2]).unwrap();
    let o = run(&["lineage", "verify", p(&chain)]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("damaged"), "{}", text(&o.stdout));
    let o = run(&["lineage", "verify", p(&chain), "--json"]);
    assert_eq!(o.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "unreadable");
    let o = run(&["lineage", "verify", p(&dir.path().join("none.json"))]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
}

#[test]
fn contract_infer_then_check_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let contract = dir.path().join("contract.yaml");
    let o = run(&["contract", "infer", &example(), "-o", p(&contract)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let c = std::fs::read_to_string(&contract).unwrap();
    assert!(
        c.contains("dataset_id: customers") && c.contains("pii: email"),
        "{c}"
    );
    // The data passes a contract of its own profile only where the profile saw no issue:
    // impossible ages break the inferred age range.
    let viol = dir.path().join("violations.parquet");
    let o = run(&[
        "check",
        &example(),
        "--contract",
        p(&contract),
        "-o",
        p(&viol),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["violations"].as_u64().unwrap() > 0);
    assert!(viol.exists());

    let ok = dir.path().join("ok.yaml");
    std::fs::write(&ok, "dataset_id: c\nschema:\n  columns:\n    - {name: customer_id, type: integer, nullable: false}\n").unwrap();
    let o = run(&["check", &example(), "--contract", p(&ok)]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).starts_with("PASSED"));
}

/// `contract infer` looks inside free text: a notes column whose sampled
/// cells hold phones and e-mail addresses is marked `redact_entities`, one
/// with a single stray match in 150 cells is only named on stderr, plain
/// text is left alone; a `pii` step run with the contract then replaces the
/// entities inside the notes and keeps the rest of their text.
#[test]
fn contract_infer_proposes_redact_entities_for_free_text() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("tickets.csv");
    let mut csv = String::from("id,email,notes,remarks,comment\n");
    for i in 0..150 {
        let notes = match i % 10 {
            0 => "call 415-555-2671 today",
            5 => "write to ann@corp.test soon",
            _ => "all fine here",
        };
        let remarks = if i == 7 {
            "see 415-555-2671 later"
        } else {
            "nothing to add"
        };
        csv.push_str(&format!(
            "{i},user{i}@mail.test,{notes},{remarks},plain words {i}\n"
        ));
    }
    std::fs::write(&input, csv).unwrap();
    let contract = dir.path().join("contract.yaml");
    let o = run(&["contract", "infer", p(&input), "-o", p(&contract)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("`notes`: personal data inside its text in 30 of 150 sampled cells (EMAIL_ADDRESS 15, PHONE_NUMBER 15); pii_strategy redact_entities"),
        "{err}"
    );
    assert!(
        err.contains("`remarks`: personal data inside its text in only 1 of 150 sampled cells (PHONE_NUMBER 1); left unmarked"),
        "{err}"
    );
    assert!(!err.contains("`comment`"), "{err}");
    // The contract holds no value of the notes (a `one_of` would list them).
    let yaml = std::fs::read_to_string(&contract).unwrap();
    assert!(
        !yaml.contains("415-555-2671") && !yaml.contains("ann@corp.test"),
        "{yaml}"
    );
    let c = tamis_core::contract::Contract::read(&contract).unwrap();
    let col = |n: &str| c.column(n).unwrap();
    assert_eq!(col("notes").pii_type.as_deref(), Some("free_text"));
    assert_eq!(
        col("notes").pii_strategy,
        Some(tamis_core::contract::PiiStrategy::RedactEntities)
    );
    assert_eq!(col("email").pii_type.as_deref(), Some("email"));
    for n in ["remarks", "comment", "id"] {
        assert!(!col(n).pii && col(n).pii_strategy.is_none(), "{n}");
    }

    let plan = dir.path().join("plan.yaml");
    std::fs::write(&plan, "steps:\n  - type: pii\n").unwrap();
    let out = dir.path().join("out.csv");
    let o = run(&[
        "clean",
        p(&input),
        "--plan",
        p(&plan),
        "--contract",
        p(&contract),
        "-o",
        p(&out),
        "--no-progress",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let cleaned = std::fs::read_to_string(&out).unwrap();
    assert!(cleaned.contains("call <PHONE_NUMBER> today"), "{cleaned}");
    assert!(
        cleaned.contains("write to <EMAIL_ADDRESS> soon"),
        "{cleaned}"
    );
    assert!(cleaned.contains("see 415-555-2671 later"), "{cleaned}");
    assert!(!cleaned.contains("ann@corp.test") && !cleaned.contains("user7@mail.test"));
}

#[test]
fn bad_plans_exit_3_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plan: PathBuf = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "steps:\n  - type: impute\n    columns: [agee]\n    method: median\n",
    )
    .unwrap();
    let out = dir.path().join("o.parquet");
    let o = run(&["clean", &example(), "--plan", p(&plan), "-o", p(&out)]);
    assert_eq!(o.status.code(), Some(3));
    let e = text(&o.stderr);
    assert!(
        e.contains("step 1") && e.contains("did you mean `age`"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing but the plan"
    );
}

#[test]
fn pii_scan_reports_columns_and_writes_cells() {
    let dir = tempfile::tempdir().unwrap();
    let cells = dir.path().join("cells.csv");
    let o = run(&["pii", "scan", &example(), "--json", "--cells", p(&cells)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ty = |n: &str| {
        r["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap()["pii_type"]
            .clone()
    };
    assert_eq!(ty("email"), "EMAIL_ADDRESS");
    assert_eq!(ty("phone"), "PHONE_NUMBER");
    assert_eq!(ty("customer_id"), serde_json::Value::Null);
    assert_eq!(ty("status"), serde_json::Value::Null);
    assert!(
        std::fs::read_to_string(&cells)
            .unwrap()
            .starts_with("row,column,entity_type\n")
    );
    // Free text: what is inside it is counted and named in the table.
    let notes = dir.path().join("notes.csv");
    std::fs::write(
        &notes,
        "id,notes\n1,call 415-555-2671 today\n2,write to ann@corp.test soon\n3,all fine\n",
    )
    .unwrap();
    let o = run(&["pii", "scan", p(&notes)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains(
            "inside the text of `notes`: EMAIL_ADDRESS 1, PHONE_NUMBER 1 (a policy's `redact_entities` replaces them)"
        ),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn pii_apply_needs_a_key_and_writes_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        format!(
            "ledger: {}\ncolumns:\n  email: {{strategy: pseudonymise}}\n  phone: {{strategy: mask, keep_last: 4}}\n",
            dir.path().join("ledger.json").display()
        ),
    )
    .unwrap();
    let out = dir.path().join("anon.csv");
    let ex = example();
    let args = ["pii", "apply", &ex, "--policy", p(&policy), "-o", p(&out)];
    let o = Command::new(env!("CARGO_BIN_EXE_tamis"))
        .args(args)
        .env_remove("TAMIS_PII_KEY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("TAMIS_PII_KEY"));
    assert!(!out.exists());
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["rows"], 2000);
    let html = dir.path().join("report.html");
    let o = run(&[&args[..], &["--report", p(&html)]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Personal data found") && page.contains("Residual risks"));
    let anon = std::fs::read_to_string(&out).unwrap();
    assert!(!anon.contains("brian.taylor937@gmail.com") && anon.contains("@example."));
    // Nothing sensitive in the logs, even at trace level, nor in the report.
    let o = Command::new(env!("CARGO_BIN_EXE_tamis"))
        .args(args)
        .env("TAMIS_PII_KEY", "cli-test-key")
        .env("TAMIS_LOG", "trace")
        .output()
        .unwrap();
    assert!(o.status.success());
    for secret in [
        "brian.taylor937@gmail.com",
        "(882) 440-5147",
        "cli-test-key",
    ] {
        assert!(!text(&o.stderr).contains(secret), "{secret} in the log");
        assert!(!text(&o.stdout).contains(secret), "{secret} in the report");
    }
}

#[test]
fn dp_histogram_refuses_to_overspend() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("l.json");
    let args = |e: &str| {
        vec![
            "pii".to_string(),
            "dp-histogram".into(),
            example(),
            "--column".into(),
            "status".into(),
            "--epsilon".into(),
            e.into(),
            "--budget".into(),
            "1".into(),
            "--ledger".into(),
            ledger.display().to_string(),
        ]
    };
    let a = args("0.7");
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(h["buckets"].as_array().unwrap().len() >= 3);
    let a = args("0.7");
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o.stderr).contains("overspent"));
}

/// 400 distinct people as CSV (id, names, e-mail, phone, city, and with
/// `updated` a date), without a trailing duplicate.
fn people(updated: bool) -> String {
    let mut csv = String::from("id,first_name,last_name,email,phone,city");
    csv.push_str(if updated { ",updated\n" } else { "\n" });
    let first = [
        "anna", "ben", "carla", "dmitri", "elif", "farah", "goran", "hana",
    ];
    let last = [
        "ito", "jensen", "kowalski", "larsen", "moreau", "novak", "okafor", "petrov",
    ];
    let city = ["oslo", "lyon", "porto", "graz"];
    for i in 0..400 {
        let (f, l) = (first[i % 8], last[(i / 8) % 8]);
        csv.push_str(&format!(
            "{i},{f},{l},{f}.{l}{i}@mail.test,555-01{i:04},{}",
            city[(i / 64) % 4]
        ));
        if updated {
            csv.push_str(&format!(",2024-01-{:02}", 1 + i % 28));
        }
        csv.push('\n');
    }
    csv
}

#[test]
fn dedup_writes_pairs_clusters_and_a_reusable_model() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("people.csv");
    let mut csv = people(false);
    // Three near duplicates: a typo, a reformatted phone, an upper-cased name.
    csv.push_str("400,anna,itoo,anna.ito0@mail.test,(555) 010-000,oslo\n");
    csv.push_str("401,ben,ito,ben.ito1@mail.test,555 010 001,oslo\n");
    csv.push_str("402,CARLA,ITO,carla.ito2@mail.test,555-010002,oslo\n");
    std::fs::write(&input, csv).unwrap();
    let pairs = dir.path().join("pairs.csv");
    let clusters = dir.path().join("clusters.csv");
    let model = dir.path().join("model.json");
    let o = run(&[
        "dedup",
        p(&input),
        "-o",
        p(&pairs),
        "--clusters",
        p(&clusters),
        "--explain",
        "--save-model",
        p(&model),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("blocking"), "{out}");
    let got = std::fs::read_to_string(&pairs).unwrap();
    let header = got.lines().next().unwrap();
    assert!(header.starts_with("rec_id_l,rec_id_r,row_id_l,row_id_r,score,match_weight"));
    assert!(header.contains("last_name_level") && header.contains("phone_weight"));
    let found: Vec<(String, String)> = got
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].to_string())
        })
        .collect();
    for want in [("0", "400"), ("1", "401"), ("2", "402")] {
        assert!(
            found.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {found:?}"
        );
    }
    assert_eq!(found.len(), 3, "{found:?}");
    let c = std::fs::read_to_string(&clusters).unwrap();
    assert_eq!(c.lines().count(), 404);
    assert!(c.contains("400,400,0,2") || c.contains("400,0,2"), "{c}");

    // The saved model scores the same pairs without training.
    let again = dir.path().join("again.csv");
    let o = run(&["dedup", p(&input), "-o", p(&again), "--model", p(&model)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let a = std::fs::read_to_string(&again).unwrap();
    assert_eq!(a.lines().count(), 4, "{a}");

    // Incremental: two new records against the file, its model and its
    // cluster table; one is a near duplicate of record 3.
    let new = dir.path().join("new.csv");
    std::fs::write(
        &new,
        "id,first_name,last_name,email,phone,city\n\
         500,dmitri,itto,dmitri.ito3@mail.test,555 010 003,oslo\n\
         501,zoe,quinn,zq@else.test,555-999999,rome\n",
    )
    .unwrap();
    let new_pairs = dir.path().join("new_pairs.csv");
    let clusters2 = dir.path().join("clusters2.csv");
    let o = run(&[
        "dedup",
        p(&input),
        "--model",
        p(&model),
        "--add",
        p(&new),
        "--clusters-in",
        p(&clusters),
        "--clusters",
        p(&clusters2),
        "-o",
        p(&new_pairs),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("added 2 records"),
        "{}",
        text(&o.stdout)
    );
    let np = std::fs::read_to_string(&new_pairs).unwrap();
    assert_eq!(np.lines().count(), 2, "{np}");
    assert!(
        np.lines().nth(1).unwrap().starts_with("3,500,3,403,"),
        "{np}"
    );
    let c2 = std::fs::read_to_string(&clusters2).unwrap();
    assert_eq!(c2.lines().count(), 406);
    assert!(c2.contains("403,500,3,2"), "{c2}");
    assert!(c2.contains("404,501,501,1"), "{c2}");
    // --add without --model is a usage error.
    let o = run(&["dedup", p(&input), "--add", p(&new), "-o", p(&new_pairs)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));

    // Bad settings: exit 3, nothing written.
    let s = dir.path().join("s.yaml");
    std::fs::write(&s, "blocking:\n  - on: [emial]\n").unwrap();
    let bad = dir.path().join("bad.csv");
    let o = run(&["dedup", p(&input), "-o", p(&bad), "--settings", p(&s)]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("did you mean `email`"),
        "{}",
        text(&o.stderr)
    );
    assert!(!bad.exists());
}

#[test]
fn dedupe_fuzzy_merges_near_duplicates_with_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("people.csv");
    let mut csv = people(true);
    // Near duplicates of rows 0, 1 and 2, each missing or changing something.
    csv.push_str("400,anna,itoo,anna.ito0@mail.test,,oslo,2025-05-01\n");
    csv.push_str("401,ben,ito,ben.ito1@mail.test,555 010 001,oslo,2023-01-01\n");
    csv.push_str("402,CARLA,ITO,carla.ito2@mail.test,555-010002,,2025-02-02\n");
    std::fs::write(&input, csv).unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "steps:\n  - type: dedupe_fuzzy\n    columns: [first_name, last_name, email, phone, city]\n    survivor: most_recent\n    recency: updated\n",
    )
    .unwrap();
    let out = dir.path().join("out.csv");
    let summary = clean_json(&input, &plan, &out);
    assert_eq!(summary["rows_in"], 403);
    assert_eq!(summary["rows_out"], 400, "{summary}");
    let got = std::fs::read_to_string(&out).unwrap();
    // The newest record survives and takes the phone it lacked from row 0.
    assert!(
        got.contains("400,anna,itoo,anna.ito0@mail.test,555-010000,oslo,2025-05-01"),
        "{got}"
    );
    assert!(!got.lines().any(|l| l.starts_with("0,")), "{got}");
    // Row 1 is newer than 401 and complete: kept as it was.
    assert!(got.contains("\n1,ben,ito,ben.ito1@mail.test,555-010001,oslo,2024-01-02\n"));
    assert!(!got.contains("\n401,"));
    // 402 survives with row 2's city.
    assert!(got.contains("402,CARLA,ITO,carla.ito2@mail.test,555-010002,oslo,2025-02-02"));

    // Provenance: every merged row with its survivor, every taken field with its source.
    let o = run(&["provenance", p(&out), "--step", "dedupe_fuzzy", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let q: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cells = q["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2, "{q}");
    let phone = cells.iter().find(|c| c["column"] == "phone").unwrap();
    assert_eq!(phone["row_id"], 400);
    assert_eq!(phone["new_value"], "555-010000");
    assert_eq!(phone["detail"], "from row 0 (coalesce)");
    assert_eq!(phone["source"], "heuristic");
    let dropped = q["dropped"].as_array().unwrap();
    assert_eq!(dropped.len(), 3, "{q}");
    let reasons: Vec<&str> = dropped
        .iter()
        .map(|d| d["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("merged into row 400 ")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("merged into row 1 ")),
        "{reasons:?}"
    );

    // Revert brings back every input row as read.
    let back = dir.path().join("back.csv");
    let o = run(&["revert", p(&out), "-o", p(&back)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let b = std::fs::read_to_string(&back).unwrap();
    assert_eq!(b.lines().count(), 404);
    assert!(
        b.contains("400,anna,itoo,anna.ito0@mail.test,,oslo,2025-05-01"),
        "{b}"
    );

    // Determinism: the same input and plan give the same bytes.
    let out2 = dir.path().join("out2.csv");
    let o = run(&["clean", p(&input), "--plan", p(&plan), "-o", p(&out2)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out2).unwrap());

    // A bad rule names the field and the choices.
    std::fs::write(
        &plan,
        "steps:\n  - type: dedupe_fuzzy\n    fields: {email: newest}\n",
    )
    .unwrap();
    let o = run(&["clean", p(&input), "--plan", p(&plan), "-o", p(&out2)]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o.stderr).contains("most_recent"),
        "{}",
        text(&o.stderr)
    );
}

/// Runs the binary on a pseudo-terminal (util-linux `script`, always on
/// Debian): its exit status and what the terminal showed.
#[cfg(target_os = "linux")]
fn on_terminal(args: &[&str]) -> (bool, String) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let cmd = std::iter::once(env!("CARGO_BIN_EXE_tamis"))
        .chain(args.iter().copied())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("TAMIS_PII_KEY", "cli-test-key")
        .output()
        .expect("`script` (util-linux) runs the command on a terminal");
    (o.status.success(), text(&o.stdout))
}

// util-linux `script` (Linux only) gives the command a terminal.
#[cfg(target_os = "linux")]
#[test]
fn progress_bars_show_on_a_terminal_unless_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "steps: [{type: dedupe_exact}, {type: impute, columns: [age], method: median}]",
    )
    .unwrap();
    let out = dir.path().join("out.parquet");
    let clean = |extra: &[&str]| {
        let mut args = vec!["clean", &example(), "--plan", p(&plan), "-o", p(&out)]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let args = clean(&[]);
    let (ok, shown) = on_terminal(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{shown}");
    assert!(shown.contains("cleaning, pass 1"), "{shown}");
    assert!(shown.contains("rows in"), "the summary follows: {shown}");

    let args = clean(&["--no-progress"]);
    let (ok, shown) = on_terminal(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{shown}");
    assert!(!shown.contains("cleaning"), "{shown}");

    let (ok, shown) = on_terminal(&["profile", &example()]);
    assert!(ok, "{shown}");
    assert!(shown.contains("profiling"), "{shown}");

    // Not on a terminal: no bar, whatever the flags.
    let args = clean(&[]);
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("cleaning"), "{}", text(&o.stderr));
}

#[test]
fn suggested_age_filter_drops_exactly_the_impossible_ages() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,age\n");
    for i in 0..300 {
        let age = match i {
            10 => "-3".to_string(),
            20 => "125".to_string(),
            30 => "140".to_string(),
            _ => (20 + i % 50).to_string(),
        };
        csv.push_str(&format!("{i},{age}\n"));
    }
    let (input, plan, yaml) = suggest_for(dir.path(), "ages.csv", &csv);
    assert!(yaml.contains("has 2 impossible values"), "{yaml}");
    let s = clean_json(&input, &plan, &dir.path().join("out.parquet"));
    let filter = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["type"] == "filter")
        .unwrap_or_else(|| panic!("no filter step: {s}"));
    // -3 and 140 go; 125 is old but possible, and stays.
    assert_eq!(filter["rows_removed"], 2, "{s}");
    // An inferred contract fails the same two ages, and only them.
    let contract = dir.path().join("contract.yaml");
    let o = run(&["contract", "infer", p(&input), "-o", p(&contract)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = run(&["check", p(&input), "--contract", p(&contract), "--json"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["failing_rows"], 2, "{r}");

    // A column of dates and many datetimes: parsing it to dates would drop
    // the times, so no parse is suggested.
    let mut ts = String::from("id,seen\n");
    for i in 0..200 {
        let d = 1 + i % 28;
        if i % 5 < 3 {
            ts.push_str(&format!("{i},2024-03-{d:02}\n"));
        } else {
            ts.push_str(&format!("{i},2024-03-{d:02}T10:{:02}:00\n", i % 60));
        }
    }
    let tsf = dir.path().join("seen.csv");
    std::fs::write(&tsf, ts).unwrap();
    let o = run(&["suggest", p(&tsf), "-o", p(&plan)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let yaml = std::fs::read_to_string(&plan).unwrap();
    assert!(!yaml.contains("type: parse"), "{yaml}");

    // Ages that are all possible: no filter is suggested at all.
    let plain: String = csv
        .replace("\n10,-3\n", "\n10,30\n")
        .replace("\n30,140\n", "\n30,31\n");
    std::fs::write(&input, plain).unwrap();
    let o = run(&["suggest", p(&input), "-o", p(&plan)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let yaml = std::fs::read_to_string(&plan).unwrap();
    assert!(!yaml.contains("type: filter"), "{yaml}");
}

#[test]
fn numbers_written_as_text_are_suggested_a_parse_with_their_decimal_separator() {
    let dir = tempfile::tempdir().unwrap();
    // (file, amounts, the decimal separator expected, the parsed first three)
    let cases = [
        (
            "eu.csv",
            ["\"1.234,50\"", "\"99,00 €\"", "\"-7,5\"", "12"],
            "comma",
            [1234.5, 99.0, -7.5],
        ),
        (
            "us.csv",
            ["\"$1,234.50\"", "$99.00", "(7.50)", "12"],
            "point",
            [1234.5, 99.0, -7.5],
        ),
    ];
    for (file, amounts, decimal, want) in cases {
        // Beside it: zip codes, invoice codes, amounts that read both ways
        // (1,250: 1250 or 1.25), prices that are all different (taken for
        // an identifier, but with decimals), and references that are all
        // different and read as whole numbers.
        let mut csv = String::from("id,amount,zip,code,both,price,ref\n");
        for i in 0..100 {
            let price = if decimal == "comma" {
                format!("{},{:02}", 100 + 7 * i, i % 100)
            } else {
                format!("${},{:03}.{:02}", 1 + i / 10, i, i % 100)
            };
            csv.push_str(&format!(
                "{i},{},{:05},INV-{},\"{},250\",\"{price}\",\"1,234,{}\"\n",
                amounts[i % 4],
                1000 + i,
                1000 + i,
                1 + i % 7,
                500 + i
            ));
        }
        let (input, plan, yaml) = suggest_for(dir.path(), file, &csv);
        assert!(
            yaml.contains(&format!("decimal: {decimal}"))
                && yaml.contains("`amount` holds numbers written as text (100 of 100 values"),
            "{yaml}"
        );
        // Zip codes are digits kept as text on purpose, invoice numbers are
        // codes, and the last column cannot be told: no parse for them.
        for other in ["- zip", "- code", "- both", "- ref"] {
            assert!(!yaml.contains(other), "{other}: {yaml}");
        }
        assert!(
            yaml.contains("`price` holds numbers written as text (100 of 100 values"),
            "{yaml}"
        );
        let out = dir.path().join(format!("{file}.out.csv"));
        let s = clean_json(&input, &plan, &out);
        let schema = s["output_schema"].as_array().unwrap();
        assert!(
            schema.contains(&serde_json::json!(["amount", "Float64"])),
            "{schema:?}"
        );
        let parsed = s["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["type"] == "parse")
            .unwrap();
        assert_eq!(parsed["cells_modified"], 100, "{s}");
        let written = std::fs::read_to_string(&out).unwrap();
        let got: Vec<f64> = written
            .lines()
            .skip(1)
            .take(3)
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(got, want, "{written}");
        // Revert gives the amounts back as written.
        let back = dir.path().join(format!("{file}.back.csv"));
        let o = run(&["revert", p(&out), "-o", p(&back)]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let reverted = std::fs::read_to_string(&back).unwrap();
        assert!(reverted.contains(amounts[0]), "{reverted}");
    }
}

#[test]
fn suggested_drops_keep_columns_whose_gaps_say_something() {
    let dir = tempfile::tempdir().unwrap();
    // `empty` has no value; `same` one value in every row; `flag` is `x` or
    // empty, which is all it says; `n` is a number with one gap.
    let mut csv = String::from("id,empty,same,flag,n\n");
    for i in 0..40 {
        let flag = if i % 3 == 0 { "" } else { "x" };
        let n = if i == 7 {
            String::new()
        } else {
            (i % 9).to_string()
        };
        csv.push_str(&format!("{i},,EU,{flag},{n}\n"));
    }
    let (_, _, yaml) = suggest_for(dir.path(), "cols.csv", &csv);
    assert!(
        yaml.contains("`empty` is empty in every row; it carries no information"),
        "{yaml}"
    );
    assert!(
        yaml.contains("`same` holds `EU` in every row; it carries no information"),
        "{yaml}"
    );
    // The flag column is neither dropped nor filled in.
    assert!(!yaml.contains("- flag"), "{yaml}");
    assert!(yaml.contains("`n` is missing in 1 row (2.5%)"), "{yaml}");
}

#[test]
fn an_impossible_date_in_the_sample_is_a_mismatch_that_the_suggested_parse_empties() {
    let dir = tempfile::tempdir().unwrap();
    // Dates in two formats and, among the first rows (the type sample), one
    // that is no date: the column reads as it would with that date later.
    let mut csv = String::from("id,when\n");
    for i in 0..200 {
        let when = match i {
            5 => "2024-02-30".to_string(),
            _ if i % 10 == 0 => format!("{}/03/2024", 13 + i % 16),
            _ => format!("2024-01-{:02}", 1 + i % 28),
        };
        csv.push_str(&format!("{i},{when}\n"));
    }
    let (input, plan, yaml) = suggest_for(dir.path(), "dates.csv", &csv);
    let o = run(&["profile", p(&input), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let when = &v["columns"][1];
    assert_eq!(when["sample_type"], "date", "{when}");
    assert_eq!(when["type_mismatches"], 1);
    assert_eq!(when["mismatch_examples"][0]["row_id"], 5);
    assert_eq!(when["dates"]["formats"].as_array().unwrap().len(), 2);
    let kinds: Vec<&str> = v["issues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["column"] == "when")
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["type_mismatch", "mixed_date_formats"],
        "{}",
        v["issues"]
    );
    assert!(
        yaml.contains("`when` holds dates written in 2 formats; parse them to ISO dates; 1 value that is no valid date (`2024-02-30`) becomes empty"),
        "{yaml}"
    );
    let out = dir.path().join("dates.out.csv");
    let s = clean_json(&input, &plan, &out);
    assert!(
        s["output_schema"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["when", "Date32"])),
        "{s}"
    );
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().nth(6), Some("5,"), "{written}");
    assert_eq!(written.lines().nth(11), Some("10,2024-03-23"));
    let o = run(&["provenance", p(&out), "--row", "5", "--json"]);
    let q: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(q["cells"][0]["old_value"], "2024-02-30", "{q}");
    assert_eq!(q["cells"][0]["confidence"], 0.0);
}

#[test]
fn a_number_column_with_a_stray_word_is_suggested_a_parse_before_its_median() {
    let dir = tempfile::tempdir().unwrap();
    // `age`: numbers, gaps, and one word among the sampled rows; `qty`:
    // numbers and, after the sample, one value in ten that is a note.
    let mut csv = String::from("id,age,qty\n");
    for i in 0..1100 {
        let age = match i {
            3 => "unknown".to_string(),
            _ if i % 7 == 0 => String::new(),
            _ => (20 + i % 50).to_string(),
        };
        let qty = if i < 1000 {
            (10 + i % 20).to_string()
        } else {
            "see note".into()
        };
        csv.push_str(&format!("{i},{age},{qty}\n"));
    }
    let (input, plan, yaml) = suggest_for(dir.path(), "ages.csv", &csv);
    assert!(
        yaml.contains("`age` samples as integer but 1 value is not (`unknown`); parse it to numbers: a value that is no number becomes empty"),
        "{yaml}"
    );
    let parse_at = yaml.find("- id: numbers").unwrap();
    let impute_at = yaml.find("method: median").unwrap();
    assert!(parse_at < impute_at, "{yaml}");
    // One in eleven is too many to empty: `qty` is left as text.
    assert!(!yaml.contains("- qty"), "{yaml}");
    let out = dir.path().join("ages.out.csv");
    let s = clean_json(&input, &plan, &out);
    assert!(
        s["output_schema"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["age", "Float64"])),
        "{s}"
    );
    let back = dir.path().join("ages.back.csv");
    let o = run(&["revert", p(&out), "-o", p(&back)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let reverted = std::fs::read_to_string(&back).unwrap();
    assert_eq!(reverted.lines().nth(4), Some("3,unknown,13"), "{reverted}");
    assert_eq!(reverted.lines().nth(8), Some("7,,17"));
}

/// An impute with nothing to learn from is warned about under its step in
/// the text summary, and in the JSON one; the run still succeeds.
#[test]
fn clean_warns_of_an_impute_with_no_values() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id,x\n1,\n2,\n3,\n").unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "steps: [{type: impute, columns: [x], method: median}]",
    )
    .unwrap();
    let mut outputs = Vec::new();
    for json in [false, true] {
        let out = dir.path().join(format!("out-{json}.parquet"));
        let mut args = vec!["clean", p(&input), "--plan", p(&plan), "-o", p(&out)];
        args.extend(["--schema", "x:float"]);
        if json {
            args.push("--json");
        }
        let o = run(&args);
        assert!(o.status.success(), "{}", text(&o.stderr));
        outputs.push(text(&o.stdout));
    }
    assert!(
        outputs[0].contains("    warning: column 'x' has no values to learn a median from"),
        "{}",
        outputs[0]
    );
    let v: serde_json::Value = serde_json::from_str(&outputs[1]).unwrap();
    let w = v["steps"][0]["warnings"][0].as_str().unwrap();
    assert!(w.starts_with("column 'x' has no values"), "{w}");
}

/// A clean that tokenizes under key v1 writes a vault; after the rotation
/// `tamis vault rekey` puts every entry under v2, and revert then brings the
/// values back with v2 alone. Without the keys it says what to set.
#[test]
fn a_vault_rekeys_after_a_rotation_and_revert_reads_it_with_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = |ids: &[(&str, &str)]| {
        ids.iter()
            .map(|(id, b)| format!("{id}:{}", b.repeat(32)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let with_keys = |spec: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tamis"))
            .args(args)
            .env("NO_COLOR", "1")
            .env("TAMIS_PII_KEY", "cli-test-key")
            .env("TAMIS_ENCRYPTION_KEYS", spec)
            .output()
            .unwrap()
    };
    let input = dir.path().join("people.csv");
    std::fs::write(
        &input,
        "id,email\n1,ann@mail.test\n2,bob@mail.test\n3,ann@mail.test\n4,cy@mail.test\n",
    )
    .unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "steps:\n  - type: pii\n    columns: [email]\n    strategy: tokenize\n",
    )
    .unwrap();
    let (out, vault) = (dir.path().join("out.csv"), dir.path().join("vault.json"));
    let v1 = keys(&[("v1", "ab")]);
    let o = with_keys(
        &v1,
        &[
            "clean",
            p(&input),
            "--plan",
            p(&plan),
            "-o",
            p(&out),
            "--vault",
            p(&vault),
            "--no-progress",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let written = std::fs::read_to_string(&vault).unwrap();
    assert_eq!(written.matches("enc:v1:").count(), 3, "{written}");

    let o = run(&["vault", "rekey", "--vault", p(&vault)]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("TAMIS_ENCRYPTION_KEYS"),
        "{}",
        text(&o.stderr)
    );

    let rotated = keys(&[("v1", "ab"), ("v2", "cd")]);
    let o = with_keys(
        &rotated,
        &["vault", "rekey", "--vault", p(&vault), "--json"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        r,
        serde_json::json!({"checked": 3, "rekeyed": 3, "undecryptable": 0, "key": "v2"})
    );
    let now = std::fs::read_to_string(&vault).unwrap();
    assert_eq!(now.matches("enc:v2:").count(), 3, "{now}");
    assert!(!now.contains("enc:v1:"));
    let o = with_keys(&rotated, &["vault", "rekey", "--vault", p(&vault)]);
    assert!(
        text(&o.stdout).contains("3 entries, 0 re-encrypted"),
        "{}",
        text(&o.stdout)
    );

    // v1 retired: revert reads the tokens back with v2 alone.
    let back = dir.path().join("back.csv");
    let o = with_keys(
        &keys(&[("v2", "cd")]),
        &["revert", p(&out), "-o", p(&back), "--vault", p(&vault)],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let b = std::fs::read_to_string(&back).unwrap();
    for e in ["ann@mail.test", "bob@mail.test", "cy@mail.test"] {
        assert!(b.contains(e), "{b}");
    }
}
