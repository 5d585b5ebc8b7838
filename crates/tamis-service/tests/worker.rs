//! Workers run each job kind through the use cases and record outcomes; bad
//! parameters fail without a retry.
#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::json;
use tamis_service::worker::{WorkerConfig, run_once};
use tamis_store::{Artifacts, JobState, NewJob, Store};

fn example() -> String {
    format!(
        "{}/../../examples/customers.csv",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_runs_and_bad_jobs_fail_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("m.db").display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let t = store.create_tenant("acme", 4, None).await.unwrap();
    let data = dir.path().join("data");
    let arts = Artifacts::open(
        &data.join("artifacts").display().to_string(),
        data.join("work"),
    )
    .unwrap();
    let cfg = WorkerConfig::new("w1", &data, arts.clone());
    let submit = |kind: &str, params: serde_json::Value| NewJob {
        tenant_id: t.id.clone(),
        kind: kind.into(),
        params,
        created_by: "test".into(),
        ..Default::default()
    };
    let plan = json!({"steps": [
        {"type": "dedupe_exact"},
        {"type": "impute", "columns": ["age"], "method": "median"}
    ]});
    let jobs = [
        submit("clean", json!({"inputs": [example()], "plan": plan})),
        submit(
            "dedup",
            json!({"inputs": [example()], "settings": {"threshold": 0.9}}),
        ),
        submit("profile", json!({"inputs": [example()]})),
        submit("sing", json!({"inputs": [example()]})),
        submit("profile", json!({})),
    ];
    let mut ids = Vec::new();
    for j in &jobs {
        ids.push(store.enqueue(j).await.unwrap().0.id);
    }
    for _ in 0..jobs.len() {
        run_once(&store, &cfg).await.unwrap().unwrap();
    }
    assert!(run_once(&store, &cfg).await.unwrap().is_none());
    let get = |i: usize| store.job(&t.id, &ids[i]);

    let clean = get(0).await.unwrap();
    assert_eq!(clean.state, JobState::Succeeded, "{:?}", clean.error);
    assert_eq!(clean.metrics["rows_processed"], 2000);
    assert!(clean.metrics["imputations_applied"].as_u64().unwrap() > 0);
    assert!(clean.metrics["duplicates_found"].as_u64().unwrap() > 0);
    // The output and its sidecar (provenance, audit, lineage) are in the
    // artifact store under the job's key; the scratch directory is gone.
    let out = clean.result.as_ref().unwrap()["artifacts"][0]["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(out, format!("jobs/{}/{}/clean.parquet", t.id, ids[0]));
    assert!(arts.fetch(&out).await.unwrap().path().is_file());
    let side = arts.list(&format!("{out}.tamis")).await.unwrap();
    for f in [
        "audit.jsonl",
        "cells.parquet",
        "lineage.json",
        "manifest.json",
    ] {
        assert!(
            side.iter().any(|k| k.ends_with(f)),
            "{f} missing in {side:?}"
        );
    }
    assert!(!data.join("work").join(&ids[0]).exists());

    let dedup = get(1).await.unwrap();
    assert_eq!(dedup.state, JobState::Succeeded, "{:?}", dedup.error);
    assert!(dedup.metrics["duplicates_found"].as_u64().is_some());
    let arts = store.artifacts(&t.id, &ids[1]).await.unwrap();
    let mut kinds: Vec<&str> = arts.iter().map(|a| a.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, vec!["clusters", "log", "pairs"]);

    let profile = get(2).await.unwrap();
    assert_eq!(profile.state, JobState::Succeeded);
    assert_eq!(profile.result.as_ref().unwrap()["rows"], 2000);
    assert_eq!(profile.progress, 1.0);

    for i in [3, 4] {
        let bad = get(i).await.unwrap();
        assert_eq!((bad.state, bad.attempts), (JobState::Failed, 1), "{bad:?}");
    }
    assert!(
        get(3)
            .await
            .unwrap()
            .error
            .unwrap()
            .contains("unknown kind `sing`")
    );
    assert!(get(4).await.unwrap().error.unwrap().contains("`inputs`"));
    let logs = store.logs_since(&t.id, &ids[3], 0, 10).await.unwrap();
    assert_eq!(logs.last().unwrap().level, "error");
}
