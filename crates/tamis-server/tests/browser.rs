//! The web UI end to end in a real headless Chromium, driven over the
//! DevTools protocol: log in, upload a file, see its profile, suggest and run
//! the plan, watch the live console, see the changed cells, download.
//!
//! The DevTools client is the few messages this test needs, written over the
//! WebSocket client the other tests use (a WebDriver stack would add a
//! chromedriver process and an HTTP client for the same three actions).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Options, example, harness};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Chromium {
    child: Child,
    _dir: tempfile::TempDir,
    ws_url: String,
}

impl Chromium {
    fn start() -> Option<Chromium> {
        let bin = [
            "/usr/bin/chromium",
            "/usr/bin/chromium-browser",
            "/usr/bin/google-chrome",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(bin)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", dir.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Owned at once: dropping it (also on a panic below) kills and reaps it.
        let mut c = Chromium {
            child,
            _dir: dir,
            ws_url: String::new(),
        };
        let port_file = c._dir.path().join("DevToolsActivePort");
        let t = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(&port_file) {
                let mut lines = s.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    c.ws_url = format!("ws://127.0.0.1:{port}{path}");
                    return Some(c);
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "Chromium did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools session on one page.
struct Page {
    ws: Ws,
    next: u64,
    session: String,
    /// Uncaught exceptions and console/network errors seen so far.
    errors: Vec<String>,
}

impl Page {
    async fn open(browser_ws: &str) -> Page {
        let (ws, _) = tokio_tungstenite::connect_async(browser_ws).await.unwrap();
        let mut p = Page {
            ws,
            next: 0,
            session: String::new(),
            errors: Vec::new(),
        };
        let t = p
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let s = p
            .call(
                "Target.attachToTarget",
                json!({"targetId": t["targetId"], "flatten": true}),
            )
            .await;
        p.session = s["sessionId"].as_str().unwrap().to_string();
        for d in ["Page.enable", "Runtime.enable", "Log.enable", "DOM.enable"] {
            p.call(d, json!({})).await;
        }
        p
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(60), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .unwrap()
                .unwrap();
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            match v["method"].as_str() {
                Some("Runtime.exceptionThrown") => self
                    .errors
                    .push(v["params"]["exceptionDetails"].to_string()),
                Some("Log.entryAdded") if v["params"]["entry"]["level"] == "error" => {
                    let text = v["params"]["entry"]["text"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    let url = v["params"]["entry"]["url"].as_str().unwrap_or("");
                    // Expected refusals the UI handles itself (a profile not ready yet is a 409).
                    let expected = url.ends_with("favicon.ico")
                        || text.contains("409")
                        || (url.ends_with("/auth/login") && text.contains("401"));
                    if !expected {
                        self.errors.push(format!("{text} {url}"));
                    }
                }
                _ => {}
            }
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Evaluates an expression (awaiting a promise) and returns its value.
    async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is truthy.
    async fn wait(&mut self, expr: &str, what: &str) -> Value {
        let t = Instant::now();
        loop {
            let v = self.eval(expr).await;
            if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
                return v;
            }
            if t.elapsed() > Duration::from_secs(60) {
                let body = self.eval("document.body.innerText").await;
                panic!(
                    "timed out waiting for {what}; page: {body}; errors: {:?}",
                    self.errors
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// With TAMIS_UI_SCREENSHOTS=DIR, saves the page as DIR/NAME.png (for people
    /// reviewing the UI; the test checks the DOM, not pixels).
    async fn screenshot(&mut self, name: &str) {
        let Some(dir) = std::env::var_os("TAMIS_UI_SCREENSHOTS") else {
            return;
        };
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64_decode(shot["data"].as_str().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }

    async fn click(&mut self, selector: &str) {
        self.wait(&format!("!!document.querySelector({selector:?})"), selector)
            .await;
        self.eval(&format!("document.querySelector({selector:?}).click()"))
            .await;
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').map(val).collect();
    bytes
        .chunks(4)
        .flat_map(|c| {
            let n = c.iter().fold(0u32, |a, v| (a << 6) | u32::from(*v)) << (6 * (4 - c.len()));
            let b = n.to_be_bytes();
            b[1..c.len()].to_vec()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_upload_profile_clean_watch_and_download() {
    let Some(chrome) = Chromium::start() else {
        assert!(
            std::env::var_os("TAMIS_REQUIRE_CHROMIUM").is_none(),
            "chromium is not installed (scripts/test.sh installs it)"
        );
        eprintln!("skipped: chromium is not installed");
        return;
    };
    let h = harness(Options::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // A worker, as `tamis serve` runs one.
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut cfg = h.worker("ui-worker");
    cfg.poll_ms = 100;
    cfg.heartbeat_ms = 200;
    let worker = tokio::spawn(tamis_service::worker::run(
        h.state.store().clone(),
        cfg,
        stop_rx,
    ));

    let mut page = Page::open(&chrome.ws_url).await;
    page.call("Page.navigate", json!({"url": format!("http://{addr}/")}))
        .await;

    // Log in (a wrong password first: the message shows, nothing else happens).
    page.wait("!!document.querySelector('#login-email')", "the login form")
        .await;
    page.eval("document.querySelector('#login-email').value = 'engineer@acme.test'; document.querySelector('#login-password').value = 'wrong-password'; document.querySelector('#login-submit').click()").await;
    page.wait(
        "document.querySelector('#login-error').textContent",
        "the login error",
    )
    .await;
    page.eval(&format!("document.querySelector('#login-password').value = {:?}; document.querySelector('#login-submit').click()", common::PASSWORD)).await;
    page.wait("!!document.querySelector('#dropzone')", "the datasets page")
        .await;
    let who = page
        .eval("document.querySelector('#who').textContent")
        .await;
    assert!(
        who.as_str().unwrap().contains("engineer@acme.test"),
        "{who}"
    );

    // Upload through the file input (what a drop or the picker feeds).
    let doc = page.call("DOM.getDocument", json!({"depth": 0})).await;
    let input = page
        .call(
            "DOM.querySelector",
            json!({"nodeId": doc["root"]["nodeId"], "selector": "#upload-input"}),
        )
        .await;
    page.call(
        "DOM.setFileInputFiles",
        json!({"nodeId": input["nodeId"], "files": [std::fs::canonicalize(example()).unwrap().display().to_string()]}),
    )
    .await;
    // The page moves to the dataset, which shows its profile when the job is done.
    page.wait(
        "document.querySelectorAll('#profile-columns .col-card').length",
        "the profile",
    )
    .await;
    let cards = page
        .eval("document.querySelectorAll('#profile-columns .col-card').length")
        .await;
    assert_eq!(cards, 13);
    let name = page
        .eval("document.querySelector('#dataset-name').textContent")
        .await;
    assert_eq!(name, "customers");
    let score = page
        .eval("document.querySelector('#quality-score').textContent")
        .await;
    assert!(score.as_str().unwrap().ends_with('%'), "{score}");
    page.screenshot("dataset").await;
    page.click("#tab-issues").await;
    page.wait(
        "document.querySelectorAll('#issues-list .issue').length",
        "the issues",
    )
    .await;

    // The plan: suggest it, see its cards, untick one, run it.
    page.click("#tab-plan").await;
    page.click("#suggest-btn").await;
    page.wait(
        "document.querySelectorAll('#plan-steps .step').length",
        "the plan cards",
    )
    .await;
    let steps = page
        .eval("document.querySelectorAll('#plan-steps .step').length")
        .await;
    assert!(steps.as_u64().unwrap() >= 2, "{steps}");
    let why = page
        .eval("document.querySelector('#plan-steps .step .why').textContent")
        .await;
    assert!(!why.as_str().unwrap().is_empty());
    page.eval("document.querySelector('#plan-steps .step-toggle').click()")
        .await;
    let off = page
        .eval("document.querySelectorAll('#plan-steps .step.off').length")
        .await;
    assert_eq!(off, 1);
    page.screenshot("plan").await;
    page.click("#run-plan").await;

    // The job page: the live console fills and the job ends.
    page.wait("!!document.querySelector('#console')", "the job page")
        .await;
    page.wait(
        "document.querySelector('#job-state .pill.succeeded')",
        "the job to succeed",
    )
    .await;
    page.wait(
        "document.querySelector('#console').textContent.includes('succeeded')",
        "the console's last line",
    )
    .await;
    let lines = page
        .eval("document.querySelectorAll('#console > div').length")
        .await;
    assert!(lines.as_u64().unwrap() >= 2, "{lines}");
    // Before/after of changed cells, from provenance.
    page.wait(
        "document.querySelectorAll('#changes-table tbody tr').length",
        "the changed cells",
    )
    .await;
    let shown = page
        .eval("document.querySelectorAll('#changes-table tbody tr').length")
        .await;
    assert_eq!(shown, 50, "the first page of changes");
    page.click("#more-changes").await;
    page.wait(
        "document.querySelectorAll('#changes-table tbody tr').length > 50",
        "more changes",
    )
    .await;
    page.screenshot("job").await;
    // Downloads work with the session.
    page.wait(
        "document.querySelectorAll('#job-outputs a.download-link').length",
        "the outputs",
    )
    .await;
    let got = page
        .eval("Promise.all([...document.querySelectorAll('#job-outputs a.download-link')].map(a => fetch(a.href).then(r => r.status + ':' + r.headers.get('content-disposition'))))")
        .await;
    for g in got.as_array().unwrap() {
        assert!(g.as_str().unwrap().starts_with("200:attachment"), "{got}");
    }
    // Personal data: from the dataset's PII tab, a scan job whose page lists
    // the findings (the example's email and phone columns, masked examples).
    page.eval("document.querySelector('a[href^=\"#/datasets/\"]').click()")
        .await;
    page.wait("!!document.querySelector('#tab-pii')", "the dataset page")
        .await;
    page.click("#tab-pii").await;
    page.click("#pii-scan").await;
    page.wait(
        "document.querySelector('#pii-table') && document.querySelector('#pii-table').textContent.includes('EMAIL_ADDRESS')",
        "the PII findings",
    )
    .await;
    let found = page
        .eval("document.querySelector('#pii-table').textContent")
        .await;
    let found = found.as_str().unwrap();
    assert!(found.contains("PHONE_NUMBER"), "{found}");
    assert!(found.contains('*'), "examples are masked: {found}");
    let rows = page
        .eval("[...document.querySelectorAll('#pii-table tbody tr')].map(r => r.cells[0].textContent + ':' + r.cells[1].textContent)")
        .await;
    assert!(
        !rows.to_string().contains("income"),
        "amounts are not phone numbers: {rows}"
    );
    page.screenshot("pii").await;

    // The job list shows every job.
    page.eval("location.hash = '#/jobs'").await;
    page.wait(
        "document.querySelectorAll('#jobs-table tbody tr').length >= 4",
        "the job list",
    )
    .await;

    assert!(
        page.errors.is_empty(),
        "errors in the page: {:?}",
        page.errors
    );
    let _ = stop.send(true);
    worker.await.unwrap().unwrap();
}
