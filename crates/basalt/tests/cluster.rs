//! Drives on other nodes: `basalt drive-server` processes on 127.0.0.2 and 127.0.0.3 serve
//! their drives to a coordinating `basalt server` over mutual TLS. Objects are striped across
//! the nodes and survive losing one; a peer without a certificate the cluster CA signed, or
//! without the cluster secret, is refused.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::{Pki, Server, bytes_of, coordinator_flags, free_port, make_pki, read_all, tls_flags};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "cluster-secret-for-tests-0123456789";
const LOOPBACK: &[&str] = &["127.0.0.1", "127.0.0.2", "127.0.0.3", "localhost"];

struct DriveServer {
    child: Child,
    address: String,
}

impl DriveServer {
    fn start(ip: &str, port: u16, drives: &[(&str, PathBuf)], pki: &Pki) -> Self {
        let address = format!("{ip}:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_basalt"));
        cmd.arg("drive-server")
            .arg("--address")
            .arg(&address)
            .arg("--cluster-secret")
            .arg(SECRET)
            .args(tls_flags(pki))
            .env(
                "BASALT_LOG",
                std::env::var("BASALT_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (name, path) in drives {
            cmd.arg("--drive").arg(format!("{name}={}", path.display()));
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "drive server did not start");
            assert!(child.try_wait().unwrap().is_none(), "drive server exited");
            std::thread::sleep(Duration::from_millis(25));
        }
        Self { child, address }
    }

    fn url(&self, drive: &str) -> String {
        format!("https://{}/{drive}", self.address)
    }
}

impl Drop for DriveServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn shard_files(drive: &Path) -> usize {
    let Ok(groups) = std::fs::read_dir(drive.join("chunks")) else {
        return 0;
    };
    groups
        .filter_map(Result::ok)
        .filter_map(|g| std::fs::read_dir(g.path()).ok())
        .map(Iterator::count)
        .sum()
}

#[tokio::test]
async fn objects_striped_over_nodes_survive_losing_one() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "cluster", LOOPBACK);
    let drive = |name: &str| dir.path().join(name);
    let node2 = DriveServer::start(
        "127.0.0.2",
        free_port(),
        &[("a", drive("a")), ("b", drive("b"))],
        &pki,
    );
    let node3_port = free_port();
    let node3 = DriveServer::start(
        "127.0.0.3",
        node3_port,
        &[("c", drive("c")), ("d", drive("d"))],
        &pki,
    );
    let urls = [
        node2.url("a"),
        node2.url("b"),
        node3.url("c"),
        node3.url("d"),
    ];
    let flags = coordinator_flags(&pki, &urls, SECRET);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start_with(&flags);
    let client = server.client();
    client
        .create_bucket()
        .bucket("spread")
        .send()
        .await
        .unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("obj{i}"), bytes_of(200_000 + i * 77_777, i as u64)))
        .collect();
    for (key, body) in &objects {
        client
            .put_object()
            .bucket("spread")
            .key(key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
    }
    for name in ["a", "b", "c", "d"] {
        assert!(shard_files(&drive(name)) > 0, "drive {name} holds shards");
    }
    assert!(
        shard_files(&server.data) > 0,
        "the local drive holds shards"
    );

    read_all(&client, "spread", &objects, "all nodes up").await;

    // `basalt fsck` checks a stopped coordinator's drives, remote ones included: one shard
    // file deleted on node 2's drive is found, repaired through the node, and all is clean.
    let mut stopped = server;
    stopped.terminate();
    let victim = std::fs::read_dir(drive("a").join("chunks"))
        .unwrap()
        .filter_map(Result::ok)
        .flat_map(|group| {
            std::fs::read_dir(group.path())
                .unwrap()
                .filter_map(Result::ok)
        })
        .next()
        .unwrap()
        .path();
    std::fs::remove_file(&victim).unwrap();
    let mut fsck_args = tls_flags(&pki);
    fsck_args.extend(["--cluster-secret".to_owned(), SECRET.to_owned()]);
    fsck_args.extend(["--data".to_owned(), stopped.data.display().to_string()]);
    for url in &urls {
        fsck_args.extend(["--data".to_owned(), url.clone()]);
    }
    let fsck = |repair: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_basalt"));
        cmd.arg("fsck").args(&fsck_args);
        if repair {
            cmd.arg("--repair");
        }
        cmd.env("BASALT_LOG", "error").output().unwrap()
    };
    let check = fsck(false);
    assert!(!check.status.success(), "the missing shard is found");
    let repair = fsck(true);
    assert!(
        repair.status.success(),
        "{}",
        String::from_utf8_lossy(&repair.stdout)
    );
    assert!(victim.exists(), "the shard is rebuilt on node 2's drive");
    assert!(fsck(false).status.success());
    let server = Server::start_on_with(&stopped.data, stopped.port, &flags);
    let client = server.client();

    // Node 3 goes away with two of the five drives: every object is rebuilt from the rest.
    drop(node3);
    read_all(&client, "spread", &objects, "node 3 down").await;

    // Back again, it serves its shards as before: once the coordinator retries it (after a
    // short back-off), the objects read from node 3 and the local drive alone.
    let _node3 = DriveServer::start(
        "127.0.0.3",
        node3_port,
        &[("c", drive("c")), ("d", drive("d"))],
        &pki,
    );
    tokio::time::sleep(Duration::from_millis(4500)).await;
    drop(node2);
    read_all(&client, "spread", &objects, "node 2 down, node 3 back").await;
}

fn connector(ca: &Path, client_identity: Option<&Pki>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client_identity {
        None => builder.with_no_client_auth(),
        Some(pki) => {
            let certs = CertificateDer::pem_file_iter(&pki.cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(&pki.key).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Sends one HTTP/1.1 request to a drive server: the status line, or why there was none.
async fn ask(
    address: &str,
    ca: &Path,
    identity: Option<&Pki>,
    path: &str,
    auth: Option<String>,
) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = ServerName::try_from("127.0.0.2").unwrap();
    let mut tls = connector(ca, identity)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let auth = auth.map_or(String::new(), |a| format!("x-basalt-cluster-auth: {a}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nhost: node\r\n{auth}connection: close\r\n\r\n");
    // With TLS 1.3 a refused client certificate surfaces on the first read or write.
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    answer
        .lines()
        .next()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "no answer".to_owned())
}

fn sign(secret: &str, path: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(
        &key,
        format!("basalt-node-v1\n{secs}\nGET\n{path}").as_bytes(),
    );
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{secs}:{hex}")
}

#[tokio::test]
async fn nodes_refuse_peers_without_a_cluster_certificate_or_secret() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(&dir.path().join("good"), "cluster", LOOPBACK);
    let rogue = make_pki(&dir.path().join("rogue"), "rogue", LOOPBACK);
    let drive = dir.path().join("a");
    std::fs::create_dir_all(&drive).unwrap();
    let node = DriveServer::start("127.0.0.2", free_port(), &[("a", drive)], &pki);
    let path = "/basalt-node/v1/drives/a/space";

    // A member of the cluster, signing with the secret, is answered.
    let answer = ask(
        &node.address,
        &pki.ca,
        Some(&pki),
        path,
        Some(sign(SECRET, path)),
    )
    .await;
    assert!(answer.as_deref().unwrap().contains(" 200 "), "{answer:?}");

    // No client certificate, or one another CA signed: the handshake is refused.
    let answer = ask(&node.address, &pki.ca, None, path, Some(sign(SECRET, path))).await;
    assert!(answer.is_err(), "no client certificate: {answer:?}");
    let answer = ask(
        &node.address,
        &pki.ca,
        Some(&rogue),
        path,
        Some(sign(SECRET, path)),
    )
    .await;
    assert!(answer.is_err(), "a rogue certificate: {answer:?}");

    // A node presenting a certificate the client does not trust is refused by the client.
    let answer = ask(&node.address, &rogue.ca, Some(&rogue), path, None).await;
    assert!(answer.is_err(), "an untrusted node: {answer:?}");

    // Without certificates a drive server serves loopback only: off this machine shards
    // would travel in clear.
    let plain = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(["drive-server", "--address", "0.0.0.0:0", "--drive"])
        .arg(format!("a={}", dir.path().join("plain").display()))
        .args(["--cluster-secret", SECRET])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!plain.status.success());
    assert!(String::from_utf8_lossy(&plain.stderr).contains("loopback"));

    // A valid certificate without the secret, or with a wrong one, or a signature for
    // another request: forbidden.
    for auth in [
        None,
        Some(sign("not-the-cluster-secret-at-all", path)),
        Some(sign(SECRET, "/basalt-node/v1/drives/a/scan")),
    ] {
        let answer = ask(&node.address, &pki.ca, Some(&pki), path, auth).await;
        assert!(answer.as_deref().unwrap().contains(" 403 "), "{answer:?}");
    }
}

fn admin(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(["admin", "--endpoint", &server.endpoint()])
        .args([
            "--access-key",
            common::ACCESS_KEY,
            "--secret-key",
            common::SECRET_KEY,
        ])
        .args(args)
        .output()
        .unwrap()
}

/// Nodes start in any order. A new drive set is created only when every drive answers (an
/// unreachable drive may hold an existing set); a node of an existing set that is down when
/// the coordinator starts leaves its drives offline, served around, until it answers again:
/// then they are taken back, without an operator.
#[tokio::test]
async fn a_node_down_at_start_is_served_around_and_taken_back() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "cluster", LOOPBACK);
    let port = free_port();
    let remote = format!("https://127.0.0.2:{port}/a");
    let local = |name: &str| dir.path().join(name).display().to_string();
    let mut flags = tls_flags(&pki);
    flags.extend(
        [
            "--data",
            &local("l2"),
            "--data",
            &remote,
            "--cluster-secret",
            SECRET,
            "--scrub-interval",
            "off",
        ]
        .map(str::to_owned),
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let data = dir.path().join("l1");

    // No node answers: no new set.
    let out = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(["server", "--address", &format!("127.0.0.1:{}", free_port())])
        .arg("--data")
        .arg(&data)
        .args(&flags)
        .env("BASALT_ROOT_USER", "root")
        .env("BASALT_ROOT_PASSWORD", "rootpassword")
        .env("BASALT_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unreachable"), "{stderr}");

    let node = DriveServer::start("127.0.0.2", port, &[("a", dir.path().join("a"))], &pki);
    let s3_port = free_port();
    let mut server = Server::start_on_with(&data, s3_port, &flags);
    let client = server.client();
    client.create_bucket().bucket("bkt").send().await.unwrap();
    let body = bytes_of(500_000, 7);
    client
        .put_object()
        .bucket("bkt")
        .key("k")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    server.terminate();
    drop(node);

    // The node is down as the coordinator starts: its drive is offline, data is read around it.
    let server = Server::start_on_with(&data, s3_port, &flags);
    let client = server.client();
    let got = client
        .get_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &got.body.collect().await.unwrap().into_bytes()[..],
        &body[..]
    );
    let status = admin(&server, &["status"]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        text.lines()
            .any(|l| l.contains(&remote) && l.contains("OFFLINE")),
        "{text}"
    );

    // Back: the coordinator notices (it asks every 10 s), takes the drive back and heals.
    let _node = DriveServer::start("127.0.0.2", port, &[("a", dir.path().join("a"))], &pki);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let status = admin(&server, &["status"]);
        let text = String::from_utf8_lossy(&status.stdout).into_owned();
        if text
            .lines()
            .any(|l| l.contains(&remote) && l.contains("(online"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the drive did not come back: {text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `ask` as a node presenting `pki`'s certificate and trusting its CA, signing with the secret.
async fn as_member(node: &DriveServer, pki: &Pki, path: &str) -> Result<String, String> {
    ask(
        &node.address,
        &pki.ca,
        Some(pki),
        path,
        Some(sign(SECRET, path)),
    )
    .await
}

/// Node certificates rotate without a restart: SIGHUP makes a drive server read its
/// certificate, key and CA files again, for new connections.
#[tokio::test]
async fn sighup_reloads_the_node_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let old = make_pki(&dir.path().join("old"), "old", LOOPBACK);
    let new = make_pki(&dir.path().join("new"), "new", LOOPBACK);
    let live = Pki {
        ca: dir.path().join("ca.pem"),
        cert: dir.path().join("node.pem"),
        key: dir.path().join("node.key"),
    };
    let install = |from: &Pki| {
        std::fs::copy(&from.ca, &live.ca).unwrap();
        std::fs::copy(&from.cert, &live.cert).unwrap();
        std::fs::copy(&from.key, &live.key).unwrap();
    };
    install(&old);
    let drive = dir.path().join("a");
    std::fs::create_dir_all(&drive).unwrap();
    let node = DriveServer::start("127.0.0.2", free_port(), &[("a", drive)], &live);
    let path = "/basalt-node/v1/drives/a/space";

    assert!(
        as_member(&node, &old, path)
            .await
            .unwrap()
            .contains(" 200 ")
    );
    assert!(as_member(&node, &new, path).await.is_err());

    install(&new);
    let hup = Command::new("kill")
        .args(["-HUP", &node.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while as_member(&node, &new, path).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificates were not loaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        as_member(&node, &old, path).await.is_err(),
        "the old CA is no longer trusted"
    );
}
