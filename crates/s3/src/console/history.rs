//! What the console's health page charts: the node's request totals and drive capacity,
//! sampled every ten seconds for the last hour, kept in memory (a restart starts afresh; the
//! long view is Prometheus' job).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use basalt_object::ObjectStore;
use serde::Serialize;

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// One hour of samples.
const SAMPLES_KEPT: usize = 360;

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Sample {
    pub t_ms: i64,
    pub requests: u64,
    pub client_errors: u64,
    pub errors: u64,
    pub latency_us: u64,
    pub received_bytes: u64,
    pub sent_bytes: u64,
    pub used_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct History {
    pub interval_ms: u64,
    /// Oldest first; the last one taken at the time of the answer.
    pub samples: Vec<Sample>,
}

pub(crate) struct MetricsHistory {
    store: ObjectStore,
    samples: Mutex<VecDeque<Sample>>,
}

impl MetricsHistory {
    pub(crate) fn new(store: ObjectStore) -> Arc<Self> {
        Arc::new(Self {
            store,
            samples: Mutex::new(VecDeque::with_capacity(SAMPLES_KEPT)),
        })
    }

    /// Samples every ten seconds while the history is alive (outside a runtime: never).
    pub(crate) fn spawn_sampler(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let history: Weak<Self> = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                let Some(history) = history.upgrade() else {
                    return;
                };
                let sample = history.sample().await;
                if let Ok(mut samples) = history.samples.lock() {
                    if samples.len() == SAMPLES_KEPT {
                        samples.pop_front();
                    }
                    samples.push_back(sample);
                }
            }
        });
    }

    /// The samples kept, and one taken now.
    pub(crate) async fn history(&self) -> History {
        let now = self.sample().await;
        let mut samples: Vec<Sample> = self
            .samples
            .lock()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        samples.push(now);
        History {
            interval_ms: SAMPLE_EVERY.as_millis() as u64,
            samples,
        }
    }

    async fn sample(&self) -> Sample {
        let totals = crate::metrics::totals();
        let drives = self.store.maintenance_status().await.drives;
        let total: Option<u64> = drives.iter().map(|d| d.total_bytes).sum();
        let available: Option<u64> = drives.iter().map(|d| d.available_bytes).sum();
        Sample {
            t_ms: basalt_object::now_ms(),
            requests: totals.requests,
            client_errors: totals.client_errors,
            errors: totals.server_errors,
            latency_us: totals.latency_us,
            received_bytes: totals.received_bytes,
            sent_bytes: totals.sent_bytes,
            used_bytes: total.zip(available).map(|(t, a)| t.saturating_sub(a)),
            total_bytes: total,
        }
    }
}
