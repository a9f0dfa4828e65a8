//! Copy.

use super::*;

#[tokio::test]
async fn copy_object_directives_and_errors() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "src").await;
    new_bucket(&client, "dst").await;
    let data = bytes_of(100_000, 3);
    let src_etag = client
        .put_object()
        .bucket("src")
        .key("orig")
        .body(ByteStream::from(data.clone()))
        .content_type("image/png")
        .cache_control("max-age=60")
        .metadata("k1", "lv1")
        .send()
        .await
        .expect("put")
        .e_tag()
        .expect("etag")
        .to_owned();

    // COPY (default): metadata and headers come from the source.
    let out = client
        .copy_object()
        .bucket("src")
        .key("copy")
        .copy_source("src/orig")
        .send()
        .await
        .expect("copy");
    assert_eq!(
        out.copy_object_result().and_then(|r| r.e_tag()),
        Some(src_etag.as_str())
    );
    let head = client
        .head_object()
        .bucket("src")
        .key("copy")
        .send()
        .await
        .expect("head copy");
    assert_eq!(head.content_type(), Some("image/png"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("k1"))
            .map(String::as_str),
        Some("lv1")
    );
    assert!(get_bytes(&client, "src", "copy").await == data);

    // Explicit COPY with new metadata given: the new metadata is ignored.
    client
        .copy_object()
        .bucket("src")
        .key("copy2")
        .copy_source("src/orig")
        .metadata_directive(MetadataDirective::Copy)
        .metadata("k2", "ignored")
        .send()
        .await
        .expect("copy directive");
    let head = client
        .head_object()
        .bucket("src")
        .key("copy2")
        .send()
        .await
        .expect("head");
    let md = head.metadata().cloned().unwrap_or_default();
    assert_eq!(md.get("k1").map(String::as_str), Some("lv1"));
    assert!(!md.contains_key("k2"), "{md:?}");

    // REPLACE: metadata and headers come from the request.
    client
        .copy_object()
        .bucket("dst")
        .key("replaced")
        .copy_source("src/orig")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("k2", "v2")
        .content_type("text/csv")
        .send()
        .await
        .expect("copy replace across buckets");
    let head = client
        .head_object()
        .bucket("dst")
        .key("replaced")
        .send()
        .await
        .expect("head replaced");
    let md = head.metadata().cloned().unwrap_or_default();
    assert_eq!(md.get("k2").map(String::as_str), Some("v2"));
    assert!(
        !md.contains_key("k1"),
        "REPLACE drops the source metadata: {md:?}"
    );
    assert_eq!(head.content_type(), Some("text/csv"));
    assert!(
        head.cache_control().is_none(),
        "REPLACE drops source Cache-Control"
    );
    assert!(get_bytes(&client, "dst", "replaced").await == data);

    // Onto itself without REPLACE.
    let err = client
        .copy_object()
        .bucket("src")
        .key("orig")
        .copy_source("src/orig")
        .send()
        .await
        .expect_err("self");
    assert_eq!(failure(&err), (400, "InvalidRequest".to_owned()));
    // Onto itself with REPLACE is allowed and changes metadata.
    client
        .copy_object()
        .bucket("src")
        .key("orig")
        .copy_source("src/orig")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("k3", "v3")
        .send()
        .await
        .expect("self copy with REPLACE");
    let head = client
        .head_object()
        .bucket("src")
        .key("orig")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("k3"))
            .map(String::as_str),
        Some("v3")
    );

    // Source conditions.
    let err = client
        .copy_object()
        .bucket("dst")
        .key("cond")
        .copy_source("src/orig")
        .copy_source_if_match("\"0123\"")
        .send()
        .await
        .expect_err("copy if-match mismatch");
    assert_eq!(failure(&err), (412, "PreconditionFailed".to_owned()));
    client
        .copy_object()
        .bucket("dst")
        .key("cond")
        .copy_source("src/orig")
        .copy_source_if_match(&src_etag)
        .send()
        .await
        .expect("copy if-match ok");
    let err = client
        .copy_object()
        .bucket("dst")
        .key("cond2")
        .copy_source("src/orig")
        .copy_source_if_none_match(&src_etag)
        .send()
        .await
        .expect_err("copy if-none-match match");
    assert_eq!(failure(&err), (412, "PreconditionFailed".to_owned()));
    let err = client
        .head_object()
        .bucket("dst")
        .key("cond2")
        .send()
        .await
        .expect_err("not created");
    assert_eq!(status(&err), 404);

    // Missing source / missing source bucket / missing destination bucket.
    let err = client
        .copy_object()
        .bucket("dst")
        .key("x")
        .copy_source("src/missing")
        .send()
        .await
        .expect_err("nokey");
    assert_eq!(failure(&err), (404, "NoSuchKey".to_owned()));
    let err = client
        .copy_object()
        .bucket("dst")
        .key("x")
        .copy_source("nobucket/orig")
        .send()
        .await
        .expect_err("nob");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));
    let err = client
        .copy_object()
        .bucket("nobucket")
        .key("x")
        .copy_source("src/orig")
        .send()
        .await
        .expect_err("nod");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));
}

#[tokio::test]
async fn copy_object_large_source() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "cpl").await;
    let data = bytes_of(6 * MIB + 5, 11);
    let etag = put(&client, "cpl", "big", &data).await;
    let out = client
        .copy_object()
        .bucket("cpl")
        .key("big-copy")
        .copy_source("cpl/big")
        .send()
        .await
        .expect("copy");
    assert_eq!(
        out.copy_object_result().and_then(|r| r.e_tag()),
        Some(etag.as_str())
    );
    assert!(get_bytes(&client, "cpl", "big-copy").await == data);
}
