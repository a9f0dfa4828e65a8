//! One linearizable read point per client request. A replicated store confirms its read
//! position with the leader (a read index) before it answers a read; a request that reads
//! several records (the bucket's settings, then the object) needs that confirmation once:
//! its first read's index was obtained after the request began, so every later read of the
//! same request at that index is still linearizable for the request as a whole. A write in
//! the request clears the point, so a read after it waits for a new one that covers the
//! write.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static READ_POINT: Cell<Option<u64>>;
}

/// Runs one client request with its own read point (none yet).
pub async fn within_request<F: Future>(request: F) -> F::Output {
    READ_POINT.scope(Cell::new(None), request).await
}

/// The read index this request already confirmed, if any (none outside a request).
pub fn confirmed() -> Option<u64> {
    READ_POINT.try_with(Cell::get).ok().flatten()
}

/// Records the read index this request confirmed (ignored outside a request).
pub fn confirm(index: u64) {
    let _ = READ_POINT.try_with(|point| point.set(Some(index)));
}

/// Forgets the request's read point: after a write, reads must confirm a new one.
pub fn forget() {
    let _ = READ_POINT.try_with(|point| point.set(None));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_point_lives_within_its_request_until_a_write() {
        assert_eq!(confirmed(), None);
        confirm(7);
        assert_eq!(confirmed(), None, "no request, no point");
        within_request(async {
            assert_eq!(confirmed(), None);
            confirm(7);
            assert_eq!(confirmed(), Some(7));
            within_request(async { assert_eq!(confirmed(), None, "each request its own") }).await;
            forget();
            assert_eq!(confirmed(), None);
        })
        .await;
    }
}
