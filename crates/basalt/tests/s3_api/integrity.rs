//! Integrity.

use super::*;

#[tokio::test]
async fn integrity_content_md5() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "md5").await;
    let err = client
        .put_object()
        .bucket("md5")
        .key("bad")
        .content_md5(md5_b64(b"something else"))
        .body(ByteStream::from_static(b"actual body"))
        .send()
        .await
        .expect_err("wrong Content-MD5");
    assert_eq!(failure(&err), (400, "BadDigest".to_owned()));
    let err = client
        .head_object()
        .bucket("md5")
        .key("bad")
        .send()
        .await
        .expect_err("not created");
    assert_eq!(status(&err), 404);

    let err = client
        .put_object()
        .bucket("md5")
        .key("bad")
        .content_md5("not base64!")
        .body(ByteStream::from_static(b"actual body"))
        .send()
        .await
        .expect_err("malformed Content-MD5");
    assert_eq!(failure(&err), (400, "InvalidDigest".to_owned()));

    client
        .put_object()
        .bucket("md5")
        .key("good")
        .content_md5(md5_b64(b"actual body"))
        .body(ByteStream::from_static(b"actual body"))
        .send()
        .await
        .expect("right Content-MD5");
    assert_eq!(get_bytes(&client, "md5", "good").await, b"actual body");
}

#[tokio::test]
async fn integrity_flexible_checksums() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "sums").await;
    // Standard check values for "123456789".
    let data = b"123456789";
    let sha256 = "FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU=";
    let crc32c = "4waSgw==";
    let crc32 = "y/Q5Jg==";

    let out = client
        .put_object()
        .bucket("sums")
        .key("sha")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from_static(data))
        .send()
        .await
        .expect("put sha256");
    assert_eq!(out.checksum_sha256(), Some(sha256));
    let head = client
        .head_object()
        .bucket("sums")
        .key("sha")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head sha");
    assert_eq!(head.checksum_sha256(), Some(sha256));
    let got = client
        .get_object()
        .bucket("sums")
        .key("sha")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("get sha");
    assert_eq!(got.checksum_sha256(), Some(sha256));

    let out = client
        .put_object()
        .bucket("sums")
        .key("crc32c")
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .body(ByteStream::from_static(data))
        .send()
        .await
        .expect("put crc32c");
    assert_eq!(out.checksum_crc32_c(), Some(crc32c));
    let head = client
        .head_object()
        .bucket("sums")
        .key("crc32c")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head crc32c");
    assert_eq!(head.checksum_crc32_c(), Some(crc32c));

    // Explicit checksum values.
    client
        .put_object()
        .bucket("sums")
        .key("explicit")
        .checksum_crc32(crc32)
        .body(ByteStream::from_static(data))
        .send()
        .await
        .expect("right explicit crc32");
    let head = client
        .head_object()
        .bucket("sums")
        .key("explicit")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_crc32(), Some(crc32));

    let err = client
        .put_object()
        .bucket("sums")
        .key("wrong")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from_static(data))
        .send()
        .await
        .expect_err("wrong explicit crc32");
    assert_eq!(failure(&err), (400, "BadDigest".to_owned()));
    let err = client
        .head_object()
        .bucket("sums")
        .key("wrong")
        .send()
        .await
        .expect_err("not stored");
    assert_eq!(status(&err), 404);
    let err = client
        .put_object()
        .bucket("sums")
        .key("wrong")
        .checksum_sha256(crc32c)
        .body(ByteStream::from_static(data))
        .send()
        .await
        .expect_err("wrong explicit sha256");
    assert_eq!(status(&err), 400, "{err:?}");
    assert!(
        list_all_v2(&client, "sums")
            .await
            .iter()
            .all(|k| k != "wrong")
    );

    // A larger body through the SDK's streaming (aws-chunked, trailer) path.
    let big = bytes_of(5 * MIB + 7, 41);
    let out = client
        .put_object()
        .bucket("sums")
        .key("big")
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .expect("put big crc32c");
    let sdk_sum = out.checksum_crc32_c().expect("crc32c").to_owned();
    let head = client
        .head_object()
        .bucket("sums")
        .key("big")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head big");
    assert_eq!(head.checksum_crc32_c(), Some(sdk_sum.as_str()));
    assert!(get_bytes(&client, "sums", "big").await == big);
}
