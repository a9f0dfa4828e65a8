//! `--metrics-address`: a plain-HTTP listener that answers `GET /metrics` (Prometheus' text
//! format) to anyone who can reach it, so it belongs on a private interface; the S3 port
//! serves the same text only to the `--metrics-token` bearer.

use std::net::SocketAddr;

use anyhow::Context;
use basalt_s3::HttpService;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Binds `address` (so a bad address fails the start) and serves it in the background.
pub async fn spawn(address: SocketAddr, service: HttpService) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the metrics address {address}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (socket, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    continue;
                }
            };
            let service = service.clone();
            tokio::spawn(async move {
                let answer = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let service = service.clone();
                    async move {
                        let resp = if req.method() == hyper::Method::GET
                            && req.uri().path() == "/metrics"
                        {
                            hyper::Response::builder()
                                .header("content-type", "text/plain; version=0.0.4")
                                .body(Full::new(Bytes::from(service.render_metrics().await)))
                        } else {
                            hyper::Response::builder()
                                .status(hyper::StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::from_static(b"only GET /metrics here\n")))
                        };
                        resp.map_err(std::io::Error::other)
                    }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), answer)
                    .await
                {
                    tracing::debug!(error = %e, "metrics connection ended");
                }
            });
        }
    });
    Ok(bound)
}
