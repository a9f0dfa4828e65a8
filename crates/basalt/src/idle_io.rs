//! A client connection that ends itself when idle.
//!
//! hyper closes an HTTP/1 connection whose next request head is slow to come, but not one
//! that never sends its first bytes (the automatic HTTP/1-or-2 detection waits for them with no
//! deadline), nor an idle HTTP/2 connection. This stream reports end-of-file when nothing has
//! been in flight on the connection for the idle timeout, which makes hyper close it, whatever
//! the protocol.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use basalt_s3::ConnectionActivity;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct IdleIo<T> {
    inner: T,
    activity: Arc<ConnectionActivity>,
    idle_timeout: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<T> IdleIo<T> {
    pub fn new(inner: T, activity: Arc<ConnectionActivity>, idle_timeout: Duration) -> Self {
        Self {
            inner,
            activity,
            idle_timeout,
            timer: Box::pin(tokio::time::sleep(idle_timeout)),
        }
    }

    /// Whether the connection has been idle for the timeout; otherwise arms the timer for the
    /// moment it would be. Called on every read that would block, so the timer is moved only
    /// when that moment changes (once per request), not on every call.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            match self.activity.idle_since() {
                Some(since) => {
                    let deadline = since + self.idle_timeout;
                    if self.timer.deadline() != deadline {
                        self.timer.as_mut().reset(deadline);
                    }
                    return self.timer.as_mut().poll(cx).is_ready();
                }
                // Busy: look again a timeout from when the timer last fired.
                None => {
                    if self.timer.as_mut().poll(cx).is_pending() {
                        return false;
                    }
                    let next = tokio::time::Instant::now() + self.idle_timeout;
                    self.timer.as_mut().reset(next);
                    if self.activity.idle_since().is_none() {
                        // Registers the waker on the timer just armed.
                        return self.timer.as_mut().poll(cx).is_ready();
                    }
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => {
                if self.expired(cx) {
                    tracing::debug!("closing an idle connection");
                    // End of file: hyper ends an idle connection quietly.
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_silent_connection_reads_as_closed_after_the_idle_timeout() {
        let (client, server) = tokio::io::duplex(64);
        let activity = Arc::new(ConnectionActivity::default());
        let mut io = IdleIo::new(server, activity, Duration::from_millis(100));
        let started = std::time::Instant::now();
        let mut buf = [0u8; 8];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(n, 0, "end of file");
        assert!(started.elapsed() >= Duration::from_millis(100));
        drop(client);
    }
}
