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

struct Setup {
    dir: tempfile::TempDir,
    store: Store,
    t: tamis_store::Tenant,
    data: std::path::PathBuf,
    arts: Artifacts,
}

/// A migrated SQLite store with one tenant, and a local artifact store.
async fn setup() -> Setup {
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
    Setup {
        dir,
        store,
        t,
        data,
        arts,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_runs_and_bad_jobs_fail_once() {
    let Setup {
        dir: _dir,
        store,
        t,
        data,
        arts,
    } = setup().await;
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
    // No scratch directory of any attempt is left.
    let left: Vec<_> = std::fs::read_dir(data.join("work"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(ids[0].as_str()))
        .collect();
    assert!(left.is_empty(), "{left:?}");

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

/// Cancelling a clean job while its blocking passes run stops them: the
/// worker returns once the run has ended (not when it would have finished),
/// the log says the run was interrupted, and no output is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_clean_stops_its_passes() {
    let Setup {
        dir,
        store,
        t,
        data,
        arts,
    } = setup().await;
    let mut cfg = WorkerConfig::new("w1", &data, arts.clone());
    cfg.heartbeat_ms = 50;
    // Big enough that the passes are still running when the cancel lands.
    let input = dir.path().join("big.csv");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        writeln!(w, "id,city,amount").unwrap();
        for i in 0..3_000_000u64 {
            writeln!(w, "{i},City {},{}", i % 101, i % 997).unwrap();
        }
    }
    let plan = json!({"steps": [
        {"type": "normalize_text", "columns": ["city"]},
        {"type": "impute", "columns": ["amount"], "method": "median"}
    ]});
    let (job, _) = store
        .enqueue(&NewJob {
            tenant_id: t.id.clone(),
            kind: "clean".into(),
            params: json!({"inputs": [input.display().to_string()], "plan": plan}),
            created_by: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let canceller = {
        let (store, tenant, id) = (store.clone(), t.id.clone(), job.id.clone());
        tokio::spawn(async move {
            // Once it reports progress and an ETA within its first pass, ask
            // it to stop (its heartbeat sees that within 50 ms; the passes over
            // 3M rows take seconds). The ETA comes only once more than 1 % is
            // read, so a slow first beat can report progress without one.
            for _ in 0..1000 {
                let j = store.job(&tenant, &id).await.unwrap();
                if j.eta_ms.is_some() && j.pass.as_deref() == Some("pass1") {
                    break;
                }
                assert!(
                    !j.state.is_final(),
                    "finished before it reported progress: {j:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            let j = store.job(&tenant, &id).await.unwrap();
            assert!(j.progress > 0.0 && j.eta_ms.is_some(), "no progress: {j:?}");
            store.cancel(&tenant, &id).await.unwrap()
        })
    };
    let (id, state) = run_once(&store, &cfg).await.unwrap().unwrap();
    assert_eq!(canceller.await.unwrap(), JobState::Running);
    assert_eq!((id.as_str(), state), (job.id.as_str(), JobState::Cancelled));
    let logs = store.logs_since(&t.id, &job.id, 0, 1000).await.unwrap();
    let last = logs.last().unwrap();
    assert_eq!(last.level, "warn", "{logs:?}");
    assert_eq!(last.fields["stopped"], true, "{last:?}");
    assert_eq!(last.fields["interrupted"], true, "{last:?}");
    assert_eq!(artifact_kinds(&store, &t.id, &job.id).await, ["log"]);
    // No scratch directory of any attempt is left.
    let left: Vec<_> = std::fs::read_dir(data.join("work"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(job.id.as_str()))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        store.job(&t.id, &job.id).await.unwrap().state,
        JobState::Cancelled
    );
}

/// The kinds of a job's recorded artifacts, in the store's order.
async fn artifact_kinds(store: &Store, tenant: &str, job: &str) -> Vec<String> {
    store
        .artifacts(tenant, job)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.kind)
        .collect()
}

/// Runs one clean job with `trigger` (SQL) installed in the store, which
/// asks for a cancel at some point after the run; checks it ended cancelled
/// with no result, only its log artifact and no usage counted, and returns
/// its log lines.
async fn clean_cancelled_late(
    trigger: &str,
) -> (Setup, tamis_store::Job, Vec<tamis_store::LogLine>) {
    let s = setup().await;
    let cfg = WorkerConfig::new("w1", &s.data, s.arts.clone());
    sqlx::query(trigger).execute(s.store.pool()).await.unwrap();
    let plan = json!({"steps": [{"type": "dedupe_exact"}]});
    let (job, _) = s
        .store
        .enqueue(&NewJob {
            tenant_id: s.t.id.clone(),
            kind: "clean".into(),
            params: json!({"inputs": [example()], "plan": plan}),
            created_by: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (id, state) = run_once(&s.store, &cfg).await.unwrap().unwrap();
    assert_eq!((id.as_str(), state), (job.id.as_str(), JobState::Cancelled));
    let j = s.store.job(&s.t.id, &job.id).await.unwrap();
    assert_eq!(j.state, JobState::Cancelled);
    assert!(j.result.is_none(), "{j:?}");
    assert_eq!(artifact_kinds(&s.store, &s.t.id, &job.id).await, ["log"]);
    // The rows of a cancelled job do not count towards the tenant's quota.
    assert_eq!(
        s.store
            .usage(&s.t.id, &tamis_store::current_month())
            .await
            .unwrap(),
        0
    );
    let logs = s.store.logs_since(&s.t.id, &job.id, 0, 1000).await.unwrap();
    (s, j, logs)
}

/// A cancel that lands after the outputs are stored and "succeeded" is
/// logged, just before the success is recorded, still wins: the store
/// refuses the success, the outputs are removed, and the log's next line
/// says the cancel overruled it. The trigger asks for the cancel the moment
/// the "succeeded" line is written, after the worker's own check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_as_success_is_recorded_overrules_it() {
    let (_s, _job, logs) = clean_cancelled_late(
        "CREATE TRIGGER cancel_on_success AFTER INSERT ON job_logs WHEN NEW.message = 'succeeded' \
         BEGIN UPDATE jobs SET cancel_requested = 1 WHERE id = NEW.job_id; END",
    )
    .await;
    let n = logs.len();
    assert!(n >= 2, "{logs:?}");
    assert_eq!(logs[n - 2].message, "succeeded", "{logs:?}");
    let last = &logs[n - 1];
    assert_eq!(last.level, "warn", "{logs:?}");
    assert!(
        last.message.starts_with(
            "cancelled as its success was being recorded, which the cancel overrules; its outputs are removed"
        ),
        "{last:?}"
    );
    assert!(
        last.fields["objects_removed"].as_u64().unwrap() >= 2,
        "{last:?}"
    );
}

/// A cancel that lands after the run finished, while its outputs are being
/// stored, wins over them: the job ends cancelled, its output records and
/// objects are removed (only the log stays), usage is not counted, and the
/// log says why. The cancel is asked for by a trigger in the database the
/// moment the first output is recorded (a user clicking cancel then), with a
/// heartbeat too slow to relay it: the worker must ask the store itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_outputs_are_stored_removes_them() {
    let (s, job, logs) = clean_cancelled_late(
        "CREATE TRIGGER cancel_on_output AFTER INSERT ON artifacts WHEN NEW.kind <> 'log' \
         BEGIN UPDATE jobs SET cancel_requested = 1 WHERE id = NEW.job_id; END",
    )
    .await;
    let keys = s
        .arts
        .list(&format!("jobs/{}/{}", s.t.id, job.id))
        .await
        .unwrap();
    assert_eq!(
        keys,
        [format!("jobs/{}/{}/logs.jsonl", s.t.id, job.id)],
        "the output and its sidecar are removed"
    );
    let last = logs.last().unwrap();
    assert_eq!(last.level, "warn", "{logs:?}");
    assert!(
        last.message.contains("while its outputs were being stored"),
        "{last:?}"
    );
    assert!(last.fields["artifacts_removed"].as_u64().unwrap() >= 1);
    assert!(last.fields["objects_removed"].as_u64().unwrap() >= 2);
    assert!(!logs.iter().any(|l| l.message == "succeeded"), "{logs:?}");
}
