//! A 5 GiB PUT and GET, and a 1 GiB browser POST upload, keep the server's resident memory
//! under 256 MiB: bodies stream, they are never held whole. `BASALT_BIG_OBJECT_MIB` changes
//! the size of the PUT (default 5120), `BASALT_BIG_POST_MIB` that of the POST (default 1024).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use common::{RawRequest, Server};
use md5::{Digest, Md5};

const RSS_LIMIT_KIB: u64 = 256 * 1024;
const PIECE: usize = 1 << 20;

/// Peak resident set size of a process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// A size in MiB from the environment, or its default.
fn size_mib(variable: &str, default: u64) -> u64 {
    std::env::var(variable)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn piece(i: u64) -> Vec<u8> {
    let mut p = common::bytes_of(PIECE, 42);
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_gib_put_and_get_keep_the_server_under_256_mib() {
    let mib = size_mib("BASALT_BIG_OBJECT_MIB", 5120);
    let server = Server::start();
    let client = server.client();
    client
        .create_bucket()
        .bucket("big")
        .send()
        .await
        .expect("bucket");
    let port = server.port;
    let pid = server.pid();

    let (etag, sent_md5) = tokio::task::spawn_blocking(move || {
        let total = (mib as usize) * PIECE;
        let mut req = RawRequest::new("PUT", "/big/object", &[]);
        req.declared_len = Some(total);
        let head = req.head(port, true);
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(head.as_bytes()).expect("head");
        let mut md5 = Md5::new();
        for i in 0..mib {
            let p = piece(i);
            md5.update(&p);
            s.write_all(&p).expect("body");
        }
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("response");
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        let etag = resp
            .lines()
            .find_map(|l| {
                l.strip_prefix("etag: ")
                    .or_else(|| l.strip_prefix("ETag: "))
            })
            .map(|v| v.trim().trim_matches('"').to_owned())
            .expect("etag header");
        (etag, hex_of(&md5.finalize()))
    })
    .await
    .expect("put task");
    assert_eq!(
        etag, sent_md5,
        "the stored object's MD5 differs from what was sent"
    );
    let after_put = peak_rss_kib(pid);

    let got_md5 = tokio::task::spawn_blocking(move || {
        let req = RawRequest::new("GET", "/big/object", &[]);
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(req.head(port, false).as_bytes()).expect("head");
        let mut r = BufReader::with_capacity(PIECE, s);
        let mut line = String::new();
        let mut length = 0u64;
        loop {
            line.clear();
            r.read_line(&mut line).expect("header line");
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().expect("length");
            }
        }
        assert_eq!(length, mib * PIECE as u64);
        let mut md5 = Md5::new();
        let mut buf = vec![0u8; PIECE];
        let mut read = 0u64;
        while read < length {
            let n = r.read(&mut buf).expect("body");
            assert!(n > 0, "body ended early at {read}");
            md5.update(&buf[..n]);
            read += n as u64;
        }
        hex_of(&md5.finalize())
    })
    .await
    .expect("get task");
    assert_eq!(got_md5, sent_md5, "the object read back differs");
    let after_get = peak_rss_kib(pid);
    eprintln!(
        "{mib} MiB object: server peak RSS {after_put} KiB after PUT, {after_get} KiB after GET"
    );
    assert!(after_put < RSS_LIMIT_KIB, "PUT peak RSS {after_put} KiB");
    assert!(after_get < RSS_LIMIT_KIB, "GET peak RSS {after_get} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_post_upload_streams_and_keeps_the_server_under_256_mib() {
    let mib = size_mib("BASALT_BIG_POST_MIB", 1024);
    let server = Server::start();
    let client = server.client();
    client
        .create_bucket()
        .bucket("forms")
        .send()
        .await
        .expect("bucket");
    // Anyone may post into the bucket: the form needs no signature.
    client
        .put_bucket_policy()
        .bucket("forms")
        .policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::forms/*"}]}"#,
        )
        .send()
        .await
        .expect("policy");
    let port = server.port;
    let pid = server.pid();
    let sent_md5 = tokio::task::spawn_blocking(move || {
        let boundary = "basaltbigform";
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nbig/${{filename}}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let total = head.len() + (mib as usize) * PIECE + tail.len();
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            s,
            "POST /forms HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n{head}"
        )
        .expect("head");
        let mut md5 = Md5::new();
        for i in 0..mib {
            let p = piece(i);
            md5.update(&p);
            s.write_all(&p).expect("file");
        }
        s.write_all(tail.as_bytes()).expect("tail");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("response");
        assert!(resp.starts_with("HTTP/1.1 204"), "{resp}");
        hex_of(&md5.finalize())
    })
    .await
    .expect("post task");
    let peak = peak_rss_kib(pid);
    let head = client
        .head_object()
        .bucket("forms")
        .key("big/upload.bin")
        .send()
        .await
        .expect("the posted object");
    assert_eq!(head.content_length(), Some((mib * PIECE as u64) as i64));
    assert_eq!(
        head.e_tag().map(|e| e.trim_matches('"')),
        Some(sent_md5.as_str())
    );
    eprintln!("{mib} MiB POST upload: server peak RSS {peak} KiB");
    assert!(peak < RSS_LIMIT_KIB, "POST peak RSS {peak} KiB");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
