//! Log lines to stderr, and with `--otlp-endpoint` the spans of every request exported as
//! OpenTelemetry traces (OTLP over HTTP, protobuf), continued across nodes by W3C trace
//! context on node-to-node calls.
//!
//! Log lines keep their filter (`BASALT_LOG`, `info` by default). The spans of the layers a
//! request crosses (S3 request, object store, Raft commit and read index, stripe and shard
//! I/O, the node that serves a shard) are `debug` spans: with export off no layer wants them
//! and they cost nothing; with it on they go to the exporter only, not to the log.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How long one export may take before it is given up (the collector is down or slow: spans
/// are dropped, requests never wait for it).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where spans go, and who sends them.
pub struct TraceExport {
    /// The collector's OTLP/HTTP address (`http://host:4318`), or the full traces URL.
    pub endpoint: String,
    /// `service.instance.id` of the spans: the node's name or address.
    pub instance: String,
}

/// Keeps trace export running; dropping it sends what is buffered and stops.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    /// The exporter's HTTP requests run here, apart from the server's runtime: a slow
    /// collector never holds a thread that serves S3.
    _runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("basalt: trace export did not finish: {e}");
        }
    }
}

/// Starts logging, and trace export when `export` is given.
pub fn init(export: Option<&TraceExport>) -> anyhow::Result<Telemetry> {
    let log_filter = EnvFilter::try_from_env("BASALT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,s3s=off,openraft=warn"));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(log_filter);
    let Some(export) = export else {
        tracing_subscriber::registry().with(log).init();
        return Ok(Telemetry {
            provider: None,
            _runtime: None,
        });
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("basalt-otlp")
        .enable_all()
        .build()
        .context("starting the trace exporter's runtime")?;
    let client = ExportClient {
        inner: opentelemetry_http::hyper::HyperClient::with_default_connector(EXPORT_TIMEOUT, None),
        runtime: runtime.handle().clone(),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(traces_url(&export.endpoint)?)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .context("--otlp-endpoint")?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("basalt")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            export.instance.clone(),
        ))
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("basalt"))
        .with_filter(
            Targets::new()
                .with_default(LevelFilter::INFO)
                .with_target("basalt", LevelFilter::DEBUG)
                // The exporter's own HTTP client must not trace its exports.
                .with_target("hyper", LevelFilter::OFF)
                .with_target("h2", LevelFilter::OFF)
                .with_target("s3s", LevelFilter::OFF)
                .with_target("openraft", LevelFilter::WARN),
        );
    tracing_subscriber::registry().with(log).with(spans).init();
    basalt_data::trace_context::install(basalt_data::trace_context::TraceHooks {
        current: current_traceparent,
        adopt: adopt_traceparent,
    });
    Ok(Telemetry {
        provider: Some(provider),
        _runtime: Some(runtime),
    })
}

/// The OTLP/HTTP traces URL: a bare collector address gets the standard `/v1/traces` path.
fn traces_url(endpoint: &str) -> anyhow::Result<String> {
    let uri: http::Uri = endpoint
        .parse()
        .with_context(|| format!("--otlp-endpoint {endpoint}: not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => anyhow::bail!(
            "--otlp-endpoint {endpoint}: only http:// is supported (run a collector next to the node)"
        ),
        _ => anyhow::bail!("--otlp-endpoint {endpoint}: expected http://host:port"),
    }
    Ok(match uri.path() {
        "" | "/" => format!("{}/v1/traces", endpoint.trim_end_matches('/')),
        _ => endpoint.to_owned(),
    })
}

fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(basalt_data::trace_context::TRACEPARENT)
}

fn adopt_traceparent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(
        basalt_data::trace_context::TRACEPARENT.to_owned(),
        traceparent.to_owned(),
    )]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(parent);
}

/// The exporter's HTTP client: hyper's, each request run on the exporter's own runtime (the
/// batch processor calls it from a thread of its own, outside any runtime).
#[derive(Debug)]
struct ExportClient {
    inner: opentelemetry_http::hyper::HyperClient,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let inner = self.inner.clone();
        self.runtime
            .spawn(async move { inner.send_bytes(request).await })
            .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collector_address_gets_the_traces_path() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/").unwrap(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/custom/traces").unwrap(),
            "http://collector:4318/custom/traces"
        );
        assert!(traces_url("https://collector:4318").is_err());
        assert!(traces_url("collector:4318").is_err());
    }
}
