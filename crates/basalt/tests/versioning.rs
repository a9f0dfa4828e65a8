//! Versioning, object lock and lifecycle through the AWS SDK, and SIGKILL during versioned
//! overwrites: every acknowledged version survives and the version list stays consistent.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus, LifecycleExpiration,
    LifecycleRule, LifecycleRuleFilter, ObjectLockMode, VersioningConfiguration,
};
use common::{Server, bytes_of, error_code, server_with_bucket};
use md5::{Digest, Md5};
use rand::Rng;
use tokio::sync::Mutex;

const BUCKET: &str = "versions";

async fn enable(client: &Client, bucket: &str) {
    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

async fn put(client: &Client, bucket: &str, key: &str, body: &[u8]) -> String {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned()
}

async fn read(client: &Client, bucket: &str, key: &str, version: Option<&str>) -> Vec<u8> {
    client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec()
}

/// (version id, is delete marker) of a key, newest first, across all pages.
async fn versions(client: &Client, bucket: &str, key: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = client
            .list_object_versions()
            .bucket(bucket)
            .prefix(key)
            .max_keys(3)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .unwrap();
        let mut entries: Vec<(String, bool, bool, DateTime)> = Vec::new();
        for v in page.versions() {
            entries.push((
                v.version_id().unwrap().to_owned(),
                false,
                v.is_latest().unwrap(),
                *v.last_modified().unwrap(),
            ));
        }
        for m in page.delete_markers() {
            entries.push((
                m.version_id().unwrap().to_owned(),
                true,
                m.is_latest().unwrap(),
                *m.last_modified().unwrap(),
            ));
        }
        entries.sort_by_key(|e| (!e.2, std::cmp::Reverse(e.3)));
        out.extend(entries.into_iter().map(|e| (e.0, e.1)));
        if !page.is_truncated().unwrap_or(false) {
            return out;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
    }
}

#[tokio::test]
async fn versions_delete_markers_and_the_null_version() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let unversioned = client
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from_static(b"null one"))
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.version_id(), None);
    enable(&client, BUCKET).await;
    let v1 = put(&client, BUCKET, "k", b"first").await;
    let v2 = put(&client, BUCKET, "k", b"second").await;
    assert_eq!(read(&client, BUCKET, "k", None).await, b"second");
    assert_eq!(read(&client, BUCKET, "k", Some(&v1)).await, b"first");
    assert_eq!(read(&client, BUCKET, "k", Some("null")).await, b"null one");

    let deleted = client
        .delete_object()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.delete_marker(), Some(true));
    let marker = deleted.version_id().unwrap().to_owned();
    let err = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NoSuchKey");
    assert_eq!(
        versions(&client, BUCKET, "k").await,
        vec![
            (marker.clone(), true),
            (v2.clone(), false),
            (v1.clone(), false),
            ("null".to_owned(), false)
        ]
    );

    let err = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .version_id("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NoSuchVersion");
    let err = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .version_id("v1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidArgument");

    client
        .delete_object()
        .bucket(BUCKET)
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .unwrap();
    assert_eq!(read(&client, BUCKET, "k", None).await, b"second");
    client
        .delete_object()
        .bucket(BUCKET)
        .key("k")
        .version_id(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(read(&client, BUCKET, "k", None).await, b"first");
}

#[tokio::test]
async fn compliance_locked_versions_cannot_be_deleted() {
    let server = Server::start();
    let client = server.client();
    client
        .create_bucket()
        .bucket("locked")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let until = DateTime::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 3600,
    );
    let version = client
        .put_object()
        .bucket("locked")
        .key("ledger")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(until)
        .body(ByteStream::from_static(b"entries"))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    let err = client
        .delete_object()
        .bucket("locked")
        .key("ledger")
        .version_id(&version)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessDenied");
    assert_eq!(
        read(&client, "locked", "ledger", Some(&version)).await,
        b"entries"
    );
    let err = client
        .put_bucket_versioning()
        .bucket("locked")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidBucketState");
}

#[tokio::test]
async fn lifecycle_rules_round_trip_and_bad_ones_change_nothing() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let rule = |days: i32| {
        LifecycleRule::builder()
            .id("logs")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("logs/").build())
            .expiration(LifecycleExpiration::builder().days(days).build())
            .build()
            .unwrap()
    };
    let configure = |days| {
        client
            .put_bucket_lifecycle_configuration()
            .bucket(BUCKET)
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .rules(rule(days))
                    .build()
                    .unwrap(),
            )
            .send()
    };
    configure(7).await.unwrap();
    let err = configure(-1).await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidArgument");
    let rules = client
        .get_bucket_lifecycle_configuration()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let rule = &rules.rules()[0];
    assert_eq!(rule.id(), Some("logs"));
    assert_eq!(rule.expiration().unwrap().days(), Some(7));
}

/// The periodic worker, with two-second days: an object under a one-day rule expires on its
/// own, one outside the rule's prefix stays, and the admin status reports the run.
#[tokio::test]
async fn the_lifecycle_worker_expires_objects_on_its_own_clock() {
    let server = Server::start_with(&["--lifecycle-day", "2s", "--lifecycle-interval", "1s"]);
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    client
        .put_bucket_lifecycle_configuration()
        .bucket(BUCKET)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(
                    LifecycleRule::builder()
                        .id("tmp")
                        .status(ExpirationStatus::Enabled)
                        .filter(LifecycleRuleFilter::builder().prefix("tmp/").build())
                        .expiration(LifecycleExpiration::builder().days(1).build())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    for key in ["tmp/a", "keep/a"] {
        client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let listed = client
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
        if keys == ["keep/a"] {
            break;
        }
        assert!(keys.contains(&"keep/a"), "keep/a expired: {keys:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "tmp/a did not expire: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args([
            "admin",
            "--json",
            "status",
            "--endpoint",
            &server.endpoint(),
        ])
        .env("BASALT_ROOT_USER", common::ACCESS_KEY)
        .env("BASALT_ROOT_PASSWORD", common::SECRET_KEY)
        .output()
        .unwrap();
    assert!(status.status.success());
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["lifecycle"]["day_seconds"], 2.0);
    assert!(
        status["lifecycle"]["last"]["current_expired"]
            .as_u64()
            .unwrap()
            <= 1
    );
    assert!(status["lifecycle"]["last"]["buckets"].as_u64().unwrap() >= 1);
}

/// Versions each writer had acknowledged: key → [(version id, md5)].
type Acked = Arc<Mutex<HashMap<String, Vec<(String, [u8; 16])>>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_versions_survive_sigkill_during_overwrites() {
    let rounds: usize = std::env::var("BASALT_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = common::free_port();
    let mut server = Server::start_on(&data, port);
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    enable(&client, BUCKET).await;
    // The version every key starts with: it must outlive every crash.
    let mut first = HashMap::new();
    for k in 0..4 {
        let key = format!("k{k}");
        first.insert(
            key.clone(),
            put(&client, BUCKET, &key, key.as_bytes()).await,
        );
    }
    let acked: Acked = Arc::new(Mutex::new(HashMap::new()));
    let mut rng = rand::rng();
    let mut total = 0;
    for round in 0..rounds {
        let client = server.client_without_retries();
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..4u64 {
            let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
            let seed: u64 = rng.random();
            tasks.push(tokio::spawn(async move {
                let mut n = 0;
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("k{}", (w + i) % 4);
                    let len = [100usize, 40_000, 5 << 20][(seed.wrapping_add(i) % 3) as usize];
                    let body = bytes_of(len, seed.wrapping_add(i));
                    i += 1;
                    let sent = client
                        .put_object()
                        .bucket(BUCKET)
                        .key(&key)
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await;
                    let Ok(out) = sent else { break };
                    let version = out.version_id().unwrap().to_owned();
                    acked
                        .lock()
                        .await
                        .entry(key)
                        .or_default()
                        .push((version, Md5::digest(&body).into()));
                    n += 1;
                }
                n
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..700))).await;
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            total += t.await.unwrap();
        }
        server = Server::start_on(&data, port);
        let client = server.client();
        let acked = acked.lock().await;
        for (key, original) in &first {
            let listed = versions(&client, BUCKET, key).await;
            let ids: Vec<&str> = listed.iter().map(|(v, _)| v.as_str()).collect();
            let mut unique = ids.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(
                unique.len(),
                ids.len(),
                "round {round}: {key} lists a version twice"
            );
            assert_eq!(
                ids.last(),
                Some(&original.as_str()),
                "round {round}: {key} lost its first version"
            );
            for (version, md5) in acked.get(key).into_iter().flatten() {
                assert!(
                    ids.contains(&version.as_str()),
                    "round {round}: acknowledged version {version} of {key} is gone"
                );
                let bytes = read(&client, BUCKET, key, Some(version)).await;
                assert_eq!(<[u8; 16]>::from(Md5::digest(&bytes)), *md5, "round {round}");
            }
            // The current version is the newest listed, and every listed version reads.
            let head = client
                .head_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .unwrap();
            assert_eq!(head.version_id(), ids.first().copied(), "round {round}");
            for id in &ids {
                read(&client, BUCKET, key, Some(id)).await;
            }
        }
    }
    eprintln!("{rounds} rounds, {total} acknowledged versioned overwrites verified");
    assert!(
        total > rounds,
        "too few acknowledged writes to prove anything"
    );
    server.terminate();
}
