//! Over a real socket: the job WebSocket (replay, live lines, resume after a
//! reconnect), and rate-limit counters shared through a real `redis-server`
//! started on loopback.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Options, example, harness};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
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
        let h2 = h.state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let cfg = tamis_service::worker::WorkerConfig::new("w", &h2.config().data_dir);
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
    fn start() -> Option<Redis> {
        let bin = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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
    let Some(r) = Redis::start() else {
        assert!(
            std::env::var_os("TAMIS_REQUIRE_REDIS").is_none(),
            "redis-server is not installed (scripts/test.sh installs it)"
        );
        eprintln!("skipped: redis-server is not installed");
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
