//! Against real services: the job WebSocket over a socket (replay, live
//! lines, resume after a reconnect), rate-limit counters shared through a real
//! `redis-server`, and the whole data path with its artifacts in a real S3
//! server (`s3s-fs`), each started on loopback.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Options, S3Server, example, harness};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tamis_server::{Limiter, Tiers};
use tokio_tungstenite::tungstenite::Message;

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<Value> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a message within 30 s")?;
        match m.unwrap() {
            Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_replays_streams_and_resumes() {
    let h = harness(Options::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let eng = h.login("engineer@acme.test").await;
    let bytes = std::fs::read(example()).unwrap();
    let up = h.upload(&eng, "customers.csv", &bytes, None).await.json();
    let job = up["job_id"].as_str().unwrap().to_string();

    // Unauthenticated: refused before the upgrade.
    let url = format!("ws://{addr}/ws/jobs/{job}");
    assert!(tokio_tungstenite::connect_async(&url).await.is_err());

    // Connect while the job is queued; run it; lines arrive live, then `end`.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}?access_token={eng}"))
        .await
        .unwrap();
    let first = next_json(&mut ws).await.unwrap();
    assert_eq!(first["type"], "status");
    assert_eq!(first["state"], "queued");
    let worker = {
        let (h2, cfg) = (h.state.clone(), h.worker("w"));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            tamis_service::worker::run_once(h2.store(), &cfg)
                .await
                .unwrap()
        })
    };
    let mut seqs = Vec::new();
    let mut states = Vec::new();
    let end = loop {
        let m = next_json(&mut ws)
            .await
            .expect("an end message before close");
        match m["type"].as_str().unwrap() {
            "log" => seqs.push(m["seq"].as_i64().unwrap()),
            "status" => states.push(m["state"].as_str().unwrap().to_string()),
            "end" => break m,
            t => panic!("unknown message type {t}"),
        }
    };
    worker.await.unwrap();
    assert_eq!(end["state"], "succeeded");
    assert!(
        states.contains(&"running".to_string()) || seqs.len() >= 2,
        "{states:?}"
    );
    let n = seqs.len() as i64;
    assert!(n >= 2, "{seqs:?}");
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "in order, no gaps");
    assert_eq!(end["last_seq"], n);

    // Reconnect: the whole history is replayed.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}?access_token={eng}"))
        .await
        .unwrap();
    let mut replay = Vec::new();
    while let Some(m) = next_json(&mut ws).await {
        if m["type"] == "log" {
            replay.push(m["seq"].as_i64().unwrap());
        }
    }
    assert_eq!(replay, seqs);
    // Resume after line 1: no repeat.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}?access_token={eng}&since=1"))
        .await
        .unwrap();
    let mut resumed = Vec::new();
    while let Some(m) = next_json(&mut ws).await {
        if m["type"] == "log" {
            resumed.push(m["seq"].as_i64().unwrap());
        }
    }
    assert_eq!(resumed, seqs[1..].to_vec());
    let _ = ws.close(None).await;
    let _ = ws.send(Message::Close(None)).await;
}

struct Redis {
    dir: tempfile::TempDir,
    port: u16,
}

impl Redis {
    /// A Redis on a free port, or None (the test skips) when redis-server is
    /// not installed and TAMIS_REQUIRE_REDIS is unset.
    fn start_or_skip() -> Option<Redis> {
        let r = Redis::start();
        if r.is_none() {
            assert!(
                std::env::var_os("TAMIS_REQUIRE_REDIS").is_none(),
                "redis-server is not installed (scripts/test.sh installs it)"
            );
            eprintln!("skipped: redis-server is not installed");
        }
        r
    }

    fn start() -> Option<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Redis::start_on(port)
    }

    fn start_on(port: u16) -> Option<Redis> {
        let bin = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("redis.pid");
        let st = Command::new(bin)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--pidfile",
            ])
            .arg(&pidfile)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Redis { dir, port });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {port}");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("redis.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// Two servers pointed at one Redis share each caller's allowance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_counters_are_shared_between_servers() {
    let Some(r) = Redis::start_or_skip() else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}/", r.port);
    let tiers = Tiers::parse("free=3", 3600).unwrap();
    let a = Limiter::redis(&url, tiers.clone()).await.unwrap();
    let b = Limiter::redis(&url, tiers).await.unwrap();
    a.check("usr_1", "free").await.unwrap();
    b.check("usr_1", "free").await.unwrap();
    a.check("usr_1", "free").await.unwrap();
    let e = b.check("usr_1", "free").await.unwrap_err();
    assert_eq!(e.status, 429);
    assert!(e.retry_after.is_some());
    b.check("usr_2", "free").await.unwrap();
    // A bad URL is named.
    let err = Limiter::redis("redis://127.0.0.1:1/", Tiers::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

/// While Redis is down, limits still hold (the server counts alone) and
/// requests are answered; when Redis is back, counting is shared again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_neither_lifts_the_limits_nor_stops_the_api() {
    let Some(r) = Redis::start_or_skip() else {
        return;
    };
    let port = r.port;
    let url = format!("redis://127.0.0.1:{port}/");
    let tiers = Tiers::parse("free=3", 3600).unwrap();
    let a = Limiter::redis(&url, tiers.clone()).await.unwrap();
    a.check("usr_1", "free").await.unwrap();

    drop(r);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each request is answered (Redis is waited for at most REDIS_WAIT), and
    // the allowance is counted in this server: the fourth is refused.
    for _ in 0..3 {
        a.check("usr_2", "free").await.unwrap();
    }
    let e = a.check("usr_2", "free").await.unwrap_err();
    assert_eq!(e.status, 429);

    // Redis back on the same port: the limiter reconnects by itself. Each
    // probe is a new caller (never refused); once one is counted in Redis,
    // the counting is shared again.
    let _r = Redis::start_on(port).unwrap();
    let mut direct = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut back = false;
    for i in 0..100 {
        a.check(&format!("probe_{i}"), "free").await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("tamis:rl:probe_*")
            .query_async(&mut direct)
            .await
            .unwrap();
        if !keys.is_empty() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the limiter did not reconnect to Redis");
    let b = Limiter::redis(&url, tiers).await.unwrap();
    a.check("usr_3", "free").await.unwrap();
    b.check("usr_3", "free").await.unwrap();
    a.check("usr_3", "free").await.unwrap();
    assert_eq!(b.check("usr_3", "free").await.unwrap_err().status, 429);
}

/// With `--artifacts s3://…`, uploads, job inputs and outputs, provenance,
/// lineage, the run's audit log and the job log all go through the S3 server:
/// nothing lands in the data directory's artifact folder, and /ready tells
/// when the store goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_live_in_s3_with_the_same_code() {
    let Some(mut s3) = S3Server::start("tamis-test") else {
        return;
    };
    // The conformance suite the local store passes, against S3.
    let direct = tamis_store::Artifacts::open_with(
        "s3://tamis-test/suite",
        s3.dir.path().join("scratch"),
        s3.options(),
    )
    .unwrap();
    assert!(!direct.is_local());
    tamis_store::artifacts::conformance::run(&direct, "c", &s3.dir.path().join("work")).await;
    // A put dropped half-way (a cancelled job) is aborted: the server keeps
    // no parts of it (s3s-fs holds a multipart upload as `.upload*` files).
    let held = |prefix: &str| {
        std::fs::read_dir(s3.dir.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
    };
    // Dropped once a part has arrived (the upload has its id by then).
    tamis_store::artifacts::conformance::abandon_upload(
        &direct,
        "c",
        &s3.dir.path().join("work"),
        || held(".upload_id-"),
    )
    .await;
    tamis_store::artifacts::conformance::eventually("parts of a dropped upload remain", || {
        !held(".upload")
    })
    .await;

    let h = harness(Options {
        artifacts: Some(("s3://tamis-test/platform".into(), s3.options())),
        ingest_urls: vec!["s3://tamis-test/incoming/".into()],
        ..Default::default()
    })
    .await;
    let bucket = s3.dir.path().join("tamis-test/platform");
    let eng = h.login("engineer@acme.test").await;
    let bytes = std::fs::read(example()).unwrap();
    let up = h.upload(&eng, "customers.csv", &bytes, None).await;
    assert_eq!(up.status, 202, "{}", up.text());
    let ds = up.json()["dataset_id"].as_str().unwrap().to_string();
    let stored: Vec<_> = walk(&bucket.join("datasets"));
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(std::fs::read(&stored[0]).unwrap(), bytes);

    // The profile job reads the version from S3.
    let done = h.drain().await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].1, tamis_store::JobState::Succeeded);
    let prof = h.get(&format!("/api/v1/datasets/{ds}/profile"), &eng).await;
    assert_eq!(prof.status, 200, "{}", prof.text());
    assert!(prof.json()["profile"]["dataset"]["rows"].as_u64().unwrap() > 1900);

    // A clean job: output, sidecar and log in S3; every read comes back from it.
    let plan = json!({"steps": [
        {"type": "dedupe_exact"},
        {"type": "impute", "columns": ["age"], "method": "median"}
    ]});
    let r = h
        .call(
            "POST",
            "/api/v1/jobs",
            Some(&eng),
            Some(json!({"kind": "clean", "dataset_id": ds, "plan": plan})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let clean = r.json()["job"]["id"].as_str().unwrap().to_string();
    assert_eq!(h.drain().await[0].1, tamis_store::JobState::Succeeded);
    let jobs = walk(&bucket.join("jobs"));
    for f in [
        "clean.parquet",
        "audit.jsonl",
        "lineage.json",
        "cells.parquet",
        "logs.jsonl",
    ] {
        assert!(
            jobs.iter().any(|p| p.ends_with(f)),
            "{f} not in S3: {jobs:?}"
        );
    }
    let out = h
        .get(&format!("/api/v1/jobs/{clean}/artifacts/output"), &eng)
        .await;
    assert_eq!(out.status, 200);
    let in_s3 = jobs.iter().find(|p| p.ends_with("clean.parquet")).unwrap();
    assert_eq!(out.bytes, std::fs::read(in_s3).unwrap());
    let csv = h
        .get(
            &format!("/api/v1/jobs/{clean}/artifacts/output?format=csv"),
            &eng,
        )
        .await;
    assert!(csv.text().starts_with("customer_id,"), "{}", csv.text());
    let prov = h
        .get(&format!("/api/v1/jobs/{clean}/provenance?limit=3"), &eng)
        .await
        .json();
    assert!(prov["total_cells"].as_u64().unwrap() > 0, "{prov}");
    let lin = h
        .get(&format!("/api/v1/jobs/{clean}/lineage"), &eng)
        .await
        .json();
    assert_eq!(lin["intact"], true, "{lin}");
    let trail = h
        .get(&format!("/api/v1/jobs/{clean}/audit"), &eng)
        .await
        .json();
    assert!(!trail["run"].as_array().unwrap().is_empty(), "{trail}");
    let down = h
        .get(&format!("/api/v1/datasets/{ds}/download"), &eng)
        .await;
    assert_eq!(down.bytes, bytes);
    assert_eq!(
        down.headers["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    // Ingest from S3: only under the server's ingest prefixes, plain keys only.
    let bucket_root = tamis_store::Artifacts::open_with(
        "s3://tamis-test",
        s3.dir.path().join("scratch"),
        s3.options(),
    )
    .unwrap();
    bucket_root
        .put_file("incoming/q3/orders.csv", &example())
        .await
        .unwrap();
    bucket_root
        .put_file("private/orders.csv", &example())
        .await
        .unwrap();
    let ingest = |url: &str| {
        h.call(
            "POST",
            "/api/v1/datasets/ingest",
            Some(&eng),
            Some(json!({ "url": url })),
        )
    };
    let r = ingest("s3://tamis-test/incoming/q3/orders.csv").await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["dataset"], "orders");
    assert_eq!(r.json()["sha256"], up.json()["sha256"]);
    for (url, status) in [
        ("s3://tamis-test/private/orders.csv", 403),
        ("s3://tamis-test/incoming/../private/orders.csv", 400),
        ("s3://tamis-test/incomingx/orders.csv", 403),
        ("s3://tamis-test/incoming/nope.csv", 404),
    ] {
        let r = ingest(url).await;
        assert_eq!(r.status, status, "{url}: {}", r.text());
    }
    assert_eq!(walk(&bucket.join("datasets")).len(), 2);

    // Nothing went to the local artifact folder, and scratch space is empty again.
    let data = &h.state.config().data_dir;
    assert!(walk(&data.join("artifacts")).is_empty());
    assert!(
        walk(&data.join("work")).is_empty(),
        "{:?}",
        walk(&data.join("work"))
    );

    let ready = h.call("GET", "/ready", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    s3.stop();
    let ready = h.call("GET", "/ready", None, None).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(
        ready.json()["error"]["details"]["artifact_store"],
        "unreachable"
    );
    assert_eq!(ready.json()["error"]["details"]["database"], "ok");
}

/// Files under `dir` (none when it does not exist).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}
