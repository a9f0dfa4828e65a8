//! The blocking threads shard I/O may take.
//!
//! Shard reads and writes, on local drives and (through a blocking bridge) on drives of other
//! nodes, run on tokio's blocking pool, as do metadata reads. A slow drive or a slow node would
//! otherwise hold every thread of that pool, and a HEAD or LIST would wait behind them. Data
//! work takes a permit of this lane first: at most [`DATA_LANE_THREADS`] threads, so the rest of
//! the pool stays free for metadata (which has a lane of its own, in `basalt-meta`).

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Most blocking threads busy with data at once. The server's runtime allows more blocking
/// threads than this lane and the metadata lane together.
pub const DATA_LANE_THREADS: usize = 48;

static DATA_LANE: Semaphore = Semaphore::const_new(DATA_LANE_THREADS);

/// Runs `f` on a blocking thread once the data lane has room.
pub async fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    // The lane is never closed.
    let permit = DATA_LANE.acquire().await.ok();
    // The work belongs to the request that asked for it: its log lines and spans too.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let _entered = span.enter();
        f()
    })
}

/// Threads of the lane busy now.
pub fn busy() -> usize {
    DATA_LANE_THREADS - DATA_LANE.available_permits()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_lane_leaves_blocking_threads_for_other_work() {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = std::sync::Arc::new(std::sync::Mutex::new(wait));
        let mut stuck = Vec::new();
        for _ in 0..DATA_LANE_THREADS {
            let wait = wait.clone();
            stuck.push(
                spawn(move || {
                    let _ = wait.lock().map(|w| w.recv());
                })
                .await,
            );
        }
        // One more data task waits for the lane, without a thread.
        let queued = tokio::spawn(spawn(|| 7));
        let other = tokio::task::spawn_blocking(|| "metadata read");
        let answer = tokio::time::timeout(std::time::Duration::from_secs(5), other)
            .await
            .expect("not starved")
            .unwrap();
        assert_eq!(answer, "metadata read");
        assert!(!queued.is_finished());
        drop(release);
        let queued = queued.await.unwrap();
        assert_eq!(queued.await.unwrap(), 7);
        for t in stuck {
            t.await.unwrap();
        }
    }
}
