//! `basalt bench` runs short jobs against a spawned server and its JSON figures agree with
//! what the server holds afterwards.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::process::Command;

fn bench(server: &common::Server, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .arg("bench")
        .arg("--endpoint")
        .arg(server.endpoint())
        .arg("--bucket")
        .arg("bench-test")
        .arg("--json")
        .args(args)
        .env("AWS_ACCESS_KEY_ID", common::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", common::SECRET_KEY)
        .output()
        .expect("run basalt bench");
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

fn result<'a>(report: &'a serde_json::Value, op: &str) -> &'a serde_json::Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["op"] == op)
        .unwrap_or_else(|| panic!("no {op} in {report}"))
}

async fn count_objects(client: &aws_sdk_s3::Client, prefix: &str) -> usize {
    let mut n = 0;
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket("bench-test")
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        n += page.contents().len();
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return n;
        }
    }
}

#[tokio::test]
async fn put_ops_counted_equal_objects_written() {
    let server = common::Server::start();
    let report = bench(
        &server,
        &[
            "--op",
            "put",
            "--count",
            "200",
            "--size",
            "1KiB-8KiB",
            "-c",
            "8",
            "--prefix",
            "p/",
        ],
    );
    let put = result(&report, "put");
    assert_eq!(put["ops"], 200);
    assert_eq!(put["errors"], 0);
    let bytes = put["bytes"].as_u64().unwrap();
    assert!(
        (200 * 1024..=200 * 8192).contains(&bytes),
        "{bytes} bytes for 200 objects of 1-8 KiB"
    );
    assert!(put["p50_ms"].as_f64().unwrap() <= put["p99_ms"].as_f64().unwrap());
    assert!(put["p99_ms"].as_f64().unwrap() <= put["max_ms"].as_f64().unwrap());
    assert_eq!(count_objects(&server.client(), "p/obj-").await, 200);
}

#[tokio::test]
async fn get_list_and_multipart_runs_report_what_they_moved() {
    let server = common::Server::start();
    let report = bench(
        &server,
        &[
            "--op",
            "get",
            "--count",
            "50",
            "--size",
            "4KiB",
            "--objects",
            "10",
            "--prefix",
            "g/",
        ],
    );
    let get = result(&report, "get");
    assert_eq!(get["ops"], 50);
    assert_eq!(get["bytes"], 50 * 4096);
    assert_eq!(count_objects(&server.client(), "g/prep-").await, 10);

    let report = bench(
        &server,
        &[
            "--op",
            "list",
            "--count",
            "5",
            "--objects",
            "30",
            "--prefix",
            "l/",
        ],
    );
    assert_eq!(result(&report, "list")["ops"], 5);

    let report = bench(
        &server,
        &[
            "--op",
            "range-get",
            "--count",
            "20",
            "--size",
            "64KiB",
            "--range-size",
            "1KiB",
            "--objects",
            "4",
            "--prefix",
            "r/",
        ],
    );
    assert_eq!(result(&report, "range-get")["bytes"], 20 * 1024);

    let report = bench(
        &server,
        &[
            "--op",
            "multipart",
            "--count",
            "2",
            "--size",
            "11MiB",
            "--part-size",
            "5MiB",
            "--prefix",
            "m/",
        ],
    );
    let mp = result(&report, "multipart");
    assert_eq!(mp["ops"], 2);
    assert_eq!(mp["errors"], 0);
    let client = server.client();
    let listed = client
        .list_objects_v2()
        .bucket("bench-test")
        .prefix("m/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 2);
    for o in listed.contents() {
        assert_eq!(o.size(), Some(11 << 20));
        assert!(
            o.e_tag().unwrap().ends_with("-3\""),
            "three parts: {:?}",
            o.e_tag()
        );
    }
}
