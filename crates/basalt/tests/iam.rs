//! Users, keys and policies through the AWS SDK: a read-only user, an explicit deny, a public
//! bucket policy for anonymous reads, and a revoked key.
#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::{Server, client_for, error_code, http_get};

#[tokio::test]
async fn policies_allow_deny_and_keys_can_be_revoked() {
    let server = Server::start();
    let root = server.client();
    root.create_bucket().bucket("data").send().await.unwrap();
    root.put_object()
        .bucket("data")
        .key("report.csv")
        .body(ByteStream::from_static(b"a,b\n"))
        .send()
        .await
        .unwrap();

    server.admin_json(&["user", "add", "analyst"]);
    let deny_csv = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::data/*.secret"}]}"#;
    server.admin_json(&["policy", "analyst", "readonly", deny_csv]);
    let key = server.admin_json(&["key", "create", "analyst"]);
    let (access, secret) = (
        key["access_key"].as_str().unwrap(),
        key["secret_key"].as_str().unwrap(),
    );
    let analyst = client_for(&server.endpoint(), access, secret);
    let body = analyst
        .get_object()
        .bucket("data")
        .key("report.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(body.body.collect().await.unwrap().to_vec(), b"a,b\n");
    let err = analyst
        .put_object()
        .bucket("data")
        .key("new")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessDenied");
    root.put_object()
        .bucket("data")
        .key("keys.secret")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let err = analyst
        .get_object()
        .bucket("data")
        .key("keys.secret")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessDenied", "an explicit deny wins");

    let anonymous = http_get(server.port, "/data/report.csv").unwrap();
    assert!(anonymous.starts_with("HTTP/1.1 403"), "{anonymous}");
    root.put_bucket_policy()
        .bucket("data")
        .policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::data/*.csv"}]}"#)
        .send()
        .await
        .unwrap();
    let anonymous = http_get(server.port, "/data/report.csv").unwrap();
    assert!(anonymous.starts_with("HTTP/1.1 200"), "{anonymous}");
    assert!(anonymous.ends_with("a,b\n"));
    let other = http_get(server.port, "/data/keys.secret").unwrap();
    assert!(other.starts_with("HTTP/1.1 403"), "{other}");

    server.admin_json(&["key", "revoke", access]);
    let err = analyst
        .get_object()
        .bucket("data")
        .key("report.csv")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidAccessKeyId");
}
