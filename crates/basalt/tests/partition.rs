//! Node loss and partitions, with Docker: two `basalt drive-server` containers on a private
//! network lend their drives to a coordinating node on the host, over mutual TLS. One node is
//! frozen (`docker pause`: its kernel still accepts TCP connections, its process answers
//! nothing), then cut off the network (`docker network disconnect`). Reads and writes go on
//! from the other drives; once the node is back, a heal rebuilds the shards it missed, which
//! then carry the reads when the *other* node is cut off.
//!
//! The image is built here from the test's own `basalt` binary (`FROM scratch` plus the
//! libraries `ldd` lists): there is no registry.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use common::docker::{Cleanup, build_image, docker};
use common::{Pki, Server, bytes_of, coordinator_flags, make_pki, read_all, tls_flags_at};

const SECRET: &str = "partition-test-cluster-secret-0123";

fn start_node(
    image: &str,
    name: &str,
    network: &str,
    ip: &str,
    drives: &[&str],
    pki: &Pki,
    pki_dir: &Path,
) {
    let mount = format!("{}:/pki:ro", pki_dir.display());
    let mut args: Vec<String> = [
        "run",
        "-d",
        "--name",
        name,
        "--network",
        network,
        "--ip",
        ip,
        "-v",
        &mount,
        "-e",
        "BASALT_LOG=warn",
        image,
        "drive-server",
        "--address",
        "0.0.0.0:9100",
        "--cluster-secret",
        SECRET,
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(tls_flags_at(pki, Some(Path::new("/pki"))));
    for d in drives {
        args.extend(["--drive".to_owned(), format!("{d}=/data/{d}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&args);
}

async fn put(client: &aws_sdk_s3::Client, key: &str, body: &[u8]) {
    client
        .put_object()
        .bucket("parted")
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn reads_and_writes_go_on_through_node_loss_and_partitions() {
    let tag = format!("basalt-partition-test:{}", std::process::id());
    let network = format!("basalt-partition-{}", std::process::id());
    let (n2, n3) = (
        format!("basalt-n2-{}", std::process::id()),
        format!("basalt-n3-{}", std::process::id()),
    );
    let mut cleanup = Cleanup {
        containers: vec![n2.clone(), n3.clone()],
        networks: Vec::new(),
        image: None,
    };
    let dir = tempfile::tempdir().unwrap();
    build_image(&tag, &dir.path().join("image"));
    cleanup.image = Some(tag.clone());
    // A private network with no route out.
    let subnet = format!(
        "10.{}.{}.0/24",
        200 + std::process::id() % 50,
        std::process::id() % 250
    );
    let base = subnet.trim_end_matches("0/24").to_owned();
    docker(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        &subnet,
        &network,
    ]);
    cleanup.networks.push(network.clone());
    let (ip2, ip3) = (format!("{base}2"), format!("{base}3"));

    let pki_dir = dir.path().join("pki");
    let pki = make_pki(&pki_dir, "cluster", &[&ip2, &ip3, "127.0.0.1"]);
    start_node(&tag, &n2, &network, &ip2, &["a", "b"], &pki, &pki_dir);
    start_node(&tag, &n3, &network, &ip3, &["c", "d"], &pki, &pki_dir);

    let urls: Vec<String> = [(&ip2, "a"), (&ip2, "b"), (&ip3, "c"), (&ip3, "d")]
        .iter()
        .map(|(ip, drive)| format!("https://{ip}:9100/{drive}"))
        .collect();
    let flags = coordinator_flags(&pki, &urls, SECRET);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    // The coordinator formats the nodes' drives at start: wait until they listen.
    for ip in [&ip2, &ip3] {
        let address: std::net::SocketAddr = format!("{ip}:9100").parse().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(1))
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "node {ip} did not start listening"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let server = Server::start_with(&flags);
    let client = server.client();
    client
        .create_bucket()
        .bucket("parted")
        .send()
        .await
        .unwrap();
    let mut objects: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| {
            (
                format!("before-{i}"),
                bytes_of(150_000 + i * 50_000, i as u64),
            )
        })
        .collect();
    for (key, body) in &objects {
        put(&client, key, body).await;
    }
    read_all(&client, "parted", &objects, "all nodes up").await;

    // Node 3 freezes: connections open, nothing answers. Reads rebuild around it; a write
    // still reaches its quorum (3 of 5 shards) on node 2 and the local drive.
    docker(&["pause", &n3]);
    read_all(&client, "parted", &objects, "node 3 frozen").await;
    let during = ("during-freeze".to_owned(), bytes_of(300_000, 99));
    put(&client, &during.0, &during.1).await;
    objects.push(during);
    read_all(&client, "parted", &objects, "node 3 frozen, after a write").await;
    docker(&["unpause", &n3]);

    // Node 3 cut off the network.
    docker(&["network", "disconnect", &network, &n3]);
    read_all(&client, "parted", &objects, "node 3 partitioned").await;
    docker(&["network", "connect", "--ip", &ip3, &network, &n3]);

    // Back: the shards written while node 3 was away were noted as owed, and the healer
    // rebuilds them there once it answers, by itself. Then node 2 is cut off, and every
    // object, the one written during the freeze included, reads from node 3 and the local
    // drive alone.
    let back_ms = common::now_ms();
    common::wait_for(
        "the shards node 3 missed rebuilt by the healer",
        std::time::Duration::from_secs(60),
        || {
            let missed = &server.admin_json(&["status"])["missed_shards"];
            missed["last_pass_started_ms"]
                .as_i64()
                .is_some_and(|t| t >= back_ms)
                && missed["owed"] == 0
                && missed["stripes_healed"].as_u64() >= Some(1)
        },
    );
    docker(&["network", "disconnect", &network, &n2]);
    read_all(
        &client,
        "parted",
        &objects,
        "node 2 partitioned after the heal",
    )
    .await;
    drop(cleanup);
}
