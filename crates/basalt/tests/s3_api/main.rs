//! End-to-end S3 API tests: the real `basalt` binary driven by the official AWS SDK.
//!
//! Every test starts its own server on a fresh data directory, so tests are independent and
//! may run in parallel.

#[path = "../common/mod.rs"]
mod common;

mod authentication;
mod buckets;
mod conditional_writes;
mod copy;
mod deletes;
mod integrity;
mod keys;
mod listing;
mod multipart;
mod objects;

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
