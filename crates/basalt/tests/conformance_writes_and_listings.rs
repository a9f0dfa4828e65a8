//! S3 behaviours tools rely on, as AWS documents them: the whole set of conditional writes
//! (`If-None-Match: <etag>`, `If-Match: *`, on PutObject and CompleteMultipartUpload, in
//! versioned and unversioned buckets), ListBuckets paging, and the tag count on HEAD.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, VersioningConfiguration,
};
use common::{Server, error_code};

fn status<E>(err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> u16 {
    err.raw_response().map_or(0, |r| r.status().as_u16())
}

async fn body(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

async fn conditional_puts_in(client: &aws_sdk_s3::Client, bucket: &str) {
    let first = client
        .put_object()
        .bucket(bucket)
        .key("k")
        .body(ByteStream::from_static(b"first"))
        .send()
        .await
        .expect("put");
    let etag = first.e_tag().expect("etag").to_owned();

    // If-None-Match: <etag> fails when the current ETag is that one...
    let err = client
        .put_object()
        .bucket(bucket)
        .key("k")
        .if_none_match(&etag)
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .expect_err("the current etag matches");
    assert_eq!(error_code(&err), "PreconditionFailed");
    assert_eq!(status(&err), 412);
    assert_eq!(body(client, bucket, "k").await, b"first");
    // ...and succeeds for another ETag, and on a missing key.
    client
        .put_object()
        .bucket(bucket)
        .key("k")
        .if_none_match("\"00000000000000000000000000000000\"")
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .expect("another etag");
    assert_eq!(body(client, bucket, "k").await, b"second");
    client
        .put_object()
        .bucket(bucket)
        .key("new")
        .if_none_match(&etag)
        .body(ByteStream::from_static(b"new"))
        .send()
        .await
        .expect("a missing key matches no etag");

    // If-Match: * needs the key to exist: 404 NoSuchKey otherwise, nothing stored.
    client
        .put_object()
        .bucket(bucket)
        .key("k")
        .if_match("*")
        .body(ByteStream::from_static(b"third"))
        .send()
        .await
        .expect("if-match * on an existing key");
    assert_eq!(body(client, bucket, "k").await, b"third");
    let err = client
        .put_object()
        .bucket(bucket)
        .key("absent")
        .if_match("*")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("if-match * on a missing key");
    assert_eq!(error_code(&err), "NoSuchKey");
    assert_eq!(status(&err), 404);
    assert!(
        client
            .head_object()
            .bucket(bucket)
            .key("absent")
            .send()
            .await
            .is_err()
    );

    // The same on CompleteMultipartUpload.
    let current = client
        .head_object()
        .bucket(bucket)
        .key("k")
        .send()
        .await
        .expect("head")
        .e_tag()
        .expect("etag")
        .to_owned();
    let complete = |key: &'static str, if_none_match: Option<String>, if_match: Option<String>| {
        let client = client.clone();
        let bucket = bucket.to_owned();
        async move {
            let upload = client
                .create_multipart_upload()
                .bucket(&bucket)
                .key(key)
                .send()
                .await
                .expect("create upload");
            let id = upload.upload_id().expect("upload id").to_owned();
            let part = client
                .upload_part()
                .bucket(&bucket)
                .key(key)
                .upload_id(&id)
                .part_number(1)
                .body(ByteStream::from_static(b"multipart"))
                .send()
                .await
                .expect("part");
            let mut req = client
                .complete_multipart_upload()
                .bucket(&bucket)
                .key(key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .parts(
                            CompletedPart::builder()
                                .part_number(1)
                                .e_tag(part.e_tag().expect("part etag"))
                                .build(),
                        )
                        .build(),
                );
            if let Some(e) = if_none_match {
                req = req.if_none_match(e);
            }
            if let Some(e) = if_match {
                req = req.if_match(e);
            }
            req.send().await.map(|_| ())
        }
    };
    let err = complete("k", Some(current.clone()), None)
        .await
        .expect_err("completion with the current etag in If-None-Match");
    assert_eq!(error_code(&err), "PreconditionFailed");
    assert_eq!(body(client, bucket, "k").await, b"third");
    let err = complete("absent-mp", None, Some("*".into()))
        .await
        .expect_err("completion with If-Match * on a missing key");
    assert_eq!(error_code(&err), "NoSuchKey");
    complete("k", None, Some("*".into()))
        .await
        .expect("completion with If-Match * on an existing key");
    assert_eq!(body(client, bucket, "k").await, b"multipart");
}

#[tokio::test]
async fn conditional_writes_follow_aws_in_unversioned_and_versioned_buckets() {
    let server = Server::start();
    let client = server.client();
    client
        .create_bucket()
        .bucket("plain")
        .send()
        .await
        .expect("bucket");
    conditional_puts_in(&client, "plain").await;
    client
        .create_bucket()
        .bucket("versioned")
        .send()
        .await
        .expect("bucket");
    client
        .put_bucket_versioning()
        .bucket("versioned")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    conditional_puts_in(&client, "versioned").await;
}

#[tokio::test]
async fn list_buckets_pages_with_max_buckets_continuation_and_prefix() {
    let server = Server::start();
    let client = server.client();
    let names = ["alpha-1", "alpha-2", "alpha-3", "beta-1", "beta-2"];
    for name in names {
        client
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .expect("bucket");
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client
            .list_buckets()
            .max_buckets(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("list");
        pages += 1;
        assert!(page.buckets().len() <= 2);
        seen.extend(
            page.buckets()
                .iter()
                .filter_map(|b| b.name().map(str::to_owned)),
        );
        token = page.continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, names);
    assert_eq!(pages, 3);

    let betas = client
        .list_buckets()
        .prefix("beta")
        .send()
        .await
        .expect("prefix");
    let got: Vec<&str> = betas.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(got, ["beta-1", "beta-2"]);
    assert_eq!(betas.prefix(), Some("beta"));
    assert!(betas.continuation_token().is_none());

    let err = client
        .list_buckets()
        .max_buckets(0)
        .send()
        .await
        .expect_err("max-buckets 0");
    assert_eq!(error_code(&err), "InvalidArgument");
    let err = client
        .list_buckets()
        .continuation_token("not base64 !")
        .send()
        .await
        .expect_err("a forged token");
    assert_eq!(error_code(&err), "InvalidArgument");
}

#[tokio::test]
async fn head_reports_the_tag_count() {
    let server = Server::start();
    let client = server.client();
    client
        .create_bucket()
        .bucket("tags")
        .send()
        .await
        .expect("bucket");
    client
        .put_object()
        .bucket("tags")
        .key("k")
        .tagging("a=1&b=2")
        .body(ByteStream::from_static(b"tagged"))
        .send()
        .await
        .expect("put");
    let head = common::RawRequest::new("HEAD", "/tags/k", b"").send(server.port);
    assert!(
        head.to_ascii_lowercase().contains("x-amz-tagging-count: 2"),
        "{head}"
    );
    client
        .put_object()
        .bucket("tags")
        .key("plain")
        .body(ByteStream::from_static(b"untagged"))
        .send()
        .await
        .expect("put");
    let head = common::RawRequest::new("HEAD", "/tags/plain", b"").send(server.port);
    assert!(
        !head.to_ascii_lowercase().contains("x-amz-tagging-count"),
        "{head}"
    );
}
