//! Object and bucket tagging through the AWS SDK: set with `x-amz-tagging` and the tagging
//! APIs, carried by copies and multipart uploads, and AWS's limits with their error codes.
#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging, TaggingDirective};
use common::{error_code, server_with_bucket};

const BUCKET: &str = "tags";

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    Tagging::builder()
        .set_tag_set(Some(
            pairs
                .iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
                .collect(),
        ))
        .build()
        .unwrap()
}

async fn tags_of(client: &Client, key: &str) -> Vec<(String, String)> {
    client
        .get_object_tagging()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap()
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn put(client: &Client, key: &str, tagging: Option<&str>) {
    client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .set_tagging(tagging.map(str::to_owned))
        .body(ByteStream::from_static(b"tagged bytes"))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn object_tags_are_set_read_replaced_copied_and_removed() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    put(&client, "a", Some("team=ml&note=raw%20data")).await;
    assert_eq!(
        tags_of(&client, "a").await,
        pairs(&[("team", "ml"), ("note", "raw data")])
    );
    let got = client
        .get_object()
        .bucket(BUCKET)
        .key("a")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count(), Some(2));

    client
        .put_object_tagging()
        .bucket(BUCKET)
        .key("a")
        .tagging(tagging(&[("stage", "gold")]))
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&client, "a").await, pairs(&[("stage", "gold")]));

    // A copy keeps the source's tags unless told to replace them.
    client
        .copy_object()
        .bucket(BUCKET)
        .key("copy")
        .copy_source(format!("{BUCKET}/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&client, "copy").await, pairs(&[("stage", "gold")]));
    client
        .copy_object()
        .bucket(BUCKET)
        .key("replaced")
        .copy_source(format!("{BUCKET}/a"))
        .tagging_directive(TaggingDirective::Replace)
        .tagging("fresh=1")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&client, "replaced").await, pairs(&[("fresh", "1")]));

    // An overwrite is a new object: its tags are the ones it came with.
    put(&client, "a", None).await;
    assert!(tags_of(&client, "a").await.is_empty());
    let got = client
        .get_object()
        .bucket(BUCKET)
        .key("a")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count(), None);

    client
        .delete_object_tagging()
        .bucket(BUCKET)
        .key("copy")
        .send()
        .await
        .unwrap();
    assert!(tags_of(&client, "copy").await.is_empty());
}

#[tokio::test]
async fn a_multipart_upload_gives_its_tags_to_the_object() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let upload = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .tagging("source=upload")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let part = client
        .upload_part()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"only part"))
        .send()
        .await
        .unwrap();
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&client, "mp").await, pairs(&[("source", "upload")]));
}

#[tokio::test]
async fn tags_beyond_aws_limits_are_refused_and_change_nothing() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
    let err = client
        .put_object()
        .bucket(BUCKET)
        .key("too-many")
        .tagging(eleven.join("&"))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidTag");
    let err = client
        .head_object()
        .bucket(BUCKET)
        .key("too-many")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NotFound", "a refused PUT stored nothing");

    put(&client, "k", Some("keep=me")).await;
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(257);
    let cases = [
        tagging(&[("dup", "1"), ("dup", "2")]),
        tagging(&[(long_key.as_str(), "v")]),
        tagging(&[("k", long_value.as_str())]),
        tagging(&[("aws:reserved", "v")]),
    ];
    for case in cases {
        let err = client
            .put_object_tagging()
            .bucket(BUCKET)
            .key("k")
            .tagging(case)
            .send()
            .await
            .unwrap_err();
        assert_eq!(error_code(&err), "InvalidTag");
    }
    assert_eq!(tags_of(&client, "k").await, pairs(&[("keep", "me")]));

    let err = client
        .put_object_tagging()
        .bucket(BUCKET)
        .key("missing")
        .tagging(tagging(&[("a", "b")]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NoSuchKey");
}

#[tokio::test]
async fn bucket_tags_are_set_read_and_removed() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let err = client
        .get_bucket_tagging()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NoSuchTagSet");

    client
        .put_bucket_tagging()
        .bucket(BUCKET)
        .tagging(tagging(&[("cost-center", "42"), ("owner", "data")]))
        .send()
        .await
        .unwrap();
    let got = client
        .get_bucket_tagging()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let got: Vec<_> = got.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(got, [("cost-center", "42"), ("owner", "data")]);

    let fifty_one: Vec<(String, String)> = (0..51).map(|i| (format!("k{i}"), "v".into())).collect();
    let refs: Vec<(&str, &str)> = fifty_one
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let err = client
        .put_bucket_tagging()
        .bucket(BUCKET)
        .tagging(tagging(&refs))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidTag");

    client
        .delete_bucket_tagging()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let err = client
        .get_bucket_tagging()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NoSuchTagSet");
    let err = client
        .get_bucket_tagging()
        .bucket("no-such-bucket")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NoSuchBucket");
}
