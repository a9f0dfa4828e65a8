//! A three-node cluster in Docker containers (the image built from this test's binary): the
//! nodes talk Raft and shards over one private network (mutual TLS) and serve S3 on another,
//! so a node can be cut off from its peers and still be asked by a client. The leader is
//! partitioned away (the majority elects a new one and goes on; the old leader acknowledges
//! nothing), then a follower, then every node is restarted in turn under writes. Each step
//! ends by reading every acknowledged object from every node, byte-exact.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::docker::{Cleanup, build_image, docker};
use common::{
    ACCESS_KEY, RawRequest, SECRET_KEY, bytes_of, client_for, config_for, exchange_at, make_pki,
    status_of, tls_flags_at,
};

const SECRET: &str = "raft-partition-cluster-secret-0123";
const BUCKET: &str = "parted";

struct Node {
    container: String,
    /// On the cluster network (Raft, shards).
    cluster_ip: String,
    /// On the client network (S3).
    client_ip: String,
}

impl Node {
    fn endpoint(&self) -> String {
        format!("http://{}:9000", self.client_ip)
    }

    fn client(&self) -> aws_sdk_s3::Client {
        let config = config_for(&self.endpoint(), ACCESS_KEY, SECRET_KEY)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            )
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    fn status(&self) -> Option<serde_json::Value> {
        self.admin("/basalt-admin/v1/cluster/status")
    }

    /// The JSON answer of an admin GET, signed as the root user.
    fn admin(&self, path: &str) -> Option<serde_json::Value> {
        let mut request = RawRequest::new("GET", path, b"");
        request.host = Some(format!("{}:9000", self.client_ip));
        let raw = request.head(9000, false);
        let answer = exchange_at(&self.client_ip, 9000, raw.as_bytes(), false).ok()?;
        if status_of(&answer) != 200 {
            return None;
        }
        serde_json::from_str(answer.split_once("\r\n\r\n")?.1).ok()
    }

    fn ready(&self) -> bool {
        let request = format!(
            "GET /health/ready HTTP/1.1\r\nhost: {}:9000\r\nconnection: close\r\n\r\n",
            self.client_ip
        );
        exchange_at(&self.client_ip, 9000, request.as_bytes(), false)
            .is_ok_and(|a| a.starts_with("HTTP/1.1 200"))
    }
}

fn wait(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what}: not within {within:?}");
}

/// The leader's index, once every node in `among` names the same one.
fn leader(nodes: &[Node], among: &[usize]) -> usize {
    let mut found = None;
    wait(
        "the nodes to agree on a leader",
        Duration::from_secs(60),
        || {
            let named: Vec<Option<String>> = among
                .iter()
                .map(|&i| {
                    nodes[i]
                        .status()
                        .and_then(|s| s["leader"].as_str().map(str::to_owned))
                })
                .collect();
            found = match named.first() {
                Some(Some(name)) if named.iter().all(|n| n.as_ref() == Some(name)) => nodes
                    .iter()
                    .position(|n| n.container.ends_with(&format!("-{name}"))),
                _ => None,
            };
            found.is_some_and(|i| among.contains(&i))
        },
    );
    found.unwrap()
}

async fn put(node: &Node, key: &str, body: &[u8]) -> bool {
    node.client()
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .is_ok()
}

/// Writes through the nodes of `among` in turn until one acknowledges.
async fn put_through(nodes: &[Node], among: &[usize], key: &str, body: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for turn in 0.. {
        assert!(Instant::now() < deadline, "no node of {among:?} took {key}");
        if put(&nodes[among[turn % among.len()]], key, body).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn read_everything(node: &Node, objects: &[(String, Vec<u8>)], what: &str) {
    let what = format!("{what}: {}", node.container);
    common::read_all(&node.client(), BUCKET, objects, &what).await;
}

/// Waits until `node` answers a read that needs the current leader (it has rejoined).
async fn wait_serving(node: &Node, objects: &[(String, Vec<u8>)]) {
    let (key, _) = objects.last().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while node
        .client()
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "{} did not rejoin",
            node.container
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `node` reads every object: after a partition heals, a node's links to the
/// others come back within a few seconds (its data links reconnect every 2 s), and a read that
/// needs a shard on a node not yet reconnected is refused with 503 meanwhile, never answered
/// wrong.
async fn wait_reading(node: &Node, objects: &[(String, Vec<u8>)]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for (key, _) in objects {
        loop {
            let got = node
                .client()
                .get_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await;
            match got {
                Ok(_) => break,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "{}: {key} still unreadable: {e:?}",
                        node.container
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_survives_partitions_and_a_rolling_restart() {
    let id = std::process::id();
    let tag = format!("basalt-raft-test:{id}");
    let (cluster_net, client_net) = (format!("basalt-raft-{id}"), format!("basalt-raft-c-{id}"));
    let names: Vec<String> = (1..=3).map(|i| format!("basalt-raft-{id}-n{i}")).collect();
    let mut cleanup = Cleanup {
        containers: names.clone(),
        networks: Vec::new(),
        image: None,
    };
    let dir = tempfile::tempdir().unwrap();
    build_image(&tag, &dir.path().join("image"));
    cleanup.image = Some(tag.clone());
    let a = 100 + id % 100;
    let b = id % 250;
    let (cluster_subnet, client_subnet) =
        (format!("10.{a}.{b}.0/24"), format!("10.{}.{b}.0/24", a + 1));
    for (net, subnet) in [
        (&cluster_net, &cluster_subnet),
        (&client_net, &client_subnet),
    ] {
        docker(&["network", "create", "--internal", "--subnet", subnet, net]);
        cleanup.networks.push(net.clone());
    }
    let nodes: Vec<Node> = (0..3)
        .map(|i| Node {
            container: names[i].clone(),
            cluster_ip: format!("{}{}", cluster_subnet.trim_end_matches("0/24"), i + 2),
            client_ip: format!("{}{}", client_subnet.trim_end_matches("0/24"), i + 2),
        })
        .collect();
    let ips: Vec<&str> = nodes.iter().map(|n| n.cluster_ip.as_str()).collect();
    let pki_dir = dir.path().join("pki");
    let pki = make_pki(&pki_dir, "raft", &ips);
    let peers = ips
        .iter()
        .map(|ip| format!("{ip}:9100"))
        .collect::<Vec<_>>()
        .join(",");
    for (i, node) in nodes.iter().enumerate() {
        let mount = format!("{}:/pki:ro", pki_dir.display());
        let node_name = format!("n{}", i + 1);
        let rpc = format!("{}:9100", node.cluster_ip);
        let root_user = format!("BASALT_ROOT_USER={ACCESS_KEY}");
        let root_password = format!("BASALT_ROOT_PASSWORD={SECRET_KEY}");
        // BASALT_TEST_NODE_LOG (a log filter) makes the nodes say more, for a failure's logs.
        let log = format!(
            "BASALT_LOG={}",
            std::env::var("BASALT_TEST_NODE_LOG").unwrap_or_else(|_| "warn".into())
        );
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            &node.container,
            "--network",
            &cluster_net,
            "--ip",
            &node.cluster_ip,
            "-v",
            &mount,
            "-e",
            &log,
            "-e",
            &root_user,
            "-e",
            &root_password,
            &tag,
            "server",
            "--node-name",
            &node_name,
            "--address",
            "0.0.0.0:9000",
            "--rpc-address",
            &rpc,
            "--peers",
            &peers,
            "--bootstrap-expect",
            "3",
            "--cluster-secret",
            SECRET,
            "--data",
            "/data/d",
            "--meta-dir",
            "/data/meta",
            "--raft-heartbeat-ms",
            "100",
            "--raft-election-timeout-ms",
            "600",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(tls_flags_at(&pki, Some(std::path::Path::new("/pki"))));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args);
        docker(&[
            "network",
            "connect",
            "--ip",
            &node.client_ip,
            &client_net,
            &node.container,
        ]);
    }
    wait("every node serving S3", Duration::from_secs(120), || {
        nodes.iter().all(Node::ready)
    });
    let all = [0, 1, 2];
    let admin = client_for(&nodes[0].endpoint(), ACCESS_KEY, SECRET_KEY);
    admin.create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut acknowledged: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..9 {
        let (key, body) = (
            format!("before/{i}"),
            bytes_of(if i % 3 == 0 { 150_000 } else { 900 }, i),
        );
        put_through(&nodes, &all, &key, &body).await;
        acknowledged.push((key, body));
    }

    // 1. The leader is cut off from its peers: the majority elects a new leader and goes on;
    // the old leader acknowledges nothing.
    let old = leader(&nodes, &all);
    let majority: Vec<usize> = all.iter().copied().filter(|&i| i != old).collect();
    docker(&["network", "disconnect", &cluster_net, &nodes[old].container]);
    let new = leader(&nodes, &majority);
    assert_ne!(new, old);
    for i in 0..6 {
        let (key, body) = (
            format!("partitioned/{i}"),
            bytes_of(if i % 2 == 0 { 150_000 } else { 700 }, 100 + i),
        );
        put_through(&nodes, &majority, &key, &body).await;
        acknowledged.push((key, body));
    }
    assert!(
        !put(&nodes[old], "to-the-old-leader", b"never acknowledged").await,
        "a leader cut off from its quorum acknowledges nothing"
    );
    let stale_read = nodes[old]
        .client()
        .get_object()
        .bucket(BUCKET)
        .key("before/0")
        .send()
        .await;
    assert!(stale_read.is_err(), "nor serves reads it cannot confirm");
    for &i in &majority {
        read_everything(&nodes[i], &acknowledged, "leader partitioned away").await;
    }
    docker(&[
        "network",
        "connect",
        "--ip",
        &nodes[old].cluster_ip,
        &cluster_net,
        &nodes[old].container,
    ]);
    let reconnected_ms = common::now_ms();
    wait_serving(&nodes[old], &acknowledged).await;
    // The shards of the writes the old leader missed were noted as owed: the leader's healer
    // rebuilds them on it once it answers. Step 2 reads them through it.
    wait(
        "the shards the old leader missed rebuilt",
        Duration::from_secs(90),
        || {
            nodes[leader(&nodes, &all)]
                .admin("/basalt-admin/v1/status")
                .is_some_and(|s| {
                    let missed = &s["missed_shards"];
                    missed["last_pass_started_ms"]
                        .as_i64()
                        .is_some_and(|t| t >= reconnected_ms)
                        && missed["owed"] == 0
                })
        },
    );
    for node in &nodes {
        wait_reading(node, &acknowledged).await;
        read_everything(node, &acknowledged, "after the partition healed").await;
        let refused = node
            .client()
            .head_object()
            .bucket(BUCKET)
            .key("to-the-old-leader")
            .send()
            .await;
        assert!(
            refused.is_err(),
            "the old leader's refused write is nowhere"
        );
    }

    // 2. A follower is cut off: the others go on; it refuses to serve, then catches up.
    let current = leader(&nodes, &all);
    let follower = (current + 1) % 3;
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != follower).collect();
    docker(&[
        "network",
        "disconnect",
        &cluster_net,
        &nodes[follower].container,
    ]);
    for i in 0..6 {
        let (key, body) = (format!("minority/{i}"), bytes_of(800, 200 + i));
        put_through(&nodes, &others, &key, &body).await;
        acknowledged.push((key, body));
    }
    let cut_off = nodes[follower]
        .client()
        .get_object()
        .bucket(BUCKET)
        .key("minority/0")
        .send()
        .await;
    assert!(cut_off.is_err(), "a node without a quorum serves no read");
    // Without the follower, every stripe is read from the other two: the ones written while
    // the old leader was cut off need the shards rebuilt on it.
    for &i in &others {
        wait_reading(&nodes[i], &acknowledged).await;
        read_everything(&nodes[i], &acknowledged, "a follower cut off").await;
    }
    docker(&[
        "network",
        "connect",
        "--ip",
        &nodes[follower].cluster_ip,
        &cluster_net,
        &nodes[follower].container,
    ]);
    wait_serving(&nodes[follower], &acknowledged).await;
    for node in &nodes {
        wait_reading(node, &acknowledged).await;
        read_everything(node, &acknowledged, "after the minority rejoined").await;
    }

    // 3. Every node restarted in turn (SIGTERM, start with the same flags) under writes.
    let mut n = 0;
    for restarted in all {
        let restart = std::thread::spawn({
            let container = nodes[restarted].container.clone();
            move || docker(&["restart", "-t", "10", &container])
        });
        let up: Vec<usize> = all.iter().copied().filter(|&i| i != restarted).collect();
        while !restart.is_finished() || n % 4 != 3 {
            let (key, body) = (
                format!("rolling/{n}"),
                bytes_of(if n % 4 == 0 { 150_000 } else { 600 }, 300 + n as u64),
            );
            put_through(&nodes, &up, &key, &body).await;
            acknowledged.push((key, body));
            n += 1;
        }
        restart.join().unwrap();
        wait(
            "the restarted node serving",
            Duration::from_secs(60),
            || nodes[restarted].ready(),
        );
        wait_serving(&nodes[restarted], &acknowledged).await;
    }
    for node in &nodes {
        read_everything(node, &acknowledged, "after the rolling restart").await;
    }
    drop(cleanup);
}
