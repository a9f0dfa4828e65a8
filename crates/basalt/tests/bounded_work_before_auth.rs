//! What clients can make the server hold is bounded: bodies of requests that cannot be
//! authorized are not read, bytes read before authorization share one budget, documents over
//! their operation's limit are refused from the head with AWS's codes, stalled bodies are cut
//! off, and connections and requests in flight are capped, idle connections closed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{RawRequest, Server, error_code, status_of, wait_for};

const BUCKET: &str = "bounded";

/// Resident set size of a process now (VmRSS), and at its peak (VmHWM), in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("rss field")
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Reads whatever the server answers on `stream` until its error body ends, it closes, or
/// `timeout` passes.
fn read_answer(stream: &mut TcpStream, timeout: Duration) -> String {
    common::read_until(stream, "</Error>", timeout)
}

/// Files under `dir`, recursively: shards and staging files of the drive.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Shard files: every file of the drive but the metadata database and the node's own files.
fn shard_files(data: &std::path::Path) -> usize {
    files_under(data)
        .iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            !(name.ends_with(".redb")
                || name.contains("credentials")
                || name.contains("keys")
                || name.contains("identity")
                || name.ends_with(".json")
                || name.ends_with(".pem"))
        })
        .count()
}

/// `connections` clients each send the head of a `POST /nosuchbucket?delete` with a body of
/// `body` bytes, write as much of it as the server takes, and stall; returns the answers.
fn flood_missing_bucket(port: u16, connections: usize, body: usize) -> Vec<String> {
    let senders: Vec<_> = (0..connections)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                let head = format!(
                    "POST /nosuchbucket?delete HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/xml\r\nContent-Length: {body}\r\n\r\n"
                );
                s.write_all(head.as_bytes()).expect("head");
                s.set_write_timeout(Some(Duration::from_secs(5))).expect("timeout");
                let piece = vec![b'<'; 64 << 10];
                for _ in 0..body / piece.len() {
                    if s.write_all(&piece).is_err() {
                        break;
                    }
                }
                // Stall with the connection open, as the attack did.
                read_answer(&mut s, Duration::from_secs(3))
            })
        })
        .collect();
    senders
        .into_iter()
        .map(|t| t.join().expect("sender"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_sent_to_a_missing_bucket_by_anonymous_clients_are_not_read() {
    let server = Server::start();
    let pid = server.pid();
    let (rss_before, _) = rss_kib(pid);
    // Over the DeleteObjects limit: refused from the head.
    for answer in flood_missing_bucket(server.port, 16, 19 << 20) {
        assert_eq!(status_of(&answer), 400, "{answer}");
        assert!(
            answer.contains("<Code>MaxMessageLengthExceeded</Code>"),
            "{answer}"
        );
    }
    // Within it: an anonymous caller may delete nothing there, so the body is not read (and,
    // as on AWS, it learns that the bucket does not exist).
    for answer in flood_missing_bucket(server.port, 16, (4 << 20) - 4096) {
        assert_eq!(status_of(&answer), 404, "{answer}");
        assert!(answer.contains("<Code>NoSuchBucket</Code>"), "{answer}");
    }
    let (rss_after, peak) = rss_kib(pid);
    eprintln!("server RSS: {rss_before} KiB before, {rss_after} KiB after, peak {peak} KiB");
    // 16 × 19 MiB and then 16 × 4 MiB were offered; reading even the second flood whole would
    // take the server past 64 MiB.
    assert!(peak < 48 * 1024, "peak RSS {peak} KiB");
}

#[tokio::test]
async fn documents_over_their_operation_limit_get_aws_codes() {
    let (server, client) = common::server_with_bucket(BUCKET).await;
    // Declared from the head, refused before the body is read.
    let mut req = RawRequest::new("POST", "/bounded?delete", b"");
    req.declared_len = Some((4 << 20) + 1);
    req.cut_off = true;
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert!(
        resp.contains("<Code>MaxMessageLengthExceeded</Code>"),
        "{resp}"
    );

    let mut req = RawRequest::new("PUT", "/bounded?tagging", b"");
    req.declared_len = Some(21 << 20);
    req.cut_off = true;
    let resp = req.send(server.port);
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert!(
        resp.contains("<Code>MaxMessageLengthExceeded</Code>"),
        "{resp}"
    );

    let statement = r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::bounded/*"}"#;
    let statements = vec![statement; 250].join(",");
    let policy = format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#);
    assert!(policy.len() > 20 << 10);
    let err = client
        .put_bucket_policy()
        .bucket(BUCKET)
        .policy(policy)
        .send()
        .await
        .expect_err("a policy over 20 KB");
    assert_eq!(error_code(&err), "PolicyTooLarge");
    let err = client
        .get_bucket_policy()
        .bucket(BUCKET)
        .send()
        .await
        .expect_err("no policy was stored");
    assert_eq!(error_code(&err), "NoSuchBucketPolicy");
}

#[tokio::test]
async fn user_metadata_over_2_kb_is_refused_and_stores_nothing() {
    let (_server, client) = common::server_with_bucket(BUCKET).await;
    // Key "big" (3 bytes) plus 2,045 bytes of value is exactly AWS's 2 KB.
    client
        .put_object()
        .bucket(BUCKET)
        .key("at-limit")
        .metadata("big", "v".repeat(2045))
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect("2 KB of metadata is allowed");
    let err = client
        .put_object()
        .bucket(BUCKET)
        .key("over")
        .metadata("big", "v".repeat(2046))
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect_err("one byte over");
    assert_eq!(error_code(&err), "MetadataTooLarge");
    let err = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("over-mp")
        .metadata("big", "v".repeat(3000))
        .send()
        .await
        .expect_err("multipart too");
    assert_eq!(error_code(&err), "MetadataTooLarge");
    let listed = client
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["at-limit"]);
    let uploads = client
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("uploads");
    assert!(uploads.uploads().is_empty());
}

#[tokio::test]
async fn a_stalled_upload_is_cut_off_and_leaves_nothing() {
    let server = Server::start_with(&["--body-read-timeout", "1s"]);
    let client = server.client();
    client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let baseline = shard_files(&server.data);
    let req = RawRequest::new("PUT", "/bounded/stalled", b"");
    let head = req.head(server.port, true).replace(
        "content-length: 0\r\n",
        &format!("content-length: {}\r\n", 8 << 20),
    );
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(&common::bytes_of(5 << 20, 7))
        .expect("first part of the body");
    let started = Instant::now();
    let answer = read_answer(&mut s, Duration::from_secs(20));
    eprintln!("stalled upload answered after {:?}", started.elapsed());
    assert_eq!(status_of(&answer), 400, "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
    let err = client
        .head_object()
        .bucket(BUCKET)
        .key("stalled")
        .send()
        .await
        .expect_err("nothing stored");
    assert!(format!("{err:?}").contains("NotFound"), "{err:?}");
    wait_for("staged shards removed", Duration::from_secs(10), || {
        shard_files(&server.data) == baseline
    });
}

#[tokio::test]
async fn connections_beyond_the_cap_are_answered_slow_down() {
    let server = Server::start_with(&["--max-connections", "3"]);
    // The readiness probe's connection may still be closing: wait until three are held.
    let mut held: Vec<TcpStream> = Vec::new();
    wait_for("three connections held", Duration::from_secs(10), || {
        held.clear();
        for _ in 0..3 {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
            s.write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .expect("send");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).unwrap_or(0);
            if !String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200") {
                return false;
            }
            held.push(s);
        }
        true
    });
    let over = common::http_get(server.port, "/").expect("fourth connection");
    assert_eq!(status_of(&over), 503, "{over}");
    assert!(over.contains("<Code>SlowDown</Code>"), "{over}");
    drop(held.pop());
    wait_for("a freed slot serves again", Duration::from_secs(10), || {
        common::http_get(server.port, "/health/live").is_ok_and(|r| status_of(&r) == 200)
    });
}

#[tokio::test]
async fn requests_beyond_the_cap_are_answered_slow_down() {
    let server = Server::start_with(&["--max-requests", "1"]);
    let client = server.client_without_retries();
    client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    // One upload in flight, its body stalled. The slot of the request before may take a
    // moment to free: an upload answered at once was refused, and is tried again.
    let req = RawRequest::new("PUT", "/bounded/slow", b"");
    let head = req
        .head(server.port, true)
        .replace("content-length: 0\r\n", "content-length: 1048576\r\n");
    let mut slow = None;
    wait_for("an upload in flight", Duration::from_secs(10), || {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        s.write_all(head.as_bytes()).expect("head");
        s.write_all(&[0u8; 1024]).expect("some body");
        if read_answer(&mut s, Duration::from_millis(300)).is_empty() {
            slow = Some(s);
            return true;
        }
        false
    });
    wait_for(
        "a second request is refused",
        Duration::from_secs(10),
        || {
            let r = common::http_get(server.port, "/bounded").expect("get");
            status_of(&r) == 503 && r.contains("<Code>SlowDown</Code>")
        },
    );
    drop(slow);
    // Health probes are never capped; an S3 request shows the slot is free.
    wait_for("requests are served again", Duration::from_secs(10), || {
        common::http_get(server.port, "/bounded").is_ok_and(|r| status_of(&r) != 503)
    });
    client
        .head_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("served");
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let server = Server::start_with(&["--idle-timeout", "1s"]);
    // A connection that never sends a byte.
    let mut silent = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = silent.read(&mut buf).unwrap_or(usize::MAX);
    assert_eq!(n, 0, "closed by the server, not timed out here");
    assert!(started.elapsed() < Duration::from_secs(8));

    // A kept-alive connection after its request.
    let mut kept = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    kept.write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("send");
    kept.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut out = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match kept.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("the idle connection stayed open: {e}"),
        }
    }
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
}

/// A browser-style form upload without a signature, with `padding` bytes of fields that
/// the policy would ignore (`x-ignore-*`).
fn form_upload(port: u16, key: &str, padding: usize, file: &[u8]) -> String {
    let boundary = "basaltboundary";
    let pad = "p".repeat(padding);
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n{key}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"x-ignore-padding\"\r\n\r\n{pad}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut raw = format!(
        "POST /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    common::http_raw(port, &raw).expect("form upload")
}

#[tokio::test]
async fn bytes_read_before_authorization_share_one_budget() {
    let server = Server::start_with(&["--pre-auth-budget", "16KiB"]);
    let client = server.client();
    client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    // A form's fields are read before its signature (absent here) can be judged: 18 KiB of
    // them, over the budget, are refused with SlowDown.
    let resp = form_upload(server.port, "padded.bin", 18 << 10, b"x");
    assert_eq!(status_of(&resp), 503, "{resp}");
    assert!(resp.contains("<Code>SlowDown</Code>"), "{resp}");
    // The budget came back: a small anonymous upload is judged (and denied: no policy).
    let resp = form_upload(server.port, "small.bin", 0, b"tiny");
    assert_eq!(status_of(&resp), 403, "{resp}");
    let listed = client
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    assert!(listed.contents().is_empty(), "nothing stored");
    // Authorized requests are not charged: a signed 4 MiB PUT goes through.
    client
        .put_object()
        .bucket(BUCKET)
        .key("signed.bin")
        .body(common::bytes_of(4 << 20, 2).into())
        .send()
        .await
        .expect("signed upload");
}
