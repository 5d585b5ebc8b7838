//! A server over a fresh SQLite store in a temporary directory, two tenants
//! with a user of each role, and helpers to call the router without a socket.
#![allow(clippy::unwrap_used, missing_docs, dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tamis_server::{AppState, JwtKeys, Limiter, ServerConfig, Tiers, app};
use tamis_service::worker::{WorkerConfig, run_once};
use tamis_store::{Artifacts, JobState, Store};
use tower::ServiceExt;

pub const PASSWORD: &str = "correct-horse-1";

pub struct Harness {
    pub app: Router,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    pub tenant_a: String,
    pub tenant_b: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&self.bytes[..self.bytes.len().min(400)])
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
    /// Asserts the one error body and returns its code.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let e = &v["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(
            e["request_id"].as_str().is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(e["timestamp"].as_str().is_some(), "{v}");
        assert!(e.get("details").is_some(), "{v}");
        e["code"].as_str().unwrap().to_string()
    }
}

pub fn example() -> std::path::PathBuf {
    std::path::PathBuf::from(format!(
        "{}/../../examples/customers.csv",
        env!("CARGO_MANIFEST_DIR")
    ))
}

pub struct Options {
    pub tiers: Tiers,
    pub max_upload: u64,
    pub queue_depth: i64,
    pub rows_per_month: Option<i64>,
    /// An artifact store URL and its S3 options (default: DATA/artifacts).
    pub artifacts: Option<(String, Vec<(String, String)>)>,
    /// S3 prefixes ingests may read (with the artifacts' S3 options).
    pub ingest_urls: Vec<String>,
    /// The token vault keys of the server and its workers.
    pub vault_keys: Option<tamis_privacy::anonymize::Keys>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tiers: Tiers::parse("free=1000", 3600).unwrap(),
            max_upload: 50 << 20,
            queue_depth: 10_000,
            rows_per_month: None,
            artifacts: None,
            ingest_urls: Vec::new(),
            vault_keys: None,
        }
    }
}

pub async fn harness(o: Options) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta/tamis.db").display());
    std::fs::create_dir_all(dir.path().join("meta")).unwrap();
    let mut store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store.max_queue_depth = o.queue_depth;
    let a = store
        .create_tenant("acme", 4, o.rows_per_month)
        .await
        .unwrap();
    let b = store.create_tenant("beta", 4, None).await.unwrap();
    for role in tamis_store::ROLES {
        store
            .create_user(&a.id, &format!("{role}@acme.test"), PASSWORD, role)
            .await
            .unwrap();
    }
    store
        .create_user(&b.id, "admin@beta.test", PASSWORD, "admin")
        .await
        .unwrap();
    let data = std::fs::canonicalize(dir.path()).unwrap().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut cfg = ServerConfig::new(&data);
    cfg.max_upload_bytes = o.max_upload;
    cfg.ingest_roots = vec![example().parent().unwrap().to_path_buf()];
    let (url, opts) = o
        .artifacts
        .unwrap_or_else(|| (data.join("artifacts").display().to_string(), Vec::new()));
    cfg.ingest_urls = o.ingest_urls;
    cfg.s3_options = opts.clone();
    cfg.vault_keys = o.vault_keys;
    let artifacts = Artifacts::open_with(&url, data.join("work"), opts).unwrap();
    artifacts.check().await.unwrap();
    let state = AppState::new(
        store,
        artifacts,
        cfg,
        JwtKeys::ephemeral().unwrap(),
        Limiter::memory(o.tiers),
    );
    Harness {
        app: app(state.clone()),
        state,
        dir,
        tenant_a: a.id,
        tenant_b: b.id,
    }
}

impl Harness {
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let r = self.app.clone().oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.into_body().collect().await.unwrap().to_bytes().to_vec();
        Reply {
            status,
            headers,
            bytes,
        }
    }

    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    pub async fn get(&self, uri: &str, token: &str) -> Reply {
        self.call("GET", uri, Some(token), None).await
    }

    pub async fn login(&self, email: &str) -> String {
        let r = self
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["token"].as_str().unwrap().to_string()
    }

    pub async fn upload(
        &self,
        token: &str,
        file_name: &str,
        bytes: &[u8],
        name: Option<&str>,
    ) -> Reply {
        self.upload_to("/api/v1/datasets", token, file_name, bytes, name)
            .await
    }

    pub async fn upload_to(
        &self,
        uri: &str,
        token: &str,
        file_name: &str,
        bytes: &[u8],
        name: Option<&str>,
    ) -> Reply {
        let boundary = "----tamis-test-boundary";
        let mut body = Vec::new();
        if let Some(n) = name {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{n}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let req = Request::builder()
            .method("POST")
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .unwrap();
        self.send(req).await
    }

    /// A worker's configuration on this server's data directory and artifacts.
    pub fn worker(&self, id: &str) -> WorkerConfig {
        let mut cfg = WorkerConfig::new(
            id,
            &self.state.config().data_dir,
            self.state.artifacts().clone(),
        );
        cfg.vault_keys = self.state.config().vault_keys.clone();
        cfg
    }

    /// Runs queued jobs until none is left; returns their final states.
    pub async fn drain(&self) -> Vec<(String, JobState)> {
        let mut cfg = self.worker("test-worker");
        cfg.heartbeat_ms = 50;
        let st = self.state.clone();
        cfg.on_finish = Some(std::sync::Arc::new(move |j| st.metrics().observe_job(j)));
        let mut out = Vec::new();
        while let Some(r) = run_once(self.state.store(), &cfg).await.unwrap() {
            out.push(r);
        }
        out
    }
}

/// A real S3 server (`s3s-fs`, objects as files under a temporary directory)
/// on a loopback port, stopped on drop.
pub struct S3Server {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: std::process::Child,
}

impl S3Server {
    /// Starts one with a bucket named `bucket`; `None` when s3s-fs is not
    /// installed (scripts/test.sh installs it and sets TAMIS_REQUIRE_S3, which
    /// turns the absence into a failure).
    pub fn start(bucket: &str) -> Option<S3Server> {
        let home = std::env::var("HOME").unwrap_or_default();
        let bin = std::env::var("TAMIS_S3S_FS")
            .ok()
            .into_iter()
            .chain([format!("{home}/.cache/tamis-tools/bin/s3s-fs")])
            .chain(
                std::env::var("PATH")
                    .unwrap_or_default()
                    .split(':')
                    .map(|d| format!("{d}/s3s-fs")),
            )
            .find(|p| std::path::Path::new(p).is_file());
        let Some(bin) = bin else {
            assert!(
                std::env::var_os("TAMIS_REQUIRE_S3").is_none(),
                "s3s-fs is not installed (scripts/test.sh installs it)"
            );
            eprintln!("skipped: s3s-fs is not installed");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(bucket)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "test", "--secret-key", "testtesttest"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let s = S3Server { dir, port, child };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("s3s-fs did not start on port {port}");
    }

    /// The `object_store` options that reach it.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", format!("http://127.0.0.1:{}", self.port)),
            ("aws_access_key_id", "test".into()),
            ("aws_secret_access_key", "testtesttest".into()),
            ("aws_region", "us-east-1".into()),
            ("aws_allow_http", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Stops it (as a crash or an outage would).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
