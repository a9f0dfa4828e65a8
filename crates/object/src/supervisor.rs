//! Background workers under supervision: a worker that panics is logged, counted and started
//! again (after a pause), instead of vanishing as a detached task would, leaving a node that
//! no longer heals, scrubs, expires or collects garbage without a word.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The pause before a panicked worker is started again.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// Runs the worker `make` returns, and a new one each time one panics. A worker that returns
/// is done. `restarts` counts the panics.
pub(crate) fn supervise<F, Fut>(name: &'static str, restarts: Arc<AtomicU64>, mut make: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match tokio::spawn(make()).await {
                Ok(()) => return,
                Err(e) if e.is_panic() => {
                    restarts.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(worker = name, "background worker panicked; restarting it");
                    tokio::time::sleep(RESTART_PAUSE).await;
                }
                // Cancelled: the runtime is shutting down.
                Err(_) => return,
            }
        }
    });
}

impl crate::ObjectStore {
    /// Runs `work` every `every`, supervised, on the node that runs background work (the
    /// Raft leader in a cluster; a single node always).
    pub(crate) fn run_periodically<W, Fut>(&self, name: &'static str, every: Duration, work: W)
    where
        W: Fn(crate::ObjectStore) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let this = self.clone();
        supervise(name, self.maintenance.restarts.clone(), move || {
            let (this, work) = (this.clone(), work.clone());
            async move {
                loop {
                    tokio::time::sleep(every).await;
                    if this.runs_background() {
                        work(this.clone()).await;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_worker_is_counted_and_started_again() {
        let restarts = Arc::new(AtomicU64::new(0));
        let runs = Arc::new(AtomicU64::new(0));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
        let counter = runs.clone();
        supervise("test", restarts.clone(), move || {
            let run = counter.fetch_add(1, Ordering::SeqCst);
            let done_tx = done_tx.clone();
            async move {
                if run < 2 {
                    panic!("worker fault {run}");
                }
                if let Some(tx) = done_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            }
        });
        done_rx.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(restarts.load(Ordering::SeqCst), 2);
    }
}
