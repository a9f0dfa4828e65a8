//! Buckets.

use super::*;

#[tokio::test]
async fn bucket_create_list_head_location() {
    let server = Server::start();
    let client = server.client();

    let created = client
        .create_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect("create alpha");
    assert!(
        created.request_id().is_some_and(|id| !id.is_empty()),
        "x-amz-request-id on CreateBucket"
    );
    new_bucket(&client, "beta-bucket").await;

    let listed = client.list_buckets().send().await.expect("list buckets");
    let names: Vec<_> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(
        names,
        vec!["alpha", "beta-bucket"],
        "ListBuckets is sorted by name"
    );
    assert!(
        listed.buckets().iter().all(|b| b.creation_date().is_some()),
        "every bucket has a CreationDate"
    );

    client
        .head_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect("head existing bucket");

    let err = client
        .head_bucket()
        .bucket("missing-bucket")
        .send()
        .await
        .expect_err("head missing bucket");
    assert_eq!(status(&err), 404, "HeadBucket on a missing bucket: {err:?}");
    assert!(
        err.as_service_error().is_some_and(|e| e.is_not_found()),
        "HeadBucket error is NotFound: {err:?}"
    );

    let loc = client
        .get_bucket_location()
        .bucket("alpha")
        .send()
        .await
        .expect("location");
    let constraint = loc
        .location_constraint()
        .map(|c| c.as_str().to_owned())
        .unwrap_or_default();
    assert!(
        constraint.is_empty(),
        "us-east-1 has an empty LocationConstraint, got {constraint:?}"
    );

    let err = client
        .get_bucket_location()
        .bucket("missing-bucket")
        .send()
        .await
        .expect_err("location of missing");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));
}

#[tokio::test]
async fn bucket_create_twice_is_200_in_us_east_1() {
    // us-east-1 answers a re-create by the owner with 200 (protocol_edges.rs has the 409
    // of other regions).
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "twice").await;
    client
        .create_bucket()
        .bucket("twice")
        .send()
        .await
        .expect("second create");
    let listed = client.list_buckets().send().await.expect("list");
    assert_eq!(listed.buckets().len(), 1);
}

#[tokio::test]
async fn bucket_invalid_names_are_refused() {
    let server = Server::start();
    let client = server.client();
    for name in [
        "Bad_Name",
        "ab",
        "UPPER",
        "-leading-dash",
        "has..dots",
        "192.168.5.4",
    ] {
        let err = client
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .expect_err(name);
        // The SDK may refuse client-side (no response); a server answer must be InvalidBucketName.
        if let Some(raw) = err.raw_response() {
            assert_eq!(raw.status().as_u16(), 400, "{name}: {err:?}");
            assert_eq!(error_code(&err), "InvalidBucketName", "{name}");
        }
    }
    let listed = client.list_buckets().send().await.expect("list");
    assert!(
        listed.buckets().is_empty(),
        "no bucket was created: {:?}",
        listed.buckets()
    );

    // Length limits: 64 characters is too long, 63 and 3 are fine.
    let long = "a".repeat(64);
    let err = client
        .create_bucket()
        .bucket(&long)
        .send()
        .await
        .expect_err("64-char bucket name");
    if err.raw_response().is_some() {
        assert_eq!(failure(&err), (400, "InvalidBucketName".to_owned()));
    }
    let ok = "a".repeat(63);
    new_bucket(&client, &ok).await;
    new_bucket(&client, "abc").await;
}

#[tokio::test]
async fn bucket_delete_rules() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "full").await;
    put(&client, "full", "k", b"x").await;

    let err = client
        .delete_bucket()
        .bucket("full")
        .send()
        .await
        .expect_err("delete non-empty");
    assert_eq!(failure(&err), (409, "BucketNotEmpty".to_owned()));

    let err = client
        .delete_bucket()
        .bucket("nope-bucket")
        .send()
        .await
        .expect_err("delete missing");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));

    client
        .delete_object()
        .bucket("full")
        .key("k")
        .send()
        .await
        .expect("delete object");
    client
        .delete_bucket()
        .bucket("full")
        .send()
        .await
        .expect("delete now-empty bucket");
    let err = client
        .head_bucket()
        .bucket("full")
        .send()
        .await
        .expect_err("gone");
    assert_eq!(status(&err), 404);
    assert!(
        client
            .list_buckets()
            .send()
            .await
            .expect("list")
            .buckets()
            .is_empty()
    );

    // Operations on objects of a missing bucket.
    let err = client
        .put_object()
        .bucket("full")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("put");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));
    let err = client
        .get_object()
        .bucket("full")
        .key("k")
        .send()
        .await
        .expect_err("get");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));
    let err = client
        .list_objects_v2()
        .bucket("full")
        .send()
        .await
        .expect_err("list");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));
}
