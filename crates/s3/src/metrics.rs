//! Prometheus metrics: what the front records per request (by S3 operation and status, with
//! latency, bytes and requests in flight), and what a scrape reads from the node then (drives,
//! healer, sweeps, lifecycle, Raft). Recorded with the `metrics` facade into one
//! process-wide `metrics-exporter-prometheus` recorder; rendered in Prometheus' text format.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use basalt_object::ObjectStore;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::service::ClusterStatusSource;

/// Latency buckets, seconds: from a cached small GET to a large upload.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use. `None` if another recorder was installed
/// first (metrics are then not rendered here).
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("basalt_s3_request_duration_seconds".into()),
                    &LATENCY_BUCKETS,
                )
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Installs the recorder (at start-up, so the first requests are counted).
pub fn install() {
    handle();
}

/// One request answered: its S3 operation (`Other` for admin, STS and requests refused before
/// they were routed), status, time and body bytes each way (as declared by Content-Length).
pub(crate) fn record_request(
    operation: String,
    status: u16,
    elapsed: Duration,
    received: u64,
    sent: u64,
) {
    counter!("basalt_s3_requests_total", "operation" => operation.clone(), "status" => status.to_string())
        .increment(1);
    histogram!("basalt_s3_request_duration_seconds", "operation" => operation)
        .record(elapsed.as_secs_f64());
    counter!("basalt_s3_received_bytes_total").increment(received);
    counter!("basalt_s3_sent_bytes_total").increment(sent);
    TOTALS.requests.fetch_add(1, Ordering::Relaxed);
    match status {
        400..=499 => TOTALS.client_errors.fetch_add(1, Ordering::Relaxed),
        500.. => TOTALS.server_errors.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
    TOTALS
        .latency_us
        .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    TOTALS.received_bytes.fetch_add(received, Ordering::Relaxed);
    TOTALS.sent_bytes.fetch_add(sent, Ordering::Relaxed);
}

/// The node's request totals since it started, kept beside the recorder (which does not read
/// back) for the console's charts.
struct Totals {
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    latency_us: AtomicU64,
    received_bytes: AtomicU64,
    sent_bytes: AtomicU64,
}

static TOTALS: Totals = Totals {
    requests: AtomicU64::new(0),
    client_errors: AtomicU64::new(0),
    server_errors: AtomicU64::new(0),
    latency_us: AtomicU64::new(0),
    received_bytes: AtomicU64::new(0),
    sent_bytes: AtomicU64::new(0),
};

/// The totals as one reading.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TotalsNow {
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub latency_us: u64,
    pub received_bytes: u64,
    pub sent_bytes: u64,
}

pub(crate) fn totals() -> TotalsNow {
    TotalsNow {
        requests: TOTALS.requests.load(Ordering::Relaxed),
        client_errors: TOTALS.client_errors.load(Ordering::Relaxed),
        server_errors: TOTALS.server_errors.load(Ordering::Relaxed),
        latency_us: TOTALS.latency_us.load(Ordering::Relaxed),
        received_bytes: TOTALS.received_bytes.load(Ordering::Relaxed),
        sent_bytes: TOTALS.sent_bytes.load(Ordering::Relaxed),
    }
}

/// Counts a request in flight for as long as it lives.
pub(crate) struct InFlight;

impl InFlight {
    pub(crate) fn start() -> Self {
        gauge!("basalt_s3_requests_in_flight").increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!("basalt_s3_requests_in_flight").decrement(1.0);
    }
}

/// The text a scrape answers: the node's state read now, then everything recorded.
pub async fn render(store: &ObjectStore, cluster: Option<&ClusterStatusSource>) -> String {
    let Some(handle) = handle() else {
        return String::new();
    };
    let status = store.maintenance_status().await;
    for drive in &status.drives {
        let labels = [
            ("drive", drive.index.to_string()),
            ("path", drive.path.clone()),
        ];
        gauge!("basalt_drive_online", &labels).set(f64::from(u8::from(drive.online)));
        if let (Some(total), Some(available)) = (drive.total_bytes, drive.available_bytes) {
            gauge!("basalt_drive_total_bytes", &labels).set(total as f64);
            gauge!("basalt_drive_available_bytes", &labels).set(available as f64);
            gauge!("basalt_drive_used_bytes", &labels).set(total.saturating_sub(available) as f64);
        }
    }
    let healer = &status.healer;
    counter!("basalt_heal_stripes_healed_total").absolute(healer.stripes_healed);
    counter!("basalt_heal_shards_rebuilt_total").absolute(healer.shards_rebuilt);
    counter!("basalt_heal_bytes_rebuilt_total").absolute(healer.bytes_rebuilt);
    counter!("basalt_heal_failures_total").absolute(healer.failures);
    gauge!("basalt_heal_queued").set(healer.queued as f64);
    counter!("basalt_worker_restarts_total").absolute(status.worker_restarts);
    gauge!("basalt_sweep_running").set(f64::from(u8::from(status.running.is_some())));
    // The sweep in progress, else the last one (zeros before the first).
    let sweep = status.running.as_ref().or(status.last.as_ref());
    gauge!("basalt_sweep_shards_checked").set(sweep.map_or(0.0, |s| s.shards_checked as f64));
    gauge!("basalt_sweep_damaged_shards").set(sweep.map_or(0.0, |s| s.damaged_shards() as f64));
    gauge!("basalt_lifecycle_running").set(f64::from(u8::from(status.lifecycle.running)));
    let last = status.lifecycle.last.as_ref();
    gauge!("basalt_lifecycle_last_versions_scanned")
        .set(last.map_or(0.0, |l| l.versions_scanned as f64));
    gauge!("basalt_lifecycle_last_expired")
        .set(last.map_or(0.0, |l| (l.current_expired + l.noncurrent_expired) as f64));
    if let Some(source) = cluster {
        record_raft(&(source.0)().await);
    }
    handle.render()
}

/// Raft's view from this node, from the cluster status: role, term, log positions and how far
/// applying trails committing.
fn record_raft(status: &serde_json::Value) {
    let number = |name: &str| status.get(name).and_then(serde_json::Value::as_u64);
    let leader = status.get("leader").and_then(serde_json::Value::as_str);
    let me = status.get("node").and_then(serde_json::Value::as_str);
    gauge!("basalt_raft_is_leader").set(f64::from(u8::from(leader.is_some() && leader == me)));
    gauge!("basalt_raft_has_leader").set(f64::from(u8::from(leader.is_some())));
    if let Some(term) = number("term") {
        gauge!("basalt_raft_term").set(term as f64);
    }
    let (commit, applied) = (number("commit_index"), number("applied_index"));
    if let Some(commit) = commit {
        gauge!("basalt_raft_commit_index").set(commit as f64);
    }
    if let Some(applied) = applied {
        gauge!("basalt_raft_applied_index").set(applied as f64);
    }
    if let (Some(commit), Some(applied)) = (commit, applied) {
        gauge!("basalt_raft_apply_lag").set(commit.saturating_sub(applied) as f64);
    }
    let nodes = status.get("nodes").and_then(serde_json::Value::as_array);
    let up = nodes.map_or(0, |n| {
        n.iter()
            .filter(|node| node.get("up").and_then(serde_json::Value::as_bool) == Some(true))
            .count()
    });
    gauge!("basalt_cluster_nodes").set(nodes.map_or(0, Vec::len) as f64);
    gauge!("basalt_cluster_nodes_up").set(up as f64);
}
