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

/// A worker killed with SIGKILL mid-job loses its lease; another worker
/// retries the job, which completes once, with a correct output.
#[test]
fn a_killed_workers_job_is_retried_and_completes_once() {
    use tamis_store::{JobState, NewJob, Store};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    // Large enough that the profile is still running when the worker dies.
    let input = dir.path().join("big.csv");
    let rows = 3_000_000u64;
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        writeln!(w, "id,name,amount,day").unwrap();
        for i in 0..rows {
            writeln!(
                w,
                "{i},name{},{}.{:02},2024-01-{:02}",
                i % 977,
                i % 10_000,
                i % 100,
                1 + i % 28
            )
            .unwrap();
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, job_id, tenant) = rt.block_on(async {
        let s = Store::connect(&url).await.unwrap();
        s.migrate().await.unwrap();
        let t = s.create_tenant("acme", 2, None).await.unwrap();
        let (j, _) = s
            .enqueue(&NewJob {
                tenant_id: t.id.clone(),
                kind: "profile".into(),
                params: serde_json::json!({"inputs": [input.display().to_string()]}),
                created_by: "test".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        (s, j.id, t.id)
    });
    let worker = |id: &str| {
        Command::new(env!("CARGO_BIN_EXE_tamis"))
            .args(["worker", "--database-url", &url, "--data-dir"])
            .arg(&data)
            .args(["--id", id, "--lease-ms", "1500"])
            .env_remove("TAMIS_DATABASE_URL")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let wait_for = |what: &dyn Fn(&tamis_store::Job) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let j = rt.block_on(store.job(&tenant, &job_id)).unwrap();
            if what(&j) {
                return j;
            }
            assert!(std::time::Instant::now() < deadline, "timed out: {j:?}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    let mut a = worker("worker-a");
    let j = wait_for(&|j| j.state == JobState::Running);
    assert_eq!(j.lease_owner.as_deref(), Some("worker-a"));
    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();
    let killed = rt.block_on(store.job(&tenant, &job_id)).unwrap();
    assert_eq!(
        killed.state,
        JobState::Running,
        "the job was still running when its worker died"
    );

    let mut b = worker("worker-b");
    let done = wait_for(&|j| j.state.is_final());
    b.kill().unwrap();
    b.wait().unwrap();
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 2);
    assert_eq!(done.result.as_ref().unwrap()["rows"], rows);
    assert_eq!(done.metrics["rows_processed"], rows);
    let arts = rt.block_on(store.artifacts(&tenant, &job_id)).unwrap();
    assert_eq!(arts.len(), 1, "{arts:?}");
    let profile: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&arts[0].path).unwrap()).unwrap();
    assert_eq!(profile["dataset"]["rows"], rows);
    let logs = rt
        .block_on(store.logs_since(&tenant, &job_id, 0, 100))
        .unwrap();
    let text: Vec<&str> = logs.iter().map(|l| l.message.as_str()).collect();
    assert!(
        text.contains(&"attempt 1 of 3 on worker worker-a"),
        "{text:?}"
    );
    assert!(
        text.contains(&"attempt 2 of 3 on worker worker-b"),
        "{text:?}"
    );
    assert_eq!(text.last(), Some(&"succeeded"));
    // No half-written file is left beside the output.
    let files: Vec<_> = std::fs::read_dir(std::path::Path::new(&arts[0].path).parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec!["profile.json".to_string()]);
}
