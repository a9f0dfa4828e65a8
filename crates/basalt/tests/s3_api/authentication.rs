//! Authentication.

use super::*;

#[tokio::test]
async fn auth_bad_credentials() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "authb").await;

    let wrong_secret = common::client_for(&server.endpoint(), common::ACCESS_KEY, "not-the-secret");
    let err = wrong_secret
        .list_buckets()
        .send()
        .await
        .expect_err("wrong secret");
    assert_eq!(failure(&err), (403, "SignatureDoesNotMatch".to_owned()));
    let err = wrong_secret
        .put_object()
        .bucket("authb")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("wrong secret put");
    assert_eq!(failure(&err), (403, "SignatureDoesNotMatch".to_owned()));

    let unknown = common::client_for(&server.endpoint(), "nobody-knows-me", common::SECRET_KEY);
    let err = unknown
        .list_buckets()
        .send()
        .await
        .expect_err("unknown key");
    assert_eq!(failure(&err), (403, "InvalidAccessKeyId".to_owned()));

    assert!(
        list_all_v2(&client, "authb").await.is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn auth_presigned_urls() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "pre").await;
    put(&client, "pre", "file.txt", b"presigned content").await;
    put(&client, "pre", "other.txt", b"other content").await;
    let http = reqwest::Client::new();

    let fetch = |req: aws_sdk_s3::presigning::PresignedRequest| {
        let http = http.clone();
        async move {
            let mut r = http.get(req.uri());
            for (k, v) in req.headers() {
                r = r.header(k, v);
            }
            let resp = r.send().await.expect("fetch");
            let status = resp.status().as_u16();
            let body = resp.text().await.expect("text");
            (status, body)
        }
    };

    let presigned = client
        .get_object()
        .bucket("pre")
        .key("file.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).expect("config"))
        .await
        .expect("presign");
    let uri = presigned.uri().to_owned();
    assert!(uri.contains("X-Amz-Signature="), "{uri}");
    let (st, body) = fetch(presigned).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body, "presigned content");

    // A presigned PUT.
    let put_req = client
        .put_object()
        .bucket("pre")
        .key("uploaded.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).expect("config"))
        .await
        .expect("presign put");
    let mut r = http.put(put_req.uri()).body("via presigned put");
    for (k, v) in put_req.headers() {
        r = r.header(k, v);
    }
    let resp = r.send().await.expect("presigned put");
    assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text().await);
    assert_eq!(
        get_bytes(&client, "pre", "uploaded.txt").await,
        b"via presigned put"
    );

    // The path is covered by the signature.
    let altered = uri.replacen("/pre/file.txt", "/pre/other.txt", 1);
    assert_ne!(altered, uri);
    let resp = http.get(&altered).send().await.expect("altered");
    let st = resp.status().as_u16();
    let body = resp.text().await.expect("text");
    assert_eq!(st, 403, "{body}");
    assert!(
        body.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{body}"
    );

    // So is the query (here: a response override smuggled in).
    let resp = http
        .get(format!("{uri}&response-content-type=text/evil"))
        .send()
        .await
        .expect("extra query");
    assert_eq!(resp.status().as_u16(), 403);

    // Expiry: signed an hour ago for one second, so it expired long before it is sent.
    let expired = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(3600))
        .expires_in(Duration::from_secs(1))
        .build()
        .expect("config");
    let short = client
        .get_object()
        .bucket("pre")
        .key("file.txt")
        .presigned(expired)
        .await
        .expect("presign short");
    let (st, body) = fetch(short).await;
    assert_eq!(st, 403, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
}

#[tokio::test]
async fn every_response_has_a_request_id() {
    let server = Server::start();
    let raw = common::http_raw(
        server.port,
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .expect("raw GET /");
    let (status_line, headers, body) = parse_raw(&raw);
    assert!(status_line.starts_with("HTTP/1.1 403"), "{raw}");
    let id = header(&headers, "x-amz-request-id")
        .expect("x-amz-request-id header")
        .to_owned();
    assert!(!id.is_empty());
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    assert!(
        body.contains(&format!("<RequestId>{id}</RequestId>")),
        "body's RequestId equals the header: {body}"
    );

    // A second request gets a different id.
    let raw2 = common::http_raw(
        server.port,
        b"GET /some-bucket HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .expect("raw");
    let (_, headers2, _) = parse_raw(&raw2);
    let id2 = header(&headers2, "x-amz-request-id")
        .unwrap_or_else(|| panic!("x-amz-request-id missing: {raw2:?}"));
    assert_ne!(id, id2, "request ids are unique");

    // Successful and failed SDK calls carry one as well.
    let client = server.client();
    let out = client.list_buckets().send().await.expect("list");
    assert!(out.request_id().is_some_and(|id| !id.is_empty()));
    let err = client
        .head_bucket()
        .bucket("nope-bucket")
        .send()
        .await
        .expect_err("missing");
    let rid = err
        .raw_response()
        .and_then(|r| r.headers().get("x-amz-request-id"))
        .map(str::to_owned);
    assert!(
        rid.is_some_and(|id| !id.is_empty()),
        "404 HEAD carries x-amz-request-id"
    );
}

/// A client may half-close its write side after sending a *complete* request (as
/// `common::http_raw_cut_off` does); the server must still answer it (RFC 9112 §9.6).
#[tokio::test]
async fn half_closed_requests_are_answered() {
    let server = Server::start();
    let mut empty = 0;
    for _ in 0..20 {
        let raw = common::http_raw_cut_off(
            server.port,
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .expect("raw GET /");
        if raw.is_empty() {
            empty += 1;
        } else {
            assert!(raw.starts_with("HTTP/1.1 403"), "{raw}");
            assert!(
                raw.to_ascii_lowercase().contains("x-amz-request-id:"),
                "{raw}"
            );
        }
    }
    assert_eq!(
        empty, 0,
        "of 20 half-closed requests, {empty} got no response at all"
    );
}
