//! `WS /ws/jobs/{id}`: a job's log lines and progress, live.
//!
//! On connect the history after `?since=SEQ` (default 0: all of it) is
//! replayed, then each new line is sent as it is written; a client that
//! reconnects with the last sequence number it saw resumes without a gap or a
//! repeat. Messages are JSON: `{"type":"log", seq, ts, level, message, fields}`,
//! `{"type":"status", state, pass, progress, eta_ms, metrics}` when the job
//! moves, and `{"type":"end", state, error}` before the server closes.
//! Browsers cannot set headers on a WebSocket, so the token may come as
//! `?access_token=`.

use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::{AppState, Principal, redact};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/ws/jobs/{id}", get(job_ws))
}

/// Where to resume.
#[derive(Debug, Deserialize)]
pub struct Resume {
    /// The last sequence number the client saw.
    pub since: Option<i64>,
}

/// Streams a job's log and progress.
pub async fn job_ws(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<Resume>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // The job first: another tenant's id is "not found", whatever the request.
    crate::jobs::job_of(&st, &p, &id).await?;
    let ws = ws.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since = q.since.unwrap_or(0).max(0);
    Ok(ws.on_upgrade(move |socket| async move {
        if let Err(e) = follow(st, p, id, since, socket).await {
            tracing::debug!("job websocket ended: {e}");
        }
    }))
}

/// How often a follower looks at the store when nothing in this process
/// woke it (a worker in another process writes the lines).
const POLL: Duration = Duration::from_millis(200);

async fn send(socket: &mut WebSocket, v: Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(v.to_string().into())).await
}

fn log_message(l: &tamis_store::LogLine) -> Value {
    json!({"type": "log", "seq": l.seq, "ts": l.ts, "level": l.level,
           "message": redact(&l.message), "fields": l.fields})
}

async fn follow(
    st: AppState,
    p: Principal,
    id: String,
    mut seq: i64,
    mut socket: WebSocket,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut changes = st.store().watch_changes();
    let mut last_status = Value::Null;
    loop {
        // Mark what was seen before reading, so no change slips between.
        changes.mark_unchanged();
        let lines = st.store().logs_since(&p.tenant_id, &id, seq, 500).await?;
        let full = lines.len() == 500;
        for l in lines {
            seq = l.seq;
            send(&mut socket, log_message(&l)).await?;
        }
        let job = st.store().job(&p.tenant_id, &id).await?;
        let status = json!({"type": "status", "state": job.state.name(), "pass": job.pass,
                            "progress": job.progress, "eta_ms": job.eta_ms, "metrics": job.metrics});
        if status != last_status {
            send(&mut socket, status.clone()).await?;
            last_status = status;
        }
        if full {
            continue;
        }
        if job.state.is_final() {
            // A last look: lines written just before the final state.
            let rest = st
                .store()
                .logs_since(&p.tenant_id, &id, seq, 10_000)
                .await?;
            for l in rest {
                seq = l.seq;
                send(&mut socket, log_message(&l)).await?;
            }
            send(
                &mut socket,
                json!({"type": "end", "state": job.state.name(),
                       "error": job.error.as_deref().map(redact), "last_seq": seq}),
            )
            .await?;
            let _ = socket.send(Message::Close(None)).await;
            return Ok(());
        }
        tokio::select! {
            r = changes.changed() => { r?; }
            _ = tokio::time::sleep(POLL) => {}
            m = socket.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
}
