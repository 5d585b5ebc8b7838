//! `/metrics` in the Prometheus text format.
//!
//! API latency by route and status is measured by the request middleware; job
//! outcomes, durations, rows, duplicates and imputations are counted as the
//! in-process workers finish jobs; the queue depth is read from the store at
//! scrape time, so it is right even when other processes run the workers.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::Value;
use tamis_store::Job;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    state: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.1 ms … 6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

fn job_histogram() -> Histogram {
    // 10 ms … 11 h.
    Histogram::new(exponential_buckets(0.01, 4.0, 16))
}

/// The server's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: HistogramFamily<HttpLabels>,
    jobs: Family<JobLabels, Counter>,
    job_seconds: HistogramFamily<JobLabels>,
    rows: Counter,
    duplicates: Counter,
    imputations: Counter,
    queue_depth: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("tamis");
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(latency_histogram),
            jobs: Family::default(),
            job_seconds: Family::new_with_constructor(job_histogram),
            rows: Counter::default(),
            duplicates: Counter::default(),
            imputations: Counter::default(),
            queue_depth: Gauge::default(),
        };
        r.register(
            "http_requests",
            "API requests by route, method and status",
            m.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "API latency by route, method and status",
            m.http_seconds.clone(),
        );
        r.register(
            "jobs_finished",
            "Jobs finished by kind and final state",
            m.jobs.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Job run time (first lease to finish) by kind and final state",
            m.job_seconds.clone(),
        );
        r.register(
            "rows_processed",
            "Rows read by finished jobs",
            m.rows.clone(),
        );
        r.register(
            "duplicates_flagged",
            "Duplicate rows or pairs found by finished jobs",
            m.duplicates.clone(),
        );
        r.register(
            "imputations",
            "Cells imputed by finished jobs",
            m.imputations.clone(),
        );
        r.register(
            "queue_depth",
            "Jobs waiting in the queue",
            m.queue_depth.clone(),
        );
        *m.registry.lock().unwrap_or_else(|p| p.into_inner()) = r;
        m
    }

    /// Records one answered request.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let l = HttpLabels {
            method: method.to_string(),
            route: route.to_string(),
            status,
        };
        self.http_requests.get_or_create(&l).inc();
        self.http_seconds.get_or_create(&l).observe(seconds);
    }

    /// Records a finished job.
    pub fn observe_job(&self, job: &Job) {
        let l = JobLabels {
            kind: job.kind.clone(),
            state: job.state.name().to_string(),
        };
        self.jobs.get_or_create(&l).inc();
        if let (Some(s), Some(f)) = (job.started_at, job.finished_at) {
            self.job_seconds
                .get_or_create(&l)
                .observe((f - s).max(0) as f64 / 1000.0);
        }
        let n = |k: &str| job.metrics.get(k).and_then(Value::as_u64).unwrap_or(0);
        self.rows.inc_by(n("rows_processed"));
        self.duplicates.inc_by(n("duplicates_found"));
        self.imputations.inc_by(n("imputations_applied"));
    }

    /// Renders the text exposition with the queue depth given.
    pub fn render(&self, queue_depth: i64) -> String {
        self.queue_depth.set(queue_depth);
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &r) {
            tracing::error!("metrics encoding: {e}");
        }
        out
    }
}
