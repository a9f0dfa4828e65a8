//! CORS: bucket rules through the AWS SDK, the OPTIONS preflight a browser sends, and the
//! `Access-Control-*` headers on the real (signed) request.
#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use common::{RawRequest, error_code, http_raw, server_with_bucket, status_of};

const BUCKET: &str = "web";

fn upload_rule() -> CorsRule {
    CorsRule::builder()
        .allowed_origins("https://*.example.com")
        .allowed_methods("PUT")
        .allowed_methods("GET")
        .allowed_headers("content-*")
        .allowed_headers("x-amz-*")
        .expose_headers("ETag")
        .max_age_seconds(600)
        .build()
        .unwrap()
}

fn preflight(port: u16, origin: &str, method: &str, headers: &str) -> String {
    let mut request = format!(
        "OPTIONS /{BUCKET}/photo.jpg HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\norigin: {origin}\r\naccess-control-request-method: {method}\r\n"
    );
    if !headers.is_empty() {
        request.push_str(&format!("access-control-request-headers: {headers}\r\n"));
    }
    request.push_str("connection: close\r\n\r\n");
    http_raw(port, request.as_bytes()).unwrap()
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn cors_rules_are_stored_and_answer_preflights() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let port = server.port;
    let err = client
        .get_bucket_cors()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NoSuchCORSConfiguration");
    let before = preflight(port, "https://app.example.com", "PUT", "");
    assert_eq!(status_of(&before), 403, "{before}");

    client
        .put_bucket_cors()
        .bucket(BUCKET)
        .cors_configuration(
            CorsConfiguration::builder()
                .cors_rules(upload_rule())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let got = client
        .get_bucket_cors()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(got.cors_rules(), [upload_rule()]);

    let ok = preflight(
        port,
        "https://app.example.com",
        "PUT",
        "Content-Type, x-amz-date",
    );
    assert_eq!(status_of(&ok), 200, "{ok}");
    assert_eq!(
        header(&ok, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        header(&ok, "access-control-allow-methods"),
        Some("PUT, GET")
    );
    assert_eq!(
        header(&ok, "access-control-allow-headers"),
        Some("content-type, x-amz-date")
    );
    assert_eq!(header(&ok, "access-control-max-age"), Some("600"));
    assert_eq!(header(&ok, "access-control-expose-headers"), Some("ETag"));

    for (origin, method, headers) in [
        ("https://evil.test", "PUT", ""),
        ("https://app.example.com", "DELETE", ""),
        ("https://app.example.com", "PUT", "authorization-extra"),
    ] {
        let denied = preflight(port, origin, method, headers);
        assert_eq!(
            status_of(&denied),
            403,
            "{origin} {method} {headers}: {denied}"
        );
        assert!(header(&denied, "access-control-allow-origin").is_none());
    }
    let incomplete = http_raw(
        port,
        format!(
            "OPTIONS /{BUCKET}/x HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(status_of(&incomplete), 400);

    // The real request carries the grant too.
    client
        .put_object()
        .bucket(BUCKET)
        .key("photo.jpg")
        .body(ByteStream::from_static(b"jpeg"))
        .send()
        .await
        .unwrap();
    let mut get = RawRequest::new("GET", "/web/photo.jpg", b"");
    get.headers
        .push(("origin", "https://app.example.com".to_owned()));
    let answer = get.send(port);
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(
        header(&answer, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let mut foreign = RawRequest::new("GET", "/web/photo.jpg", b"");
    foreign
        .headers
        .push(("origin", "https://evil.test".to_owned()));
    let answer = foreign.send(port);
    assert_eq!(status_of(&answer), 200);
    assert!(header(&answer, "access-control-allow-origin").is_none());

    client
        .delete_bucket_cors()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let after = preflight(port, "https://app.example.com", "PUT", "");
    assert_eq!(status_of(&after), 403);
}

#[tokio::test]
async fn invalid_cors_rules_are_refused() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let bad_method = CorsRule::builder()
        .allowed_origins("*")
        .allowed_methods("PATCH")
        .build()
        .unwrap();
    let two_wildcards = CorsRule::builder()
        .allowed_origins("https://*.*.example.com")
        .allowed_methods("GET")
        .build()
        .unwrap();
    for rule in [bad_method, two_wildcards] {
        let err = client
            .put_bucket_cors()
            .bucket(BUCKET)
            .cors_configuration(
                CorsConfiguration::builder()
                    .cors_rules(rule)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(error_code(&err), "InvalidRequest");
    }
    let err = client
        .get_bucket_cors()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        error_code(&err),
        "NoSuchCORSConfiguration",
        "nothing was stored"
    );
}
