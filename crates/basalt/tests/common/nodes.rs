//! Clusters of `basalt server --node-name …` processes, node i on 127.0.0.(i+1).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ACCESS_KEY, RawRequest, SECRET_KEY, client_for, exchange_at, free_port, status_of};

pub const CLUSTER_SECRET: &str = "raft-test-cluster-secret-0123";

pub struct Node {
    pub name: String,
    pub ip: String,
    pub port: u16,
    pub rpc_port: u16,
    pub data: PathBuf,
    pub meta: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.ip, self.port)
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        client_for(&self.endpoint(), ACCESS_KEY, SECRET_KEY)
    }

    /// A client that does not retry: what one request answers.
    pub fn client_without_retries(&self) -> aws_sdk_s3::Client {
        let config = super::config_for(&self.endpoint(), ACCESS_KEY, SECRET_KEY)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: nothing of the shutdown path runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The cluster status as this node sees it (the admin API), if it answers.
    pub fn status(&self) -> Option<serde_json::Value> {
        self.admin("GET", "/basalt-admin/v1/cluster/status")
    }

    /// An admin API call's JSON answer, if it succeeds.
    pub fn admin(&self, method: &str, path: &str) -> Option<serde_json::Value> {
        let host = format!("{}:{}", self.ip, self.port);
        let mut request = RawRequest::new(method, path, b"");
        request.host = Some(host);
        let raw = request.head(self.port, false);
        let answer = exchange_at(&self.ip, self.port, raw.as_bytes(), false).ok()?;
        if !(200..300).contains(&status_of(&answer)) {
            return None;
        }
        let body = answer.split_once("\r\n\r\n")?.1;
        serde_json::from_str(body).ok()
    }

    fn ready(&self) -> bool {
        let request = format!(
            "GET /health/ready HTTP/1.1\r\nhost: {}:{}\r\nconnection: close\r\n\r\n",
            self.ip, self.port
        );
        exchange_at(&self.ip, self.port, request.as_bytes(), false)
            .is_ok_and(|a| a.starts_with("HTTP/1.1 200"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    extra: Vec<String>,
    /// Nodes name each other `localhost:<port>` (`--rpc-advertise-address`), as pods of a
    /// StatefulSet name each other by DNS, rather than by the address they bind.
    by_name: bool,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes that form one cluster, and waits until each serves S3.
    pub fn start(n: usize, extra: &[&str]) -> Self {
        Self::start_with(n, extra, false)
    }

    /// Like [`Self::start`], the nodes (all on 127.0.0.1) naming each other `localhost:<port>`.
    pub fn start_by_name(n: usize, extra: &[&str]) -> Self {
        Self::start_with(n, extra, true)
    }

    fn start_with(n: usize, extra: &[&str], by_name: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let nodes = (0..n)
            .map(|i| Node {
                name: format!("node{}", i + 1),
                ip: if by_name {
                    "127.0.0.1".to_owned()
                } else {
                    format!("127.0.0.{}", i + 1)
                },
                port: free_port(),
                rpc_port: free_port(),
                data: dir.path().join(format!("node{}/data", i + 1)),
                meta: dir.path().join(format!("node{}/meta", i + 1)),
                child: None,
            })
            .collect();
        let mut cluster = Self {
            nodes,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            by_name,
            _dir: dir,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.wait_ready(i);
        }
        cluster
    }

    fn peers(&self) -> String {
        self.nodes
            .iter()
            .map(|n| self.advertised(n))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn advertised(&self, node: &Node) -> String {
        let host = if self.by_name { "localhost" } else { &node.ip };
        format!("{host}:{}", node.rpc_port)
    }

    fn spawn(&mut self, i: usize) {
        let peers = self.peers();
        let advertised = self.advertised(&self.nodes[i]);
        let expect = self.nodes.len().to_string();
        let node = &mut self.nodes[i];
        let child = Command::new(env!("CARGO_BIN_EXE_basalt"))
            .arg("server")
            .args(["--node-name", &node.name])
            .args(["--address", &format!("{}:{}", node.ip, node.port)])
            .args(["--rpc-address", &format!("{}:{}", node.ip, node.rpc_port)])
            .args(["--rpc-advertise-address", &advertised])
            .args(["--peers", &peers])
            .args(["--bootstrap-expect", &expect])
            .args([
                "--raft-heartbeat-ms",
                "100",
                "--raft-election-timeout-ms",
                "600",
            ])
            .arg("--data")
            .arg(&node.data)
            .arg("--meta-dir")
            .arg(&node.meta)
            .args(&self.extra)
            .env("BASALT_CLUSTER_SECRET", CLUSTER_SECRET)
            .env("BASALT_ROOT_USER", ACCESS_KEY)
            .env("BASALT_ROOT_PASSWORD", SECRET_KEY)
            .env(
                "BASALT_LOG",
                std::env::var("BASALT_TEST_LOG").unwrap_or_else(|_| "warn,s3s=off".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn basalt");
        node.child = Some(child);
    }

    pub fn wait_ready(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.nodes[i].ready() {
                return;
            }
            if let Some(child) = self.nodes[i].child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("{} exited during start-up: {status}", self.nodes[i].name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not become ready", self.nodes[i].name);
    }

    /// Starts node `i` again with the same flags, and waits until it serves; returns when
    /// it was started (ms since the epoch).
    pub fn restart(&mut self, i: usize) -> i64 {
        let started = super::now_ms();
        self.spawn(i);
        self.wait_ready(i);
        started
    }

    /// Waits until the leader has rebuilt the shards that writes missed while a node was away:
    /// a pass of its missed-shards healer, started after `since_ms`, that left nothing owed.
    /// Answers the leader's `missed_shards` status then.
    pub fn wait_healed_since(&self, since_ms: i64) -> serde_json::Value {
        let mut paid = serde_json::Value::Null;
        super::wait_for(
            "the leader's missed-shards healer to pay what a returning node missed",
            Duration::from_secs(90),
            || {
                let Some(status) =
                    self.nodes[self.leader()].admin("GET", "/basalt-admin/v1/status")
                else {
                    return false;
                };
                let missed = &status["missed_shards"];
                let done = missed["last_pass_started_ms"]
                    .as_i64()
                    .is_some_and(|t| t >= since_ms)
                    && missed["owed"] == 0
                    && missed["last_error"].is_null();
                if done {
                    paid = missed.clone();
                }
                done
            },
        );
        paid
    }

    /// The index of the node every running node names as the leader, once they agree.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let named: Vec<Option<String>> = self
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .map(|n| {
                    n.status()
                        .and_then(|s| s["leader"].as_str().map(str::to_owned))
                })
                .collect();
            if let Some(Some(leader)) = named.first()
                && named.iter().all(|n| n.as_deref() == Some(leader.as_str()))
                && let Some(i) = self.nodes.iter().position(|n| &n.name == leader)
            {
                return i;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the nodes did not agree on a leader");
    }
}
