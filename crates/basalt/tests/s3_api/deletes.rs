//! Deletes.

use super::*;

#[tokio::test]
async fn delete_object_and_missing_key() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "del").await;
    put(&client, "del", "k", b"x").await;
    client
        .delete_object()
        .bucket("del")
        .key("k")
        .send()
        .await
        .expect("delete");
    let err = client
        .head_object()
        .bucket("del")
        .key("k")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(status(&err), 404);
    // Deleting a key that does not exist succeeds (204).
    client
        .delete_object()
        .bucket("del")
        .key("never-existed")
        .send()
        .await
        .expect("delete missing key");
    // The status of a delete of a missing key is 204, seen through a presigned DELETE.
    let req = client
        .delete_object()
        .bucket("del")
        .key("never-existed-either")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).expect("config"))
        .await
        .expect("presign delete");
    let mut r = reqwest::Client::new().delete(req.uri());
    for (k, v) in req.headers() {
        r = r.header(k, v);
    }
    let resp = r.send().await.expect("delete");
    assert_eq!(resp.status().as_u16(), 204);
    let err = client
        .delete_object()
        .bucket("no-such-bucket")
        .key("k")
        .send()
        .await
        .expect_err("missing bucket");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));
}

#[tokio::test]
async fn delete_objects_quiet_and_verbose() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "multi").await;
    for k in ["a", "b", "c", "d"] {
        put(&client, "multi", k, k.as_bytes()).await;
    }
    let ids = |keys: &[&str]| -> Vec<ObjectIdentifier> {
        keys.iter()
            .map(|k| ObjectIdentifier::builder().key(*k).build().expect("id"))
            .collect()
    };

    let out = client
        .delete_objects()
        .bucket("multi")
        .delete(
            Delete::builder()
                .set_objects(Some(ids(&["a", "b", "missing"])))
                .quiet(false)
                .build()
                .expect("del"),
        )
        .send()
        .await
        .expect("delete objects verbose");
    let mut deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    assert_eq!(
        deleted,
        vec!["a", "b", "missing"],
        "a missing key also counts as deleted"
    );
    assert!(out.errors().is_empty(), "{:?}", out.errors());

    let out = client
        .delete_objects()
        .bucket("multi")
        .delete(
            Delete::builder()
                .set_objects(Some(ids(&["c"])))
                .quiet(true)
                .build()
                .expect("del"),
        )
        .send()
        .await
        .expect("delete objects quiet");
    assert!(
        out.deleted().is_empty(),
        "quiet mode lists no Deleted entries: {:?}",
        out.deleted()
    );
    assert!(out.errors().is_empty());

    assert_eq!(list_all_v2(&client, "multi").await, vec!["d"]);

    let err = client
        .delete_objects()
        .bucket("nope-bucket")
        .delete(
            Delete::builder()
                .set_objects(Some(ids(&["d"])))
                .build()
                .expect("del"),
        )
        .send()
        .await
        .expect_err("missing bucket");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));
}
