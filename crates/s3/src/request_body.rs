//! The request body as the S3 front reads it, with two guards.
//!
//! - A read timeout: when the server waits longer than this for the next bytes of a body, the
//!   body fails, so a stalled upload is cut off (and, failing, stores nothing). Only time spent
//!   waiting for the client counts, not time the server spends writing what it already got.
//! - A budget for bytes read before the request is authorized. Some reads cannot wait for
//!   the authorization: the small-body read-ahead of the service, the fields and file of a
//!   browser POST upload (whose signature is inside the body), an STS form. Until the access
//!   check passes, every body byte read is charged against one budget shared by all
//!   connections; when it is spent, the read fails and the request is answered 503 SlowDown.
//!   So unauthenticated clients can make the server hold at most the budget, however many
//!   connections they open.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use s3s::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a guarded body stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum BodyGuardError {
    #[error("no body bytes arrived for {0:?}")]
    ReadTimeout(Duration),
    #[error("the budget for bytes read before authorization is spent")]
    PreAuthBudgetSpent,
}

/// The budget of bytes read before authorization, shared by every connection.
#[derive(Clone)]
pub(crate) struct PreAuthBudget {
    semaphore: Arc<Semaphore>,
}

impl PreAuthBudget {
    pub(crate) fn new(bytes: usize) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// A charge for one request, authorized or not yet.
    pub(crate) fn charge(&self) -> PreAuthCharge {
        PreAuthCharge(Arc::new(ChargeState {
            semaphore: self.semaphore.clone(),
            held: Mutex::new(None),
            authorized: AtomicBool::new(false),
            spent: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
        }))
    }

    #[cfg(test)]
    fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}

/// One request's share of the budget. The access check calls [`PreAuthCharge::authorize`]
/// when it lets the request through; from then on its body is not charged, and what it held
/// is given back.
#[derive(Clone)]
pub(crate) struct PreAuthCharge(Arc<ChargeState>);

struct ChargeState {
    semaphore: Arc<Semaphore>,
    held: Mutex<Option<OwnedSemaphorePermit>>,
    authorized: AtomicBool,
    /// The budget ran out while this request read its body.
    spent: AtomicBool,
    /// This request's body stalled past the read timeout.
    timed_out: AtomicBool,
}

impl PreAuthCharge {
    pub(crate) fn authorize(&self) {
        self.0.authorized.store(true, Ordering::Release);
        self.lock_held().take();
    }

    /// Whether the request failed because the budget was spent.
    pub(crate) fn spent(&self) -> bool {
        self.0.spent.load(Ordering::Acquire)
    }

    /// Whether the request failed because its body stalled.
    pub(crate) fn timed_out(&self) -> bool {
        self.0.timed_out.load(Ordering::Acquire)
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, Option<OwnedSemaphorePermit>> {
        // A panic while holding this lock leaves a permit count, still valid.
        self.0
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Charges `bytes` read; false when the budget cannot cover them.
    fn charge(&self, bytes: usize) -> bool {
        if bytes == 0 || self.0.authorized.load(Ordering::Acquire) {
            return true;
        }
        let Ok(n) = u32::try_from(bytes) else {
            self.0.spent.store(true, Ordering::Release);
            return false;
        };
        match self.0.semaphore.clone().try_acquire_many_owned(n) {
            Ok(permit) => {
                let mut held = self.lock_held();
                match held.as_mut() {
                    Some(h) => h.merge(permit),
                    None => *held = Some(permit),
                }
                true
            }
            Err(_) => {
                self.0.spent.store(true, Ordering::Release);
                false
            }
        }
    }
}

/// A request body under both guards.
pub(crate) struct GuardedBody {
    inner: Body,
    charge: PreAuthCharge,
    read_timeout: Duration,
    /// Armed while the server waits for the client; `None` between reads.
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl GuardedBody {
    pub(crate) fn new(inner: Body, charge: PreAuthCharge, read_timeout: Duration) -> Self {
        Self {
            inner,
            charge,
            read_timeout,
            waiting: None,
        }
    }
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = None;
                let len = frame.data_ref().map_or(0, Bytes::len);
                if !this.charge.charge(len) {
                    return Poll::Ready(Some(Err(Box::new(BodyGuardError::PreAuthBudgetSpent))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                this.waiting = None;
                Poll::Ready(other)
            }
            Poll::Pending => {
                let timeout = this.read_timeout;
                let sleep = this
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.waiting = None;
                    this.charge.0.timed_out.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(Box::new(BodyGuardError::ReadTimeout(timeout)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn unauthorized_bytes_are_charged_until_authorized_and_returned_after() {
        let budget = PreAuthBudget::new(100);
        let charge = budget.charge();
        let body = GuardedBody::new(
            Body::from(Bytes::from(vec![0u8; 60])),
            charge.clone(),
            Duration::from_secs(5),
        );
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(got.len(), 60);
        assert_eq!(budget.available(), 40);

        let second = budget.charge();
        let body = GuardedBody::new(
            Body::from(Bytes::from(vec![0u8; 60])),
            second.clone(),
            Duration::from_secs(5),
        );
        assert!(
            body.collect().await.is_err(),
            "the budget cannot cover both"
        );
        assert!(second.spent());

        charge.authorize();
        assert_eq!(budget.available(), 100);
        let third = budget.charge();
        third.authorize();
        let body = GuardedBody::new(
            Body::from(Bytes::from(vec![0u8; 500])),
            third,
            Duration::from_secs(5),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 500);
        assert_eq!(budget.available(), 100, "authorized bodies are not charged");
    }

    #[tokio::test]
    async fn a_stalled_body_fails_after_the_read_timeout() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, s3s::StdError>>(1);
        let stalled = http_body_util::StreamBody::new(tokio_stream_from(rx));
        let charge = PreAuthBudget::new(10).charge();
        let body = GuardedBody::new(
            Body::http_body(stalled),
            charge.clone(),
            Duration::from_millis(50),
        );
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("no body bytes arrived"), "{err}");
        assert!(charge.timed_out());
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, s3s::StdError>>,
    ) -> impl futures::Stream<Item = Result<Frame<Bytes>, s3s::StdError>> + Send + Sync {
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        sync_wrapper::SyncStream::new(stream)
    }
}
