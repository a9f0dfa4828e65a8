//! Objects: put / get / head.

use super::*;

#[tokio::test]
async fn object_round_trip_with_metadata_and_headers() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "objs").await;

    let data = b"hello, basalt".to_vec();
    let expires = DateTime::from_secs(1_900_000_000);
    let out = client
        .put_object()
        .bucket("objs")
        .key("dir/hello.txt")
        .body(ByteStream::from(data.clone()))
        .content_type("text/plain; charset=utf-8")
        .content_encoding("identity")
        .content_disposition("attachment; filename=\"hello.txt\"")
        .content_language("en-GB")
        .cache_control("max-age=3600")
        .expires(expires)
        .metadata("color", "blue")
        .metadata("owner-name", "Ada Lovelace")
        .send()
        .await
        .expect("put");
    let etag = out.e_tag().expect("etag").to_owned();
    assert_eq!(
        etag,
        quoted(&md5_hex(&data)),
        "a single-part ETag is the quoted hex md5"
    );
    assert!(
        out.request_id().is_some_and(|id| !id.is_empty()),
        "x-amz-request-id on PutObject"
    );

    let got = client
        .get_object()
        .bucket("objs")
        .key("dir/hello.txt")
        .send()
        .await
        .expect("get");
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(got.content_length(), Some(data.len() as i64));
    assert_eq!(got.content_type(), Some("text/plain; charset=utf-8"));
    assert_eq!(got.content_encoding(), Some("identity"));
    assert_eq!(
        got.content_disposition(),
        Some("attachment; filename=\"hello.txt\"")
    );
    assert_eq!(got.content_language(), Some("en-GB"));
    assert_eq!(got.cache_control(), Some("max-age=3600"));
    let exp = got.expires_string().expect("Expires header");
    assert_eq!(
        DateTime::from_str(exp, DateTimeFormat::HttpDate).expect("http date"),
        expires,
        "Expires {exp}"
    );
    let md = got.metadata().expect("metadata");
    assert_eq!(md.get("color").map(String::as_str), Some("blue"));
    assert_eq!(
        md.get("owner-name").map(String::as_str),
        Some("Ada Lovelace")
    );
    assert_eq!(md.len(), 2, "{md:?}");
    assert!(got.last_modified().is_some());
    assert_eq!(got.accept_ranges(), Some("bytes"));
    assert!(
        got.request_id().is_some_and(|id| !id.is_empty()),
        "x-amz-request-id on GetObject"
    );
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        data.as_slice()
    );

    let head = client
        .head_object()
        .bucket("objs")
        .key("dir/hello.txt")
        .send()
        .await
        .expect("head");
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.content_length(), Some(data.len() as i64));
    assert_eq!(head.content_type(), Some("text/plain; charset=utf-8"));
    assert_eq!(head.content_encoding(), Some("identity"));
    assert_eq!(
        head.content_disposition(),
        Some("attachment; filename=\"hello.txt\"")
    );
    assert_eq!(head.content_language(), Some("en-GB"));
    assert_eq!(head.cache_control(), Some("max-age=3600"));
    assert_eq!(
        DateTime::from_str(
            head.expires_string().expect("Expires"),
            DateTimeFormat::HttpDate
        )
        .expect("date"),
        expires
    );
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("color"))
            .map(String::as_str),
        Some("blue")
    );

    // Overwrite replaces data and metadata entirely.
    let etag2 = put(&client, "objs", "dir/hello.txt", b"second").await;
    assert_ne!(etag, etag2);
    let head = client
        .head_object()
        .bucket("objs")
        .key("dir/hello.txt")
        .send()
        .await
        .expect("head");
    assert!(
        head.metadata().is_none_or(|m| m.is_empty()),
        "old metadata gone: {:?}",
        head.metadata()
    );
    assert_eq!(head.content_length(), Some(6));
    assert_eq!(get_bytes(&client, "objs", "dir/hello.txt").await, b"second");

    // Missing keys.
    let err = client
        .get_object()
        .bucket("objs")
        .key("missing")
        .send()
        .await
        .expect_err("get missing");
    assert_eq!(failure(&err), (404, "NoSuchKey".to_owned()));
    let err = client
        .head_object()
        .bucket("objs")
        .key("missing")
        .send()
        .await
        .expect_err("head missing");
    assert_eq!(status(&err), 404);
    assert!(
        err.as_service_error().is_some_and(|e| e.is_not_found()),
        "{err:?}"
    );
}

#[tokio::test]
async fn object_empty() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "empty").await;
    let etag = put(&client, "empty", "zero", b"").await;
    assert_eq!(etag, "\"d41d8cd98f00b204e9800998ecf8427e\"");
    let head = client
        .head_object()
        .bucket("empty")
        .key("zero")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(0));
    assert_eq!(get_bytes(&client, "empty", "zero").await, Vec::<u8>::new());
    let listed = client
        .list_objects_v2()
        .bucket("empty")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.contents().len(), 1);
    assert_eq!(listed.contents()[0].size(), Some(0));
    assert_eq!(listed.contents()[0].e_tag(), Some(etag.as_str()));
}

#[tokio::test]
async fn object_large_and_ranges() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "big").await;
    let len = 9 * MIB + 123;
    let data = bytes_of(len, 7);
    let etag = put(&client, "big", "blob", &data).await;
    assert_eq!(etag, quoted(&md5_hex(&data)));

    let head = client
        .head_object()
        .bucket("big")
        .key("blob")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(len as i64));

    let whole = get_bytes(&client, "big", "blob").await;
    assert_eq!(whole.len(), len);
    assert!(whole == data, "9 MiB + 123 bytes round-trip byte-exact");

    let (b, cr, cl) = get_range(&client, "big", "blob", "bytes=0-9").await;
    assert_eq!(b, &data[..10]);
    assert_eq!(cr.as_deref(), Some(format!("bytes 0-9/{len}").as_str()));
    assert_eq!(cl, Some(10));

    let (b, cr, _) = get_range(&client, "big", "blob", "bytes=-5").await;
    assert_eq!(b, &data[len - 5..]);
    assert_eq!(
        cr.as_deref(),
        Some(format!("bytes {}-{}/{len}", len - 5, len - 1).as_str())
    );

    let (b, cr, cl) = get_range(&client, "big", "blob", "bytes=10-").await;
    assert!(b == data[10..], "open-ended range");
    assert_eq!(
        cr.as_deref(),
        Some(format!("bytes 10-{}/{len}", len - 1).as_str())
    );
    assert_eq!(cl, Some((len - 10) as i64));

    // Across the 4 MiB chunk boundary and the 8 MiB one.
    let start = 4 * MIB - 100;
    let end = 4 * MIB + 99;
    let (b, cr, _) = get_range(&client, "big", "blob", &format!("bytes={start}-{end}")).await;
    assert_eq!(b, &data[start..=end]);
    assert_eq!(
        cr.as_deref(),
        Some(format!("bytes {start}-{end}/{len}").as_str())
    );
    let start = 3 * MIB;
    let end = 8 * MIB + 17;
    let (b, _, _) = get_range(&client, "big", "blob", &format!("bytes={start}-{end}")).await;
    assert!(b == data[start..=end], "range spanning three chunks");

    // A last byte past the end is clamped.
    let (b, cr, _) = get_range(
        &client,
        "big",
        "blob",
        &format!("bytes={}-{}", len - 3, len + 1000),
    )
    .await;
    assert_eq!(b, &data[len - 3..]);
    assert_eq!(
        cr.as_deref(),
        Some(format!("bytes {}-{}/{len}", len - 3, len - 1).as_str())
    );

    // HEAD with a range reports the range.
    let head = client
        .head_object()
        .bucket("big")
        .key("blob")
        .range("bytes=0-9")
        .send()
        .await
        .expect("head range");
    assert_eq!(head.content_length(), Some(10));

    // A first byte past the end is not satisfiable.
    let err = client
        .get_object()
        .bucket("big")
        .key("blob")
        .range(format!("bytes={len}-"))
        .send()
        .await
        .expect_err("out of range");
    assert_eq!(failure(&err), (416, "InvalidRange".to_owned()));

    put(&client, "big", "small", b"0123456789").await;
    let err = client
        .get_object()
        .bucket("big")
        .key("small")
        .range("bytes=100-200")
        .send()
        .await
        .expect_err("oor");
    assert_eq!(failure(&err), (416, "InvalidRange".to_owned()));
}

#[tokio::test]
async fn object_response_overrides() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "ovr").await;
    client
        .put_object()
        .bucket("ovr")
        .key("k")
        .content_type("text/plain")
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .expect("put");
    let got = client
        .get_object()
        .bucket("ovr")
        .key("k")
        .response_content_type("application/x-custom")
        .response_content_disposition("attachment; filename=\"x.bin\"")
        .response_cache_control("no-cache")
        .response_content_language("fr")
        .send()
        .await
        .expect("get with overrides");
    assert_eq!(got.content_type(), Some("application/x-custom"));
    assert_eq!(
        got.content_disposition(),
        Some("attachment; filename=\"x.bin\"")
    );
    assert_eq!(got.cache_control(), Some("no-cache"));
    assert_eq!(got.content_language(), Some("fr"));
    // The stored header is unchanged.
    let head = client
        .head_object()
        .bucket("ovr")
        .key("k")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("text/plain"));
    assert!(head.content_disposition().is_none());
}

#[tokio::test]
async fn object_conditional_reads() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "cond").await;
    let etag = put(&client, "cond", "k", b"conditional").await;
    let future = DateTime::from_secs(now_secs() + 86_400);
    let past = DateTime::from_secs(now_secs() - 86_400);

    // If-Match.
    let got = client
        .get_object()
        .bucket("cond")
        .key("k")
        .if_match(&etag)
        .send()
        .await
        .expect("if-match ok");
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"conditional"
    );
    client
        .get_object()
        .bucket("cond")
        .key("k")
        .if_match("*")
        .send()
        .await
        .expect("if-match *");
    let err = client
        .get_object()
        .bucket("cond")
        .key("k")
        .if_match("\"0000\"")
        .send()
        .await
        .expect_err("mismatch");
    assert_eq!(failure(&err), (412, "PreconditionFailed".to_owned()));
    let err = client
        .head_object()
        .bucket("cond")
        .key("k")
        .if_match("\"0000\"")
        .send()
        .await
        .expect_err("head mismatch");
    assert_eq!(status(&err), 412);

    // If-None-Match.
    let err = client
        .get_object()
        .bucket("cond")
        .key("k")
        .if_none_match(&etag)
        .send()
        .await
        .expect_err("304");
    assert_eq!(
        status(&err),
        304,
        "If-None-Match with the current ETag: {err:?}"
    );
    let err = client
        .head_object()
        .bucket("cond")
        .key("k")
        .if_none_match(&etag)
        .send()
        .await
        .expect_err("head 304");
    assert_eq!(status(&err), 304);
    client
        .get_object()
        .bucket("cond")
        .key("k")
        .if_none_match("\"0000\"")
        .send()
        .await
        .expect("if-none-match other");

    // If-Modified-Since.
    let err = client
        .get_object()
        .bucket("cond")
        .key("k")
        .if_modified_since(future)
        .send()
        .await
        .expect_err("ims");
    assert_eq!(
        status(&err),
        304,
        "If-Modified-Since in the future: {err:?}"
    );
    client
        .get_object()
        .bucket("cond")
        .key("k")
        .if_modified_since(past)
        .send()
        .await
        .expect("modified since past");

    // If-Unmodified-Since.
    let err = client
        .get_object()
        .bucket("cond")
        .key("k")
        .if_unmodified_since(past)
        .send()
        .await
        .expect_err("ius");
    assert_eq!(failure(&err), (412, "PreconditionFailed".to_owned()));
    client
        .get_object()
        .bucket("cond")
        .key("k")
        .if_unmodified_since(future)
        .send()
        .await
        .expect("unmodified since future");

    // RFC 9110 precedence: If-Match true wins over If-Unmodified-Since false;
    // If-None-Match false wins over If-Modified-Since.
    client
        .get_object()
        .bucket("cond")
        .key("k")
        .if_match(&etag)
        .if_unmodified_since(past)
        .send()
        .await
        .expect("if-match overrides if-unmodified-since");
    client
        .get_object()
        .bucket("cond")
        .key("k")
        .if_none_match("\"0000\"")
        .if_modified_since(future)
        .send()
        .await
        .expect("if-none-match overrides if-modified-since");
}

#[tokio::test]
async fn object_part_number_reads() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "pnum").await;
    let p1 = bytes_of(5 * MIB, 1);
    let p2 = bytes_of(1000, 2);
    let id = create_upload(&client, "pnum", "mp").await;
    let e1 = upload_part(&client, "pnum", "mp", &id, 1, &p1).await;
    let e2 = upload_part(&client, "pnum", "mp", &id, 2, &p2).await;
    client
        .complete_multipart_upload()
        .bucket("pnum")
        .key("mp")
        .upload_id(&id)
        .multipart_upload(completed(vec![part(1, &e1), part(2, &e2)]))
        .send()
        .await
        .expect("complete");

    let got = client
        .get_object()
        .bucket("pnum")
        .key("mp")
        .part_number(1)
        .send()
        .await
        .expect("part 1");
    assert_eq!(got.parts_count(), Some(2));
    assert_eq!(got.content_length(), Some(p1.len() as i64));
    assert_eq!(
        got.content_range(),
        Some(format!("bytes 0-{}/{}", p1.len() - 1, p1.len() + p2.len()).as_str())
    );
    let b = got.body.collect().await.expect("body").into_bytes();
    assert!(b.as_ref() == p1.as_slice(), "part 1 bytes exactly");

    let got = client
        .get_object()
        .bucket("pnum")
        .key("mp")
        .part_number(2)
        .send()
        .await
        .expect("part 2");
    assert_eq!(got.parts_count(), Some(2));
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        p2.as_slice()
    );

    let head = client
        .head_object()
        .bucket("pnum")
        .key("mp")
        .part_number(1)
        .send()
        .await
        .expect("head part 1");
    assert_eq!(head.parts_count(), Some(2));
    assert_eq!(head.content_length(), Some(p1.len() as i64));

    let err = client
        .get_object()
        .bucket("pnum")
        .key("mp")
        .part_number(3)
        .send()
        .await
        .expect_err("part 3");
    assert_eq!(
        failure(&err),
        (400, "InvalidPartNumber".to_owned()),
        "part beyond the last"
    );
    let err = client
        .head_object()
        .bucket("pnum")
        .key("mp")
        .part_number(3)
        .send()
        .await
        .expect_err("head part 3");
    assert_eq!(status(&err), 400);

    // A plain object has one part.
    put(&client, "pnum", "plain", b"abc").await;
    let got = client
        .get_object()
        .bucket("pnum")
        .key("plain")
        .part_number(1)
        .send()
        .await
        .expect("plain part 1");
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"abc"
    );
    let err = client
        .get_object()
        .bucket("pnum")
        .key("plain")
        .part_number(2)
        .send()
        .await
        .expect_err("plain part 2");
    assert_eq!(failure(&err), (400, "InvalidPartNumber".to_owned()));
}
