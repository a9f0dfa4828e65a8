//! Bad input, each answered with the right S3 error and nothing stored.

mod common;

use std::time::{Duration, SystemTime};

use common::{RawRequest, Server, status_of};

const BUCKET: &str = "bad-input";

async fn assert_absent(client: &aws_sdk_s3::Client, key: &str) {
    let err = client
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect_err("object must not exist");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(404),
        "{key} was stored"
    );
}

async fn assert_bucket_empty(client: &aws_sdk_s3::Client) {
    let listed = client
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    assert_eq!(
        listed.key_count(),
        Some(0),
        "something was stored: {:?}",
        listed.contents()
    );
}

fn chunk_files(server: &Server) -> usize {
    std::fs::read_dir(server.data.join("chunks"))
        .expect("chunks dir")
        .map(|d| {
            std::fs::read_dir(d.expect("entry").path())
                .expect("dir")
                .count()
        })
        .sum()
}

#[tokio::test]
async fn an_unsigned_request_is_refused() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    let raw = format!(
        "PUT /{BUCKET}/anon HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    );
    let resp = common::http_raw(server.port, raw.as_bytes()).expect("raw");
    assert_eq!(status_of(&resp), 403, "{resp}");
    assert!(resp.contains("<Code>AccessDenied</Code>"), "{resp}");
    assert_absent(&client, "anon").await;
}

#[tokio::test]
async fn a_signature_made_with_the_wrong_secret_is_refused() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    let path = format!("/{BUCKET}/forged");
    let mut req = RawRequest::new("PUT", &path, b"forged body");
    req.secret = "not-the-secret";
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 403, "{resp}");
    assert!(
        resp.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{resp}"
    );
    assert_absent(&client, "forged").await;

    // The same request signed correctly goes through: the test can tell the difference.
    let resp = RawRequest::new("PUT", &path, b"forged body").send(server.port);
    assert_eq!(status_of(&resp), 200, "{resp}");
}

#[tokio::test]
async fn a_request_outside_the_clock_skew_window_is_refused() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    let path = format!("/{BUCKET}/old");
    let mut req = RawRequest::new("PUT", &path, b"replayed");
    req.time = SystemTime::now() - Duration::from_secs(20 * 60);
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 403, "{resp}");
    assert!(resp.contains("RequestTimeTooSkewed"), "{resp}");
    assert_absent(&client, "old").await;
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_stores_nothing() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    // Small (would be inline) and large (chunks were already written when the body ends).
    for (key, sent, declared) in [
        ("short", 500usize, 1000usize),
        ("short-large", 6 << 20, 7 << 20),
    ] {
        let path = format!("/{BUCKET}/{key}");
        let body = common::bytes_of(sent, 7);
        let mut req = RawRequest::new("PUT", &path, &body);
        req.headers
            .push(("x-amz-content-sha256", "UNSIGNED-PAYLOAD".into()));
        req.declared_len = Some(declared);
        req.cut_off = true;
        let resp = req.send(server.port);
        let status = status_of(&resp);
        assert!(
            status == 0 || status == 400,
            "a truncated body must not be acknowledged: {resp}"
        );
        assert_absent(&client, key).await;
    }
    // Chunks of the cut-off write are deleted, not left for a restart.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while chunk_files(&server) > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        chunk_files(&server),
        0,
        "chunks of the truncated upload were left behind"
    );
}

#[tokio::test]
async fn malformed_xml_bodies_are_refused() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    client
        .put_object()
        .bucket(BUCKET)
        .key("keep")
        .body(b"keep me".to_vec().into())
        .send()
        .await
        .expect("put");
    let path = format!("/{BUCKET}?delete");
    let body = b"<Delete><Object><Key>keep</Key></Object";
    let md5 = base64_simd::STANDARD.encode_to_string(<md5::Md5 as md5::Digest>::digest(body));
    let mut req = RawRequest::new("POST", &path, body);
    req.headers.push(("content-md5", md5));
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert!(resp.contains("<Code>MalformedXML</Code>"), "{resp}");
    client
        .head_object()
        .bucket(BUCKET)
        .key("keep")
        .send()
        .await
        .expect("the object survives");

    let upload = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .send()
        .await
        .expect("create");
    let path = format!("/{BUCKET}/mp?uploadId={}", upload.upload_id().expect("id"));
    let resp = RawRequest::new("POST", &path, b"<CompleteMultipartUpload><Part>").send(server.port);
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert!(resp.contains("<Code>MalformedXML</Code>"), "{resp}");
    assert_absent(&client, "mp").await;
}

#[tokio::test]
async fn an_invalid_content_md5_is_refused() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    let path = format!("/{BUCKET}/md5");
    let mut req = RawRequest::new("PUT", &path, b"payload");
    req.headers.push(("content-md5", "not base64!".into()));
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert!(resp.contains("InvalidDigest"), "{resp}");

    let mut req = RawRequest::new("PUT", &path, b"payload");
    req.headers.push((
        "content-md5",
        base64_simd::STANDARD.encode_to_string([0u8; 16]),
    ));
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert!(resp.contains("<Code>BadDigest</Code>"), "{resp}");
    assert_bucket_empty(&client).await;
}

#[tokio::test]
async fn a_wrong_checksum_header_is_refused() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    let path = format!("/{BUCKET}/crc");
    let mut req = RawRequest::new("PUT", &path, b"payload");
    req.headers
        .push(("x-amz-checksum-crc32", "AAAAAA==".into()));
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert!(resp.contains("<Code>BadDigest</Code>"), "{resp}");
    assert_bucket_empty(&client).await;
}

#[tokio::test]
async fn invalid_bucket_names_are_refused() {
    let server = Server::start();
    let client = server.client();
    for name in [
        "ab",
        "UpperCase",
        "under_score",
        "-leading",
        "trailing-",
        "a..b",
        "192.168.1.1",
    ] {
        let path = format!("/{name}");
        let resp = RawRequest::new("PUT", &path, b"").send(server.port);
        assert_eq!(status_of(&resp), 400, "{name}: {resp}");
        assert!(
            resp.contains("<Code>InvalidBucketName</Code>"),
            "{name}: {resp}"
        );
    }
    let buckets = client.list_buckets().send().await.expect("list");
    assert!(
        buckets.buckets().is_empty(),
        "a bucket with an invalid name was created"
    );
}

#[tokio::test]
async fn keys_over_1024_bytes_or_not_utf8_are_refused() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    let long = "k".repeat(1025);
    let path = format!("/{BUCKET}/{long}");
    let resp = RawRequest::new("PUT", &path, b"x").send(server.port);
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert!(resp.contains("<Code>KeyTooLongError</Code>"), "{resp}");

    let path = format!("/{BUCKET}/bad%FF%FEkey");
    let resp = RawRequest::new("PUT", &path, b"x").send(server.port);
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert_bucket_empty(&client).await;

    let exact = "k".repeat(1024);
    client
        .put_object()
        .bucket(BUCKET)
        .key(&exact)
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect("1024 bytes is allowed");
}

#[tokio::test]
async fn an_expired_presigned_url_is_refused() {
    let (_server, client) = common::server_with_bucket(BUCKET).await;
    client
        .put_object()
        .bucket(BUCKET)
        .key("p")
        .body(b"secret".to_vec().into())
        .send()
        .await
        .expect("put");
    let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(1))
        .expect("config");
    let url = client
        .get_object()
        .bucket(BUCKET)
        .key("p")
        .presigned(config)
        .await
        .expect("presign");
    let http = reqwest::Client::new();
    let fresh = http.get(url.uri()).send().await.expect("get");
    assert_eq!(fresh.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let stale = http.get(url.uri()).send().await.expect("get");
    assert_eq!(stale.status().as_u16(), 403);
    let body = stale.text().await.expect("body");
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
}

#[tokio::test]
async fn out_of_range_reads_and_part_numbers_are_refused() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    client
        .put_object()
        .bucket(BUCKET)
        .key("r")
        .body(b"0123456789".to_vec().into())
        .send()
        .await
        .expect("put");
    let err = client
        .get_object()
        .bucket(BUCKET)
        .key("r")
        .range("bytes=10-20")
        .send()
        .await
        .expect_err("416");
    assert_eq!(common::error_code(&err), "InvalidRange");
    let err = client
        .get_object()
        .bucket(BUCKET)
        .key("r")
        .part_number(2)
        .send()
        .await
        .expect_err("no part 2");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(common::error_code(&err), "InvalidPartNumber");

    let upload = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .send()
        .await
        .expect("create");
    let id = upload.upload_id().expect("id");
    for n in [0, 10_001] {
        let err = client
            .upload_part()
            .bucket(BUCKET)
            .key("mp")
            .upload_id(id)
            .part_number(n)
            .body(b"x".to_vec().into())
            .send()
            .await
            .expect_err("out-of-range part number");
        assert_eq!(common::error_code(&err), "InvalidArgument", "part {n}");
    }
    drop(server);
}
