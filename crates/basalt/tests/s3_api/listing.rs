//! Listing.

use super::*;

#[tokio::test]
async fn list_v2_prefix_and_delimiter() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "lst").await;
    for k in [
        "a.txt",
        "dir/one",
        "dir/two",
        "dir/sub/three",
        "dirx",
        "photos/2024/a.jpg",
        "photos/2025/b.jpg",
        "z",
    ] {
        put(&client, "lst", k, k.as_bytes()).await;
    }

    let out = client
        .list_objects_v2()
        .bucket("lst")
        .send()
        .await
        .expect("list");
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys,
        vec![
            "a.txt",
            "dir/one",
            "dir/sub/three",
            "dir/two",
            "dirx",
            "photos/2024/a.jpg",
            "photos/2025/b.jpg",
            "z"
        ]
    );
    assert_eq!(out.key_count(), Some(8));
    assert_eq!(out.is_truncated(), Some(false));
    assert!(out.next_continuation_token().is_none());
    let a = &out.contents()[0];
    assert_eq!(a.size(), Some(5));
    assert_eq!(a.e_tag(), Some(quoted(&md5_hex(b"a.txt")).as_str()));
    assert!(a.last_modified().is_some());

    let out = client
        .list_objects_v2()
        .bucket("lst")
        .prefix("dir")
        .send()
        .await
        .expect("prefix");
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["dir/one", "dir/sub/three", "dir/two", "dirx"]);
    assert_eq!(out.prefix(), Some("dir"));

    let out = client
        .list_objects_v2()
        .bucket("lst")
        .delimiter("/")
        .send()
        .await
        .expect("delimiter");
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<_> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, vec!["a.txt", "dirx", "z"]);
    assert_eq!(prefixes, vec!["dir/", "photos/"]);
    assert_eq!(
        out.key_count(),
        Some(5),
        "KeyCount counts keys and common prefixes"
    );
    assert_eq!(out.delimiter(), Some("/"));

    let out = client
        .list_objects_v2()
        .bucket("lst")
        .prefix("dir/")
        .delimiter("/")
        .send()
        .await
        .expect("p+d");
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<_> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, vec!["dir/one", "dir/two"]);
    assert_eq!(prefixes, vec!["dir/sub/"]);

    let out = client
        .list_objects_v2()
        .bucket("lst")
        .prefix("photos/")
        .delimiter("/")
        .send()
        .await
        .expect("photos");
    let prefixes: Vec<_> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, vec!["photos/2024/", "photos/2025/"]);
    assert!(out.contents().is_empty());

    let out = client
        .list_objects_v2()
        .bucket("lst")
        .prefix("nothing-here")
        .send()
        .await
        .expect("empty");
    assert!(out.contents().is_empty());
    assert_eq!(out.key_count(), Some(0));

    // Pagination with common prefixes: each prefix appears once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket("lst")
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("page");
        seen.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        seen.extend(
            out.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_owned)),
        );
        assert!(out.key_count().unwrap_or(0) <= 2);
        if out.is_truncated() != Some(true) {
            break;
        }
        token = out.next_continuation_token().map(str::to_owned);
        assert!(
            token.is_some(),
            "a truncated page carries a NextContinuationToken"
        );
    }
    seen.sort();
    assert_eq!(seen, vec!["a.txt", "dir/", "dirx", "photos/", "z"]);
}

#[tokio::test]
async fn list_v2_pagination_start_after_and_url_encoding() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "pages").await;
    let keys: Vec<String> = (0..25).map(|i| format!("key-{i:03}")).collect();
    for k in &keys {
        put(&client, "pages", k, b"v").await;
    }

    let mut collected = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = client
            .list_objects_v2()
            .bucket("pages")
            .max_keys(7)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("page");
        pages += 1;
        assert_eq!(out.max_keys(), Some(7));
        assert_eq!(
            out.continuation_token(),
            token.as_deref(),
            "the request's token is echoed"
        );
        let page: Vec<_> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        assert_eq!(out.key_count(), Some(page.len() as i32));
        collected.extend(page);
        if out.is_truncated() == Some(true) {
            assert_eq!(out.key_count(), Some(7));
            token = Some(
                out.next_continuation_token()
                    .expect("next token")
                    .to_owned(),
            );
        } else {
            assert!(out.next_continuation_token().is_none());
            break;
        }
        assert!(pages < 10, "pagination does not terminate");
    }
    assert_eq!(pages, 4, "25 keys at 7 per page");
    assert_eq!(collected, keys, "every key exactly once, in order");

    let out = client
        .list_objects_v2()
        .bucket("pages")
        .start_after("key-020")
        .send()
        .await
        .expect("start after");
    let got: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(got, vec!["key-021", "key-022", "key-023", "key-024"]);
    assert_eq!(out.start_after(), Some("key-020"));

    let out = client
        .list_objects_v2()
        .bucket("pages")
        .start_after("key-0205")
        .max_keys(2)
        .send()
        .await
        .expect("sa");
    let got: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        got,
        vec!["key-021", "key-022"],
        "StartAfter need not be an existing key"
    );
    assert_eq!(out.is_truncated(), Some(true));

    let out = client
        .list_objects_v2()
        .bucket("pages")
        .max_keys(0)
        .send()
        .await
        .expect("max-keys 0");
    assert!(out.contents().is_empty());

    let err = client
        .list_objects_v2()
        .bucket("pages")
        .continuation_token("!!! not a token !!!")
        .send()
        .await
        .expect_err("bad token");
    assert_eq!(failure(&err), (400, "InvalidArgument".to_owned()));

    // encoding-type=url.
    let spaced = "dir with space/file name.txt";
    put(&client, "pages", spaced, b"s").await;
    let out = client
        .list_objects_v2()
        .bucket("pages")
        .prefix("dir with")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .expect("url listing");
    assert_eq!(out.encoding_type(), Some(&EncodingType::Url));
    assert_eq!(out.contents().len(), 1);
    let raw = out.contents()[0].key().expect("key");
    assert!(
        !raw.contains(' '),
        "encoded key has no literal space: {raw:?}"
    );
    assert_eq!(url_decode(raw), spaced);
    assert_eq!(out.prefix().map(url_decode).as_deref(), Some("dir with"));

    let out = client
        .list_objects_v2()
        .bucket("pages")
        .delimiter("/")
        .prefix("dir ")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .expect("url listing with prefixes");
    let prefixes: Vec<_> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes.len(), 1);
    assert!(!prefixes[0].contains(' '));
    assert_eq!(url_decode(prefixes[0]), "dir with space/");
}

#[tokio::test]
async fn list_v1_marker_pagination() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "lv1").await;
    let keys: Vec<String> = (0..12).map(|i| format!("obj/{i:02}")).collect();
    for k in &keys {
        put(&client, "lv1", k, b"v").await;
    }
    put(&client, "lv1", "other", b"v").await;

    let out = client
        .list_objects()
        .bucket("lv1")
        .max_keys(5)
        .send()
        .await
        .expect("v1 page 1");
    let page: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        page,
        keys[..5].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(out.is_truncated(), Some(true));
    assert_eq!(out.max_keys(), Some(5));
    if let Some(next) = out.next_marker() {
        assert_eq!(next, "obj/04", "NextMarker is the last key returned");
    }

    let out = client
        .list_objects()
        .bucket("lv1")
        .marker("obj/04")
        .max_keys(5)
        .send()
        .await
        .expect("page 2");
    let page: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        page,
        keys[5..10].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(out.marker(), Some("obj/04"));

    // Full pagination, following NextMarker (or the last key when the server omits it).
    let mut all = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = client
            .list_objects()
            .bucket("lv1")
            .max_keys(4)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("page");
        let page: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        all.extend(page.iter().cloned());
        if out.is_truncated() != Some(true) {
            assert!(
                out.next_marker().is_none(),
                "no NextMarker on the last page"
            );
            break;
        }
        marker = Some(
            out.next_marker()
                .map(str::to_owned)
                .unwrap_or_else(|| page.last().expect("page").clone()),
        );
    }
    let mut expected = keys.clone();
    expected.push("other".to_owned());
    assert_eq!(all, expected);

    // With a delimiter, NextMarker is mandatory when truncated.
    let out = client
        .list_objects()
        .bucket("lv1")
        .delimiter("/")
        .max_keys(1)
        .send()
        .await
        .expect("delim");
    let prefixes: Vec<_> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, vec!["obj/"]);
    assert!(out.contents().is_empty());
    assert_eq!(out.is_truncated(), Some(true));
    assert_eq!(out.next_marker(), Some("obj/"));
    let out = client
        .list_objects()
        .bucket("lv1")
        .delimiter("/")
        .marker("obj/")
        .send()
        .await
        .expect("delim page 2");
    let page: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(page, vec!["other"]);
    assert!(out.common_prefixes().is_empty());
    assert_eq!(out.is_truncated(), Some(false));
}
