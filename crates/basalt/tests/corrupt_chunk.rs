//! A chunk whose bytes changed on disk is never served: the GET fails with InternalError.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::PathBuf;

fn chunk_files(data: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in std::fs::read_dir(data.join("chunks")).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            files.push(f.unwrap().path());
        }
    }
    files
}

fn flip_last_byte(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn a_flipped_byte_on_disk_turns_a_get_into_an_internal_error() {
    let server = common::Server::start();
    let client = server.client();
    client.create_bucket().bucket("rot").send().await.unwrap();
    let body = common::bytes_of(200_000, 3);
    client
        .put_object()
        .bucket("rot")
        .key("victim")
        .body(body.clone().into())
        .send()
        .await
        .unwrap();
    let got = client
        .get_object()
        .bucket("rot")
        .key("victim")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        body.as_slice()
    );

    let files = chunk_files(&server.data);
    assert_eq!(files.len(), 1, "a 200 KB object is one chunk file");
    flip_last_byte(&files[0]);

    let err = client
        .get_object()
        .bucket("rot")
        .key("victim")
        .send()
        .await
        .expect_err("corrupt data must not be served");
    assert_eq!(common::error_code(&err), "InternalError");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    let err = client
        .get_object()
        .bucket("rot")
        .key("victim")
        .range("bytes=0-99")
        .send()
        .await
        .expect_err("nor part of it");
    assert_eq!(common::error_code(&err), "InternalError");

    // The object's record is intact: HEAD still describes it.
    let head = client
        .head_object()
        .bucket("rot")
        .key("victim")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(200_000));
}

#[tokio::test]
async fn a_missing_chunk_file_turns_a_get_into_an_internal_error() {
    let server = common::Server::start();
    let client = server.client();
    client.create_bucket().bucket("gone").send().await.unwrap();
    client
        .put_object()
        .bucket("gone")
        .key("k")
        .body(common::bytes_of(100_000, 4).into())
        .send()
        .await
        .unwrap();
    for f in chunk_files(&server.data) {
        std::fs::remove_file(f).unwrap();
    }
    let err = client
        .get_object()
        .bucket("gone")
        .key("k")
        .send()
        .await
        .expect_err("missing data");
    assert_eq!(common::error_code(&err), "InternalError");
}

#[tokio::test]
async fn damage_past_the_first_chunk_never_reaches_a_reader_or_a_copy() {
    let server = common::Server::start();
    let client = server.client();
    client.create_bucket().bucket("rot2").send().await.unwrap();
    let body = common::bytes_of((4 << 20) + 1000, 5);
    client
        .put_object()
        .bucket("rot2")
        .key("two-chunks")
        .body(body.into())
        .send()
        .await
        .unwrap();
    // The second chunk is the small one.
    let second = chunk_files(&server.data)
        .into_iter()
        .min_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    flip_last_byte(&second);

    // The status line went out with the first chunk: the body is cut short, never wrong.
    let got = client
        .get_object()
        .bucket("rot2")
        .key("two-chunks")
        .send()
        .await
        .unwrap();
    assert!(
        got.body.collect().await.is_err(),
        "a body with a corrupt chunk was delivered whole"
    );

    let err = client
        .copy_object()
        .bucket("rot2")
        .key("copy")
        .copy_source("rot2/two-chunks")
        .send()
        .await
        .expect_err("a corrupt source must not be copied");
    assert_eq!(common::error_code(&err), "InternalError");
    let missing = client.head_object().bucket("rot2").key("copy").send().await;
    assert!(missing.is_err(), "a copy of corrupt data was stored");
}
