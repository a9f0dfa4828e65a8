//! aws-chunked uploads built by hand: signed chunks, unsigned chunks with a trailing checksum,
//! and signed chunks with a signed trailer. Each good upload is stored byte for byte; each
//! forged or corrupted one is refused and leaves nothing behind.

mod common;

use std::time::SystemTime;

use aws_sdk_s3::types::ChecksumMode;
use common::{ACCESS_KEY, SECRET_KEY, Server, status_of};
use sha2::{Digest, Sha256};

const BUCKET: &str = "streaming";
const REGION: &str = "us-east-1";
const SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
const SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
const UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// 64 KiB, 64 KiB and 100 bytes: two full chunks and a short last one.
fn three_chunks(seed: u64) -> Vec<Vec<u8>> {
    vec![
        common::bytes_of(64 << 10, seed),
        common::bytes_of(64 << 10, seed + 1),
        common::bytes_of(100, seed + 2),
    ]
}

fn hex_sha256(data: &[u8]) -> String {
    hex_simd::encode_to_string(Sha256::digest(data), hex_simd::AsciiCase::Lower)
}

/// CRC-32 (IEEE, reflected, as S3's `x-amz-checksum-crc32`), bit by bit.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// The base64 of the big-endian CRC-32, as S3 writes it.
fn crc32_b64(data: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(crc32(data).to_be_bytes())
}

/// Keeps the running signature of a signed aws-chunked body.
struct ChunkSigner {
    key: Vec<u8>,
    amz_date: String,
    scope: String,
    prev: String,
}

impl ChunkSigner {
    fn new(time: SystemTime, amz_date: &str, seed: &str) -> Self {
        let key = aws_sigv4::sign::v4::generate_signing_key(SECRET_KEY, time, REGION, "s3")
            .as_ref()
            .to_vec();
        Self {
            key,
            amz_date: amz_date.to_owned(),
            scope: format!("{}/{REGION}/s3/aws4_request", &amz_date[..8]),
            prev: seed.to_owned(),
        }
    }

    fn sign(&mut self, algorithm: &str, hashed: &str) -> String {
        let string_to_sign = format!(
            "{algorithm}\n{}\n{}\n{}\n{hashed}",
            self.amz_date, self.scope, self.prev
        );
        let sig = aws_sigv4::sign::v4::calculate_signature(&self.key, string_to_sign.as_bytes());
        self.prev = sig.clone();
        sig
    }

    fn chunk(&mut self, data: &[u8]) -> String {
        let hashed = format!("{}\n{}", hex_sha256(b""), hex_sha256(data));
        self.sign("AWS4-HMAC-SHA256-PAYLOAD", &hashed)
    }

    /// `canonical` is the trailer lines as `name:value\n`, sorted by name.
    fn trailer(&mut self, canonical: &str) -> String {
        self.sign(
            "AWS4-HMAC-SHA256-TRAILER",
            &hex_sha256(canonical.as_bytes()),
        )
    }
}

/// What to break in a signed body.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Flip a byte of chunk `i` after it was signed.
    TamperData(usize),
    /// Send a wrong signature for chunk `i` (`i == chunks.len()` is the final empty chunk).
    WrongSignature(usize),
    /// Send a wrong `x-amz-trailer-signature`.
    WrongTrailerSignature,
}

/// A signed aws-chunked body; with `trailer` (`name`, `value`), a signed trailer follows the
/// final chunk.
fn signed_body(
    signer: &mut ChunkSigner,
    chunks: &[Vec<u8>],
    trailer: Option<(&str, &str)>,
    fault: Fault,
) -> Vec<u8> {
    let mut out = Vec::new();
    let empty: &[u8] = b"";
    for (i, data) in chunks
        .iter()
        .map(Vec::as_slice)
        .chain(std::iter::once(empty))
        .enumerate()
    {
        let mut sig = signer.chunk(data);
        let mut data = data.to_vec();
        if fault == Fault::TamperData(i) {
            data[0] ^= 0x01;
        }
        if fault == Fault::WrongSignature(i) {
            sig = hex_sha256(sig.as_bytes());
        }
        out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", data.len()).as_bytes());
        out.extend_from_slice(&data);
        if !data.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
    }
    match trailer {
        None => out.extend_from_slice(b"\r\n"),
        Some((name, value)) => {
            let mut sig = signer.trailer(&format!("{name}:{value}\n"));
            if fault == Fault::WrongTrailerSignature {
                sig = hex_sha256(sig.as_bytes());
            }
            out.extend_from_slice(
                format!("{name}:{value}\r\nx-amz-trailer-signature:{sig}\r\n\r\n").as_bytes(),
            );
        }
    }
    out
}

/// An unsigned aws-chunked body followed by one trailer line.
fn unsigned_body(chunks: &[Vec<u8>], trailer: (&str, &str)) -> Vec<u8> {
    let mut out = Vec::new();
    for data in chunks {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("0\r\n{}:{}\r\n\r\n", trailer.0, trailer.1).as_bytes());
    out
}

/// The SigV4-signed head of a streaming PUT, signed with `content_sha256` as the payload
/// hash. Returns the head, the seed signature and the `x-amz-date`.
fn streaming_head(
    port: u16,
    key: &str,
    content_sha256: &str,
    trailer: Option<&str>,
    decoded_len: usize,
    encoded_len: usize,
    time: SystemTime,
) -> (String, String, String) {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, sign};
    use aws_sigv4::sign::v4;
    let host = format!("127.0.0.1:{port}");
    let path = format!("/{BUCKET}/{key}");
    let url = format!("http://{host}{path}");
    let creds = aws_credential_types::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
    let identity = creds.into();
    let settings = common::s3_signing_settings();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let mut headers: Vec<(&str, String)> = vec![
        ("host", host.clone()),
        ("content-encoding", "aws-chunked".into()),
        ("content-length", encoded_len.to_string()),
        ("x-amz-decoded-content-length", decoded_len.to_string()),
    ];
    if let Some(t) = trailer {
        headers.push(("x-amz-trailer", t.into()));
    }
    let signable = SignableRequest::new(
        "PUT",
        url.as_str(),
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        SignableBody::Precomputed(content_sha256.into()),
    )
    .expect("signable");
    let (instructions, seed) = sign(signable, &params).expect("sign").into_parts();
    let mut text = format!("PUT {path} HTTP/1.1\r\n");
    for (k, v) in &headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut amz_date = String::new();
    for (k, v) in instructions.headers() {
        if k.eq_ignore_ascii_case("x-amz-date") {
            amz_date = v.to_owned();
        }
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("connection: close\r\n\r\n");
    assert_eq!(amz_date.len(), 16, "x-amz-date: {amz_date:?}");
    (text, seed, amz_date)
}

/// Sends a signed streaming PUT (`SIGNED` or `SIGNED_TRAILER`) of `chunks`; returns the
/// whole response.
fn put_signed(
    server: &Server,
    key: &str,
    chunks: &[Vec<u8>],
    trailer: Option<(&str, &str)>,
    fault: Fault,
) -> String {
    let time = SystemTime::now();
    let decoded_len = chunks.iter().map(Vec::len).sum();
    // Signatures are of fixed length: a placeholder run gives the encoded length.
    let mut placeholder = ChunkSigner::new(time, "00000000T000000Z", &"0".repeat(64));
    let encoded_len = signed_body(&mut placeholder, chunks, trailer, fault).len();
    let (content_sha256, trailer_header) = match trailer {
        Some((name, _)) => (SIGNED_TRAILER, Some(name)),
        None => (SIGNED, None),
    };
    let (head, seed, amz_date) = streaming_head(
        server.port,
        key,
        content_sha256,
        trailer_header,
        decoded_len,
        encoded_len,
        time,
    );
    let body = signed_body(
        &mut ChunkSigner::new(time, &amz_date, &seed),
        chunks,
        trailer,
        fault,
    );
    assert_eq!(body.len(), encoded_len);
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&body);
    common::http_raw(server.port, &raw).expect("raw request")
}

/// Sends a `STREAMING-UNSIGNED-PAYLOAD-TRAILER` PUT of `chunks` with one trailer line.
fn put_unsigned_trailer(
    server: &Server,
    key: &str,
    chunks: &[Vec<u8>],
    trailer: (&str, &str),
) -> String {
    let decoded_len = chunks.iter().map(Vec::len).sum();
    let body = unsigned_body(chunks, trailer);
    let (head, _, _) = streaming_head(
        server.port,
        key,
        UNSIGNED_TRAILER,
        Some(trailer.0),
        decoded_len,
        body.len(),
        SystemTime::now(),
    );
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&body);
    common::http_raw(server.port, &raw).expect("raw request")
}

async fn get_bytes(client: &aws_sdk_s3::Client, key: &str) -> Vec<u8> {
    client
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("read body")
        .into_bytes()
        .to_vec()
}

async fn stored_crc32(client: &aws_sdk_s3::Client, key: &str) -> Option<String> {
    client
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head")
        .checksum_crc32()
        .map(str::to_owned)
}

async fn assert_absent(client: &aws_sdk_s3::Client, key: &str) {
    let err = client
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect_err("object must not exist");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(404),
        "{key} was stored"
    );
}

fn assert_refused(resp: &str, status: u16, code: &str) {
    assert_eq!(status_of(resp), status, "{resp}");
    assert!(resp.contains(&format!("<Code>{code}</Code>")), "{resp}");
}

#[test]
fn the_test_crc32_is_the_ieee_one() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32_b64(b""), "AAAAAA==");
}

#[tokio::test]
async fn signed_chunks_are_stored_byte_for_byte() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    let chunks = three_chunks(11);
    let resp = put_signed(&server, "signed", &chunks, None, Fault::None);
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert_eq!(get_bytes(&client, "signed").await, chunks.concat());
}

#[tokio::test]
async fn a_chunk_altered_after_signing_is_refused_and_nothing_is_stored() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    let chunks = three_chunks(21);
    let cases = [
        ("tampered-first", Fault::TamperData(0)),
        ("tampered-second", Fault::TamperData(1)),
        ("tampered-last", Fault::TamperData(2)),
        ("wrong-sig-second", Fault::WrongSignature(1)),
        // Every data byte arrived intact; only the final empty chunk's signature is wrong.
        ("wrong-sig-final", Fault::WrongSignature(3)),
    ];
    for (key, fault) in cases {
        let resp = put_signed(&server, key, &chunks, None, fault);
        assert_refused(&resp, 403, "SignatureDoesNotMatch");
        assert_absent(&client, key).await;
    }
    // The same upload, unbroken, goes through: the test can tell the difference.
    let resp = put_signed(&server, "control", &chunks, None, Fault::None);
    assert_eq!(status_of(&resp), 200, "{resp}");
}

#[tokio::test]
async fn an_unsigned_body_with_a_trailing_crc32_is_stored_with_that_checksum() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    let chunks = three_chunks(31);
    let data = chunks.concat();
    let crc = crc32_b64(&data);
    let resp = put_unsigned_trailer(
        &server,
        "unsigned-trailer",
        &chunks,
        ("x-amz-checksum-crc32", &crc),
    );
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert_eq!(get_bytes(&client, "unsigned-trailer").await, data);
    assert_eq!(
        stored_crc32(&client, "unsigned-trailer").await.as_deref(),
        Some(crc.as_str())
    );
}

#[tokio::test]
async fn an_unsigned_body_with_a_wrong_trailing_crc32_is_refused() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    let chunks = three_chunks(41);
    let wrong = crc32_b64(b"something else");
    let resp = put_unsigned_trailer(
        &server,
        "bad-trailer",
        &chunks,
        ("x-amz-checksum-crc32", &wrong),
    );
    assert_refused(&resp, 400, "BadDigest");
    assert_absent(&client, "bad-trailer").await;
}

#[tokio::test]
async fn signed_chunks_with_a_signed_crc32_trailer_are_stored_with_that_checksum() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    let chunks = three_chunks(51);
    let data = chunks.concat();
    let crc = crc32_b64(&data);
    let resp = put_signed(
        &server,
        "signed-trailer",
        &chunks,
        Some(("x-amz-checksum-crc32", &crc)),
        Fault::None,
    );
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert_eq!(get_bytes(&client, "signed-trailer").await, data);
    assert_eq!(
        stored_crc32(&client, "signed-trailer").await.as_deref(),
        Some(crc.as_str())
    );
}

#[tokio::test]
async fn a_signed_trailer_that_is_forged_or_wrong_is_refused() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    let chunks = three_chunks(61);
    let crc = crc32_b64(&chunks.concat());

    // The checksum is right but its signature is not.
    let resp = put_signed(
        &server,
        "forged-trailer",
        &chunks,
        Some(("x-amz-checksum-crc32", &crc)),
        Fault::WrongTrailerSignature,
    );
    assert_refused(&resp, 403, "SignatureDoesNotMatch");
    assert_absent(&client, "forged-trailer").await;

    // Correctly signed, but the checksum does not match the data.
    let wrong = crc32_b64(b"something else");
    let resp = put_signed(
        &server,
        "wrong-trailer",
        &chunks,
        Some(("x-amz-checksum-crc32", &wrong)),
        Fault::None,
    );
    assert_refused(&resp, 400, "BadDigest");
    assert_absent(&client, "wrong-trailer").await;

    // A chunk altered after signing, under a correct trailer.
    let resp = put_signed(
        &server,
        "tampered-trailer",
        &chunks,
        Some(("x-amz-checksum-crc32", &crc)),
        Fault::TamperData(1),
    );
    assert_refused(&resp, 403, "SignatureDoesNotMatch");
    assert_absent(&client, "tampered-trailer").await;
}

fn chunk_files(server: &Server) -> usize {
    std::fs::read_dir(server.data.join("chunks"))
        .expect("chunks dir")
        .map(|d| {
            std::fs::read_dir(d.expect("entry").path())
                .expect("dir")
                .count()
        })
        .sum()
}

/// Waits up to 5 s for the chunk directory to empty; returns what is left. A chunk write the
/// server left running lands late, so this first gives it a second.
async fn chunk_files_settled(server: &Server) -> usize {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while chunk_files(server) > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    chunk_files(server)
}

#[tokio::test]
async fn a_large_refused_upload_leaves_no_chunk_files() {
    // 6 MiB in 64 KiB aws-chunks: the first 4 MiB storage chunk is being written when the
    // fault arrives.
    let (server, client) = common::server_with_bucket(BUCKET).await;
    let chunks: Vec<Vec<u8>> = (0..96)
        .map(|i| common::bytes_of(64 << 10, 70 + i))
        .collect();
    let data = chunks.concat();
    let crc = crc32_b64(&data);
    let wrong = crc32_b64(b"something else");
    let crc_trailer = ("x-amz-checksum-crc32", crc.as_str());
    let wrong_trailer = ("x-amz-checksum-crc32", wrong.as_str());

    let mut leaks = Vec::new();
    for (key, status, code) in [
        ("tampered-chunk-80", 403, "SignatureDoesNotMatch"),
        ("wrong-final-signature", 403, "SignatureDoesNotMatch"),
        ("unsigned-wrong-crc", 400, "BadDigest"),
        ("signed-wrong-crc", 400, "BadDigest"),
        ("forged-trailer-signature", 403, "SignatureDoesNotMatch"),
    ] {
        let resp = match key {
            "tampered-chunk-80" => put_signed(&server, key, &chunks, None, Fault::TamperData(80)),
            "wrong-final-signature" => put_signed(
                &server,
                key,
                &chunks,
                None,
                Fault::WrongSignature(chunks.len()),
            ),
            "unsigned-wrong-crc" => put_unsigned_trailer(&server, key, &chunks, wrong_trailer),
            "signed-wrong-crc" => {
                put_signed(&server, key, &chunks, Some(wrong_trailer), Fault::None)
            }
            _ => put_signed(
                &server,
                key,
                &chunks,
                Some(crc_trailer),
                Fault::WrongTrailerSignature,
            ),
        };
        assert_refused(&resp, status, code);
        assert_absent(&client, key).await;
        let left = chunk_files_settled(&server).await;
        if left > 0 {
            leaks.push(format!("{key}: {left} chunk file(s)"));
            // Count each case's leak on its own.
            for d in std::fs::read_dir(server.data.join("chunks")).expect("chunks dir") {
                for f in std::fs::read_dir(d.expect("entry").path()).expect("dir") {
                    std::fs::remove_file(f.expect("file").path()).expect("remove");
                }
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "refused uploads left chunk files behind: {leaks:?}"
    );

    // The same upload, unbroken, is stored in chunk files: the count above can tell.
    let resp = put_signed(&server, "large-ok", &chunks, None, Fault::None);
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert!(chunk_files(&server) > 0);
    assert_eq!(get_bytes(&client, "large-ok").await, data);
}
