//! Encryption at rest through the AWS SDK: SSE-S3 objects readable across a master-key
//! rotation, a broken key file refused at start, SSE-C with a wrong key, SSE-KMS keys and
//! objects across a crash, and keys with `..` that never reach the filesystem.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use base64_simd::STANDARD as B64;
use common::{Server, bytes_of, error_code};
use md5::{Digest, Md5};

const BUCKET: &str = "sealed";

fn key_line(id: &str, byte: u8) -> String {
    format!("{id} {}\n", B64.encode_to_string([byte; 32]))
}

async fn put_sse_s3(client: &Client, key: &str, body: &[u8]) {
    let out = client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
}

async fn get(client: &Client, key: &str) -> Result<Vec<u8>, String> {
    match client.get_object().bucket(BUCKET).key(key).send().await {
        Ok(out) => Ok(out.body.collect().await.unwrap().to_vec()),
        Err(e) => Err(error_code(&e)),
    }
}

fn start(data: &Path, port: u16, key_file: &Path) -> Server {
    Server::start_on_with(
        data,
        port,
        &["--sse-master-key-file", key_file.to_str().unwrap()],
    )
}

#[tokio::test]
async fn sse_s3_objects_stay_readable_across_a_master_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (data, key_file) = (dir.path().join("data"), dir.path().join("master.keys"));
    std::fs::write(&key_file, key_line("k1", 1)).unwrap();
    let port = common::free_port();
    let mut server = start(&data, port, &key_file);
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let (old_big, old_small) = (bytes_of(5 << 20, 1), bytes_of(1000, 2));
    put_sse_s3(&client, "old-big", &old_big).await;
    put_sse_s3(&client, "old-small", &old_small).await;
    server.terminate();

    // Rotate: a new key wraps new objects; the old one stays to unwrap old ones.
    std::fs::write(&key_file, key_line("k1", 1) + &key_line("k2", 2)).unwrap();
    let mut server = start(&data, port, &key_file);
    let client = server.client();
    assert_eq!(get(&client, "old-big").await.unwrap(), old_big);
    assert_eq!(get(&client, "old-small").await.unwrap(), old_small);
    let new = bytes_of(70_000, 3);
    put_sse_s3(&client, "new", &new).await;
    server.terminate();

    // Without k1, objects it wrapped cannot be read; those under k2 can.
    std::fs::write(&key_file, key_line("k2", 2)).unwrap();
    let mut server = start(&data, port, &key_file);
    let client = server.client();
    assert_eq!(get(&client, "new").await.unwrap(), new);
    assert_eq!(get(&client, "old-big").await.unwrap_err(), "InternalError");
    server.terminate();
}

#[tokio::test]
async fn kms_keys_and_their_objects_survive_a_crash_and_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (data, key_file) = (dir.path().join("data"), dir.path().join("master.keys"));
    let port = common::free_port();
    let mut server = start(&data, port, &key_file);
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let key = server.admin_json(&["kms", "create", "--alias", "crash-test"]);
    let key_id = key["key_id"].as_str().unwrap().to_owned();
    let put_kms = |name: &'static str, body: Vec<u8>| {
        let client = client.clone();
        async move {
            let out = client
                .put_object()
                .bucket(BUCKET)
                .key(name)
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id("alias/crash-test")
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap();
            assert_eq!(
                out.server_side_encryption(),
                Some(&ServerSideEncryption::AwsKms)
            );
            out.ssekms_key_id().unwrap().to_owned()
        }
    };
    let (first, second) = (bytes_of(5 << 20, 4), bytes_of(3000, 5));
    let arn = put_kms("first", first.clone()).await;
    assert!(arn.ends_with(&format!(":key/{key_id}")), "{arn}");
    let rotated = server.admin_json(&["kms", "rotate", &key_id]);
    assert_eq!(rotated["version"], 2);
    put_kms("second", second.clone()).await;
    server.kill();

    let mut server = start(&data, port, &key_file);
    let client = server.client();
    assert_eq!(get(&client, "first").await.unwrap(), first);
    assert_eq!(get(&client, "second").await.unwrap(), second);
    let keys = server.admin_json(&["kms", "list"]);
    let listed = keys.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["version"], 2);
    assert_eq!(listed[0]["alias"], "crash-test");
    server.admin_json(&["kms", "disable", "alias/crash-test"]);
    assert_eq!(
        get(&client, "first").await.unwrap_err(),
        "KMS.DisabledException"
    );
    server.terminate();
}

#[test]
fn a_broken_master_key_file_stops_the_node_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.keys");
    std::fs::write(&key_file, "k1 not-base64-at-all\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(["server", "--address", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--sse-master-key-file")
        .arg(&key_file)
        .env("BASALT_ROOT_USER", common::ACCESS_KEY)
        .env("BASALT_ROOT_PASSWORD", common::SECRET_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("master key"), "{stderr}");
}

/// An SSE-C key of 32 `byte`s as the headers carry it: base64 of the key, and of its MD5.
fn customer_key(byte: u8) -> (String, String) {
    let key = [byte; 32];
    (
        B64.encode_to_string(key),
        B64.encode_to_string(Md5::digest(key)),
    )
}

async fn put_sse_c(
    client: &Client,
    key: &str,
    customer_key: &str,
    customer_key_md5: &str,
) -> Result<
    aws_sdk_s3::operation::put_object::PutObjectOutput,
    aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::put_object::PutObjectError>,
> {
    client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(customer_key)
        .sse_customer_key_md5(customer_key_md5)
        .body(ByteStream::from_static(b"customer secret"))
        .send()
        .await
}

#[tokio::test]
async fn sse_c_objects_refuse_a_wrong_or_missing_key() {
    let server = Server::start_with(&["--sse-c-over-http"]);
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let (key, key_md5) = customer_key(7);
    put_sse_c(&client, "c", &key, &key_md5).await.unwrap();
    let (wrong, wrong_md5) = customer_key(8);
    let err = client
        .get_object()
        .bucket(BUCKET)
        .key("c")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&wrong)
        .sse_customer_key_md5(&wrong_md5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessDenied");
    assert_eq!(get(&client, "c").await.unwrap_err(), "InvalidRequest");
    let body = client
        .get_object()
        .bucket(BUCKET)
        .key("c")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap();
    assert_eq!(body.to_vec(), b"customer secret");
}

/// The ETag of an SSE-C object is not the MD5 of its plaintext (which would tell anyone who
/// may list the bucket what it holds), for a PUT and for each part of a multipart upload.
#[tokio::test]
async fn sse_c_etags_do_not_reveal_the_plaintext() {
    let server = Server::start_with(&["--sse-c-over-http", "--min-part-size", "1024"]);
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let (key, key_md5) = customer_key(7);
    let plaintext_md5 =
        hex_simd::encode_to_string(Md5::digest(b"customer secret"), hex_simd::AsciiCase::Lower);
    let put = put_sse_c(&client, "c", &key, &key_md5).await.unwrap();
    let etag = put.e_tag().unwrap().trim_matches('"').to_owned();
    assert_eq!(etag.len(), 32, "{etag}");
    assert_ne!(etag, plaintext_md5);
    let listed = client
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.contents()[0].e_tag().map(|e| e.trim_matches('"')),
        Some(etag.as_str())
    );
    // The same bytes without encryption keep their MD5.
    let plain = client
        .put_object()
        .bucket(BUCKET)
        .key("plain")
        .body(ByteStream::from_static(b"customer secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        plain.e_tag().map(|e| e.trim_matches('"')),
        Some(plaintext_md5.as_str())
    );

    let upload = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await
        .unwrap();
    let part = client
        .upload_part()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(upload.upload_id().unwrap())
        .part_number(1)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .body(ByteStream::from_static(b"customer secret"))
        .send()
        .await
        .unwrap();
    assert_ne!(
        part.e_tag().map(|e| e.trim_matches('"')),
        Some(plaintext_md5.as_str())
    );
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(upload.upload_id().unwrap())
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("the opaque part ETag completes the upload");
}

/// As on AWS, a customer key must not cross the network in clear: over plain HTTP, a request
/// carrying one is refused and stores nothing, unless the node is told to accept it.
#[tokio::test]
async fn sse_c_keys_are_refused_over_plain_http() {
    let server = Server::start();
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let (key, key_md5) = customer_key(7);
    let err = put_sse_c(&client, "c", &key, &key_md5).await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidRequest");
    assert_eq!(get(&client, "c").await.unwrap_err(), "NoSuchKey");

    put_sse_s3(&client, "plain", b"managed").await;
    let err = client
        .copy_object()
        .bucket(BUCKET)
        .key("copy")
        .copy_source(format!("{BUCKET}/plain"))
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&key)
        .copy_source_sse_customer_key_md5(&key_md5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidRequest");
    assert_eq!(get(&client, "copy").await.unwrap_err(), "NoSuchKey");
}

/// Object keys name records, never paths: `..` in a key cannot reach outside the data dir.
#[tokio::test]
async fn keys_with_dot_dot_never_escape_the_data_dir() {
    let server = Server::start();
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let root = server.data.parent().unwrap().to_owned();
    let keys = [
        "../escaped",
        "../../escaped2",
        "a/../../../escaped3",
        "..",
        "./.",
    ];
    for key in keys {
        client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(bytes_of(100_000, 9)))
            .send()
            .await
            .unwrap();
        assert_eq!(get(&client, key).await.unwrap(), bytes_of(100_000, 9));
    }
    let listed = client
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let mut names: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    names.sort_unstable();
    let mut expected = keys.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for dir in [root.as_path(), root.parent().unwrap()] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(
                !name.to_string_lossy().starts_with("escaped"),
                "a key escaped to {}",
                dir.display()
            );
        }
    }
}
