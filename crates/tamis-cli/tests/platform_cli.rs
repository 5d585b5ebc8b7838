//! `tamis migrate`: the metadata database comes up to date, once or many times.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tamis"))
        .args(args)
        .env_remove("TAMIS_DATABASE_URL")
        .output()
        .unwrap()
}

#[test]
fn migrate_creates_and_updates_the_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/meta.db");
    let url = format!("sqlite://{}", db.display());
    for _ in 0..2 {
        let o = run(&["migrate", "--database-url", &url]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("is up to date (Sqlite)"));
    }
    assert!(db.exists());
    let o = run(&["migrate", "--database-url", "mysql://root:secret@db/x"]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("sqlite://"), "{err}");
}
