//! Requests in flight: a cap for the whole node (`--max-requests`), and each connection's
//! count, which tells the listener when a connection is idle. A request is in flight from its
//! head until the last byte of its response body is sent (or the response is dropped).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use s3s::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// What one connection is doing: how many requests it has in flight, and since when it has
/// had none.
#[derive(Debug)]
pub struct ConnectionActivity {
    in_flight: AtomicUsize,
    last_active: Mutex<Instant>,
}

impl Default for ConnectionActivity {
    fn default() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_active: Mutex::new(Instant::now()),
        }
    }
}

impl ConnectionActivity {
    /// When the connection's last request ended (or, before any, when it opened), if none is
    /// in flight. A request in flight keeps the connection busy however slowly its bytes move:
    /// stalled bodies have their own timeout.
    pub fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(*self.lock())
    }

    /// A request ended.
    fn touch(&self) {
        *self.lock() = Instant::now();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.last_active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The node-wide cap on requests in flight.
#[derive(Clone)]
pub(crate) struct RequestLimit {
    semaphore: Option<Arc<Semaphore>>,
}

impl RequestLimit {
    /// `None`: no cap.
    pub(crate) fn new(max: Option<usize>) -> Self {
        Self {
            semaphore: max.map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)))),
        }
    }

    /// A ticket for one more request, or `None` when the cap is reached.
    pub(crate) fn admit(&self, activity: Option<Arc<ConnectionActivity>>) -> Option<Ticket> {
        let permit = match &self.semaphore {
            Some(s) => Some(s.clone().try_acquire_owned().ok()?),
            None => None,
        };
        if let Some(a) = &activity {
            a.in_flight.fetch_add(1, Ordering::AcqRel);
        }
        Some(Ticket {
            _permit: permit,
            activity,
        })
    }
}

/// One request in flight; dropping it ends the request.
pub(crate) struct Ticket {
    _permit: Option<OwnedSemaphorePermit>,
    activity: Option<Arc<ConnectionActivity>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(a) = &self.activity {
            a.touch();
            a.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A response body that holds its request's ticket until it is sent.
pub(crate) struct TicketedBody {
    inner: Body,
    ticket: Option<Ticket>,
    /// The request's span: what is logged while the body streams names the request too.
    span: tracing::Span,
}

impl TicketedBody {
    pub(crate) fn wrap(inner: Body, ticket: Ticket) -> Body {
        Body::http_body(Self {
            inner,
            ticket: Some(ticket),
            span: tracing::Span::current(),
        })
    }
}

impl TicketedBody {
    pub(crate) fn wrap_response(
        resp: http::Response<Body>,
        ticket: Ticket,
    ) -> http::Response<Body> {
        resp.map(|b| Self::wrap(b, ticket))
    }
}

impl HttpBody for TicketedBody {
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let span = self.span.clone();
        let _in_request = span.enter();
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.ticket = None;
        }
        polled
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
    async fn a_request_is_in_flight_until_its_response_is_sent() {
        let limit = RequestLimit::new(Some(1));
        let activity = Arc::new(ConnectionActivity::default());
        let ticket = limit.admit(Some(activity.clone())).unwrap();
        assert!(limit.admit(None).is_none(), "the cap is one request");
        assert!(activity.idle_since().is_none());
        let body = TicketedBody::wrap(Body::from(Bytes::from_static(b"answer")), ticket);
        assert!(limit.admit(None).is_none(), "the response is not sent yet");
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"answer");
        assert!(activity.idle_since().is_some());
        assert!(limit.admit(None).is_some());
    }
}
