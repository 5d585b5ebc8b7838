#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Scans a small table with PII and look-alike columns end to end.

use tamis_core::{Dataset, ReadOptions};

#[test]
fn a_table_with_distractors_is_classified_and_its_cells_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("Kundenname,E-Mail,tel,order_id,ref_number,dob,order_date,notes\n");
    let names = ["Anna Schmidt", "John Miller", "Marie Dubois", "Luca Rossi"];
    for i in 0..40 {
        csv.push_str(&format!(
            "{},user{i}@example.com,+49 30 1234{i:04},ORD-2024-{i:06},{},{}-03-1{} ,2023-01-{:02},{}\n",
            names[i % 4],
            1_000_000_000u64 + i as u64 * 7919,
            1950 + i,
            i % 10,
            1 + i % 28,
            if i == 3 { "mail me at someone@example.org" } else if i == 4 { "card 4111111111111111" } else { "" }
        ));
    }
    let p = dir.path().join("t.csv");
    std::fs::write(&p, csv).unwrap();
    let ds = Dataset::open(&[p.display().to_string()], ReadOptions::default()).unwrap();
    let cells = dir.path().join("cells.csv");
    let s = tamis_privacy::scan_files(&ds, Some(&cells), &Default::default()).unwrap();
    let ty = |n: &str| s.columns.iter().find(|c| c.name == n).unwrap().pii_type;
    assert_eq!(ty("Kundenname"), Some("PERSON"));
    assert_eq!(ty("E-Mail"), Some("EMAIL_ADDRESS"));
    assert_eq!(ty("tel"), Some("PHONE_NUMBER"));
    assert_eq!(ty("dob"), Some("DATE_OF_BIRTH"));
    for n in ["order_id", "ref_number", "order_date", "notes"] {
        assert_eq!(ty(n), None, "{n}");
    }
    let text = std::fs::read_to_string(&cells).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "row,column,entity_type");
    assert_eq!(
        lines.len() - 1,
        4 * 40,
        "every cell of the four PII columns, nothing else"
    );
    assert!(!text.contains("order_id") && !text.contains("ref_number"));
    // Phone columns report how many numbers the numbering plans accept.
    let tel = s.columns.iter().find(|c| c.name == "tel").unwrap();
    assert!(tel.phones_valid.is_some_and(|v| (0.0..=1.0).contains(&v)));
    assert!(
        s.columns
            .iter()
            .find(|c| c.name == "dob")
            .unwrap()
            .phones_valid
            .is_none()
    );
    // Examples are masked.
    let email = s.columns.iter().find(|c| c.name == "E-Mail").unwrap();
    assert!(
        email
            .examples
            .iter()
            .all(|e| e.contains('*') && !e.contains("user0"))
    );
}
