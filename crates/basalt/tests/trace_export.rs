//! `--otlp-endpoint`: request spans exported as OpenTelemetry traces (OTLP over HTTP,
//! protobuf) to a collector this test runs, one trace across the nodes a request touches.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use common::bytes_of;
use common::nodes::Cluster;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// The trace a client started, and the span of its call.
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    instance: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

/// A minimal OTLP/HTTP collector: keeps every span posted to `/v1/traces`.
struct Collector {
    address: SocketAddr,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let kept = spans.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let kept = kept.clone();
                            async move {
                                let path = req.uri().path().to_owned();
                                let kind = req
                                    .headers()
                                    .get(http::header::CONTENT_TYPE)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned();
                                let body = req.into_body().collect().await?.to_bytes();
                                let status =
                                    if path == "/v1/traces" && kind == "application/x-protobuf" {
                                        match ExportTraceServiceRequest::decode(body) {
                                            Ok(export) => {
                                                kept.lock().unwrap().extend(flatten(&export));
                                                200
                                            }
                                            Err(_) => 400,
                                        }
                                    } else {
                                        404
                                    };
                                let mut resp = http::Response::new(Full::new(Bytes::new()));
                                *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                                resp.headers_mut().insert(
                                    http::header::CONTENT_TYPE,
                                    http::HeaderValue::from_static("application/x-protobuf"),
                                );
                                Ok::<_, hyper::Error>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { address, spans }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Waits until the spans of trace `trace_id` satisfy `done`; answers them.
    async fn wait_for_trace(
        &self,
        trace_id: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let spans: Vec<Received> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "trace {trace_id} incomplete: {:#?}",
                spans
                    .iter()
                    .map(|s| (&s.instance, &s.name))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn flatten(export: &ExportTraceServiceRequest) -> Vec<Received> {
    let mut out = Vec::new();
    for resource in &export.resource_spans {
        let instance = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.instance.id")
            .map(|a| text(a.value.as_ref()))
            .unwrap_or_default();
        for scope in &resource.scope_spans {
            for span in &scope.spans {
                out.push(Received {
                    instance: instance.clone(),
                    name: span.name.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|a| (a.key.clone(), text(a.value.as_ref())))
                        .collect(),
                });
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_request_is_one_trace_across_the_nodes_it_touches() {
    let collector = Collector::start().await;
    let endpoint = collector.endpoint();
    let cluster = Cluster::start(3, &["--otlp-endpoint", &endpoint]);
    let leader = cluster.leader();
    let entry = (leader + 1) % 3;
    let (leader_name, entry_name) = (
        cluster.nodes[leader].name.clone(),
        cluster.nodes[entry].name.clone(),
    );
    let client = cluster.nodes[entry].client();
    client
        .create_bucket()
        .bucket("traced")
        .send()
        .await
        .unwrap();

    // A client that traces its calls: the PUT carries its trace context.
    let body = bytes_of(300_000, 5);
    let put = client
        .put_object()
        .bucket("traced")
        .key("striped")
        .body(ByteStream::from(body.clone()))
        .customize()
        .mutate_request(|req| {
            req.headers_mut()
                .insert("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"));
        })
        .send()
        .await
        .unwrap();
    let request_id = put.request_id().expect("x-amz-request-id").to_owned();

    // Through a follower: the request there, the object store, the Raft commit forwarded to
    // the leader, the stripe written, and shards served by the other nodes.
    let spans = collector
        .wait_for_trace(TRACE_ID, |spans| {
            let has = |instance: Option<&str>, name: &str| {
                spans
                    .iter()
                    .any(|s| s.name == name && instance.is_none_or(|i| s.instance == i))
            };
            has(Some(&entry_name), "request")
                && has(Some(&entry_name), "put_object")
                && has(Some(&entry_name), "raft.commit")
                && has(Some(&leader_name), "cluster.serve")
                && has(Some(&entry_name), "stripe.write")
                && spans
                    .iter()
                    .any(|s| s.name == "drive.serve" && s.instance != entry_name)
        })
        .await;

    let request = spans
        .iter()
        .find(|s| s.name == "request" && s.instance == entry_name)
        .unwrap();
    assert_eq!(request.parent, CLIENT_SPAN, "a child of the client's span");
    assert_eq!(
        request.attributes.get("id"),
        Some(&request_id),
        "the span names the request id the client saw"
    );
    // Every span hangs off the request: its parent is in the trace (the request's is the
    // client's), so a trace viewer shows one tree across the three nodes.
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    for span in &spans {
        assert!(
            span.parent == CLIENT_SPAN || ids.contains(span.parent.as_str()),
            "{} on {} has a parent outside the trace: {span:?}",
            span.name,
            span.instance
        );
    }
    let instances: HashSet<&str> = spans.iter().map(|s| s.instance.as_str()).collect();
    assert!(
        instances.len() >= 2,
        "spans from several nodes: {instances:?}"
    );

    // A request without a trace context starts a trace of its own, also exported.
    let got = client
        .get_object()
        .bucket("traced")
        .key("striped")
        .send()
        .await
        .unwrap();
    let get_id = got.request_id().expect("x-amz-request-id").to_owned();
    assert_eq!(
        &got.body.collect().await.unwrap().into_bytes()[..],
        &body[..]
    );
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let found = collector
            .spans
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.name == "request" && s.attributes.get("id") == Some(&get_id))
            .cloned();
        if let Some(span) = found {
            assert_ne!(span.trace_id, TRACE_ID);
            assert!(span.parent.is_empty(), "a root span: {span:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the GET's span was not exported");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn an_endpoint_that_is_not_plain_http_is_refused_at_start() {
    for (endpoint, why) in [
        ("https://collector:4318", "only http://"),
        ("collector:4318", "expected http://host:port"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_basalt"))
            .args(["server", "--otlp-endpoint", endpoint])
            .args(["--address", &format!("127.0.0.1:{}", common::free_port())])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{endpoint}: {stderr}");
    }
}
