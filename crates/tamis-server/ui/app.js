// tamis web UI: one page, no build step, no dependencies. Every value from the
// server is put in the page as text (never as HTML).
"use strict";

const state = { token: sessionStorage.getItem("tamis.token"), user: null, socket: null, timers: [] };

// ---------------------------------------------------------------- helpers

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function bar(fraction, cls) {
  const inner = h("div");
  inner.style.width = `${Math.max(0, Math.min(1, fraction || 0)) * 100}%`;
  return h("div", { class: `bar ${cls || ""}` }, inner);
}

function setBar(el, fraction) {
  el.firstChild.style.width = `${Math.max(0, Math.min(1, fraction || 0)) * 100}%`;
}

const fmt = {
  int: (n) => (n == null ? "–" : Number(n).toLocaleString()),
  pct: (x) => (x == null ? "–" : `${(x * 100).toFixed(1)}%`),
  bytes: (b) => {
    if (b == null) return "–";
    const u = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return `${b.toFixed(i ? 1 : 0)} ${u[i]}`;
  },
  time: (ms) => (ms ? new Date(ms).toLocaleString() : "–"),
  eta: (ms) => (ms == null ? "" : ms < 1000 ? "< 1 s left" : `${Math.round(ms / 1000)} s left`),
  num: (x) => (x == null ? "–" : Math.abs(x) >= 1e6 || (Math.abs(x) < 1e-3 && x !== 0) ? Number(x).toExponential(2) : Number(x).toLocaleString(undefined, { maximumFractionDigits: 3 })),
};

function toast(message, bad) {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.className = `toast ${bad ? "bad" : ""}`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.add("hidden"), 4000);
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error && body.error.code;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let v = null;
  try { v = text ? JSON.parse(text) : null; } catch (_) { v = null; }
  if (r.status === 401 && path !== "/auth/login") { logout(); throw new ApiError(401, v); }
  if (!r.ok) throw new ApiError(r.status, v);
  return v;
}

/** A link that downloads with the session (browsers cannot set headers on links). */
function downloadLink(path, label, cls) {
  const sep = path.includes("?") ? "&" : "?";
  return h("a", { class: `button ghost download-link ${cls || ""}`, href: `${path}${sep}access_token=${encodeURIComponent(state.token)}`, download: "" }, label);
}

function stopLive() {
  if (state.socket) { state.socket.onclose = null; state.socket.close(); state.socket = null; }
  state.timers.forEach(clearInterval);
  state.timers = [];
}

function view(...kids) {
  stopLive();
  const app = document.getElementById("app");
  app.replaceChildren(...kids);
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", location.hash.startsWith(`#/${a.dataset.nav}`));
  }
}

function pill(s) { return h("span", { class: `pill ${s}` }, s); }

// ---------------------------------------------------------------- session

function logout() {
  state.token = null;
  state.user = null;
  sessionStorage.removeItem("tamis.token");
  document.getElementById("topbar").classList.add("hidden");
  location.hash = "#/login";
}

function loginView() {
  const err = h("div", { class: "error", id: "login-error" });
  const email = h("input", { type: "email", id: "login-email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", id: "login-password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "panel login", onsubmit: async (e) => {
    e.preventDefault();
    err.textContent = "";
    try {
      const r = await api("POST", "/auth/login", { email: email.value, password: password.value });
      state.token = r.token;
      sessionStorage.setItem("tamis.token", r.token);
      await whoami();
      location.hash = "#/datasets";
    } catch (x) { err.textContent = x.message; }
  } },
    h("div", { class: "brand" }, "tamis"),
    h("p", { class: "muted" }, "Profile, clean and deduplicate your data."),
    h("label", { for: "login-email" }, "Email"), email,
    h("label", { for: "login-password" }, "Password"), password,
    h("div", { class: "row" }, h("button", { type: "submit", id: "login-submit" }, "Log in")),
    err);
  view(form);
  email.focus();
}

async function whoami() {
  const me = await api("GET", "/me");
  state.user = me.user;
  document.getElementById("who").textContent = `${me.user.email} · ${me.user.role} · ${me.tenant.name}`;
  document.getElementById("topbar").classList.remove("hidden");
}

// ---------------------------------------------------------------- datasets

function uploader(onDone) {
  const input = h("input", { type: "file", id: "upload-input", accept: ".csv,.tsv,.txt,.psv,.json,.jsonl,.ndjson,.parquet,.xlsx,.xls,.ods,.gz,.zst,.bz2" });
  const progress = bar(0);
  const status = h("div", { class: "muted", id: "upload-status" }, "");
  progress.classList.add("hidden");
  const drop = h("div", { class: "drop", id: "dropzone" },
    h("h3", {}, "Drop a file here to upload it"),
    h("div", { class: "muted" }, "CSV, TSV, JSON Lines, JSON, Parquet or Excel; compressed files too. "),
    h("div", { class: "row", }, h("button", { type: "button", onclick: () => input.click() }, "Choose a file")),
    input, progress, status);
  const send = (file) => {
    const form = new FormData();
    form.append("file", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/datasets");
    xhr.setRequestHeader("Authorization", `Bearer ${state.token}`);
    progress.classList.remove("hidden", "ok", "bad");
    setBar(progress, 0);
    status.textContent = `Uploading ${file.name} (${fmt.bytes(file.size)})…`;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) setBar(progress, e.loaded / e.total); };
    xhr.onload = () => {
      let v = null;
      try { v = JSON.parse(xhr.responseText); } catch (_) { v = null; }
      if (xhr.status === 202) {
        progress.classList.add("ok");
        setBar(progress, 1);
        status.textContent = `Uploaded ${file.name}: version ${v.version}, profiling…`;
        onDone(v);
      } else {
        progress.classList.add("bad");
        status.textContent = (v && v.error && v.error.message) || `Upload failed (HTTP ${xhr.status})`;
        toast(status.textContent, true);
      }
    };
    xhr.onerror = () => { status.textContent = "Upload failed: the connection dropped"; progress.classList.add("bad"); };
    xhr.send(form);
  };
  input.addEventListener("change", () => { if (input.files[0]) send(input.files[0]); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]);
  });
  return drop;
}

async function datasetsView() {
  const list = h("div", { id: "datasets-list" }, h("div", { class: "empty" }, "Loading…"));
  const canUpload = ["engineer", "admin"].includes(state.user && state.user.role);
  view(
    h("div", { class: "row spread" }, h("h1", {}, "Datasets")),
    canUpload ? h("div", { class: "panel" }, uploader((v) => { location.hash = `#/datasets/${v.dataset_id}`; })) : null,
    h("div", { class: "panel" }, list));
  const load = async () => {
    const r = await api("GET", "/datasets");
    if (!r.datasets.length) {
      list.replaceChildren(h("div", { class: "empty" }, "No datasets yet. Upload one above."));
      return;
    }
    list.replaceChildren(h("table", {},
      h("thead", {}, h("tr", {}, ["Name", "Versions", "Rows", "Columns", "Size", "Profile", "Created"].map((t) => h("th", {}, t)))),
      h("tbody", {}, r.datasets.map((d) => h("tr", {},
        h("td", {}, h("a", { class: "dataset-link", href: `#/datasets/${d.dataset.id}` }, d.dataset.name)),
        h("td", {}, d.versions),
        h("td", {}, fmt.int(d.latest && d.latest.rows)),
        h("td", {}, d.latest && d.latest.schema ? d.latest.schema.length : "–"),
        h("td", {}, fmt.bytes(d.latest && d.latest.bytes)),
        h("td", {}, d.latest && d.latest.profiled ? pill("ok") : pill("queued")),
        h("td", { class: "muted" }, fmt.time(d.dataset.created_at)))))));
  };
  await load();
  state.timers.push(setInterval(() => load().catch(() => {}), 3000));
}

function columnCard(c) {
  const kids = [
    h("div", { class: "row spread" }, h("span", { class: "name" }, c.name), h("span", { class: "pill" }, c.inferred_type)),
    h("div", { class: "muted" }, `${c.semantic_type || ""}`),
    h("div", { class: "row" },
      h("div", { class: "stat" }, h("div", { class: "v" }, fmt.pct(c.missing_ratio)), h("div", { class: "k" }, "missing")),
      h("div", { class: "stat" }, h("div", { class: "v" }, fmt.int(c.distinct)), h("div", { class: "k" }, "distinct"))),
    bar(1 - (c.missing_ratio || 0), c.missing_ratio > 0.2 ? "bad" : "ok"),
  ];
  if (c.numeric) {
    const n = c.numeric;
    kids.push(h("div", { class: "muted mono" }, `min ${fmt.num(n.min)} · mean ${fmt.num(n.mean)} · max ${fmt.num(n.max)}`));
    const counts = (n.histogram && n.histogram.counts) || [];
    const top = Math.max(1, ...counts);
    kids.push(h("div", { class: "hist", title: "distribution" }, counts.map((k) => {
      const b = h("div");
      b.style.height = `${(k / top) * 100}%`;
      b.title = String(k);
      return b;
    })));
  } else if (c.top_values && c.top_values.length) {
    const top = Math.max(1, ...c.top_values.map((v) => v.count));
    kids.push(h("div", { class: "topv" }, c.top_values.slice(0, 5).map((v) =>
      h("div", { class: "r" }, h("span", { class: "l", title: v.value }, v.value === "" ? "(empty)" : v.value), bar(v.count / top), h("span", { class: "muted" }, fmt.int(v.count))))));
  }
  return h("div", { class: "col-card" }, kids);
}

function issuesList(issues) {
  if (!issues.length) return h("div", { class: "empty" }, "No issues found.");
  return h("div", { id: "issues-list" }, issues.map((i) => h("div", { class: "issue" },
    pill(i.severity),
    h("div", {}, h("div", {}, h("strong", {}, i.column ? `${i.column}: ` : ""), i.description),
      h("div", { class: "muted" }, `${i.kind} · ${fmt.int(i.count)} rows`)))));
}

function planEditor(ds, version, plan) {
  const steps = (plan.steps || []).map((s) => ({ enabled: true, step: s }));
  const cards = h("div", { id: "plan-steps" });
  const render = () => cards.replaceChildren(...steps.map((entry, i) => {
    const s = entry.step;
    const { id, type, confidence, rationale, ...params } = s;
    const toggle = h("input", { type: "checkbox", class: "step-toggle", checked: entry.enabled });
    toggle.checked = entry.enabled;
    toggle.addEventListener("change", () => { entry.enabled = toggle.checked; card.classList.toggle("off", !entry.enabled); });
    const editor = h("textarea", { class: "hidden", spellcheck: "false" });
    editor.value = JSON.stringify(params, null, 2);
    const editBtn = h("button", { type: "button", class: "ghost", onclick: () => {
      if (editor.classList.contains("hidden")) { editor.classList.remove("hidden"); editBtn.textContent = "Done"; return; }
      try {
        entry.step = { id, type, ...JSON.parse(editor.value), confidence, rationale };
        editor.classList.add("hidden");
        editBtn.textContent = "Edit";
        render();
      } catch (e) { toast(`Step ${i + 1}: ${e.message}`, true); }
    } }, "Edit");
    const card = h("div", { class: `step ${entry.enabled ? "" : "off"}` },
      h("div", { class: "head" }, toggle, h("span", { class: "type" }, `${i + 1}. ${type}`), h("span", { class: "mono muted" }, id),
        h("span", { class: "conf" }, confidence != null ? `confidence ${fmt.pct(confidence)}` : ""), editBtn),
      rationale ? h("div", { class: "why" }, rationale) : null,
      h("div", { class: "mono muted" }, Object.entries(params).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(" · ")),
      editor);
    return card;
  }));
  render();
  const run = h("button", { id: "run-plan", onclick: async () => {
    run.disabled = true;
    try {
      const chosen = steps.filter((e) => e.enabled).map((e) => e.step);
      const r = await api("POST", "/jobs", { kind: "clean", dataset_id: ds.id, version, plan: { steps: chosen } });
      location.hash = `#/jobs/${r.job.id}`;
    } catch (e) { toast(e.message, true); run.disabled = false; }
  } }, "Run plan");
  const save = h("button", { class: "ghost", onclick: async () => {
    try {
      const chosen = steps.filter((e) => e.enabled).map((e) => e.step);
      await api("POST", "/plans", { name: `${ds.name} plan`, dataset_id: ds.id, plan: { steps: chosen } });
      toast("Plan saved");
    } catch (e) { toast(e.message, true); }
  } }, "Save plan");
  return h("div", {},
    h("div", { class: "row spread" }, h("p", { class: "muted" }, "Suggested from the profile. Untick a step to skip it; edit its parameters as JSON."), h("div", { class: "row" }, save, run)),
    steps.length ? cards : h("div", { class: "empty" }, "The profile suggests no cleaning steps."));
}

async function datasetView(id) {
  const head = h("div", {});
  const body = h("div", {});
  view(h("div", { class: "row" }, h("a", { href: "#/datasets" }, "← Datasets")), head, body);
  const d = await api("GET", `/datasets/${id}`);
  const ds = d.dataset;
  const latest = d.latest;
  const isEngineer = ["engineer", "admin"].includes(state.user.role);
  const canRead = state.user.role !== "viewer";
  head.replaceChildren(h("div", { class: "panel" },
    h("div", { class: "row spread" },
      h("div", {}, h("h1", { id: "dataset-name" }, ds.name), h("div", { class: "muted" }, `version ${latest ? latest.version : "–"} · ${latest ? latest.file : ""} · ${fmt.bytes(latest && latest.bytes)} · sha256 ${latest ? latest.checksum.slice(0, 12) : ""}…`)),
      canRead && latest ? h("div", { class: "row" },
        downloadLink(`/api/v1/datasets/${id}/download`, "Download original"),
        downloadLink(`/api/v1/datasets/${id}/download?format=csv`, "CSV"),
        downloadLink(`/api/v1/datasets/${id}/download?format=parquet`, "Parquet")) : null)));
  let profile;
  try {
    profile = (await api("GET", `/datasets/${id}/profile`)).profile;
  } catch (e) {
    if (e.code !== "not_ready") throw e;
    body.replaceChildren(h("div", { class: "panel empty", id: "profiling" }, "Profiling… this page refreshes when the profile is ready."));
    state.timers.push(setInterval(async () => {
      try { await api("GET", `/datasets/${id}/profile`); datasetView(id); } catch (_) { /* still running */ }
    }, 1000));
    return;
  }
  const q = profile.quality || {};
  const summary = h("div", { class: "panel" }, h("div", { class: "row" },
    h("div", { class: "stat" }, h("div", { class: "score", id: "quality-score" }, fmt.pct(q.score)), h("div", { class: "k" }, "quality")),
    h("div", { class: "stat" }, h("div", { class: "v" }, fmt.int(profile.dataset.rows)), h("div", { class: "k" }, "rows")),
    h("div", { class: "stat" }, h("div", { class: "v" }, profile.dataset.columns), h("div", { class: "k" }, "columns")),
    h("div", { class: "stat" }, h("div", { class: "v" }, fmt.pct(q.completeness)), h("div", { class: "k" }, "complete")),
    h("div", { class: "stat" }, h("div", { class: "v" }, fmt.pct(q.validity)), h("div", { class: "k" }, "valid")),
    h("div", { class: "stat" }, h("div", { class: "v" }, fmt.pct(q.uniqueness)), h("div", { class: "k" }, "unique")),
    h("div", { class: "stat" }, h("div", { class: "v" }, fmt.int(profile.issues.length)), h("div", { class: "k" }, "issues")),
    h("div", { class: "stat" }, h("div", { class: "v" }, fmt.int(profile.dataset.quarantine && profile.dataset.quarantine.rows)), h("div", { class: "k" }, "quarantined"))));
  const pane = h("div", { class: "panel" });
  const tabs = [["Profile", () => h("div", { class: "grid", id: "profile-columns" }, profile.columns.map(columnCard))],
    ["Issues", () => issuesList(profile.issues)],
    ["Plan", () => planTab(ds, latest, pane, isEngineer)],
    ["PII", () => piiTab(ds, latest)],
    ["Jobs", () => jobsTable({ dataset_id: id })]];
  const tabBar = h("div", { class: "tabs" });
  const show = (i) => {
    [...tabBar.children].forEach((b, j) => b.classList.toggle("active", i === j));
    const content = tabs[i][1]();
    pane.replaceChildren(content instanceof Node ? content : h("div"));
  };
  tabs.forEach(([name], i) => tabBar.append(h("button", { type: "button", id: `tab-${name.toLowerCase()}`, onclick: () => show(i) }, name)));
  body.replaceChildren(summary, tabBar, pane);
  show(0);
}

function planTab(ds, latest, pane, isEngineer) {
  const box = h("div", {}, h("div", { class: "empty" }, "Loading suggestions…"));
  (async () => {
    try {
      const s = await api("GET", `/datasets/${ds.id}/suggestions`);
      box.replaceChildren(isEngineer ? planEditor(ds, latest.version, s.plan) : h("pre", { class: "mono" }, JSON.stringify(s.plan, null, 2)));
    } catch (e) {
      if (e.code !== "not_ready") { box.replaceChildren(h("div", { class: "error" }, e.message)); return; }
      const go = h("button", { id: "suggest-btn", onclick: async () => {
        go.disabled = true;
        try {
          await api("POST", `/datasets/${ds.id}/suggestions`);
          go.textContent = "Suggesting…";
          const t = setInterval(async () => {
            try {
              const s = await api("GET", `/datasets/${ds.id}/suggestions`);
              clearInterval(t);
              box.replaceChildren(isEngineer ? planEditor(ds, latest.version, s.plan) : h("pre", { class: "mono" }, JSON.stringify(s.plan, null, 2)));
            } catch (_) { /* not yet */ }
          }, 700);
          state.timers.push(t);
        } catch (x) { toast(x.message, true); go.disabled = false; }
      } }, "Suggest a cleaning plan");
      const pending = e.code === "not_ready" && go;
      box.replaceChildren(h("div", { class: "empty" }, h("p", {}, "No plan suggested yet for this dataset."), pending));
    }
  })();
  return box;
}

// A scan for personal data runs as a job; its page shows the findings.
function piiTab(ds, latest) {
  const mayRun = state.user.role !== "viewer";
  const go = h("button", { id: "pii-scan", onclick: async () => {
    go.disabled = true;
    try {
      const r = await api("POST", "/jobs", { kind: "pii", dataset_id: ds.id, version: latest.version });
      location.hash = `#/jobs/${r.job.id}`;
    } catch (x) { toast(x.message, true); go.disabled = false; }
  } }, "Scan for personal data");
  return h("div", { class: "empty" },
    h("p", {}, "Finds the columns that hold personal data (e-mails, phones, cards, SSNs, IBANs, names, addresses, dates of birth…) and what free-text columns hold inside their text."),
    mayRun ? go : h("p", { class: "muted" }, "An analyst or above may run the scan."),
    jobsTable({ dataset_id: ds.id, kind: "pii" }));
}

function piiFindings(job) {
  const cols = (job.result && job.result.columns) || [];
  if (!cols.length) return h("div", { class: "panel empty", id: "pii-findings" }, "No personal data found.");
  const inside = (c) => Object.entries(c.embedded || {}).map(([t, n]) => `${t} ${fmt.int(n)}`).join(", ");
  return h("div", { class: "panel", id: "pii-findings" }, h("h2", {}, "Personal data"),
    h("table", { id: "pii-table" },
      h("thead", {}, h("tr", {}, ["Column", "Type", "Confidence", "Hit rate", "Inside its text", "Examples (masked)"].map((t) => h("th", {}, t)))),
      h("tbody", {}, cols.map((c) => h("tr", {},
        h("td", {}, c.name),
        h("td", { class: "mono" }, c.pii_type || "—"),
        h("td", {}, c.pii_type ? fmt.pct(c.confidence) : ""),
        h("td", {}, c.pii_type ? fmt.pct(c.hit_rate) : ""),
        h("td", { class: "mono" }, inside(c)),
        h("td", { class: "mono muted" }, (c.examples || []).join(" · ")))))));
}

// ---------------------------------------------------------------- jobs

function jobsTable(filter) {
  const box = h("div", { id: "jobs-table" }, h("div", { class: "empty" }, "Loading…"));
  const load = async () => {
    const qs = new URLSearchParams(filter || {}).toString();
    const r = await api("GET", `/jobs${qs ? `?${qs}` : ""}`);
    if (!r.jobs.length) { box.replaceChildren(h("div", { class: "empty" }, "No jobs yet.")); return; }
    box.replaceChildren(h("table", {},
      h("thead", {}, h("tr", {}, ["Job", "Kind", "State", "Progress", "Rows", "Submitted", "Took"].map((t) => h("th", {}, t)))),
      h("tbody", {}, r.jobs.map((j) => h("tr", {},
        h("td", {}, h("a", { class: "job-link mono", href: `#/jobs/${j.id}` }, j.id.slice(0, 16))),
        h("td", {}, j.kind),
        h("td", {}, pill(j.state)),
        h("td", {}, bar(j.state === "succeeded" ? 1 : j.progress, j.state === "failed" ? "bad" : j.state === "succeeded" ? "ok" : "")),
        h("td", {}, fmt.int(j.metrics && j.metrics.rows_processed)),
        h("td", { class: "muted" }, fmt.time(j.created_at)),
        h("td", { class: "muted" }, j.finished_at && j.started_at ? `${((j.finished_at - j.started_at) / 1000).toFixed(1)} s` : ""))))));
  };
  load().catch((e) => box.replaceChildren(h("div", { class: "error" }, e.message)));
  state.timers.push(setInterval(() => load().catch(() => {}), 2000));
  return box;
}

function jobsView() {
  view(h("h1", {}, "Jobs"), h("div", { class: "panel" }, jobsTable()));
}

async function jobView(id) {
  const r = await api("GET", `/jobs/${id}`);
  let job = r.job;
  const statePill = h("span", { id: "job-state" }, pill(job.state));
  const progress = bar(job.progress);
  const eta = h("span", { class: "muted" }, "");
  const metrics = h("div", { class: "mono muted", id: "job-metrics" }, "");
  const consoleEl = h("div", { class: "console", id: "console" });
  const outputs = h("div", { id: "job-outputs" });
  const changes = h("div", { id: "job-changes" });
  const cancel = h("button", { class: "ghost", id: "cancel-job", onclick: async () => {
    try { await api("POST", `/jobs/${id}/cancel`); toast("Cancellation requested"); } catch (e) { toast(e.message, true); }
  } }, "Cancel");
  view(
    h("div", { class: "row" }, job.dataset_id ? h("a", { href: `#/datasets/${job.dataset_id}` }, "← Dataset") : h("a", { href: "#/jobs" }, "← Jobs")),
    h("div", { class: "panel" },
      h("div", { class: "row spread" }, h("div", {}, h("h1", {}, `${job.kind} job`), h("div", { class: "mono muted" }, job.id)), h("div", { class: "row" }, statePill, cancel)),
      h("div", { class: "row" }, h("div", { class: "stat" }, progress), eta), metrics),
    h("div", { class: "panel" }, h("div", { class: "row spread" }, h("h2", {}, "Console"), h("div", { class: "row" }, downloadLink(`/api/v1/jobs/${id}/logs.txt`, "Log as text"))), consoleEl),
    h("div", { class: "panel" }, h("h2", {}, "Outputs"), outputs),
    changes);
  const renderJob = (j) => {
    statePill.replaceChildren(pill(j.state));
    setBar(progress, j.state === "succeeded" ? 1 : j.progress);
    progress.classList.toggle("ok", j.state === "succeeded");
    progress.classList.toggle("bad", j.state === "failed");
    const pass = j.pass ? `${j.pass.replace("pass", "pass ")} · ` : "";
    eta.textContent = j.state === "running" ? pass + fmt.eta(j.eta_ms) : "";
    metrics.textContent = Object.entries(j.metrics || {}).map(([k, v]) => `${k.replaceAll("_", " ")}: ${fmt.int(v)}`).join(" · ");
    cancel.classList.toggle("hidden", ["succeeded", "failed", "cancelled"].includes(j.state));
  };
  renderJob(job);
  const finished = async () => {
    job = (await api("GET", `/jobs/${id}`)).job;
    renderJob(job);
    if (job.error) consoleEl.append(h("div", { class: "error" }, job.error));
    const a = await api("GET", `/jobs/${id}/artifacts`);
    outputs.replaceChildren(a.artifacts.length ? h("div", { class: "row" }, a.artifacts.flatMap((x) => {
      const base = `/api/v1/jobs/${id}/artifacts/${x.kind}`;
      const links = [downloadLink(base, `${x.kind} (${fmt.bytes(x.bytes)})`)];
      if (x.kind === "output") links.push(downloadLink(`${base}?format=csv`, "output as CSV"));
      return links;
    })) : h("div", { class: "muted" }, "No outputs."));
    if (job.kind === "clean" && job.state === "succeeded") showChanges(id, changes, job);
    if (job.kind === "pii" && job.state === "succeeded") changes.replaceChildren(piiFindings(job));
  };
  // The live console: history first, then lines as they come; resumes after a drop.
  let lastSeq = 0;
  let ended = false;
  const line = (m) => {
    const ts = new Date(m.ts).toLocaleTimeString();
    consoleEl.append(h("div", { class: m.level }, h("span", { class: "ts" }, ts), `${m.level.padEnd(8)} ${m.message}`));
    consoleEl.scrollTop = consoleEl.scrollHeight;
  };
  const connect = () => {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/ws/jobs/${id}?since=${lastSeq}&access_token=${encodeURIComponent(state.token)}`);
    state.socket = ws;
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === "log") { lastSeq = m.seq; line(m); }
      else if (m.type === "status") renderJob({ ...job, ...m });
      else if (m.type === "end") { ended = true; finished().catch((x) => toast(x.message, true)); }
    };
    ws.onclose = () => { if (!ended && state.socket === ws) setTimeout(connect, 1000); };
  };
  connect();
}

async function showChanges(id, box, job, limit = 50) {
  const p = await api("GET", `/jobs/${id}/provenance?limit=${limit}`);
  const more = p.total_cells > p.cells.length
    ? h("div", { class: "row" }, h("button", { class: "ghost", id: "more-changes", onclick: () => showChanges(id, box, job, limit * 4) },
      `Show ${fmt.int(Math.min(p.total_cells, limit * 4) - p.cells.length)} more of ${fmt.int(p.total_cells)}`))
    : null;
  const summary = job.result || {};
  box.replaceChildren(h("div", { class: "panel" },
    h("div", { class: "row spread" }, h("h2", {}, "Before and after"),
      h("span", { class: "muted" }, `${fmt.int(p.total_cells)} cells changed · ${fmt.int(p.dropped.length)} rows dropped · rows ${fmt.int(summary.rows_in)} → ${fmt.int(summary.rows_out)}`)),
    p.cells.length ? h("table", { id: "changes-table" },
      h("thead", {}, h("tr", {}, ["Row", "Column", "Before", "After", "Step", "Confidence"].map((t) => h("th", {}, t)))),
      h("tbody", {}, p.cells.map((c) => h("tr", {},
        h("td", { class: "mono" }, c.row_id),
        h("td", {}, c.column),
        h("td", { class: "changed-old mono" }, c.old_value == null ? "∅" : c.old_value),
        h("td", { class: "changed-new mono" }, c.new_value == null ? "∅" : c.new_value),
        h("td", {}, `${c.step} `, h("span", { class: "muted mono" }, c.step_id)),
        h("td", {}, fmt.pct(c.confidence)))))) : h("div", { class: "empty" }, "No cell was changed."),
    more));
}

// ---------------------------------------------------------------- routing

async function route() {
  const hash = location.hash || "#/datasets";
  if (!state.token) { if (hash !== "#/login") location.hash = "#/login"; loginView(); return; }
  try {
    if (!state.user) await whoami();
    let m;
    if (hash === "#/login") location.hash = "#/datasets";
    else if ((m = hash.match(/^#\/datasets\/([\w-]+)$/))) await datasetView(m[1]);
    else if ((m = hash.match(/^#\/jobs\/([\w-]+)$/))) await jobView(m[1]);
    else if (hash === "#/jobs") jobsView();
    else await datasetsView();
  } catch (e) {
    if (e.status === 401) return;
    view(h("div", { class: "panel error" }, e.message));
  }
}

document.getElementById("logout").addEventListener("click", logout);
window.addEventListener("hashchange", route);
route();
