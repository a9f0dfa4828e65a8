//! Prometheus metrics: scraped after a workload from `--metrics-address` and from the S3 port
//! with the bearer token, parsed, and checked to have moved by what the workload did.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use aws_sdk_s3::primitives::ByteStream;
use common::{Server, error_code, free_port, http_raw, status_of};

/// `name{labels} value` lines of a Prometheus text exposition, by their full series name.
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn scrape(port: u16, bearer: Option<&str>) -> String {
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request =
        format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
    http_raw(port, request.as_bytes()).unwrap()
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// The value of the series whose name starts `name{` and holds every label given.
fn value(metrics: &HashMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    metrics
        .iter()
        .filter(|(series, _)| {
            (series.as_str() == name || series.starts_with(&format!("{name}{{")))
                && labels.iter().all(|l| series.contains(l))
        })
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test]
async fn counters_move_by_what_the_workload_did() {
    let metrics_port = free_port();
    let address = format!("127.0.0.1:{metrics_port}");
    let server = Server::start_with(&[
        "--metrics-address",
        &address,
        "--metrics-token",
        "scrape-token-0123",
    ]);
    let client = server.client();
    let before = parse(body(&scrape(metrics_port, None)));
    client
        .create_bucket()
        .bucket("metered")
        .send()
        .await
        .expect("create bucket");
    for i in 0..3 {
        client
            .put_object()
            .bucket("metered")
            .key(format!("k{i}"))
            .body(ByteStream::from(vec![7u8; 1000]))
            .send()
            .await
            .unwrap();
    }
    for _ in 0..2 {
        client
            .get_object()
            .bucket("metered")
            .key("k0")
            .send()
            .await
            .unwrap();
    }
    let err = client
        .get_object()
        .bucket("metered")
        .key("absent")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NoSuchKey");

    let after = parse(body(&scrape(metrics_port, None)));
    let moved =
        |name: &str, labels: &[&str]| value(&after, name, labels) - value(&before, name, labels);
    let requests = "basalt_s3_requests_total";
    assert_eq!(
        moved(requests, &["operation=\"PutObject\"", "status=\"200\""]),
        3.0
    );
    assert_eq!(
        moved(requests, &["operation=\"GetObject\"", "status=\"200\""]),
        2.0
    );
    assert_eq!(
        moved(requests, &["operation=\"GetObject\"", "status=\"404\""]),
        1.0
    );
    assert_eq!(moved(requests, &["operation=\"CreateBucket\""]), 1.0);
    assert_eq!(
        moved(
            "basalt_s3_request_duration_seconds_count",
            &["operation=\"PutObject\""]
        ),
        3.0
    );
    assert!(moved("basalt_s3_received_bytes_total", &[]) >= 3000.0);
    assert!(moved("basalt_s3_sent_bytes_total", &[]) >= 2000.0);
    assert_eq!(value(&after, "basalt_s3_requests_in_flight", &[]), 0.0);
    assert!(value(&after, "basalt_drive_total_bytes", &["drive=\"0\""]) > 0.0);
    assert_eq!(value(&after, "basalt_drive_online", &["drive=\"0\""]), 1.0);
    assert!(after.contains_key("basalt_heal_stripes_healed_total"));

    // Every series the Grafana dashboard in the repository plots is one the node exports
    // (the cluster's only on cluster nodes).
    let dashboard = include_str!("../../../docs/grafana/basalt.json");
    let mut plotted: Vec<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("basalt_"))
        .collect();
    plotted.sort_unstable();
    plotted.dedup();
    assert!(plotted.len() > 10, "{plotted:?}");
    for name in plotted {
        if name.starts_with("basalt_raft_") || name.starts_with("basalt_cluster_") {
            continue;
        }
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_count")
            .trim_end_matches("_sum");
        assert!(
            after.keys().any(|series| series.starts_with(base)),
            "the dashboard plots {name}, which the node does not export"
        );
    }

    // The S3 port answers the bearer of the token, refuses another, and without a bearer
    // token `/metrics` is the bucket `metrics`, as for any S3 client.
    let with_token = scrape(server.port, Some("scrape-token-0123"));
    assert_eq!(status_of(&with_token), 200, "{with_token}");
    assert!(body(&with_token).contains("basalt_s3_requests_total"));
    assert_eq!(status_of(&scrape(server.port, Some("wrong"))), 401);
    let plain = scrape(server.port, None);
    assert_eq!(status_of(&plain), 404, "{plain}");
    assert!(plain.contains("NoSuchBucket"), "{plain}");
    assert!(!plain.contains("basalt_s3_requests_total"));
}
