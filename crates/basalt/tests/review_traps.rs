//! Traps a security review found, each refused or answered as AWS does: a policy that names
//! a key twice, and a suffix range on an empty object.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::{RawRequest, error_code, status_of};

const BUCKET: &str = "traps";

#[tokio::test]
async fn a_policy_naming_a_key_twice_is_malformed_and_not_stored() {
    let (_server, client) = common::server_with_bucket(BUCKET).await;
    // Read with the last key winning, this would allow what its first key denies.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::traps/*"}]}"#;
    let err = client
        .put_bucket_policy()
        .bucket(BUCKET)
        .policy(policy)
        .send()
        .await
        .expect_err("a repeated key");
    assert_eq!(error_code(&err), "MalformedPolicy");
    let err = client
        .get_bucket_policy()
        .bucket(BUCKET)
        .send()
        .await
        .expect_err("nothing stored");
    assert_eq!(error_code(&err), "NoSuchBucketPolicy");
}

#[tokio::test]
async fn a_suffix_range_of_an_empty_object_is_the_empty_object() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    client
        .put_object()
        .bucket(BUCKET)
        .key("empty")
        .body(ByteStream::from_static(b""))
        .send()
        .await
        .expect("put");
    let mut req = RawRequest::new("GET", "/traps/empty", b"");
    req.headers = vec![("range", "bytes=-1".into())];
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert!(
        !resp.to_ascii_lowercase().contains("content-range"),
        "{resp}"
    );
    assert!(
        resp.to_ascii_lowercase().contains("content-length: 0"),
        "{resp}"
    );
    let mut req = RawRequest::new("GET", "/traps/empty", b"");
    req.headers = vec![("range", "bytes=0-0".into())];
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 416, "{resp}");
    assert!(resp.contains("<Code>InvalidRange</Code>"), "{resp}");
}
