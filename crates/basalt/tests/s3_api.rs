//! End-to-end S3 API tests: the real `basalt` binary driven by the official AWS SDK.
//!
//! Every test starts its own server on a fresh data directory, so tests are independent and
//! may run in parallel.

mod common;

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, Delete, EncodingType,
    MetadataDirective, ObjectIdentifier,
};
use md5::{Digest, Md5};

use common::{Server, bytes_of, error_code};

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The HTTP status the server answered an SDK error with (0 when there was no response).
fn status<E>(err: &SdkError<E, HttpResponse>) -> u16 {
    err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)
}

/// The HTTP status and S3 error code of an SDK error.
fn failure<E: ProvideErrorMetadata + std::fmt::Debug>(
    err: &SdkError<E, HttpResponse>,
) -> (u16, String) {
    (status(err), error_code(err))
}

fn md5_hex(data: &[u8]) -> String {
    hex(&Md5::digest(data))
}

fn md5_b64(data: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(Md5::digest(data))
}

fn hex(raw: &[u8]) -> String {
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// A quoted ETag as S3 sends it.
fn quoted(hex: &str) -> String {
    format!("\"{hex}\"")
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

async fn new_bucket(client: &Client, name: &str) {
    client
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
}

async fn put(client: &Client, bucket: &str, key: &str, data: &[u8]) -> String {
    let out = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
    out.e_tag().expect("put etag").to_owned()
}

async fn get_bytes(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {bucket}/{key}: {e:?}"));
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

async fn get_range(
    client: &Client,
    bucket: &str,
    key: &str,
    range: &str,
) -> (Vec<u8>, Option<String>, Option<i64>) {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(range)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {bucket}/{key} {range}: {e:?}"));
    let cr = out.content_range().map(str::to_owned);
    let len = out.content_length();
    (
        out.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec(),
        cr,
        len,
    )
}

async fn list_all_v2(client: &Client, bucket: &str) -> Vec<String> {
    let out = client
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list");
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

fn part(n: i32, etag: &str) -> CompletedPart {
    CompletedPart::builder().part_number(n).e_tag(etag).build()
}

fn completed(parts: Vec<CompletedPart>) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build()
}

/// The S3 multipart ETag: md5 of the concatenated binary part md5s, then `-N`.
fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut concat = Vec::new();
    for p in parts {
        concat.extend_from_slice(&Md5::digest(p));
    }
    format!("\"{}-{}\"", md5_hex(&concat), parts.len())
}

async fn upload_part(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    n: i32,
    data: &[u8],
) -> String {
    let out = client
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(n)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload part {n}: {e:?}"));
    out.e_tag().expect("part etag").to_owned()
}

async fn create_upload(client: &Client, bucket: &str, key: &str) -> String {
    client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("create multipart upload")
        .upload_id()
        .expect("upload id")
        .to_owned()
}

/// Percent-decoding as `encoding-type=url` listings need it (`+` also stands for a space).
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let h = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("utf8");
                out.push(u8::from_str_radix(h, 16).expect("hex escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf8 key")
}

/// Splits a raw HTTP response into (status line, lower-cased headers, body).
fn parse_raw(resp: &str) -> (String, Vec<(String, String)>, String) {
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((resp, ""));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("").to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------------
// Buckets
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bucket_create_list_head_location() {
    let server = Server::start();
    let client = server.client();

    let created = client
        .create_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect("create alpha");
    assert!(
        created.request_id().is_some_and(|id| !id.is_empty()),
        "x-amz-request-id on CreateBucket"
    );
    new_bucket(&client, "beta-bucket").await;

    let listed = client.list_buckets().send().await.expect("list buckets");
    let names: Vec<_> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(
        names,
        vec!["alpha", "beta-bucket"],
        "ListBuckets is sorted by name"
    );
    assert!(
        listed.buckets().iter().all(|b| b.creation_date().is_some()),
        "every bucket has a CreationDate"
    );

    client
        .head_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect("head existing bucket");

    let err = client
        .head_bucket()
        .bucket("missing-bucket")
        .send()
        .await
        .expect_err("head missing bucket");
    assert_eq!(status(&err), 404, "HeadBucket on a missing bucket: {err:?}");
    assert!(
        err.as_service_error().is_some_and(|e| e.is_not_found()),
        "HeadBucket error is NotFound: {err:?}"
    );

    let loc = client
        .get_bucket_location()
        .bucket("alpha")
        .send()
        .await
        .expect("location");
    let constraint = loc
        .location_constraint()
        .map(|c| c.as_str().to_owned())
        .unwrap_or_default();
    assert!(
        constraint.is_empty(),
        "us-east-1 has an empty LocationConstraint, got {constraint:?}"
    );

    let err = client
        .get_bucket_location()
        .bucket("missing-bucket")
        .send()
        .await
        .expect_err("location of missing");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));
}

#[tokio::test]
async fn bucket_create_twice_is_200_in_us_east_1() {
    // us-east-1 answers a re-create by the owner with 200 (protocol_edges.rs has the 409
    // of other regions).
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "twice").await;
    client
        .create_bucket()
        .bucket("twice")
        .send()
        .await
        .expect("second create");
    let listed = client.list_buckets().send().await.expect("list");
    assert_eq!(listed.buckets().len(), 1);
}

#[tokio::test]
async fn bucket_invalid_names_are_refused() {
    let server = Server::start();
    let client = server.client();
    for name in [
        "Bad_Name",
        "ab",
        "UPPER",
        "-leading-dash",
        "has..dots",
        "192.168.5.4",
    ] {
        let err = client
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .expect_err(name);
        // The SDK may refuse client-side (no response); a server answer must be InvalidBucketName.
        if let Some(raw) = err.raw_response() {
            assert_eq!(raw.status().as_u16(), 400, "{name}: {err:?}");
            assert_eq!(error_code(&err), "InvalidBucketName", "{name}");
        }
    }
    let listed = client.list_buckets().send().await.expect("list");
    assert!(
        listed.buckets().is_empty(),
        "no bucket was created: {:?}",
        listed.buckets()
    );

    // Length limits: 64 characters is too long, 63 and 3 are fine.
    let long = "a".repeat(64);
    let err = client
        .create_bucket()
        .bucket(&long)
        .send()
        .await
        .expect_err("64-char bucket name");
    if err.raw_response().is_some() {
        assert_eq!(failure(&err), (400, "InvalidBucketName".to_owned()));
    }
    let ok = "a".repeat(63);
    new_bucket(&client, &ok).await;
    new_bucket(&client, "abc").await;
}

#[tokio::test]
async fn bucket_delete_rules() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "full").await;
    put(&client, "full", "k", b"x").await;

    let err = client
        .delete_bucket()
        .bucket("full")
        .send()
        .await
        .expect_err("delete non-empty");
    assert_eq!(failure(&err), (409, "BucketNotEmpty".to_owned()));

    let err = client
        .delete_bucket()
        .bucket("nope-bucket")
        .send()
        .await
        .expect_err("delete missing");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));

    client
        .delete_object()
        .bucket("full")
        .key("k")
        .send()
        .await
        .expect("delete object");
    client
        .delete_bucket()
        .bucket("full")
        .send()
        .await
        .expect("delete now-empty bucket");
    let err = client
        .head_bucket()
        .bucket("full")
        .send()
        .await
        .expect_err("gone");
    assert_eq!(status(&err), 404);
    assert!(
        client
            .list_buckets()
            .send()
            .await
            .expect("list")
            .buckets()
            .is_empty()
    );

    // Operations on objects of a missing bucket.
    let err = client
        .put_object()
        .bucket("full")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("put");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));
    let err = client
        .get_object()
        .bucket("full")
        .key("k")
        .send()
        .await
        .expect_err("get");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));
    let err = client
        .list_objects_v2()
        .bucket("full")
        .send()
        .await
        .expect_err("list");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));
}

// ---------------------------------------------------------------------------------------------
// Objects: put / get / head
// ---------------------------------------------------------------------------------------------

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
        (416, "InvalidPartNumber".to_owned()),
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
    assert_eq!(status(&err), 416);

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
    assert_eq!(failure(&err), (416, "InvalidPartNumber".to_owned()));
}

// ---------------------------------------------------------------------------------------------
// Deletes
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Copy
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn copy_object_directives_and_errors() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "src").await;
    new_bucket(&client, "dst").await;
    let data = bytes_of(100_000, 3);
    let src_etag = client
        .put_object()
        .bucket("src")
        .key("orig")
        .body(ByteStream::from(data.clone()))
        .content_type("image/png")
        .cache_control("max-age=60")
        .metadata("k1", "lv1")
        .send()
        .await
        .expect("put")
        .e_tag()
        .expect("etag")
        .to_owned();

    // COPY (default): metadata and headers come from the source.
    let out = client
        .copy_object()
        .bucket("src")
        .key("copy")
        .copy_source("src/orig")
        .send()
        .await
        .expect("copy");
    assert_eq!(
        out.copy_object_result().and_then(|r| r.e_tag()),
        Some(src_etag.as_str())
    );
    let head = client
        .head_object()
        .bucket("src")
        .key("copy")
        .send()
        .await
        .expect("head copy");
    assert_eq!(head.content_type(), Some("image/png"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("k1"))
            .map(String::as_str),
        Some("lv1")
    );
    assert!(get_bytes(&client, "src", "copy").await == data);

    // Explicit COPY with new metadata given: the new metadata is ignored.
    client
        .copy_object()
        .bucket("src")
        .key("copy2")
        .copy_source("src/orig")
        .metadata_directive(MetadataDirective::Copy)
        .metadata("k2", "ignored")
        .send()
        .await
        .expect("copy directive");
    let head = client
        .head_object()
        .bucket("src")
        .key("copy2")
        .send()
        .await
        .expect("head");
    let md = head.metadata().cloned().unwrap_or_default();
    assert_eq!(md.get("k1").map(String::as_str), Some("lv1"));
    assert!(!md.contains_key("k2"), "{md:?}");

    // REPLACE: metadata and headers come from the request.
    client
        .copy_object()
        .bucket("dst")
        .key("replaced")
        .copy_source("src/orig")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("k2", "v2")
        .content_type("text/csv")
        .send()
        .await
        .expect("copy replace across buckets");
    let head = client
        .head_object()
        .bucket("dst")
        .key("replaced")
        .send()
        .await
        .expect("head replaced");
    let md = head.metadata().cloned().unwrap_or_default();
    assert_eq!(md.get("k2").map(String::as_str), Some("v2"));
    assert!(
        !md.contains_key("k1"),
        "REPLACE drops the source metadata: {md:?}"
    );
    assert_eq!(head.content_type(), Some("text/csv"));
    assert!(
        head.cache_control().is_none(),
        "REPLACE drops source Cache-Control"
    );
    assert!(get_bytes(&client, "dst", "replaced").await == data);

    // Onto itself without REPLACE.
    let err = client
        .copy_object()
        .bucket("src")
        .key("orig")
        .copy_source("src/orig")
        .send()
        .await
        .expect_err("self");
    assert_eq!(failure(&err), (400, "InvalidRequest".to_owned()));
    // Onto itself with REPLACE is allowed and changes metadata.
    client
        .copy_object()
        .bucket("src")
        .key("orig")
        .copy_source("src/orig")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("k3", "v3")
        .send()
        .await
        .expect("self copy with REPLACE");
    let head = client
        .head_object()
        .bucket("src")
        .key("orig")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("k3"))
            .map(String::as_str),
        Some("v3")
    );

    // Source conditions.
    let err = client
        .copy_object()
        .bucket("dst")
        .key("cond")
        .copy_source("src/orig")
        .copy_source_if_match("\"0123\"")
        .send()
        .await
        .expect_err("copy if-match mismatch");
    assert_eq!(failure(&err), (412, "PreconditionFailed".to_owned()));
    client
        .copy_object()
        .bucket("dst")
        .key("cond")
        .copy_source("src/orig")
        .copy_source_if_match(&src_etag)
        .send()
        .await
        .expect("copy if-match ok");
    let err = client
        .copy_object()
        .bucket("dst")
        .key("cond2")
        .copy_source("src/orig")
        .copy_source_if_none_match(&src_etag)
        .send()
        .await
        .expect_err("copy if-none-match match");
    assert_eq!(failure(&err), (412, "PreconditionFailed".to_owned()));
    let err = client
        .head_object()
        .bucket("dst")
        .key("cond2")
        .send()
        .await
        .expect_err("not created");
    assert_eq!(status(&err), 404);

    // Missing source / missing source bucket / missing destination bucket.
    let err = client
        .copy_object()
        .bucket("dst")
        .key("x")
        .copy_source("src/missing")
        .send()
        .await
        .expect_err("nokey");
    assert_eq!(failure(&err), (404, "NoSuchKey".to_owned()));
    let err = client
        .copy_object()
        .bucket("dst")
        .key("x")
        .copy_source("nobucket/orig")
        .send()
        .await
        .expect_err("nob");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));
    let err = client
        .copy_object()
        .bucket("nobucket")
        .key("x")
        .copy_source("src/orig")
        .send()
        .await
        .expect_err("nod");
    assert_eq!(failure(&err), (404, "NoSuchBucket".to_owned()));
}

#[tokio::test]
async fn copy_object_large_source() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "cpl").await;
    let data = bytes_of(6 * MIB + 5, 11);
    let etag = put(&client, "cpl", "big", &data).await;
    let out = client
        .copy_object()
        .bucket("cpl")
        .key("big-copy")
        .copy_source("cpl/big")
        .send()
        .await
        .expect("copy");
    assert_eq!(
        out.copy_object_result().and_then(|r| r.e_tag()),
        Some(etag.as_str())
    );
    assert!(get_bytes(&client, "cpl", "big-copy").await == data);
}

// ---------------------------------------------------------------------------------------------
// Listing
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Conditional writes
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Multipart
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Integrity
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn auth_bad_credentials() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "authb").await;

    let wrong_secret = common::client_for(&server.endpoint(), common::ACCESS_KEY, "not-the-secret");
    let err = wrong_secret
        .list_buckets()
        .send()
        .await
        .expect_err("wrong secret");
    assert_eq!(failure(&err), (403, "SignatureDoesNotMatch".to_owned()));
    let err = wrong_secret
        .put_object()
        .bucket("authb")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("wrong secret put");
    assert_eq!(failure(&err), (403, "SignatureDoesNotMatch".to_owned()));

    let unknown = common::client_for(&server.endpoint(), "nobody-knows-me", common::SECRET_KEY);
    let err = unknown
        .list_buckets()
        .send()
        .await
        .expect_err("unknown key");
    assert_eq!(failure(&err), (403, "InvalidAccessKeyId".to_owned()));

    assert!(
        list_all_v2(&client, "authb").await.is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn auth_presigned_urls() {
    let server = Server::start();
    let client = server.client();
    new_bucket(&client, "pre").await;
    put(&client, "pre", "file.txt", b"presigned content").await;
    put(&client, "pre", "other.txt", b"other content").await;
    let http = reqwest::Client::new();

    let fetch = |req: aws_sdk_s3::presigning::PresignedRequest| {
        let http = http.clone();
        async move {
            let mut r = http.get(req.uri());
            for (k, v) in req.headers() {
                r = r.header(k, v);
            }
            let resp = r.send().await.expect("fetch");
            let status = resp.status().as_u16();
            let body = resp.text().await.expect("text");
            (status, body)
        }
    };

    let presigned = client
        .get_object()
        .bucket("pre")
        .key("file.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).expect("config"))
        .await
        .expect("presign");
    let uri = presigned.uri().to_owned();
    assert!(uri.contains("X-Amz-Signature="), "{uri}");
    let (st, body) = fetch(presigned).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body, "presigned content");

    // A presigned PUT.
    let put_req = client
        .put_object()
        .bucket("pre")
        .key("uploaded.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).expect("config"))
        .await
        .expect("presign put");
    let mut r = http.put(put_req.uri()).body("via presigned put");
    for (k, v) in put_req.headers() {
        r = r.header(k, v);
    }
    let resp = r.send().await.expect("presigned put");
    assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text().await);
    assert_eq!(
        get_bytes(&client, "pre", "uploaded.txt").await,
        b"via presigned put"
    );

    // The path is covered by the signature.
    let altered = uri.replacen("/pre/file.txt", "/pre/other.txt", 1);
    assert_ne!(altered, uri);
    let resp = http.get(&altered).send().await.expect("altered");
    let st = resp.status().as_u16();
    let body = resp.text().await.expect("text");
    assert_eq!(st, 403, "{body}");
    assert!(
        body.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{body}"
    );

    // So is the query (here: a response override smuggled in).
    let resp = http
        .get(format!("{uri}&response-content-type=text/evil"))
        .send()
        .await
        .expect("extra query");
    assert_eq!(resp.status().as_u16(), 403);

    // Expiry.
    let short = client
        .get_object()
        .bucket("pre")
        .key("file.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(1)).expect("config"))
        .await
        .expect("presign short");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (st, body) = fetch(short).await;
    assert_eq!(st, 403, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
}

#[tokio::test]
async fn every_response_has_a_request_id() {
    let server = Server::start();
    let raw = common::http_raw(
        server.port,
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .expect("raw GET /");
    let (status_line, headers, body) = parse_raw(&raw);
    assert!(status_line.starts_with("HTTP/1.1 403"), "{raw}");
    let id = header(&headers, "x-amz-request-id")
        .expect("x-amz-request-id header")
        .to_owned();
    assert!(!id.is_empty());
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    assert!(
        body.contains(&format!("<RequestId>{id}</RequestId>")),
        "body's RequestId equals the header: {body}"
    );

    // A second request gets a different id.
    let raw2 = common::http_raw(
        server.port,
        b"GET /some-bucket HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .expect("raw");
    let (_, headers2, _) = parse_raw(&raw2);
    let id2 = header(&headers2, "x-amz-request-id")
        .unwrap_or_else(|| panic!("x-amz-request-id missing: {raw2:?}"));
    assert_ne!(id, id2, "request ids are unique");

    // Successful and failed SDK calls carry one as well.
    let client = server.client();
    let out = client.list_buckets().send().await.expect("list");
    assert!(out.request_id().is_some_and(|id| !id.is_empty()));
    let err = client
        .head_bucket()
        .bucket("nope-bucket")
        .send()
        .await
        .expect_err("missing");
    let rid = err
        .raw_response()
        .and_then(|r| r.headers().get("x-amz-request-id"))
        .map(str::to_owned);
    assert!(
        rid.is_some_and(|id| !id.is_empty()),
        "404 HEAD carries x-amz-request-id"
    );
}

/// A client may half-close its write side after sending a *complete* request (as
/// `common::http_raw_cut_off` does); the server must still answer it (RFC 9112 §9.6).
#[tokio::test]
async fn half_closed_requests_are_answered() {
    let server = Server::start();
    let mut empty = 0;
    for _ in 0..20 {
        let raw = common::http_raw_cut_off(
            server.port,
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .expect("raw GET /");
        if raw.is_empty() {
            empty += 1;
        } else {
            assert!(raw.starts_with("HTTP/1.1 403"), "{raw}");
            assert!(
                raw.to_ascii_lowercase().contains("x-amz-request-id:"),
                "{raw}"
            );
        }
    }
    assert_eq!(
        empty, 0,
        "of 20 half-closed requests, {empty} got no response at all"
    );
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

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
