//! What a SigV4 signature does not cover is not obeyed: unsigned `x-amz-*` headers beside a
//! presigned URL or a signed header, a credential scope for another region or service, a
//! presigned URL valid for over a week, signed headers the request lacks, a session token
//! beside a long-term key, an Authorization header that is not ASCII. Each is refused and
//! stores nothing.

mod common;

use std::time::Duration;

use common::{ACCESS_KEY, RawRequest, SECRET_KEY, Server, status_of};

const BUCKET: &str = "signed";

/// A presigned URL for `method path`, valid for `expires`, signing `headers` (host always).
fn presign(
    port: u16,
    method: &str,
    path: &str,
    expires: Duration,
    headers: &[(&str, &str)],
) -> String {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, sign};
    use aws_sigv4::sign::v4;
    let url = format!("http://127.0.0.1:{port}{path}");
    let identity =
        aws_credential_types::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test").into();
    let mut settings = common::s3_signing_settings();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::NoHeader;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let host = format!("127.0.0.1:{port}");
    let mut all = vec![("host", host.as_str())];
    all.extend_from_slice(headers);
    let signable = SignableRequest::new(
        method,
        url.as_str(),
        all.into_iter(),
        SignableBody::UnsignedPayload,
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut request = http::Request::builder()
        .method(method)
        .uri(url.as_str())
        .body(())
        .expect("request");
    instructions.apply_to_request_http1x(&mut request);
    request.uri().to_string()
}

async fn server_with_objects() -> (Server, aws_sdk_s3::Client) {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    client
        .create_bucket()
        .bucket("private")
        .send()
        .await
        .expect("second bucket");
    client
        .put_object()
        .bucket("private")
        .key("secret")
        .body(
            b"the signer can read this, the URL's holder may not"
                .to_vec()
                .into(),
        )
        .send()
        .await
        .expect("put secret");
    (server, client)
}

async fn exists(client: &aws_sdk_s3::Client, key: &str) -> bool {
    client
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn a_presigned_put_with_unsigned_amz_headers_is_refused_and_stores_nothing() {
    let (server, client) = server_with_objects().await;
    let http = reqwest::Client::new();
    let smuggled: [(&str, &str); 5] = [
        ("x-amz-copy-source", "/private/secret"),
        ("x-amz-meta-owner", "mallory"),
        ("x-amz-tagging", "public=yes"),
        ("x-amz-acl", "public-read"),
        ("x-amz-server-side-encryption", "AES256"),
    ];
    for (i, (name, value)) in smuggled.iter().enumerate() {
        let key = format!("upload-{i}");
        let url = presign(
            server.port,
            "PUT",
            &format!("/{BUCKET}/{key}"),
            Duration::from_secs(300),
            &[],
        );
        let resp = http
            .put(&url)
            .header(*name, *value)
            .body("uploaded bytes")
            .send()
            .await
            .expect("put");
        assert_eq!(resp.status().as_u16(), 403, "{name}");
        let body = resp.text().await.expect("body");
        assert!(body.contains("<Code>AccessDenied</Code>"), "{name}: {body}");
        assert!(
            body.contains(name),
            "the error names the unsigned header: {body}"
        );
        assert!(!exists(&client, &key).await, "{name}: nothing stored");
    }

    // The same URL without the extra header, and a URL that signs the header, both work.
    let url = presign(
        server.port,
        "PUT",
        &format!("/{BUCKET}/plain"),
        Duration::from_secs(300),
        &[],
    );
    let resp = http.put(&url).body("plain").send().await.expect("put");
    assert_eq!(resp.status().as_u16(), 200);
    let url = presign(
        server.port,
        "PUT",
        &format!("/{BUCKET}/tagged"),
        Duration::from_secs(300),
        &[("x-amz-meta-owner", "alice")],
    );
    let resp = http
        .put(&url)
        .header("x-amz-meta-owner", "alice")
        .body("tagged")
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status().as_u16(), 200);
    let head = client
        .head_object()
        .bucket(BUCKET)
        .key("tagged")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("owner"))
            .map(String::as_str),
        Some("alice")
    );
}

#[tokio::test]
async fn a_header_signed_request_with_an_unsigned_copy_source_is_refused() {
    let (server, client) = server_with_objects().await;
    let mut req = RawRequest::new("PUT", "/signed/copy", b"");
    req.unsigned_headers = vec![("x-amz-copy-source", "/private/secret".into())];
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 403, "{resp}");
    assert!(resp.contains("<Code>AccessDenied</Code>"), "{resp}");
    assert!(!exists(&client, "copy").await);

    // Signed, the same copy is the root user's to make.
    let mut req = RawRequest::new("PUT", "/signed/copy", b"");
    req.headers = vec![("x-amz-copy-source", "/private/secret".into())];
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert!(exists(&client, "copy").await);
}

#[tokio::test]
async fn signed_headers_the_request_lacks_are_refused() {
    let (server, client) = server_with_objects().await;
    let mut req = RawRequest::new("PUT", "/signed/phantom", b"body");
    req.signed_not_sent = vec![("x-amz-meta-owner", "alice".into())];
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 403, "{resp}");
    assert!(
        resp.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{resp}"
    );
    assert!(!exists(&client, "phantom").await);
}

#[tokio::test]
async fn the_credential_scope_must_name_this_region_and_s3() {
    let (server, client) = server_with_objects().await;
    for (region, service) in [("eu-west-1", "s3"), ("", "s3"), ("us-east-1", "sts")] {
        let mut req = RawRequest::new("PUT", "/signed/scoped", b"body");
        req.region = region;
        req.service = service;
        let resp = req.send(server.port);
        assert_eq!(status_of(&resp), 400, "{region}/{service}: {resp}");
        assert!(
            resp.contains("<Code>AuthorizationHeaderMalformed</Code>"),
            "{region}/{service}: {resp}"
        );
    }
    assert!(!exists(&client, "scoped").await);
}

#[tokio::test]
async fn a_presigned_url_valid_for_over_a_week_is_refused() {
    let (server, client) = server_with_objects().await;
    let http = reqwest::Client::new();
    let week = Duration::from_secs(604_800);
    let url = presign(
        server.port,
        "PUT",
        "/signed/long",
        week + Duration::from_secs(1),
        &[],
    );
    let resp = http.put(&url).body("x").send().await.expect("put");
    assert_eq!(resp.status().as_u16(), 403);
    let body = resp.text().await.expect("body");
    assert!(
        body.contains("<Code>AuthorizationQueryParametersError</Code>"),
        "{body}"
    );
    assert!(!exists(&client, "long").await);
    let url = presign(server.port, "PUT", "/signed/week", week, &[]);
    let resp = http.put(&url).body("x").send().await.expect("put");
    assert_eq!(resp.status().as_u16(), 200, "a week is allowed");
}

#[tokio::test]
async fn a_session_token_beside_a_long_term_key_is_refused() {
    let (server, client) = server_with_objects().await;
    let mut req = RawRequest::new("PUT", "/signed/token", b"body");
    req.headers = vec![("x-amz-security-token", "made-up".into())];
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert!(resp.contains("<Code>InvalidToken</Code>"), "{resp}");
    assert!(!exists(&client, "token").await);
}

#[tokio::test]
async fn a_non_ascii_authorization_header_is_a_bad_request_not_anonymous() {
    let server = Server::start();
    let mut raw = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=\xff\xfe\r\nConnection: close\r\n\r\n".to_vec();
    raw.shrink_to_fit();
    let resp = common::http_raw(server.port, &raw).expect("raw");
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert!(
        resp.contains("<Code>AuthorizationHeaderMalformed</Code>"),
        "{resp}"
    );
}
