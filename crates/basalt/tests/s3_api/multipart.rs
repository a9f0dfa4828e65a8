//! Multipart.

use super::*;

#[tokio::test]
async fn multipart_full_lifecycle() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "mpu").await;
    let created = client
        .create_multipart_upload()
        .bucket("mpu")
        .key("assembled")
        .content_type("application/octet-stream")
        .metadata("origin", "multipart")
        .send()
        .await
        .expect("create");
    let id = created.upload_id().expect("upload id").to_owned();
    assert_eq!(created.bucket(), Some("mpu"));
    assert_eq!(created.key(), Some("assembled"));

    let p1 = bytes_of(5 * MIB, 21);
    let p2 = bytes_of(5 * MIB, 22);
    let p3 = bytes_of(1024, 23);
    let e1 = upload_part(&client, "mpu", "assembled", &id, 1, &p1).await;
    let e2 = upload_part(&client, "mpu", "assembled", &id, 2, &p2).await;
    let e3 = upload_part(&client, "mpu", "assembled", &id, 3, &p3).await;
    assert_eq!(e1, quoted(&md5_hex(&p1)));
    assert_eq!(e2, quoted(&md5_hex(&p2)));
    assert_eq!(e3, quoted(&md5_hex(&p3)));

    let parts = client
        .list_parts()
        .bucket("mpu")
        .key("assembled")
        .upload_id(&id)
        .send()
        .await
        .expect("list parts");
    let listed: Vec<_> = parts
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.e_tag(), p.size()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (Some(1), Some(e1.as_str()), Some(p1.len() as i64)),
            (Some(2), Some(e2.as_str()), Some(p2.len() as i64)),
            (Some(3), Some(e3.as_str()), Some(p3.len() as i64)),
        ]
    );
    assert_eq!(parts.is_truncated(), Some(false));
    let page = client
        .list_parts()
        .bucket("mpu")
        .key("assembled")
        .upload_id(&id)
        .max_parts(2)
        .send()
        .await
        .expect("list parts page");
    assert_eq!(page.parts().len(), 2);
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.next_part_number_marker(), Some("2"));
    let page = client
        .list_parts()
        .bucket("mpu")
        .key("assembled")
        .upload_id(&id)
        .part_number_marker("2")
        .send()
        .await
        .expect("list parts after 2");
    assert_eq!(
        page.parts()
            .iter()
            .map(|p| p.part_number())
            .collect::<Vec<_>>(),
        vec![Some(3)]
    );

    let uploads = client
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .expect("list uploads");
    let found: Vec<_> = uploads
        .uploads()
        .iter()
        .map(|u| (u.key(), u.upload_id()))
        .collect();
    assert_eq!(found, vec![(Some("assembled"), Some(id.as_str()))]);

    // The object does not exist before completion.
    let err = client
        .head_object()
        .bucket("mpu")
        .key("assembled")
        .send()
        .await
        .expect_err("not yet");
    assert_eq!(status(&err), 404);

    // Failed completions leave the upload intact.
    let err = client
        .complete_multipart_upload()
        .bucket("mpu")
        .key("assembled")
        .upload_id(&id)
        .multipart_upload(completed(vec![part(2, &e2), part(1, &e1), part(3, &e3)]))
        .send()
        .await
        .expect_err("out of order");
    assert_eq!(failure(&err), (400, "InvalidPartOrder".to_owned()));
    let err = client
        .complete_multipart_upload()
        .bucket("mpu")
        .key("assembled")
        .upload_id(&id)
        .multipart_upload(completed(vec![part(1, &e1), part(2, &e2), part(4, &e3)]))
        .send()
        .await
        .expect_err("part never uploaded");
    assert_eq!(failure(&err), (400, "InvalidPart".to_owned()));
    let err = client
        .complete_multipart_upload()
        .bucket("mpu")
        .key("assembled")
        .upload_id(&id)
        .multipart_upload(completed(vec![part(1, &e1), part(2, &e1), part(3, &e3)]))
        .send()
        .await
        .expect_err("wrong etag for a part");
    assert_eq!(failure(&err), (400, "InvalidPart".to_owned()));

    let done = client
        .complete_multipart_upload()
        .bucket("mpu")
        .key("assembled")
        .upload_id(&id)
        .multipart_upload(completed(vec![part(1, &e1), part(2, &e2), part(3, &e3)]))
        .send()
        .await
        .expect("complete");
    let etag = done.e_tag().expect("etag").to_owned();
    assert!(etag.ends_with("-3\""), "multipart ETag {etag}");
    assert_eq!(etag, multipart_etag(&[&p1, &p2, &p3]));

    let mut whole = p1.clone();
    whole.extend_from_slice(&p2);
    whole.extend_from_slice(&p3);
    let got = client
        .get_object()
        .bucket("mpu")
        .key("assembled")
        .send()
        .await
        .expect("get");
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(got.content_length(), Some(whole.len() as i64));
    assert_eq!(got.content_type(), Some("application/octet-stream"));
    assert_eq!(
        got.metadata()
            .and_then(|m| m.get("origin"))
            .map(String::as_str),
        Some("multipart")
    );
    let body = got.body.collect().await.expect("body").into_bytes();
    assert!(body.as_ref() == whole.as_slice(), "assembled bytes exact");

    // Range across the part boundary at 5 MiB.
    let (b, _, _) = get_range(
        &client,
        "mpu",
        "assembled",
        &format!("bytes={}-{}", 5 * MIB - 10, 5 * MIB + 9),
    )
    .await;
    assert_eq!(b, &whole[5 * MIB - 10..5 * MIB + 10]);

    let uploads = client
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .expect("list uploads");
    assert!(
        uploads.uploads().is_empty(),
        "completed upload is gone: {:?}",
        uploads.uploads()
    );
    let err = client
        .list_parts()
        .bucket("mpu")
        .key("assembled")
        .upload_id(&id)
        .send()
        .await
        .expect_err("gone");
    assert_eq!(failure(&err), (404, "NoSuchUpload".to_owned()));
    let listed = list_all_v2(&client, "mpu").await;
    assert_eq!(listed, vec!["assembled"]);
}

#[tokio::test]
async fn multipart_entity_too_small() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "small").await;
    let id = create_upload(&client, "small", "k").await;
    let e1 = upload_part(&client, "small", "k", &id, 1, &bytes_of(1024, 1)).await;
    let e2 = upload_part(&client, "small", "k", &id, 2, &bytes_of(1024, 2)).await;
    let err = client
        .complete_multipart_upload()
        .bucket("small")
        .key("k")
        .upload_id(&id)
        .multipart_upload(completed(vec![part(1, &e1), part(2, &e2)]))
        .send()
        .await
        .expect_err("too small");
    assert_eq!(failure(&err), (400, "EntityTooSmall".to_owned()));
    let err = client
        .head_object()
        .bucket("small")
        .key("k")
        .send()
        .await
        .expect_err("nothing stored");
    assert_eq!(status(&err), 404);

    // A single small part (it is the last) is fine.
    let done = client
        .complete_multipart_upload()
        .bucket("small")
        .key("k")
        .upload_id(&id)
        .multipart_upload(completed(vec![part(2, &e2)]))
        .send()
        .await
        .expect("single small last part");
    assert_eq!(
        done.e_tag(),
        Some(multipart_etag(&[&bytes_of(1024, 2)]).as_str())
    );
    assert_eq!(get_bytes(&client, "small", "k").await, bytes_of(1024, 2));

    // An empty part list is malformed.
    let id = create_upload(&client, "small", "k2").await;
    let err = client
        .complete_multipart_upload()
        .bucket("small")
        .key("k2")
        .upload_id(&id)
        .multipart_upload(completed(vec![]))
        .send()
        .await
        .expect_err("no parts");
    assert_eq!(status(&err), 400, "{err:?}");
}

#[tokio::test]
async fn multipart_abort_and_bad_part_numbers() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "abrt").await;
    let id = create_upload(&client, "abrt", "k").await;
    let e1 = upload_part(&client, "abrt", "k", &id, 1, b"some bytes").await;

    for n in [0, 10_001, -1] {
        let err = client
            .upload_part()
            .bucket("abrt")
            .key("k")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect_err("bad part number");
        assert_eq!(
            failure(&err),
            (400, "InvalidArgument".to_owned()),
            "part number {n}"
        );
    }
    upload_part(&client, "abrt", "k", &id, 10_000, b"max part number").await;

    let err = client
        .upload_part()
        .bucket("abrt")
        .key("k")
        .upload_id("not-an-upload-id")
        .part_number(1)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("unknown upload id");
    assert_eq!(failure(&err), (404, "NoSuchUpload".to_owned()));

    client
        .abort_multipart_upload()
        .bucket("abrt")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .expect("abort");
    let err = client
        .upload_part()
        .bucket("abrt")
        .key("k")
        .upload_id(&id)
        .part_number(2)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("upload after abort");
    assert_eq!(failure(&err), (404, "NoSuchUpload".to_owned()));
    let uploads = client
        .list_multipart_uploads()
        .bucket("abrt")
        .send()
        .await
        .expect("list uploads");
    assert!(
        uploads.uploads().is_empty(),
        "aborted upload is not listed: {:?}",
        uploads.uploads()
    );
    let err = client
        .complete_multipart_upload()
        .bucket("abrt")
        .key("k")
        .upload_id(&id)
        .multipart_upload(completed(vec![part(1, &e1)]))
        .send()
        .await
        .expect_err("complete after abort");
    assert_eq!(failure(&err), (404, "NoSuchUpload".to_owned()));
    let err = client
        .abort_multipart_upload()
        .bucket("abrt")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .expect_err("again");
    assert_eq!(failure(&err), (404, "NoSuchUpload".to_owned()));
    let err = client
        .head_object()
        .bucket("abrt")
        .key("k")
        .send()
        .await
        .expect_err("no object");
    assert_eq!(status(&err), 404);

    // An upload that does not exist is NoSuchUpload whatever the part list says.
    let err = client
        .complete_multipart_upload()
        .bucket("abrt")
        .key("k")
        .upload_id(&id)
        .multipart_upload(completed(vec![part(1, "\"not-an-md5\"")]))
        .send()
        .await
        .expect_err("complete after abort with a malformed etag");
    assert_eq!(failure(&err), (404, "NoSuchUpload".to_owned()));
}

#[tokio::test]
async fn multipart_list_uploads_rolls_up_keys_at_the_delimiter() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "lud").await;
    for key in ["a/1", "a/2", "b/x/1", "c", "d/1"] {
        create_upload(&client, "lud", key).await;
    }
    let page = |key_marker: Option<&str>| {
        client
            .list_multipart_uploads()
            .bucket("lud")
            .delimiter("/")
            .max_uploads(2)
            .set_key_marker(key_marker.map(str::to_owned))
            .send()
    };
    let first = page(None).await.expect("first page");
    let prefixes: Vec<_> = first
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["a/", "b/"]);
    assert!(first.uploads().is_empty());
    assert_eq!(first.is_truncated(), Some(true));
    assert_eq!(first.next_key_marker(), Some("b/"));
    let second = page(first.next_key_marker()).await.expect("second page");
    let keys: Vec<_> = second.uploads().iter().filter_map(|u| u.key()).collect();
    let prefixes: Vec<_> = second
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, ["c"]);
    assert_eq!(prefixes, ["d/"]);
    assert_eq!(second.is_truncated(), Some(false));
}

#[tokio::test]
async fn multipart_list_uploads_multiple() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "lup").await;
    let a1 = create_upload(&client, "lup", "a").await;
    let a2 = create_upload(&client, "lup", "a").await;
    let b = create_upload(&client, "lup", "b/c").await;
    assert_ne!(a1, a2);
    let out = client
        .list_multipart_uploads()
        .bucket("lup")
        .send()
        .await
        .expect("list");
    let keys: Vec<_> = out.uploads().iter().filter_map(|u| u.key()).collect();
    assert_eq!(keys, vec!["a", "a", "b/c"]);
    let ids: HashSet<_> = out.uploads().iter().filter_map(|u| u.upload_id()).collect();
    assert_eq!(ids, HashSet::from([a1.as_str(), a2.as_str(), b.as_str()]));
    let out = client
        .list_multipart_uploads()
        .bucket("lup")
        .prefix("b/")
        .send()
        .await
        .expect("prefix");
    assert_eq!(out.uploads().len(), 1);
    assert_eq!(out.uploads()[0].upload_id(), Some(b.as_str()));
    let out = client
        .list_multipart_uploads()
        .bucket("lup")
        .max_uploads(1)
        .send()
        .await
        .expect("page");
    assert_eq!(out.uploads().len(), 1);
    assert_eq!(out.is_truncated(), Some(true));
}

#[tokio::test]
async fn multipart_upload_part_copy() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "upc").await;
    let source = bytes_of(6 * MIB + 333, 31);
    put(&client, "upc", "source", &source).await;

    let id = create_upload(&client, "upc", "target").await;
    let copied = client
        .upload_part_copy()
        .bucket("upc")
        .key("target")
        .upload_id(&id)
        .part_number(1)
        .copy_source("upc/source")
        .copy_source_range("bytes=0-5242879")
        .send()
        .await
        .expect("upload part copy");
    let e1 = copied
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .expect("copy etag")
        .to_owned();
    assert_eq!(e1, quoted(&md5_hex(&source[..5 * MIB])));

    // Part 2 is uploaded normally; part 3 (the last) copies the rest of the source.
    let middle = bytes_of(5 * MIB, 32);
    let e2 = upload_part(&client, "upc", "target", &id, 2, &middle).await;
    let rest = format!("bytes={}-{}", 5 * MIB, source.len() - 1);
    let copied = client
        .upload_part_copy()
        .bucket("upc")
        .key("target")
        .upload_id(&id)
        .part_number(3)
        .copy_source("upc/source")
        .copy_source_range(&rest)
        .send()
        .await
        .expect("upload part copy 3");
    let e3 = copied
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .expect("etag")
        .to_owned();
    assert_eq!(e3, quoted(&md5_hex(&source[5 * MIB..])));

    let err = client
        .upload_part_copy()
        .bucket("upc")
        .key("target")
        .upload_id(&id)
        .part_number(4)
        .copy_source("upc/source")
        .copy_source_range(format!("bytes=0-{}", source.len()))
        .send()
        .await
        .expect_err("range past the end");
    assert_eq!(failure(&err), (416, "InvalidRange".to_owned()));
    let err = client
        .upload_part_copy()
        .bucket("upc")
        .key("target")
        .upload_id(&id)
        .part_number(4)
        .copy_source("upc/missing")
        .send()
        .await
        .expect_err("missing source");
    assert_eq!(failure(&err), (404, "NoSuchKey".to_owned()));

    let done = client
        .complete_multipart_upload()
        .bucket("upc")
        .key("target")
        .upload_id(&id)
        .multipart_upload(completed(vec![part(1, &e1), part(2, &e2), part(3, &e3)]))
        .send()
        .await
        .expect("complete");
    let mut expected = source[..5 * MIB].to_vec();
    expected.extend_from_slice(&middle);
    expected.extend_from_slice(&source[5 * MIB..]);
    assert_eq!(
        done.e_tag(),
        Some(multipart_etag(&[&source[..5 * MIB], &middle, &source[5 * MIB..]]).as_str())
    );
    assert!(
        get_bytes(&client, "upc", "target").await == expected,
        "copied parts byte-exact"
    );
}
