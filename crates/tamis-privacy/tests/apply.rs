#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `pii apply` end to end: every strategy, joins across tables, decryption with
//! rotated keys, the ε ledger, k-anonymity, and no clear PII in the report.

use std::path::{Path, PathBuf};

use tamis_core::{Dataset, ReadOptions};
use tamis_privacy::anonymize::Keys;
use tamis_privacy::apply::{Policy, apply};

fn keys(ids: &str) -> Keys {
    let spec: String = ids
        .split(',')
        .map(|id| {
            format!(
                "{id}:{}",
                id.repeat(64 / id.len().max(1))
                    .chars()
                    .map(|c| if c.is_ascii_hexdigit() { c } else { 'a' })
                    .take(64)
                    .collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    Keys {
        hmac: b"test-hmac".to_vec(),
        aes: Keys::parse_aes(&spec).unwrap(),
        current: ids.split(',').next_back().map(String::from),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn read_csv(p: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

fn run(
    dir: &Path,
    table: &Path,
    policy: &str,
    keys: &Keys,
    out: &str,
) -> Result<(serde_json::Value, Vec<Vec<String>>), String> {
    let pol = write(dir, "policy.yaml", policy);
    let p = Policy::read(&pol).map_err(|e| e.to_string())?;
    let ds = Dataset::open(&[table.display().to_string()], ReadOptions::default()).unwrap();
    let o = dir.join(out);
    let r = apply(&ds, &p, keys, &o).map_err(|e| e.to_string())?;
    Ok((r, read_csv(&o)))
}

const TABLE: &str = "email,name,ssn,age,zip,income,status\n\
jane@corp.com,Jane Doe,123-45-6789,34,94107,50000,active\n\
john@corp.com,John Roe,234-56-7890,47,94110,62000,inactive\n\
jane@corp.com,Jane Doe,123-45-6789,35,94107,51000,active\n\
mary@corp.com,Mary Major,345-67-8901,52,10001,80000,active\n";

#[test]
fn strategies_joins_rotation_budget_and_k() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "t.csv", TABLE);
    let ledger = dir.path().join("ledger.json");
    let policy = format!(
        "dataset_id: t\nseed: 1\nepsilon_budget: 1.0\nledger: {}\ncolumns:\n  email: {{strategy: pseudonymise}}\n  name: {{strategy: mask, keep_last: 3}}\n  ssn: {{strategy: encrypt}}\n  age: {{strategy: generalise, band: 10}}\n  zip: {{strategy: generalise, prefix: 3}}\n  income: {{strategy: dp, epsilon: 0.4, sensitivity: 1000}}\n  status: {{strategy: exclude}}\nk_anonymity: {{quasi_identifiers: [age, zip]}}\n",
        ledger.display()
    );
    let k1 = keys("a1");
    let (report, rows) = run(dir.path(), &t, &policy, &k1, "out.csv").unwrap();
    assert_eq!(
        rows[0],
        vec!["email", "name", "ssn", "age", "zip", "income"],
        "status excluded"
    );
    // Pseudonyms: realistic, equal for equal inputs (joins survive), different for different ones.
    assert!(rows[1][0].contains("@example."), "{}", rows[1][0]);
    assert_eq!(rows[1][0], rows[3][0]);
    assert_ne!(rows[1][0], rows[2][0]);
    assert_eq!(rows[1][1], "**** Doe");
    assert_eq!(rows[1][3], "30-39");
    assert_eq!(rows[1][4], "941**");
    assert!(rows[1][2].starts_with("enc:a1:"));
    let noisy: f64 = rows[1][5].parse().unwrap();
    assert!(noisy != 50000.0 && (noisy - 50000.0).abs() < 50_000.0);
    assert_eq!(report["k_anonymity"]["k"], 1);
    assert_eq!(report["epsilon"]["spent"], 0.4);
    // Nothing in the report is a clear value of a PII column.
    let text = report.to_string();
    for clear in ["jane@corp.com", "Jane Doe", "123-45-6789"] {
        assert!(!text.contains(clear), "{clear} in the report");
    }

    // The same pseudonym in another table: joins across tables survive.
    let t2 = write(
        dir.path(),
        "t2.csv",
        "email\nmary@corp.com\njane@corp.com\n",
    );
    let (_, rows2) = run(
        dir.path(),
        &t2,
        &format!(
            "ledger: {}\ncolumns:\n  email: {{strategy: pseudonymise}}\n",
            ledger.display()
        ),
        &k1,
        "o2.csv",
    )
    .unwrap();
    assert_eq!(rows2[2][0], rows[1][0]);
    assert_eq!(rows2[1][0], rows[4][0]);

    // Key rotation: decrypt with every key, encrypt with the current one.
    let both = keys("a1,b2");
    let enc = dir.path().join("out.csv");
    let (_, dec) = run(
        dir.path(),
        &enc,
        &format!(
            "ledger: {}\ncolumns:\n  ssn: {{strategy: decrypt}}\n",
            ledger.display()
        ),
        &both,
        "dec.csv",
    )
    .unwrap();
    assert_eq!(dec[1][2], "123-45-6789");
    let dec_path = dir.path().join("dec.csv");
    let (_, re) = run(
        dir.path(),
        &dec_path,
        &format!(
            "ledger: {}\ncolumns:\n  ssn: {{strategy: encrypt}}\n",
            ledger.display()
        ),
        &both,
        "re.csv",
    )
    .unwrap();
    assert!(re[1][2].starts_with("enc:b2:"));
    let only_b = keys("b2");
    let e = run(
        dir.path(),
        &enc,
        &format!(
            "ledger: {}\ncolumns:\n  ssn: {{strategy: decrypt}}\n",
            ledger.display()
        ),
        &only_b,
        "x.csv",
    )
    .unwrap_err();
    assert!(e.contains("no key `a1`"), "{e}");
    assert!(!dir.path().join("x.csv").exists(), "no half-written output");

    // The ledger: 0.4 spent; 0.4 more fits, then 0.4 more is refused and nothing is written.
    run(dir.path(), &t, &policy, &k1, "second.csv").unwrap();
    let e = run(dir.path(), &t, &policy, &k1, "third.csv").unwrap_err();
    assert!(e.contains("overspent"), "{e}");
    assert!(!dir.path().join("third.csv").exists());
}

#[test]
fn bad_policies_name_the_column_and_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "t.csv", TABLE);
    let k = keys("a1");
    let e = run(
        dir.path(),
        &t,
        "columns:\n  email: {strategy: pseudonimise}\n",
        &k,
        "o.csv",
    )
    .unwrap_err();
    assert!(
        e.contains("columns.email") && e.contains("did you mean `pseudonymise`"),
        "{e}"
    );
    let e = run(
        dir.path(),
        &t,
        "columns:\n  emial: {strategy: hash}\n",
        &k,
        "o.csv",
    )
    .unwrap_err();
    assert!(e.contains("did you mean `email`"), "{e}");
    let e = run(
        dir.path(),
        &t,
        "columns:\n  income: {strategy: dp, epsilon: 1, sensitivity: 1}\n",
        &k,
        "o.csv",
    )
    .unwrap_err();
    assert!(e.contains("epsilon_budget"), "{e}");
}

#[test]
fn tokens_come_back_only_through_the_vault_and_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "t.csv", TABLE);
    let vault = dir.path().join("vault.json");
    let policy = |s: &str| {
        format!(
            "vault: {}\nledger: {}\ncolumns:\n  ssn: {{strategy: {s}}}\n",
            vault.display(),
            dir.path().join("l.json").display()
        )
    };
    let k = keys("a1");
    let (report, rows) = run(dir.path(), &t, &policy("tokenise"), &k, "tok.csv").unwrap();
    assert!(rows[1][2].starts_with("tok_"));
    assert_eq!(rows[1][2], rows[3][2], "equal values, equal tokens");
    assert!(
        !std::fs::read_to_string(&vault)
            .unwrap()
            .contains("123-45-6789")
    );
    assert!(report["residual_risks"].to_string().contains("tokenised"));
    let tok = dir.path().join("tok.csv");
    let (_, back) = run(dir.path(), &tok, &policy("detokenise"), &k, "back.csv").unwrap();
    assert_eq!(back[1][2], "123-45-6789");
    let other = keys("b2");
    let e = run(dir.path(), &tok, &policy("detokenise"), &other, "no.csv").unwrap_err();
    assert!(e.contains("no key `a1`"), "{e}");
}

#[test]
fn dp_histograms_spend_the_budget_once_per_release() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("status\n");
    for i in 0..3000 {
        csv.push_str(if i % 3 == 0 { "active\n" } else { "inactive\n" });
    }
    let t = write(dir.path(), "t.csv", &csv);
    let ds = Dataset::open(&[t.display().to_string()], ReadOptions::default()).unwrap();
    let ledger = dir.path().join("l.json");
    let k = keys("a1");
    let fixed = vec![
        "active".to_string(),
        "inactive".to_string(),
        "suspended".to_string(),
    ];
    let h = tamis_privacy::apply::dp_histogram(
        &ds,
        "status",
        Some(&fixed),
        0.5,
        1,
        &k,
        &ledger,
        "d",
        1.0,
    )
    .unwrap();
    let b = h["buckets"].as_array().unwrap();
    assert_eq!(b.len(), 3, "the fixed domain, including the empty bucket");
    let active = b[0]["count"].as_u64().unwrap();
    assert!((950..=1050).contains(&active), "{active}");
    assert_eq!(h["epsilon_spent"], 0.5);
    tamis_privacy::apply::dp_histogram(&ds, "status", None, 0.5, 2, &k, &ledger, "d", 1.0).unwrap();
    let e = tamis_privacy::apply::dp_histogram(&ds, "status", None, 0.1, 3, &k, &ledger, "d", 1.0)
        .unwrap_err();
    assert!(e.to_string().contains("overspent"), "{e}");
}

/// Free text keeps its words and loses what is personal inside it; the scan
/// counts it per column (not as cell labels), and the report names a text
/// column that still holds it.
#[test]
fn free_text_is_scanned_inside_and_its_entities_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(
        dir.path(),
        "notes.csv",
        "id,notes\n\
         1,call 415-555-2671 tomorrow\n\
         2,mail jane@corp.com please\n\
         3,nothing to see here\n\
         7,asked Dr. Ana Patel to visit 221 Baker Street\n\
         4,card 4111 1111 1111 1111 and 415-555-2671 on file\n\
         5,\n\
         6,order 4111 1111 1111 1112 shipped 2021-03-15\n",
    );
    let ds = Dataset::open(&[t.display().to_string()], ReadOptions::default()).unwrap();
    let scan = tamis_privacy::scan_files(&ds, None, &Default::default()).unwrap();
    let notes = scan.columns.iter().find(|c| c.name == "notes").unwrap();
    assert_eq!(notes.pii_type, None);
    assert_eq!(notes.labelled, 0, "free text is not labelled as a whole");
    assert_eq!(
        serde_json::to_value(&notes.embedded).unwrap(),
        serde_json::json!({"PHONE_NUMBER": 2, "EMAIL_ADDRESS": 1, "CREDIT_CARD": 1, "PERSON": 1, "STREET_ADDRESS": 1})
    );
    let shown = serde_json::to_string(&scan).unwrap();
    for clear in ["jane@corp.com", "415-555-2671", "4111 1111 1111 1111"] {
        assert!(!shown.contains(clear), "{clear} shown in the scan: {shown}");
    }
    let ids = scan.columns.iter().find(|c| c.name == "id").unwrap();
    assert!(ids.embedded.is_empty());
    // A raised flag stops the scan with `Cancelled`, and no cells file is left.
    let watch = tamis_privacy::Watch::default();
    watch.cancel.cancel();
    let cells = dir.path().join("cells.csv");
    let e = tamis_privacy::scan_files(&ds, Some(&cells), &watch).unwrap_err();
    assert!(
        matches!(
            e,
            tamis_privacy::PrivacyError::Core(tamis_core::CoreError::Cancelled)
        ),
        "{e}"
    );
    assert!(!cells.exists());

    let k = keys("a1");
    let ledger = dir.path().join("ledger.json");
    let (report, rows) = run(
        dir.path(),
        &t,
        &format!(
            "ledger: {}\ncolumns:\n  notes: {{strategy: redact_entities}}\n",
            ledger.display()
        ),
        &k,
        "out.csv",
    )
    .unwrap();
    let notes: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        notes,
        [
            "call <PHONE_NUMBER> tomorrow",
            "mail <EMAIL_ADDRESS> please",
            "nothing to see here",
            "asked Dr. <PERSON> to visit <STREET_ADDRESS>",
            "card <CREDIT_CARD> and <PHONE_NUMBER> on file",
            "",
            "order 4111 1111 1111 1112 shipped 2021-03-15",
        ]
    );
    let risks = report["residual_risks"].to_string();
    assert!(risks.contains("a lone first name"), "{risks}");

    // Left as it is, the column is a named risk.
    let (report, _) = run(
        dir.path(),
        &t,
        &format!(
            "ledger: {}\ncolumns:\n  id: {{strategy: hash}}\n",
            ledger.display()
        ),
        &k,
        "out2.csv",
    )
    .unwrap();
    let risks = report["residual_risks"].to_string();
    assert!(
        risks.contains("`notes` holds personal data inside its text (CREDIT_CARD 1, EMAIL_ADDRESS 1, PERSON 1, PHONE_NUMBER 2, STREET_ADDRESS 1)"),
        "{risks}"
    );
}
