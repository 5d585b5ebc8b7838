//! One conformance suite, run against SQLite and against a real PostgreSQL
//! server that the test starts on loopback (or the one `TAMIS_TEST_POSTGRES_URL`
//! names: an admin URL the test may create databases with).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::json;
use tamis_store::{
    Completion, Heartbeat, JobFilter, JobState, NewJob, Progress, Store, StoreError, now_ms,
};

fn job(tenant: &str, key: Option<&str>) -> NewJob {
    NewJob {
        tenant_id: tenant.into(),
        kind: "profile".into(),
        dataset_id: None,
        params: json!({"plan": null}),
        idempotency_key: key.map(String::from),
        max_attempts: None,
        created_by: "usr_test".into(),
    }
}

fn progress(pass: Option<&str>, p: f64) -> Progress {
    Progress {
        pass: pass.map(String::from),
        progress: p,
        eta_ms: Some(1000),
        metrics: None,
    }
}

async fn suite(url: &str) {
    let mut s = Store::connect(url).await.unwrap();
    s.migrate().await.unwrap();
    s.migrate().await.unwrap(); // a second run applies nothing
    s.ping().await.unwrap();

    // Tenants, users, login.
    let a = s.create_tenant("acme", 1, Some(1000)).await.unwrap();
    let b = s.create_tenant("beta", 2, None).await.unwrap();
    assert!(matches!(
        s.create_tenant("acme", 1, None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.tenant(&a.id).await.unwrap(), a);
    let names: Vec<String> = s
        .tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["acme", "beta"]);
    let lifted = s.update_tenant(&a.id, Some(3), Some(None)).await.unwrap();
    assert_eq!(
        (lifted.max_concurrent_jobs, lifted.rows_per_month),
        (3, None)
    );
    assert_eq!(s.tenant(&a.id).await.unwrap(), lifted);
    let a = s
        .update_tenant(&a.id, Some(1), Some(Some(1000)))
        .await
        .unwrap();
    assert!(matches!(
        s.update_tenant("tn_nope", Some(1), None).await,
        Err(StoreError::NotFound(_))
    ));
    let ua = s
        .create_user(&a.id, "Ann@Acme.test", "password-a1", "admin")
        .await
        .unwrap();
    let ub = s
        .create_user(&b.id, "bob@beta.test", "password-b1", "viewer")
        .await
        .unwrap();
    assert!(
        s.create_user(&a.id, "x@y.test", "password-x", "god")
            .await
            .is_err()
    );
    assert!(matches!(
        s.create_user(&b.id, "ann@acme.test", "password-z9", "viewer")
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.login("ann@acme.test", "password-a1")
            .await
            .unwrap()
            .unwrap()
            .id,
        ua.id
    );
    assert!(
        s.login("ann@acme.test", "password-a2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.login("nobody@acme.test", "password-a1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        s.user(&b.id, &ua.id).await,
        Err(StoreError::NotFound(_))
    ));
    // Role, disabled and password changes; another tenant's user is not found.
    let uc = s
        .create_user(&b.id, "cy@beta.test", "password-c1", "viewer")
        .await
        .unwrap();
    let changed = s
        .update_user(
            &b.id,
            &uc.id,
            Some("engineer"),
            Some(true),
            Some("password-c2"),
        )
        .await
        .unwrap();
    assert_eq!(
        (changed.role.as_str(), changed.disabled),
        ("engineer", true)
    );
    let stored = s.user(&b.id, &uc.id).await.unwrap();
    assert_eq!((stored.role.as_str(), stored.disabled), ("engineer", true));
    assert!(
        s.login("cy@beta.test", "password-c2")
            .await
            .unwrap()
            .is_none()
    );
    s.update_user(&b.id, &uc.id, None, Some(false), None)
        .await
        .unwrap();
    assert!(
        s.login("cy@beta.test", "password-c1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.login("cy@beta.test", "password-c2")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(s.user(&b.id, &uc.id).await.unwrap().role, "engineer");
    assert!(matches!(
        s.update_user(&a.id, &uc.id, None, Some(true), None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.update_user(&b.id, &uc.id, Some("god"), None, None).await,
        Err(StoreError::Conflict(_))
    ));

    // API keys: stored hashed, found by the secret, refused when forged, revoked or expired.
    let (k, secret) = s
        .create_api_key(&ua, "ci", &["action:profile".into()], "premium", None)
        .await
        .unwrap();
    let (found, user) = s.find_api_key(&secret).await.unwrap().unwrap();
    assert_eq!(found.id, k.id);
    assert_eq!(found.scopes, vec!["action:profile".to_string()]);
    assert_eq!(found.tier, "premium");
    assert_eq!(user.id, ua.id);
    let mut forged = secret.clone();
    forged.replace_range(forged.len() - 4.., "0000");
    if forged != secret {
        assert!(s.find_api_key(&forged).await.unwrap().is_none());
    }
    assert!(s.find_api_key("not a key").await.unwrap().is_none());
    assert!(matches!(
        s.revoke_api_key(&b.id, &k.id).await,
        Err(StoreError::NotFound(_))
    ));
    s.revoke_api_key(&a.id, &k.id).await.unwrap();
    assert!(s.find_api_key(&secret).await.unwrap().is_none());
    let (_, expired) = s
        .create_api_key(&ub, "old", &["*".into()], "free", Some(now_ms() - 1))
        .await
        .unwrap();
    assert!(s.find_api_key(&expired).await.unwrap().is_none());

    // Datasets and versions, scoped to their tenant.
    let d = s.create_dataset(&a.id, "customers", &ua.id).await.unwrap();
    assert!(matches!(
        s.create_dataset(&a.id, "customers", &ua.id).await,
        Err(StoreError::Conflict(_))
    ));
    let db = s.create_dataset(&b.id, "customers", &ub.id).await.unwrap();

    // Saved plans, users and keys are listed per tenant.
    let plan = json!({"steps": [{"id": "trim_1", "type": "trim", "columns": ["name"]}]});
    let pa = s
        .save_plan(&a.id, Some(&d.id), "first", &plan, &ua.id)
        .await
        .unwrap();
    s.save_plan(&a.id, None, "loose", &plan, &ua.id)
        .await
        .unwrap();
    assert_eq!(s.plan(&a.id, &pa.id).await.unwrap(), pa);
    assert!(matches!(
        s.plan(&b.id, &pa.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.save_plan(&b.id, Some(&d.id), "x", &plan, &ub.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.plans(&a.id, None).await.unwrap().len(), 2);
    assert_eq!(s.plans(&a.id, Some(&d.id)).await.unwrap(), vec![pa]);
    assert!(s.plans(&b.id, None).await.unwrap().is_empty());
    assert_eq!(s.users(&a.id).await.unwrap().len(), 1);
    assert_eq!(s.users(&b.id).await.unwrap()[0].id, ub.id);
    assert!(matches!(
        s.dataset(&b.id, &d.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.datasets(&b.id).await.unwrap(), vec![db.clone()]);
    let v1 = s
        .add_version(&a.id, &d.id, "uploads/a/1.csv", "abc", 10)
        .await
        .unwrap();
    let v2 = s
        .add_version(&a.id, &d.id, "uploads/a/2.csv", "def", 20)
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert!(s.add_version(&b.id, &d.id, "x", "y", 1).await.is_err());
    s.set_profile(
        &a.id,
        &v2.id,
        &json!({"id": "Int64"}),
        &json!({"rows": 3}),
        3,
    )
    .await
    .unwrap();
    assert!(
        s.set_profile(&b.id, &v2.id, &json!({}), &json!({}), 0)
            .await
            .is_err()
    );
    let vs = s.versions(&a.id, &d.id).await.unwrap();
    assert_eq!(vs.len(), 2);
    assert_eq!(vs[1].profile, Some(json!({"rows": 3})));
    assert_eq!(vs[1].rows, Some(3));
    assert!(s.versions(&b.id, &d.id).await.is_err());
    let brief = s.versions_brief(&d).await.unwrap();
    assert_eq!((brief[1].profile.as_ref(), brief[1].rows), (None, Some(3)));
    assert_eq!(brief[1].checksum, vs[1].checksum);
    let text = s.profile_text(&a.id, &vs[1].id).await.unwrap().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        json!({"rows": 3})
    );
    assert_eq!(s.profile_text(&a.id, &vs[0].id).await.unwrap(), None);
    assert!(s.profile_text(&b.id, &vs[1].id).await.is_err());
    // The listing with each dataset's latest version: the one dataset with
    // versions, and one without; none of another tenant's.
    let empty = s.create_dataset(&a.id, "empty", &ua.id).await.unwrap();
    let listed = s.datasets_latest(&a.id).await.unwrap();
    let datasets = s.datasets(&a.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|x| &x.0).collect::<Vec<_>>(),
        datasets.iter().collect::<Vec<_>>()
    );
    for (ds, n, latest) in &listed {
        if ds.id == d.id {
            assert_eq!((*n, latest.as_ref()), (2, brief.last()));
        } else {
            assert_eq!((ds.id.as_str(), *n, latest), (empty.id.as_str(), 0, &None));
        }
    }
    let other = s.datasets_latest(&b.id).await.unwrap();
    assert_eq!(other, vec![(db.clone(), 0, None)]);
    // Its query reads one tenant's versions through an index.
    let index_sql = if url.starts_with("sqlite") {
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'dataset_versions_tenant'"
    } else {
        "SELECT CAST(indexname AS TEXT) AS name FROM pg_indexes WHERE indexname = 'dataset_versions_tenant'"
    };
    let found = sqlx::query(index_sql).fetch_all(s.pool()).await.unwrap();
    assert_eq!(
        found.len(),
        1,
        "the dataset_versions_tenant index is missing"
    );
    // The brief listing takes a dataset, which only its own tenant can get.
    assert!(s.dataset(&b.id, &d.id).await.is_err());

    // Audit and usage.
    s.audit(
        Some(&a.id),
        &ua.id,
        "dataset.create",
        &d.id,
        &json!({"name": "customers"}),
    )
    .await
    .unwrap();
    let log = s.audit_log(&a.id, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].action, "dataset.create");
    assert_eq!(log[0].details, json!({"name": "customers"}));
    assert!(s.audit_log(&b.id, 10).await.unwrap().is_empty());
    assert_eq!(s.add_usage(&a.id, "2026-11", 500).await.unwrap(), 500);
    assert_eq!(s.add_usage(&a.id, "2026-11", 300).await.unwrap(), 800);
    assert_eq!(s.usage(&b.id, "2026-11").await.unwrap(), 0);

    // Jobs: idempotent submission, tenant scoping.
    let (j1, created) = s.enqueue(&job(&a.id, Some("k1"))).await.unwrap();
    assert!(created && j1.state == JobState::Queued);
    let (again, created) = s.enqueue(&job(&a.id, Some("k1"))).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, j1.id);
    let (other_key, created) = s.enqueue(&job(&b.id, Some("k1"))).await.unwrap();
    assert!(created && other_key.id != j1.id, "keys are per tenant");
    assert!(matches!(
        s.job(&b.id, &j1.id).await,
        Err(StoreError::NotFound(_))
    ));
    let listed = s
        .jobs(
            &a.id,
            &JobFilter {
                state: Some(JobState::Queued),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|j| &j.id).collect::<Vec<_>>(),
        vec![&j1.id]
    );

    // Leases: oldest first; a tenant at its limit is skipped for the next tenant.
    let l1 = s.lease("w1", 30_000).await.unwrap().unwrap();
    assert_eq!(l1.id, j1.id);
    assert_eq!((l1.state, l1.attempts), (JobState::Running, 1));
    let (j2, _) = s.enqueue(&job(&a.id, None)).await.unwrap();
    let l2 = s.lease("w2", 30_000).await.unwrap().unwrap();
    assert_eq!(l2.id, other_key.id, "acme runs one job at a time");
    assert!(s.lease("w3", 30_000).await.unwrap().is_none());

    // Only the lease holder may act; a finished job never finishes twice.
    assert_eq!(
        s.heartbeat(&j1.id, "w1", 30_000, &progress(Some("pass1"), 0.5))
            .await
            .unwrap(),
        Heartbeat::Continue
    );
    let seen = s.job(&a.id, &j1.id).await.unwrap();
    assert_eq!((seen.pass.as_deref(), seen.progress), (Some("pass1"), 0.5));
    assert!(matches!(
        s.heartbeat(&j1.id, "w2", 30_000, &progress(None, 0.6))
            .await,
        Err(StoreError::LeaseLost(_))
    ));
    assert!(matches!(
        s.complete(&j1.id, "w2", &json!({}), &json!({})).await,
        Err(StoreError::LeaseLost(_))
    ));
    assert_eq!(
        s.complete(
            &j1.id,
            "w1",
            &json!({"rows": 3}),
            &json!({"rows_processed": 3}),
        )
        .await
        .unwrap(),
        Completion::Succeeded
    );
    assert!(matches!(
        s.complete(&j1.id, "w1", &json!({}), &json!({})).await,
        Err(StoreError::LeaseLost(_))
    ));
    let done = s.job(&a.id, &j1.id).await.unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(json!({"rows": 3})));
    assert_eq!(done.metrics, json!({"rows_processed": 3}));
    assert_eq!(done.progress, 1.0);
    assert!(done.finished_at.is_some() && done.lease_owner.is_none());

    // A transient failure is retried after a backoff; a bad input fails at once.
    let l = s.lease("w1", 30_000).await.unwrap().unwrap();
    assert_eq!(l.id, j2.id);
    assert_eq!(
        s.fail(&j2.id, "w1", "disk full", true).await.unwrap(),
        JobState::Queued
    );
    let back = s.job(&a.id, &j2.id).await.unwrap();
    assert!(back.run_after > now_ms() + 500, "backoff");
    assert!(
        s.lease("w1", 30_000).await.unwrap().is_none(),
        "not before its backoff"
    );
    s.fail(&l2.id, "w2", "bad plan", false).await.unwrap();
    assert_eq!(s.job(&b.id, &l2.id).await.unwrap().state, JobState::Failed);

    // A dead worker's lease runs out: requeued, then failed after the last attempt.
    let c = s.create_tenant("gamma", 5, None).await.unwrap();
    let (j3, _) = s
        .enqueue(&NewJob {
            max_attempts: Some(2),
            ..job(&c.id, None)
        })
        .await
        .unwrap();
    let dead = s.lease("dead-1", -1).await.unwrap().unwrap();
    assert_eq!(dead.id, j3.id);
    assert_eq!(s.reap_expired().await.unwrap(), (1, 0));
    let requeued = s.job(&c.id, &j3.id).await.unwrap();
    assert_eq!(requeued.state, JobState::Queued);
    assert!(requeued.error.unwrap().contains("stopped heartbeating"));
    assert!(matches!(
        s.complete(&j3.id, "dead-1", &json!({}), &json!({})).await,
        Err(StoreError::LeaseLost(_))
    ));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // j2 (acme) is runnable again too; take both and let them lapse.
    let mut taken = [
        s.lease("dead-2", -1).await.unwrap().unwrap(),
        s.lease("dead-2", -1).await.unwrap().unwrap(),
    ];
    taken.sort_by(|x, y| x.id.cmp(&y.id));
    assert!(taken.iter().any(|t| t.id == j3.id && t.attempts == 2));
    let (requeued, failed) = s.reap_expired().await.unwrap();
    assert_eq!(failed, 1, "j3 used its last attempt");
    assert_eq!(requeued, 1, "j2 has a third attempt");
    assert_eq!(s.job(&c.id, &j3.id).await.unwrap().state, JobState::Failed);

    // Cancellation: a queued job at once, a running one at its next heartbeat.
    let (q, _) = s.enqueue(&job(&c.id, None)).await.unwrap();
    assert_eq!(s.cancel(&c.id, &q.id).await.unwrap(), JobState::Cancelled);
    assert!(matches!(
        s.cancel(&c.id, &q.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.cancel(&a.id, &q.id).await,
        Err(StoreError::NotFound(_))
    ));
    let (r, _) = s.enqueue(&job(&c.id, None)).await.unwrap();
    let running = s.lease("w9", 30_000).await.unwrap().unwrap();
    assert_eq!(running.id, r.id);
    assert_eq!(s.cancel(&c.id, &r.id).await.unwrap(), JobState::Running);
    assert_eq!(
        s.heartbeat(&r.id, "w9", 30_000, &progress(None, 0.1))
            .await
            .unwrap(),
        Heartbeat::Cancel
    );
    s.finish_cancelled(&r.id, "w9").await.unwrap();
    assert_eq!(
        s.job(&c.id, &r.id).await.unwrap().state,
        JobState::Cancelled
    );
    // A cancel asked for before a success is recorded wins over it: the job
    // stays held and running until the worker ends it cancelled.
    let (r2, _) = s.enqueue(&job(&c.id, None)).await.unwrap();
    assert_eq!(s.lease("w9", 30_000).await.unwrap().unwrap().id, r2.id);
    assert!(!s.cancel_requested(&r2.id, "w9").await.unwrap());
    assert_eq!(s.cancel(&c.id, &r2.id).await.unwrap(), JobState::Running);
    assert!(s.cancel_requested(&r2.id, "w9").await.unwrap());
    assert_eq!(
        s.complete(&r2.id, "w9", &json!({"rows": 1}), &json!({}))
            .await
            .unwrap(),
        Completion::CancelRequested
    );
    let held = s.job(&c.id, &r2.id).await.unwrap();
    assert_eq!((held.state, held.result), (JobState::Running, None));
    // Its outputs' records go, but only for the worker holding it.
    let art = |n: &str| tamis_store::Artifact {
        id: format!("art_{}_{n}", r2.id),
        tenant_id: c.id.clone(),
        job_id: Some(r2.id.clone()),
        dataset_id: None,
        kind: n.into(),
        path: format!("jobs/{}/{}/{n}", c.id, r2.id),
        bytes: 1,
        sha256: "00".into(),
        created_at: now_ms(),
    };
    for n in ["output", "report"] {
        s.add_artifact(&art(n)).await.unwrap();
    }
    assert!(matches!(
        s.remove_job_artifacts(&c.id, &r2.id, "w8").await,
        Err(StoreError::LeaseLost(_))
    ));
    assert_eq!(s.artifacts(&c.id, &r2.id).await.unwrap().len(), 2);
    assert_eq!(
        s.remove_job_artifacts(&c.id, &r2.id, "w9").await.unwrap(),
        2
    );
    assert_eq!(
        s.remove_job_artifacts(&c.id, &r2.id, "w9").await.unwrap(),
        0
    );
    assert!(s.artifacts(&c.id, &r2.id).await.unwrap().is_empty());
    assert!(matches!(
        s.cancel_requested(&r2.id, "w8").await,
        Err(StoreError::LeaseLost(_))
    ));
    s.finish_cancelled(&r2.id, "w9").await.unwrap();
    assert_eq!(
        s.job(&c.id, &r2.id).await.unwrap().state,
        JobState::Cancelled
    );
    assert!(matches!(
        s.finish_cancelled(&r2.id, "w9").await,
        Err(StoreError::LeaseLost(_))
    ));

    // Logs: numbered, replayed from a sequence number, scoped.
    for m in ["read", "pass1", "pass2"] {
        s.append_log(&r.id, "info", m, &json!({"m": m}))
            .await
            .unwrap();
    }
    let lines = s.logs_since(&c.id, &r.id, 1, 100).await.unwrap();
    assert_eq!(
        lines
            .iter()
            .map(|l| (l.seq, l.message.as_str()))
            .collect::<Vec<_>>(),
        vec![(2, "pass1"), (3, "pass2")]
    );
    assert!(s.logs_since(&a.id, &r.id, 0, 100).await.is_err());

    // The token vault: per tenant, a token kept once, many at a time.
    let entries: Vec<(String, String)> = (0..1203)
        .map(|i| (format!("tok_{i:04}"), format!("enc:k1:{i:x}")))
        .collect();
    assert_eq!(s.put_vault_entries(&a.id, &entries).await.unwrap(), 1203);
    let again = vec![
        ("tok_0001".to_string(), "enc:k1:other".to_string()),
        ("tok_new".to_string(), "enc:k1:new".to_string()),
    ];
    assert_eq!(s.put_vault_entries(&a.id, &again).await.unwrap(), 1);
    let ask: Vec<String> = ["tok_0001", "tok_1202", "tok_missing", "tok_new"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        s.vault_entries(&a.id, &ask).await.unwrap(),
        vec![
            ("tok_0001".to_string(), "enc:k1:1".to_string()),
            ("tok_1202".to_string(), "enc:k1:4b2".to_string()),
            ("tok_new".to_string(), "enc:k1:new".to_string()),
        ]
    );
    let many: Vec<String> = entries.iter().map(|e| e.0.clone()).collect();
    assert_eq!(s.vault_entries(&a.id, &many).await.unwrap().len(), 1203);
    assert!(s.vault_entries(&b.id, &ask).await.unwrap().is_empty());
    // Walked in pages, in token order, only the tenant's own.
    s.put_vault_entries(&b.id, &again).await.unwrap();
    let mut walked = Vec::new();
    let mut after = String::new();
    loop {
        let page = s.vault_page(&a.id, &after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 500);
        after = last.0.clone();
        walked.extend(page);
    }
    assert_eq!(walked.len(), 1204);
    assert!(walked.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(walked[0], ("tok_0000".to_string(), "enc:k1:0".to_string()));
    // Re-encrypted in place: held tokens change, others are not added.
    let rekeyed = vec![
        ("tok_0001".to_string(), "enc:k2:1".to_string()),
        ("tok_nope".to_string(), "enc:k2:nope".to_string()),
    ];
    assert_eq!(s.set_vault_entries(&a.id, &rekeyed).await.unwrap(), 1);
    let ask2: Vec<String> = ["tok_0001", "tok_nope"].map(String::from).to_vec();
    assert_eq!(
        s.vault_entries(&a.id, &ask2).await.unwrap(),
        vec![("tok_0001".to_string(), "enc:k2:1".to_string())]
    );
    assert_eq!(
        s.vault_entries(&b.id, &ask2).await.unwrap(),
        vec![("tok_0001".to_string(), "enc:k1:other".to_string())],
        "another tenant's entry keeps its key"
    );

    // The queue's maximum depth.
    let depth = s.queue_depth().await.unwrap();
    s.max_queue_depth = depth;
    assert!(matches!(
        s.enqueue(&job(&c.id, None)).await,
        Err(StoreError::QueueFull(_))
    ));
    s.max_queue_depth = 10_000;

    // Concurrent workers lease every job exactly once.
    let d4 = s.create_tenant("delta", 100, None).await.unwrap();
    let mut want = HashSet::new();
    for _ in 0..40 {
        want.insert(s.enqueue(&job(&d4.id, None)).await.unwrap().0.id);
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        let want = want.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(j) = s.lease(&format!("worker-{w}"), 60_000).await.unwrap() {
                if want.contains(&j.id) {
                    mine.push(j.id.clone());
                }
                s.complete(&j.id, &format!("worker-{w}"), &json!({}), &json!({}))
                    .await
                    .unwrap();
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 40, "each job leased once");
    assert_eq!(unique, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta/tamis.db").display());
    suite(&url).await;
    assert!(dir.path().join("meta/tamis.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conformance() {
    let pg = Postgres::start();
    let admin = pg.url("postgres");
    // A database of its own, so reruns against one server start empty.
    let name = format!("tamis_test_{}", tamis_store::secret::random_hex(4));
    let pool = sqlx::postgres::PgPool::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap();
    let url = pg.url(&name);
    let s = Store::connect(&url).await.unwrap();
    assert_eq!(s.backend(), tamis_store::Backend::Postgres);
    drop(s);
    suite(&url).await;
}

#[tokio::test]
async fn bad_urls_are_named() {
    let e = Store::connect("mysql://x").await.unwrap_err().to_string();
    assert!(e.contains("mysql://x") && e.contains("sqlite://"), "{e}");
}

/// A PostgreSQL server on loopback in a temporary directory (stopped on drop),
/// or the one `TAMIS_TEST_POSTGRES_URL` names.
struct Postgres {
    base: String,
    dir: Option<(tempfile::TempDir, PathBuf)>,
}

impl Postgres {
    fn start() -> Postgres {
        if let Ok(url) = std::env::var("TAMIS_TEST_POSTGRES_URL") {
            let base = url
                .rsplit_once('/')
                .map_or(url.clone(), |(b, _)| b.to_string());
            return Postgres { base, dir: None };
        }
        let bin = pg_bin().expect(
            "PostgreSQL is not installed: scripts/test.sh installs it (Debian `postgresql`), \
             or set TAMIS_TEST_POSTGRES_URL=postgres://USER@HOST:PORT/postgres",
        );
        let dir = tempfile::Builder::new()
            .prefix("tamis-pg")
            .tempdir()
            .unwrap();
        let root = is_root();
        let run = |prog: &str, args: &[&str]| {
            let exe = bin.join(prog);
            let mut c = if root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&exe);
                c
            } else {
                Command::new(&exe)
            };
            let out = c.args(args).output().unwrap();
            assert!(
                out.status.success(),
                "{prog} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        if root {
            let ok = Command::new("chown")
                .args(["postgres:postgres", &dir.path().display().to_string()])
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let data = dir.path().join("data");
        let d = dir.path().display().to_string();
        let data_s = data.display().to_string();
        run(
            "initdb",
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        let port = free_port();
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {d} -c fsync=off -c full_page_writes=off"
        );
        run(
            "pg_ctl",
            &[
                "-D",
                &data_s,
                "-l",
                &format!("{d}/log"),
                "-w",
                "-o",
                &opts,
                "start",
            ],
        );
        Postgres {
            base: format!("postgres://postgres@127.0.0.1:{port}"),
            dir: Some((dir, bin)),
        }
    }

    fn url(&self, db: &str) -> String {
        format!("{}/{db}", self.base)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some((dir, bin)) = &self.dir {
            let data = dir.path().join("data").display().to_string();
            let exe = bin.join("pg_ctl");
            let mut c = if is_root() {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(exe);
                c
            } else {
                Command::new(exe)
            };
            let _ = c
                .args(["-D", &data, "-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

/// The newest `/usr/lib/postgresql/N/bin` with initdb.
fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|x| x.1)
}

fn is_root() -> bool {
    // PostgreSQL refuses to run as root; `id -u` says whether we are.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
