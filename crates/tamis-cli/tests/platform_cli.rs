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
    // Worker B serves its metrics, as a deployment scraping workers would.
    let metrics_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let worker = |id: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tamis"));
        c.args(["worker", "--database-url", &url, "--data-dir"])
            .arg(&data)
            .args(["--id", id, "--lease-ms", "1500"]);
        if id == "worker-b" {
            c.args(["--metrics-addr", &metrics_addr]);
        }
        Killed(
            c.env_remove("TAMIS_DATABASE_URL")
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
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
    // Mid-job: the worker has logged its attempt (it leases, then logs).
    while rt
        .block_on(store.logs_since(&tenant, &job_id, 0, 10))
        .unwrap()
        .is_empty()
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    a.0.kill().unwrap(); // SIGKILL
    a.0.wait().unwrap();
    let killed = rt.block_on(store.job(&tenant, &job_id)).unwrap();
    assert_eq!(
        killed.state,
        JobState::Running,
        "the job was still running when its worker died"
    );

    let mut b = worker("worker-b");
    let done = wait_for(&|j| j.state.is_final());
    // Its /metrics counts the job it finished and the rows it read (the
    // worker counts a job just after recording its final state: poll).
    let finished = r#"tamis_jobs_finished_total{kind="profile",state="succeeded"} 1"#;
    let metrics = (0..200)
        .find_map(|_| {
            let r = std::net::TcpStream::connect(&metrics_addr)
                .ok()
                .map(|_| http(&metrics_addr, "GET", "/metrics", None, ""))
                .filter(|r| r.1.contains(finished));
            if r.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            r
        })
        .expect("worker metrics count the finished job within 10 s");
    assert_eq!(metrics.0, 200);
    assert!(
        metrics
            .1
            .contains(r#"tamis_jobs_finished_total{kind="profile",state="succeeded"} 1"#),
        "{}",
        metrics.1
    );
    assert!(
        metrics
            .1
            .contains(&format!("tamis_rows_processed_total {rows}")),
        "{}",
        metrics.1
    );
    b.0.kill().unwrap();
    b.0.wait().unwrap();
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 2);
    assert_eq!(done.result.as_ref().unwrap()["rows"], rows);
    assert_eq!(done.metrics["rows_processed"], rows);
    let arts = rt.block_on(store.artifacts(&tenant, &job_id)).unwrap();
    // One profile and one log, however many attempts wrote them.
    let kinds: Vec<&str> = arts.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["profile", "log"], "{arts:?}");
    let profile: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("artifacts").join(&arts[0].path)).unwrap())
            .unwrap();
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
    // No half-written file is left beside the output, and the dead attempt's
    // scratch directory is gone.
    // No scratch directory of any attempt is left.
    let left: Vec<_> = std::fs::read_dir(data.join("work"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(job_id.as_str()))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let stored = data.join("artifacts").join(&arts[0].path);
    let mut files: Vec<_> = std::fs::read_dir(stored.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["logs.jsonl", "profile.json"]);
}

/// A child process killed when the test ends, even by a failed assertion.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request over a plain socket (the test needs no HTTP client).
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let (head, mut rest) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return (status, rest.to_string());
    }
    // A chunked body: hex size, CRLF, bytes, CRLF, … until a zero size.
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        body.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    (status, body)
}

/// `tamis serve --demo`: one command gives a working platform: it prints the
/// URL and the login, the demo admin logs in, the example dataset is profiled
/// by the in-process worker, and Ctrl-C stops it cleanly.
#[test]
fn serve_demo_comes_up_and_profiles_the_example() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = format!("sqlite://{}", dir.path().join("meta/tamis.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tamis"))
        .args([
            "serve",
            "--demo",
            "--addr",
            "127.0.0.1:0",
            "--database-url",
            &url,
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("TAMIS_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();
    let login = lines.next().unwrap().unwrap();
    assert!(
        login.contains("admin@demo.tamis / tamis-demo-admin"),
        "{login}"
    );
    let (st, body) = http(&addr, "GET", "/ready", None, "");
    assert_eq!(st, 200, "{body}");
    let (st, body) = http(
        &addr,
        "POST",
        "/api/v1/auth/login",
        None,
        r#"{"email":"admin@demo.tamis","password":"tamis-demo-admin"}"#,
    );
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    let mut profiled = false;
    for _ in 0..300 {
        let (_, body) = http(&addr, "GET", "/api/v1/jobs?kind=profile", Some(&token), "");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["jobs"][0]["state"] == "succeeded" {
            profiled = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(profiled, "the demo dataset was not profiled");
    let (st, body) = http(&addr, "GET", "/api/v1/datasets", Some(&token), "");
    assert_eq!(st, 200);
    assert!(body.contains("\"customers\""), "{body}");
    // SIGTERM (as a service manager stops it): a clean exit.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    // Structured JSON logs with request ids; no token or password in them.
    let req = err
        .lines()
        .find(|l| l.contains("\"route\":\"/api/v1/auth/login\""))
        .unwrap_or_else(|| panic!("no request log line: {err}"));
    let v: serde_json::Value = serde_json::from_str(req).unwrap();
    assert!(v["request_id"].as_str().unwrap().starts_with("req_"));
    assert!(!err.contains(&token) && !err.contains("tamis-demo-admin"));
}

/// `tamis tenant create`: a tenant and its first admin, who can log in; a
/// taken name and a short password are refused.
#[test]
fn tenant_create_makes_a_tenant_and_its_admin() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m/tamis.db").display());
    let create = |name: &str, password: &str| {
        Command::new(env!("CARGO_BIN_EXE_tamis"))
            .args([
                "tenant",
                "create",
                name,
                "--admin-email",
                "Boss@Acme.test",
                "--rows-per-month",
                "1000",
            ])
            .args(["--database-url", &url])
            .env("TAMIS_ADMIN_PASSWORD", password)
            .output()
            .unwrap()
    };
    let o = create("acme", "long-enough-1");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("tenant acme"));
    let o = create("acme", "long-enough-1");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("acme"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = create("other", "short");
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(tamis_store::Store::connect(&url)).unwrap();
    let u = rt
        .block_on(store.login("boss@acme.test", "long-enough-1"))
        .unwrap()
        .unwrap();
    assert_eq!(u.role, "admin");
    let t = rt.block_on(store.tenant(&u.tenant_id)).unwrap();
    assert_eq!((t.name.as_str(), t.rows_per_month), ("acme", Some(1000)));

    // `tenant set` changes limits by name; `tenant list` shows them.
    let tenant = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tamis"))
            .arg("tenant")
            .args(args)
            .args(["--database-url", &url])
            .output()
            .unwrap()
    };
    let o = tenant(&[
        "set",
        "acme",
        "--max-concurrent-jobs",
        "5",
        "--rows-per-month",
        "unlimited",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = rt.block_on(store.tenant(&u.tenant_id)).unwrap();
    assert_eq!((t.max_concurrent_jobs, t.rows_per_month), (5, None));
    let o = tenant(&["list", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["tenant"]["max_concurrent_jobs"], 5);
    assert_eq!(rows[0]["tenant"]["rows_per_month"], serde_json::Value::Null);
    assert_eq!(rows[0]["rows_used_this_month"], 0);
    assert!(String::from_utf8_lossy(&tenant(&["list"]).stdout).contains("unlimited"));
    for bad in [
        &["set", "nope", "--max-concurrent-jobs", "2"][..],
        &["set", "acme", "--max-concurrent-jobs", "0"],
        &["set", "acme", "--rows-per-month", "lots"],
    ] {
        let o = tenant(bad);
        assert!(!o.status.success(), "{bad:?}");
        assert!(!o.stderr.is_empty(), "{bad:?}");
    }
    let t = rt.block_on(store.tenant(&u.tenant_id)).unwrap();
    assert_eq!((t.max_concurrent_jobs, t.rows_per_month), (5, None));
}
