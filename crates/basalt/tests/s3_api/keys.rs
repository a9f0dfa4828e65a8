//! Keys.

use super::*;

#[tokio::test]
async fn key_length_limit() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "keys").await;
    let ok = "k".repeat(1024);
    put(&client, "keys", &ok, b"max").await;
    assert_eq!(get_bytes(&client, "keys", &ok).await, b"max");
    assert_eq!(list_all_v2(&client, "keys").await, vec![ok.clone()]);

    let too_long = "k".repeat(1025);
    let err = client
        .put_object()
        .bucket("keys")
        .key(&too_long)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("1025-byte key");
    assert_eq!(failure(&err), (400, "KeyTooLongError".to_owned()));
    assert_eq!(list_all_v2(&client, "keys").await.len(), 1);

    // The limit is in bytes, not characters: 342 three-byte characters = 1026 bytes.
    let multi = "€".repeat(342);
    let err = client
        .put_object()
        .bucket("keys")
        .key(&multi)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("1026-byte key");
    assert_eq!(failure(&err), (400, "KeyTooLongError".to_owned()));
}

#[tokio::test]
async fn keys_with_unicode_and_special_characters() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "uni").await;
    let keys = [
        "space in name.txt",
        "ünïcödé/日本語のファイル.txt",
        "emoji 🚀 rocket",
        "plus+sign",
        "percent%20literal",
        "question?mark",
        "hash#tag",
        "amp&ersand=eq",
        "dir/ leading space",
        "tilde~and(parens)",
        "a//double//slash",
    ];
    for (i, k) in keys.iter().enumerate() {
        let body = format!("body {i}");
        put(&client, "uni", k, body.as_bytes()).await;
        assert_eq!(
            get_bytes(&client, "uni", k).await,
            body.as_bytes(),
            "round trip of {k:?}"
        );
        client
            .head_object()
            .bucket("uni")
            .key(*k)
            .send()
            .await
            .unwrap_or_else(|e| panic!("head {k:?}: {e:?}"));
    }
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(list_all_v2(&client, "uni").await, expected);

    let out = client
        .list_objects_v2()
        .bucket("uni")
        .prefix("ünïcödé/")
        .send()
        .await
        .expect("unicode prefix");
    let got: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(got, vec!["ünïcödé/日本語のファイル.txt"]);

    let out = client
        .list_objects_v2()
        .bucket("uni")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .expect("url");
    let raw: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert!(
        raw.iter().all(|k| k.is_ascii() && !k.contains(' ')),
        "url-encoded keys are plain ASCII: {raw:?}"
    );
    let mut decoded: Vec<_> = raw.into_iter().map(url_decode).collect();
    decoded.sort();
    assert_eq!(decoded, expected, "url-encoded listing decodes to the keys");

    // Copy and delete with special keys.
    client
        .copy_object()
        .bucket("uni")
        .key("copy of emoji 🚀")
        .copy_source("uni/emoji%20%F0%9F%9A%80%20rocket")
        .send()
        .await
        .expect("copy with an encoded source");
    assert_eq!(
        get_bytes(&client, "uni", "copy of emoji 🚀").await,
        b"body 2"
    );
    for k in keys {
        client
            .delete_object()
            .bucket("uni")
            .key(k)
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete {k:?}: {e:?}"));
    }
    assert_eq!(list_all_v2(&client, "uni").await, vec!["copy of emoji 🚀"]);
}
