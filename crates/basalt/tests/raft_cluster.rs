//! A cluster of three `basalt server` processes on 127.0.0.1-3: metadata replicated by Raft,
//! every node an S3 endpoint. Each test ends by reading every acknowledged object from every
//! running node, byte-exact.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::nodes::{Cluster, Node};
use common::{bytes_of, exchange_at, wait_for};

const BUCKET: &str = "replicated";

/// Small objects live in the metadata; larger ones are striped over the nodes' drives.
const METRICS_TOKEN: &str = "raft-metrics-token-0123";

/// A node's Prometheus metrics, from its S3 port with the bearer token.
fn raft_metrics(node: &Node) -> String {
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {METRICS_TOKEN}\r\nConnection: close\r\n\r\n",
        node.ip
    );
    exchange_at(&node.ip, node.port, request.as_bytes(), false).unwrap_or_default()
}

fn body(i: usize) -> Vec<u8> {
    let len = if i.is_multiple_of(3) {
        200 * 1024
    } else {
        1000 + i
    };
    bytes_of(len, i as u64)
}

/// Writes `data` at `key` (it must succeed) and returns the pair, for reading back.
async fn put_with(client: &aws_sdk_s3::Client, key: String, data: Vec<u8>) -> (String, Vec<u8>) {
    client
        .put_object()
        .bucket(BUCKET)
        .key(&key)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    (key, data)
}

async fn put(node: &Node, key: &str, data: &[u8]) -> Result<(), String> {
    node.client_without_retries()
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

/// Writes through the running nodes in turn until one acknowledges or `within` passes.
async fn put_through_any(cluster: &Cluster, key: &str, data: &[u8], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut turn = 0;
    while Instant::now() < deadline {
        let running: Vec<&Node> = cluster.nodes.iter().filter(|n| n.is_running()).collect();
        let node = running[turn % running.len()];
        turn += 1;
        if put(node, key, data).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Without client retries: every read succeeds the first time.
async fn assert_all_readable(node: &Node, acknowledged: &[(String, Vec<u8>)]) {
    common::read_all(
        &node.client_without_retries(),
        BUCKET,
        acknowledged,
        &node.name,
    )
    .await;
}

async fn assert_everything_everywhere(cluster: &Cluster, acknowledged: &[(String, Vec<u8>)]) {
    for node in cluster.nodes.iter().filter(|n| n.is_running()) {
        assert_all_readable(node, acknowledged).await;
    }
}

async fn create_bucket(node: &Node) {
    node.client()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_serves_every_bucket_and_conditional_writes_race_atomically() {
    let cluster = Cluster::start(3, &["--metrics-token", METRICS_TOKEN]);
    // Every node up, with its capacity, and a leader, as node 2 sees it (its probes of the
    // others may time out while twelve processes start on two cores: poll).
    let complete = |status: &serde_json::Value| {
        status["leader"].is_string()
            && status["nodes"].as_array().is_some_and(|nodes| {
                nodes.len() == 3
                    && nodes.iter().all(|n| {
                        n["up"] == true
                            && n["capacity_bytes"].as_u64().is_some_and(|c| c > 0)
                            && n["used_bytes"].is_u64()
                    })
            })
    };
    wait_for("a complete cluster status", Duration::from_secs(30), || {
        cluster.nodes[1].status().is_some_and(|s| complete(&s))
    });
    // Raft's view in every node's metrics: one leader among them, three members up.
    wait_for(
        "Raft metrics on every node",
        Duration::from_secs(30),
        || {
            let scraped: Vec<String> = cluster.nodes.iter().map(raft_metrics).collect();
            let leaders = scraped
                .iter()
                .filter(|m| m.contains("basalt_raft_is_leader 1"))
                .count();
            leaders == 1
                && scraped.iter().all(|m| {
                    m.contains("basalt_raft_has_leader 1")
                        && m.contains("basalt_cluster_nodes_up 3")
                })
        },
    );

    create_bucket(&cluster.nodes[0]).await;
    let mut acknowledged = Vec::new();
    for i in 0..12 {
        let key = format!("written-through-{}/{i}", i % 3);
        let data = body(i);
        put(&cluster.nodes[i % 3], &key, &data)
            .await
            .expect("put through one node");
        // Read at once through another node: a write acknowledged anywhere is seen everywhere.
        assert_all_readable(&cluster.nodes[(i + 1) % 3], &[(key.clone(), data.clone())]).await;
        acknowledged.push((key, data));
    }
    for node in &cluster.nodes {
        let listed = node
            .client()
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
        assert_eq!(
            listed.key_count(),
            Some(12),
            "{} lists every key",
            node.name
        );
        let buckets = node.client().list_buckets().send().await.expect("buckets");
        assert_eq!(buckets.buckets().len(), 1);
    }

    // 16 clients race to create one key through the three nodes: exactly one wins.
    let mut racers = Vec::new();
    for i in 0..16 {
        let client = cluster.nodes[i % 3].client_without_retries();
        racers.push(tokio::spawn(async move {
            client
                .put_object()
                .bucket(BUCKET)
                .key("raced")
                .if_none_match("*")
                .body(ByteStream::from(format!("racer {i}").into_bytes()))
                .send()
                .await
                .map(|_| i)
                .map_err(|e| common::error_code(&e))
        }));
    }
    let mut winners = Vec::new();
    for racer in racers {
        match racer.await.expect("racer") {
            Ok(i) => winners.push(i),
            Err(code) => assert!(
                code == "PreconditionFailed" || code == "ConditionalRequestConflict",
                "a losing racer gets 412 or 409, not {code}"
            ),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one racer wins: {winners:?}");
    acknowledged.push(("raced".into(), format!("racer {}", winners[0]).into_bytes()));
    assert_everything_everywhere(&cluster, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_under_writes_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3, &[]);
    create_bucket(&cluster.nodes[0]).await;
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let (key, data) = (format!("before/{i}"), body(i));
        assert!(put_through_any(&cluster, &key, &data, Duration::from_secs(10)).await);
        acknowledged.push((key, data));
    }
    let leader = cluster.leader();
    cluster.nodes[leader].kill();
    let killed_at = Instant::now();
    let mut first_after = None;
    for i in 0..20 {
        let (key, data) = (format!("after/{i}"), body(100 + i));
        assert!(
            put_through_any(&cluster, &key, &data, Duration::from_secs(20)).await,
            "the two nodes left accept writes"
        );
        first_after.get_or_insert_with(|| killed_at.elapsed());
        acknowledged.push((key, data));
    }
    eprintln!(
        "first write acknowledged {:?} after the leader's SIGKILL",
        first_after
    );
    let new_leader = cluster.leader();
    assert_ne!(new_leader, leader);
    assert_everything_everywhere(&cluster, &acknowledged).await;

    // The old leader comes back as a follower, catches up, and serves everything.
    cluster.restart(leader);
    assert_all_readable(&cluster.nodes[leader], &acknowledged).await;
    assert_everything_everywhere(&cluster, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_nodes_catch_up_by_log_by_snapshot_and_after_losing_their_metadata() {
    // A low snapshot threshold: a node away for a few dozen writes comes back to a purged log.
    let mut cluster = Cluster::start(3, &["--raft-snapshot-threshold", "20"]);
    create_bucket(&cluster.nodes[0]).await;
    let mut acknowledged = Vec::new();
    let mut write = async |cluster: &Cluster, from: usize, count: usize| {
        for i in from..from + count {
            let (key, data) = (format!("k/{i:04}"), body(i));
            assert!(put_through_any(cluster, &key, &data, Duration::from_secs(20)).await);
            acknowledged.push((key, data));
        }
    };
    write(&cluster, 0, 5).await;

    // Away for a few writes: caught up from the log.
    let follower = (cluster.leader() + 1) % 3;
    cluster.nodes[follower].kill();
    write(&cluster, 5, 5).await;
    let back = cluster.restart(follower);
    // Its missed shards are rebuilt before another node goes: 2+1 survives one loss at a time.
    let paid = cluster.wait_healed_since(back);
    assert!(
        paid["stripes_healed"].as_u64() >= Some(1),
        "the stripes written while it was away were owed and rebuilt: {paid}"
    );

    // Away for many: the leader's log is purged past it, so a snapshot brings it back. It is
    // the other follower: what was written while the first was away now reads only through
    // the shards rebuilt on the first.
    let leader = cluster.leader();
    let follower = (0..3).find(|&i| i != leader && i != follower).unwrap();
    cluster.nodes[follower].kill();
    let so_far: Vec<(String, Vec<u8>)> = (0..10).map(|i| (format!("k/{i:04}"), body(i))).collect();
    assert_all_readable(&cluster.nodes[leader], &so_far).await;
    write(&cluster, 10, 60).await;
    let back = cluster.restart(follower);
    cluster.wait_healed_since(back);
    let leader = cluster.leader();
    let status = cluster.nodes[leader].status().expect("status");
    assert!(
        status["snapshot_index"].as_u64().is_some(),
        "the leader has built a snapshot: {status}"
    );

    // A node whose metadata directory is wiped (its drives kept) rejoins from a snapshot.
    let wiped = (leader + 2) % 3;
    cluster.nodes[wiped].kill();
    std::fs::remove_dir_all(&cluster.nodes[wiped].meta).expect("wipe metadata");
    write(&cluster, 70, 10).await;
    let back = cluster.restart(wiped);
    cluster.wait_healed_since(back);
    let acknowledged = acknowledged.clone();
    for node in &cluster.nodes {
        assert_all_readable(node, &acknowledged).await;
    }
    let listed = cluster.nodes[wiped]
        .client()
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(80));
}

/// An anonymous GET of `path` through `node`: the status it answers.
fn anonymous_get(node: &Node, path: &str) -> u16 {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n",
        node.ip, node.port
    );
    common::status_of(
        &exchange_at(&node.ip, node.port, request.as_bytes(), false).unwrap_or_default(),
    )
}

/// `basalt admin --json ARGS` against `node`, as the root user.
fn admin_cli(node: &Node, args: &[&str]) -> serde_json::Value {
    common::admin_json_at(&node.endpoint(), args)
}

/// Every node keeps bucket settings and identities in a read cache: a change committed through
/// one node must hold at once on every node, with no wait and no retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settings_and_keys_changed_through_one_node_hold_at_once_on_every_node() {
    let cluster = Cluster::start(3, &[]);
    create_bucket(&cluster.nodes[0]).await;
    put(&cluster.nodes[0], "shared", b"public for a while")
        .await
        .expect("put");
    let path = format!("/{BUCKET}/shared");
    // Every node reads (and caches) the bucket's settings before each change.
    for node in &cluster.nodes {
        assert_eq!(anonymous_get(node, &path), 403, "{}: private", node.name);
    }
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/*"}}]}}"#
    );
    cluster.nodes[2]
        .client()
        .put_bucket_policy()
        .bucket(BUCKET)
        .policy(policy)
        .send()
        .await
        .expect("policy");
    for node in &cluster.nodes {
        assert_eq!(anonymous_get(node, &path), 200, "{}: public", node.name);
    }
    cluster.nodes[1]
        .client()
        .delete_bucket_policy()
        .bucket(BUCKET)
        .send()
        .await
        .expect("policy removed");
    for node in &cluster.nodes {
        assert_eq!(
            anonymous_get(node, &path),
            403,
            "{}: private again",
            node.name
        );
    }

    admin_cli(&cluster.nodes[0], &["user", "add", "ada"]);
    admin_cli(&cluster.nodes[0], &["policy", "ada", "readonly"]);
    let key = admin_cli(&cluster.nodes[0], &["key", "create", "ada"]);
    let (access, secret) = (
        key["access_key"].as_str().expect("an access key"),
        key["secret_key"].as_str().expect("a secret key"),
    );
    let ada_on = |node: &Node| {
        let config = common::config_for(&node.endpoint(), access, secret)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    };
    for node in &cluster.nodes {
        let got = ada_on(node)
            .get_object()
            .bucket(BUCKET)
            .key("shared")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: the new key signs: {e:?}", node.name));
        assert_eq!(
            got.body.collect().await.expect("body").to_vec(),
            b"public for a while"
        );
    }
    admin_cli(&cluster.nodes[2], &["key", "revoke", access]);
    for node in &cluster.nodes {
        let refused = ada_on(node)
            .get_object()
            .bucket(BUCKET)
            .key("shared")
            .send()
            .await
            .expect_err("a revoked key signs nothing");
        assert_eq!(
            common::error_code(&refused),
            "InvalidAccessKeyId",
            "{}",
            node.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_without_a_quorum_refuses_reads_and_writes_with_503() {
    let mut cluster = Cluster::start(3, &[]);
    create_bucket(&cluster.nodes[0]).await;
    put(&cluster.nodes[0], "kept", b"before the quorum went")
        .await
        .expect("put");
    cluster.nodes[1].kill();
    cluster.nodes[2].kill();
    let alone = &cluster.nodes[0];
    let client = alone.client_without_retries();
    // A leader answers reads from its lease for under a second after its quorum last
    // answered it (no other leader can be elected before that lease ends); then, no read.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let read = loop {
        let read = client.get_object().bucket(BUCKET).key("kept").send().await;
        match read {
            Err(e) => break e,
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(_) => panic!("still reading without a quorum after 30 s"),
        }
    };
    assert_eq!(
        common::error_code(&read),
        "ServiceUnavailable",
        "no quorum, no read that may be stale"
    );
    // Nor a write: refused before it is proposed, since it cannot read the bucket first.
    let write = client
        .put_object()
        .bucket(BUCKET)
        .key("unacknowledged")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("no quorum, no write");
    assert_eq!(common::error_code(&write), "ServiceUnavailable");

    cluster.restart(1);
    wait_for("a quorum again", Duration::from_secs(30), || {
        cluster.nodes[0]
            .status()
            .is_some_and(|s| s["leader"].is_string())
    });
    cluster.restart(2);
    let kept = vec![("kept".to_owned(), b"before the quorum went".to_vec())];
    assert_everything_everywhere(&cluster, &kept).await;
    for node in &cluster.nodes {
        let missing = node
            .client()
            .head_object()
            .bucket(BUCKET)
            .key("unacknowledged")
            .send()
            .await;
        assert!(missing.is_err(), "the refused write was not stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_node_data_directory_becomes_a_one_node_cluster_in_place() {
    let extra = tempfile::tempdir().expect("tempdir");
    let (d2, d3, meta) = (
        extra.path().join("d2"),
        extra.path().join("d3"),
        extra.path().join("meta"),
    );
    let (d2, d3, meta) = (
        d2.to_str().expect("utf-8"),
        d3.to_str().expect("utf-8"),
        meta.to_str().expect("utf-8"),
    );
    let storage = ["--data", d2, "--data", d3, "--meta-dir", meta];
    let mut single = common::Server::start_with(&storage);
    let client = single.client();
    client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let mut written = Vec::new();
    for i in 0..6 {
        written.push(put_with(&client, format!("before/{i}"), body(i)).await);
    }
    assert!(single.terminate().success());

    let rpc = format!("127.0.0.1:{}", common::free_port());
    let mut flags = storage.to_vec();
    flags.extend([
        "--node-name",
        "solo",
        "--bootstrap-expect",
        "1",
        "--rpc-address",
        &rpc,
        "--cluster-secret",
        common::nodes::CLUSTER_SECRET,
    ]);
    let node = common::Server::start_on_with(&single.data, single.port, &flags);
    let client = node.client_without_retries();
    common::read_all(&client, BUCKET, &written, "after the upgrade").await;
    for i in 6..9 {
        written.push(put_with(&client, format!("after/{i}"), body(i)).await);
    }
    common::read_all(&client, BUCKET, &written, "the one-node cluster").await;
}

/// As pods of a StatefulSet do: every node binds its own address and the others reach it by a
/// name (`--rpc-advertise-address`), here `localhost:<port>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_naming_each_other_by_dns_name_form_a_cluster_and_rejoin() {
    let mut cluster = Cluster::start_by_name(3, &[]);
    let named = |status: &serde_json::Value| {
        status["leader"].is_string()
            && status["nodes"].as_array().is_some_and(|nodes| {
                nodes.len() == 3
                    && nodes.iter().all(|n| {
                        n["up"] == true
                            && n["rpc"]
                                .as_str()
                                .is_some_and(|rpc| rpc.starts_with("localhost:"))
                    })
            })
    };
    wait_for(
        "three nodes up under their names",
        Duration::from_secs(30),
        || cluster.nodes[1].status().is_some_and(|s| named(&s)),
    );
    create_bucket(&cluster.nodes[0]).await;
    put(&cluster.nodes[1], "named", b"through node 2")
        .await
        .expect("put");
    cluster.nodes[2].kill();
    cluster.restart(2);
    put(&cluster.nodes[2], "after-restart", b"through node 3")
        .await
        .expect("put after the restart");
    let acknowledged = vec![
        ("named".to_owned(), b"through node 2".to_vec()),
        ("after-restart".to_owned(), b"through node 3".to_vec()),
    ];
    assert_everything_everywhere(&cluster, &acknowledged).await;
}
