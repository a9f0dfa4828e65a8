//! Conditional writes.

use super::*;

#[tokio::test]
async fn conditional_put() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "cwr").await;

    client
        .put_object()
        .bucket("cwr")
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"first"))
        .send()
        .await
        .expect("if-none-match * on a new key");
    let err = client
        .put_object()
        .bucket("cwr")
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .expect_err("if-none-match * on an existing key");
    assert_eq!(failure(&err), (412, "PreconditionFailed".to_owned()));
    assert_eq!(get_bytes(&client, "cwr", "k").await, b"first");

    let etag = quoted(&md5_hex(b"first"));
    let out = client
        .put_object()
        .bucket("cwr")
        .key("k")
        .if_match(&etag)
        .body(ByteStream::from_static(b"third"))
        .send()
        .await
        .expect("if-match with the current etag");
    assert_eq!(out.e_tag(), Some(quoted(&md5_hex(b"third")).as_str()));
    let err = client
        .put_object()
        .bucket("cwr")
        .key("k")
        .if_match(&etag)
        .body(ByteStream::from_static(b"fourth"))
        .send()
        .await
        .expect_err("if-match with a stale etag");
    assert_eq!(failure(&err), (412, "PreconditionFailed".to_owned()));
    assert_eq!(get_bytes(&client, "cwr", "k").await, b"third");

    let err = client
        .put_object()
        .bucket("cwr")
        .key("absent")
        .if_match(&etag)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("if-match on a missing key");
    assert_eq!(failure(&err), (404, "NoSuchKey".to_owned()));
    let err = client
        .head_object()
        .bucket("cwr")
        .key("absent")
        .send()
        .await
        .expect_err("not created");
    assert_eq!(status(&err), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_put_race_has_one_winner() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "race").await;
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let body = bytes_of(64 * 1024, 100 + i);
            let r = client
                .put_object()
                .bucket("race")
                .key("contended")
                .if_none_match("*")
                .body(ByteStream::from(body.clone()))
                .send()
                .await;
            (body, r.map(|_| ()).map_err(|e| failure(&e)))
        }));
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    for t in tasks {
        let (body, r) = t.await.expect("join");
        match r {
            Ok(()) => winners.push(body),
            Err((412, code)) if code == "PreconditionFailed" => losers += 1,
            Err(other) => panic!("unexpected racer outcome: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one conditional PUT wins");
    assert_eq!(losers, 15);
    assert!(
        get_bytes(&client, "race", "contended").await == winners[0],
        "the winner's bytes are stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_complete_race_has_one_winner() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "mrace").await;
    let mut prepared = Vec::new();
    for i in 0..3u64 {
        let id = create_upload(&client, "mrace", "contended").await;
        let body = bytes_of(2048, 200 + i);
        let e = upload_part(&client, "mrace", "contended", &id, 1, &body).await;
        prepared.push((id, e, body));
    }
    let mut tasks = Vec::new();
    for (id, e, body) in prepared {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .complete_multipart_upload()
                .bucket("mrace")
                .key("contended")
                .upload_id(&id)
                .if_none_match("*")
                .multipart_upload(completed(vec![part(1, &e)]))
                .send()
                .await;
            (body, r.map(|_| ()).map_err(|e| failure(&e)))
        }));
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    for t in tasks {
        let (body, r) = t.await.expect("join");
        match r {
            Ok(()) => winners.push(body),
            Err((412, code)) if code == "PreconditionFailed" => losers += 1,
            Err(other) => panic!("unexpected racer outcome: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one conditional completion wins");
    assert_eq!(losers, 2);
    assert!(get_bytes(&client, "mrace", "contended").await == winners[0]);

    // And against an existing object, a sequential conditional completion fails too.
    let id = create_upload(&client, "mrace", "contended").await;
    let e = upload_part(&client, "mrace", "contended", &id, 1, b"late").await;
    let err = client
        .complete_multipart_upload()
        .bucket("mrace")
        .key("contended")
        .upload_id(&id)
        .if_none_match("*")
        .multipart_upload(completed(vec![part(1, &e)]))
        .send()
        .await
        .expect_err("existing key");
    assert_eq!(failure(&err), (412, "PreconditionFailed".to_owned()));
}
