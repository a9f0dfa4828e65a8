//! Protocol edges real clients hit, answered as AWS answers them: `Expect: 100-continue`
//! refused before the body, `aws-chunked` not stored as a content encoding, a replaced copy
//! with no type, listings with `max-keys=0` and an empty delimiter, a re-created bucket.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::MetadataDirective;
use common::{RawRequest, Server, error_code, status_of};

const BUCKET: &str = "edges";

#[tokio::test]
async fn expect_100_continue_is_refused_before_the_body_when_the_request_is_denied() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    // Anonymous: denied, and told so without a 100 Continue; the body is never sent.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    s.write_all(
        format!(
            "PUT /{BUCKET}/anon HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("head");
    let answer = common::read_until(&mut s, "</Error>", Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    // The client may or may not send the body now: the connection carries nothing more.
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );

    // Signed: the go-ahead comes, then the body, then 200.
    let mut req = RawRequest::new("PUT", "/edges/signed", b"");
    req.headers = vec![("expect", "100-continue".into())];
    let head = req
        .head(server.port, true)
        .replace("content-length: 0\r\n", "content-length: 5\r\n");
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    s.write_all(head.as_bytes()).expect("head");
    let go = common::read_until(&mut s, "\r\n\r\n", Duration::from_secs(10));
    assert!(go.starts_with("HTTP/1.1 100 Continue"), "{go}");
    s.write_all(b"hello").expect("body");
    let answer = common::read_until(&mut s, "\r\n\r\n", Duration::from_secs(10));
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(
        client
            .head_object()
            .bucket(BUCKET)
            .key("anon")
            .send()
            .await
            .is_err()
    );
    assert!(
        client
            .head_object()
            .bucket(BUCKET)
            .key("signed")
            .send()
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn aws_chunked_is_not_stored_as_a_content_encoding() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    for (key, sent, stored) in [
        ("gz", "gzip, aws-chunked", Some("gzip")),
        ("only", "aws-chunked", None),
        ("two", "br,gzip", Some("br, gzip")),
    ] {
        let path = format!("/{BUCKET}/{key}");
        let mut req = RawRequest::new("PUT", &path, b"data");
        req.headers = vec![("content-encoding", sent.into())];
        let resp = req.send(server.port);
        assert_eq!(status_of(&resp), 200, "{resp}");
        let head = client
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .expect("head");
        assert_eq!(head.content_encoding(), stored, "{sent}");
    }
}

#[tokio::test]
async fn a_replaced_copy_without_a_type_is_binary_octet_stream() {
    let (_server, client) = common::server_with_bucket(BUCKET).await;
    client
        .put_object()
        .bucket(BUCKET)
        .key("src")
        .content_type("text/csv")
        .body(ByteStream::from_static(b"a,b"))
        .send()
        .await
        .expect("put");
    client
        .copy_object()
        .bucket(BUCKET)
        .key("replaced")
        .copy_source(format!("{BUCKET}/src"))
        .metadata_directive(MetadataDirective::Replace)
        .send()
        .await
        .expect("copy");
    let head = client
        .head_object()
        .bucket(BUCKET)
        .key("replaced")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("binary/octet-stream"));
    client
        .copy_object()
        .bucket(BUCKET)
        .key("kept")
        .copy_source(format!("{BUCKET}/src"))
        .send()
        .await
        .expect("copy");
    let head = client
        .head_object()
        .bucket(BUCKET)
        .key("kept")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.content_type(),
        Some("text/csv"),
        "COPY keeps the source's type"
    );
}

#[tokio::test]
async fn listings_with_max_keys_zero_and_an_empty_delimiter() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    for key in ["a/1", "a/2", "b"] {
        client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect("put");
    }
    let page = client
        .list_objects_v2()
        .bucket(BUCKET)
        .max_keys(0)
        .send()
        .await
        .expect("list");
    assert!(page.contents().is_empty());
    assert_eq!(page.key_count(), Some(0));
    assert_eq!(page.is_truncated(), Some(false));

    // An empty delimiter groups nothing and is not echoed.
    for path in ["/edges?list-type=2&delimiter=", "/edges?delimiter="] {
        let resp = RawRequest::new("GET", path, b"").send(server.port);
        assert_eq!(status_of(&resp), 200, "{resp}");
        assert!(!resp.contains("<Delimiter>"), "{path}: {resp}");
        assert!(!resp.contains("<CommonPrefixes>"), "{path}: {resp}");
        assert_eq!(resp.matches("<Key>").count(), 3, "{path}: {resp}");
    }
    // V1 echoes the marker it was given.
    let v1 = RawRequest::new("GET", "/edges?marker=a%2F1", b"").send(server.port);
    assert!(v1.contains("<Marker>a/1</Marker>"), "{v1}");
}

#[tokio::test]
async fn recreating_an_owned_bucket_is_200_in_us_east_1_and_keeps_its_objects() {
    let (_server, client) = common::server_with_bucket(BUCKET).await;
    client
        .put_object()
        .bucket(BUCKET)
        .key("kept")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("a re-create in us-east-1 is 200");
    let listed = client
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    assert_eq!(listed.contents().len(), 1, "its objects are kept");

    let elsewhere = Server::start_with(&["--region", "eu-west-1"]);
    let client = common::config_for(
        &elsewhere.endpoint(),
        common::ACCESS_KEY,
        common::SECRET_KEY,
    )
    .region(aws_sdk_s3::config::Region::new("eu-west-1"))
    .build();
    let client = aws_sdk_s3::Client::from_conf(client);
    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
        .build();
    client
        .create_bucket()
        .bucket(BUCKET)
        .create_bucket_configuration(location.clone())
        .send()
        .await
        .expect("first create");
    let err = client
        .create_bucket()
        .bucket(BUCKET)
        .create_bucket_configuration(location)
        .send()
        .await
        .expect_err("a re-create elsewhere");
    assert_eq!(error_code(&err), "BucketAlreadyOwnedByYou");
}

#[tokio::test]
async fn anonymous_requests_learn_that_a_bucket_does_not_exist() {
    let (server, _client) = common::server_with_bucket(BUCKET).await;
    let missing = common::http_get(server.port, "/no-such-bucket-here/k").expect("get");
    assert_eq!(status_of(&missing), 404, "{missing}");
    assert!(missing.contains("<Code>NoSuchBucket</Code>"), "{missing}");
    let private = common::http_get(server.port, &format!("/{BUCKET}/k")).expect("get");
    assert_eq!(status_of(&private), 403, "{private}");
    assert!(private.contains("<Code>AccessDenied</Code>"), "{private}");
}
