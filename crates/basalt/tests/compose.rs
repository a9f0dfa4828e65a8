//! The repository's `compose.yaml`, as the README starts it: a three-node cluster, every node
//! an S3 endpoint. The image is built from this test's own binary (there is no registry to
//! pull the Dockerfile's base images from), put in place of `basalt:local` by an override
//! file, so the compose file itself is what runs.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::docker::build_image;
use common::{bytes_of, client_for};

const ROOT_USER: &str = "composeadmin";
const ROOT_PASSWORD: &str = "compose-root-password-0123";
const CLUSTER_SECRET: &str = "compose-cluster-secret-0123";

/// One `docker-compose` project: taken down with its volumes, and its image removed, however
/// the test ends.
struct Project {
    name: String,
    files: [PathBuf; 2],
    image: String,
}

impl Project {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker-compose")
            .args(["--project-name", &self.name])
            .arg("--file")
            .arg(&self.files[0])
            .arg("--file")
            .arg(&self.files[1])
            .args(args)
            .env("BASALT_ROOT_USER", ROOT_USER)
            .env("BASALT_ROOT_PASSWORD", ROOT_PASSWORD)
            .env("BASALT_CLUSTER_SECRET", CLUSTER_SECRET)
            .output()
            .expect("docker-compose runs (Debian's docker-compose package)")
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.run(&["logs", "--tail", "200"]);
            eprintln!("{}", String::from_utf8_lossy(&logs.stdout));
        }
        let _ = self.run(&["down", "--volumes", "--timeout", "5"]);
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

fn ready(port: u16) -> bool {
    let request = "GET /health/ready HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";
    common::exchange_at("127.0.0.1", port, request.as_bytes(), false)
        .is_ok_and(|a| a.starts_with("HTTP/1.1 200"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_compose_up_starts_a_three_node_cluster() {
    let id = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    let image = format!("basalt-compose-test:{id}");
    build_image(&image, &dir.path().join("image"));
    let compose = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../compose.yaml");
    let replaced = dir.path().join("image-override.yaml");
    let services = ["certs", "basalt1", "basalt2", "basalt3"]
        .map(|s| format!("  {s}:\n    image: {image}\n"))
        .concat();
    std::fs::write(&replaced, format!("services:\n{services}")).unwrap();
    let project = Project {
        name: format!("basalt-compose-{id}"),
        files: [compose, replaced],
        image,
    };

    let up = project.run(&["up", "--detach", "--no-build"]);
    assert!(
        up.status.success(),
        "docker-compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    // The nodes form the cluster by themselves (BASALT_BOOTSTRAP_EXPECT=3): each serves S3.
    let ports = [9001u16, 9002, 9003];
    let deadline = Instant::now() + Duration::from_secs(120);
    for port in ports {
        while !ready(port) {
            assert!(
                Instant::now() < deadline,
                "the node on :{port} did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let client = |port: u16| {
        client_for(
            &format!("http://127.0.0.1:{port}"),
            ROOT_USER,
            ROOT_PASSWORD,
        )
    };

    // Any node serves every bucket: created through one, written through another, read and
    // listed through the third.
    client(9001)
        .create_bucket()
        .bucket("composed")
        .send()
        .await
        .unwrap();
    let body = bytes_of(400_000, 3);
    client(9002)
        .put_object()
        .bucket("composed")
        .key("across/nodes")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let got = client(9003)
        .get_object()
        .bucket("composed")
        .key("across/nodes")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &got.body.collect().await.unwrap().into_bytes()[..],
        &body[..]
    );
    let listed = client(9001)
        .list_objects_v2()
        .bucket("composed")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(1));

    // `basalt admin cluster status` through a node: three nodes up, one leader.
    let out = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(["admin", "--json", "--endpoint", "http://127.0.0.1:9002"])
        .args(["--access-key", ROOT_USER, "--secret-key", ROOT_PASSWORD])
        .args(["cluster", "status"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes.len(), 3, "{status}");
    assert!(nodes.iter().all(|n| n["up"] == true), "{status}");
    assert!(status["leader"].is_string(), "{status}");
}
