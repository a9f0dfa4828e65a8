//! Configuration: flags, then `BASALT_*` environment variables, then a TOML file, then
//! defaults — the first that sets a value wins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use basalt_object::Redundancy;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

/// Where a node keeps its data: shared by `server` and `fsck`.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// A drive (a directory, normally a mount point), or a drive another node serves
    /// (http(s)://host:port/NAME, see `basalt drive-server`); repeat for several drives, or
    /// give a pattern like /data{1...6} [default: ./basalt-data]
    #[arg(long = "data", env = "BASALT_DATA", value_delimiter = ',')]
    pub data: Vec<String>,
    /// Directory of the metadata database and root credentials [default: the first local
    /// drive]
    #[arg(long, env = "BASALT_META_DIR")]
    pub meta_dir: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
}

impl StorageArgs {
    /// The drives (patterns expanded) and the metadata directory; `fallback` applies when no
    /// drive is given.
    pub fn resolve(&self, fallback: Option<&[PathBuf]>) -> anyhow::Result<(Vec<PathBuf>, PathBuf)> {
        let mut drives = Vec::new();
        for pattern in &self.data {
            drives.extend(expand_braces(pattern)?.into_iter().map(PathBuf::from));
        }
        if drives.is_empty() {
            drives = fallback.map_or_else(|| vec![PathBuf::from("basalt-data")], <[_]>::to_vec);
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = drives.iter().find(|d| !seen.insert(*d)) {
            bail!("drive {} is given twice", dup.display());
        }
        let meta_dir = match &self.meta_dir {
            Some(dir) => dir.clone(),
            None => drives
                .iter()
                .find(|d| !basalt_data::is_remote(&d.to_string_lossy()))
                .cloned()
                .context("every drive is another node's: give --meta-dir")?,
        };
        Ok((drives, meta_dir))
    }
}

/// Expands `{a...b}` (integers, as MinIO writes them) in a drive path: `/d{1...3}` is `/d1`,
/// `/d2`, `/d3`. Several patterns multiply.
pub fn expand_braces(pattern: &str) -> anyhow::Result<Vec<String>> {
    let Some(open) = pattern.find('{') else {
        return Ok(vec![pattern.to_owned()]);
    };
    let close = pattern[open..]
        .find('}')
        .map(|i| open + i)
        .with_context(|| format!("unclosed brace in {pattern}"))?;
    let inner = &pattern[open + 1..close];
    let (from, to) = inner
        .split_once("...")
        .with_context(|| format!("{pattern}: a brace holds a range like {{1...6}}"))?;
    let width = if from.starts_with('0') { from.len() } else { 0 };
    let (from, to): (u32, u32) = (
        from.parse()
            .with_context(|| format!("{pattern}: {from} is not a number"))?,
        to.parse()
            .with_context(|| format!("{pattern}: {to} is not a number"))?,
    );
    if from > to || to - from >= 4096 {
        bail!("{pattern}: the range {from}...{to} is empty or too large");
    }
    let mut out = Vec::new();
    for n in from..=to {
        let head = format!("{}{n:0width$}", &pattern[..open]);
        for tail in expand_braces(&pattern[close + 1..])? {
            out.push(format!("{head}{tail}"));
        }
    }
    Ok(out)
}

/// A pause between runs of a background task; `None`: never run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub Option<Duration>);

fn parse_interval_arg(s: &str) -> Result<Interval, String> {
    parse_interval(s).map(Interval)
}

/// Parses a duration like `90s`, `15m`, `24h`, `7d` (seconds without a unit); `0` or `off`
/// means never.
pub fn parse_interval(s: &str) -> Result<Option<Duration>, String> {
    let s = s.trim();
    if s == "0" || s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (90s, 15m, 24h, 7d, off)"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (s, m, h, d)")),
    };
    Ok(Some(Duration::from_secs(seconds)))
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address of the S3 listener [default: 127.0.0.1:9000]
    #[arg(long, env = "BASALT_ADDRESS")]
    pub address: Option<SocketAddr>,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Redundancy of new chunks: none, replica:N or ec:K+M [default: from the drive count:
    /// 1 none, 2 replica:2, 3 ec:2+1, 4-5 ec:(n-2)+2, 6-11 ec:4+2, 12+ ec:8+4]
    #[arg(long, env = "BASALT_REDUNDANCY")]
    pub redundancy: Option<Redundancy>,
    /// Pause between background scrubs that re-read and verify every shard (90s, 15m, 24h,
    /// off) [default: 24h]
    #[arg(long, env = "BASALT_SCRUB_INTERVAL", value_parser = parse_interval_arg)]
    pub scrub_interval: Option<Interval>,
    /// Most bytes per second a scrub reads [default: 64MiB]
    #[arg(long, env = "BASALT_SCRUB_RATE", value_parser = basalt_bench::parse_size)]
    pub scrub_rate: Option<u64>,
    /// Pause between runs of the lifecycle worker (90s, 15m, 1h, off) [default: 1h]
    #[arg(long, env = "BASALT_LIFECYCLE_INTERVAL", value_parser = parse_interval_arg)]
    pub lifecycle_interval: Option<Interval>,
    /// How long the chunks an overwrite or delete frees are kept before their files go, so
    /// reads in flight (on any node) finish from the version they started on; reads on this
    /// node also hold theirs for as long as they last [default: 5m]
    #[arg(long, env = "BASALT_GARBAGE_GRACE", value_parser = parse_interval_arg)]
    pub garbage_grace: Option<Interval>,
    /// How long an expired STS session (or catalog bearer token) is kept, answering
    /// ExpiredToken, before its record is removed [default: 24h]
    #[arg(long, env = "BASALT_SESSION_RETENTION", value_parser = parse_interval_arg)]
    pub session_retention: Option<Interval>,
    /// Length of a lifecycle rule's "day" (for tests and rehearsals: 2s makes `Days: 1`
    /// expire an object two seconds after it was written) [default: 24h]
    #[arg(long, env = "BASALT_LIFECYCLE_DAY", value_parser = parse_interval_arg)]
    pub lifecycle_day: Option<Interval>,
    /// Serve S3 over TLS with this certificate chain (PEM); reloaded on SIGHUP
    #[arg(long, env = "BASALT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, env = "BASALT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve S3 over TLS with a self-signed certificate kept in <meta-dir>/tls/ (for local
    /// experiments: clients must trust <meta-dir>/tls/cert.pem)
    #[arg(long, env = "BASALT_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// SSE-S3 master keys: lines of `<id> <base64 of 32 bytes>`, the last one wrapping new
    /// objects; rotate by appending a line [default: <meta-dir>/sse-master.keys, created with a
    /// random key on first use]
    #[arg(long, env = "BASALT_SSE_MASTER_KEY_FILE")]
    pub sse_master_key_file: Option<PathBuf>,
    /// Accept SSE-C keys over plain HTTP (refused by default, as AWS refuses them: the key
    /// would cross the network in clear). For loopback tests, or behind a TLS-terminating proxy
    #[arg(long, env = "BASALT_SSE_C_OVER_HTTP")]
    pub sse_c_over_http: bool,
    /// The object ownership of a bucket created without `x-amz-object-ownership`: ACLs off, as
    /// on AWS since 2023, or on for tools written before it [default: BucketOwnerEnforced]
    #[arg(long, env = "BASALT_OBJECT_OWNERSHIP_DEFAULT", value_parser = ["BucketOwnerEnforced", "BucketOwnerPreferred", "ObjectWriter"])]
    pub object_ownership_default: Option<String>,
    /// STS roles (JSON: {"roles": [{"name", "issuer", "audience", "jwks_file" or "jwks_url",
    /// "claims", "users", "policies", "max_duration_seconds"}]})
    #[arg(long, env = "BASALT_STS_ROLES")]
    pub sts_roles: Option<PathBuf>,
    /// Serve Prometheus metrics, unauthenticated, on this address (`GET /metrics`); keep it
    /// on a private interface
    #[arg(long, env = "BASALT_METRICS_ADDRESS")]
    pub metrics_address: Option<std::net::SocketAddr>,
    /// Serve Prometheus metrics on the S3 port too, to `GET /metrics` with
    /// `Authorization: Bearer <token>`
    #[arg(long, env = "BASALT_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<basalt_object::Secret>,
    /// Export request traces (OpenTelemetry, OTLP over HTTP with protobuf) to this collector,
    /// e.g. http://127.0.0.1:4318 [default: off]
    #[arg(long, env = "BASALT_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Region reported to clients and used in signatures [default: us-east-1]
    #[arg(long, env = "BASALT_REGION")]
    pub region: Option<String>,
    /// Base domain for virtual-hosted-style requests (bucket.DOMAIN); repeatable
    #[arg(long = "domain", env = "BASALT_DOMAIN", value_delimiter = ',')]
    pub domains: Vec<String>,
    /// TOML configuration file
    #[arg(long, env = "BASALT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Chunk size in bytes [default: 4194304]
    #[arg(long, env = "BASALT_CHUNK_SIZE")]
    pub chunk_size: Option<usize>,
    /// Objects up to this many bytes are stored inline in metadata [default: 32768]
    #[arg(long, env = "BASALT_INLINE_THRESHOLD")]
    pub inline_threshold: Option<usize>,
    /// Smallest multipart part but the last, in bytes [default: 5242880, as AWS]; lower it
    /// only to test
    #[arg(long, env = "BASALT_MIN_PART_SIZE")]
    pub min_part_size: Option<u64>,
    /// Metadata page cache in bytes [default: 67108864]
    #[arg(long, env = "BASALT_META_CACHE")]
    pub meta_cache: Option<usize>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// A cluster node: giving `--node-name` makes `server` one node of a Raft-replicated cluster.
#[derive(Debug, Default, Args)]
pub struct NodeArgs {
    /// This node's name in the cluster (stable: its Raft id is derived from it). Without it,
    /// the server is a single node
    #[arg(long, env = "BASALT_NODE_NAME")]
    pub node_name: Option<String>,
    /// Node-to-node listener: Raft, requests forwarded by other nodes, this node's drives
    /// [default: the S3 address's host, port 9100]
    #[arg(long, env = "BASALT_RPC_ADDRESS")]
    pub rpc_address: Option<SocketAddr>,
    /// The address other nodes reach this one's RPC listener at, as it appears in their
    /// --peers (host:port; a stable DNS name where addresses change, as a Kubernetes
    /// StatefulSet pod's) [default: --rpc-address]
    #[arg(long, env = "BASALT_RPC_ADVERTISE_ADDRESS")]
    pub rpc_advertise_address: Option<String>,
    /// The RPC addresses of the cluster's nodes (this one's may be among them)
    #[arg(long, env = "BASALT_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Form the cluster once this many nodes (this one included) answer; the one with the
    /// lowest id forms it, once. Nodes given the same flags after a restart rejoin by themselves
    #[arg(long, env = "BASALT_BOOTSTRAP_EXPECT")]
    pub bootstrap_expect: Option<usize>,
    /// This node's zone: no two shards of a stripe go to one zone while there are as many
    /// zones as shards [default: default]
    #[arg(long, env = "BASALT_ZONE")]
    pub zone: Option<String>,
    /// Raft log entries between metadata snapshots [default: 10000]
    #[arg(long, env = "BASALT_RAFT_SNAPSHOT_THRESHOLD")]
    pub raft_snapshot_threshold: Option<u64>,
    /// Raft heartbeat interval in milliseconds [default: 100]
    #[arg(long, env = "BASALT_RAFT_HEARTBEAT_MS")]
    pub raft_heartbeat_ms: Option<u64>,
    /// Shortest Raft election timeout in milliseconds (the longest is twice it) [default: 500]
    #[arg(long, env = "BASALT_RAFT_ELECTION_TIMEOUT_MS")]
    pub raft_election_timeout_ms: Option<u64>,
}

/// A cluster node's settings, resolved.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub rpc_address: SocketAddr,
    /// How the other nodes name this one (its `--peers` entry).
    pub rpc_advertise_address: String,
    pub peers: Vec<String>,
    pub bootstrap_expect: usize,
    pub zone: String,
    pub snapshot_threshold: u64,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
}

/// What clients can make a node hold: connections, requests, time and unauthenticated bytes.
#[derive(Debug, Default, Args)]
pub struct LimitArgs {
    /// Most client connections open at once; beyond it a connection is answered 503 SlowDown
    /// and closed [default: 4096]
    #[arg(long, env = "BASALT_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most requests in flight at once; beyond it, 503 SlowDown [default: 1024]
    #[arg(long, env = "BASALT_MAX_REQUESTS")]
    pub max_requests: Option<usize>,
    /// A connection with nothing in flight for this long is closed (5s, 2m) [default: 60s]
    #[arg(long, env = "BASALT_IDLE_TIMEOUT", value_parser = parse_interval_arg)]
    pub idle_timeout: Option<Interval>,
    /// A request body that sends nothing for this long is cut off with 400 RequestTimeout,
    /// and what it sent is not stored [default: 30s]
    #[arg(long, env = "BASALT_BODY_READ_TIMEOUT", value_parser = parse_interval_arg)]
    pub body_read_timeout: Option<Interval>,
    /// Most body bytes held, over all connections, for requests not yet authorized (browser
    /// POST uploads, STS forms, small bodies read ahead); beyond it, 503 SlowDown
    /// [default: 64MiB]
    #[arg(long, env = "BASALT_PRE_AUTH_BUDGET", value_parser = basalt_bench::parse_size)]
    pub pre_auth_budget: Option<u64>,
}

/// The TOML file: the same keys as the flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    address: Option<SocketAddr>,
    data: Option<DataPaths>,
    meta_dir: Option<PathBuf>,
    redundancy: Option<String>,
    scrub_interval: Option<String>,
    scrub_rate: Option<u64>,
    lifecycle_interval: Option<String>,
    lifecycle_day: Option<String>,
    garbage_grace: Option<String>,
    session_retention: Option<String>,
    sse_master_key_file: Option<PathBuf>,
    sts_roles: Option<PathBuf>,
    metrics_address: Option<std::net::SocketAddr>,
    metrics_token: Option<basalt_object::Secret>,
    otlp_endpoint: Option<String>,
    sse_c_over_http: Option<bool>,
    object_ownership_default: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: Option<bool>,
    region: Option<String>,
    domains: Option<Vec<String>>,
    chunk_size: Option<usize>,
    inline_threshold: Option<usize>,
    min_part_size: Option<u64>,
    meta_cache: Option<usize>,
    root_user: Option<String>,
    root_password: Option<basalt_object::Secret>,
    max_connections: Option<usize>,
    max_requests: Option<usize>,
    idle_timeout: Option<String>,
    body_read_timeout: Option<String>,
    pre_auth_budget: Option<u64>,
    node_name: Option<String>,
    rpc_address: Option<SocketAddr>,
    rpc_advertise_address: Option<String>,
    peers: Option<Vec<String>>,
    bootstrap_expect: Option<usize>,
    zone: Option<String>,
    raft_snapshot_threshold: Option<u64>,
    raft_heartbeat_ms: Option<u64>,
    raft_election_timeout_ms: Option<u64>,
}

/// How the S3 listener does TLS.
#[derive(Debug, Clone)]
pub enum TlsSetting {
    Files(crate::tls::TlsFiles),
    SelfSigned,
}

/// `data = "/d1"` or `data = ["/d1", "/d{2...6}"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DataPaths {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub address: SocketAddr,
    pub drives: Vec<PathBuf>,
    pub meta_dir: PathBuf,
    /// How to reach the nodes serving drives named by URL.
    pub cluster: crate::cluster::ClusterArgs,
    pub redundancy: Option<Redundancy>,
    pub scrub_interval: Option<Duration>,
    pub scrub_rate: u64,
    pub lifecycle_interval: Option<Duration>,
    pub lifecycle_day: Duration,
    pub garbage_grace: Duration,
    pub session_retention: Duration,
    pub sse_master_key_file: Option<PathBuf>,
    pub sts_roles: Option<PathBuf>,
    pub metrics_address: Option<std::net::SocketAddr>,
    pub metrics_token: Option<basalt_object::Secret>,
    pub otlp_endpoint: Option<String>,
    pub sse_c_over_http: bool,
    pub object_ownership_default: String,
    pub tls: Option<TlsSetting>,
    pub region: String,
    pub domains: Vec<String>,
    pub chunk_size: usize,
    pub inline_threshold: usize,
    pub min_part_size: u64,
    pub meta_cache: usize,
    pub root_user: Option<String>,
    pub root_password: Option<basalt_object::Secret>,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub front_limits: basalt_s3::FrontLimits,
    /// Set for a cluster node.
    pub node: Option<NodeConfig>,
}

impl ServerConfig {
    /// Where this node's traces go, if anywhere; its spans name the node (or its address).
    pub fn trace_export(&self) -> Option<crate::telemetry::TraceExport> {
        let endpoint = self.otlp_endpoint.clone()?;
        let instance = self
            .node
            .as_ref()
            .map_or_else(|| self.address.to_string(), |n| n.name.clone());
        Some(crate::telemetry::TraceExport { endpoint, instance })
    }
}

/// A duration that cannot be off: from the flag, else the file, else `default`.
fn required_interval(
    flag: Option<Interval>,
    file: Option<&str>,
    default: Duration,
    what: &str,
) -> anyhow::Result<Duration> {
    let value = match (flag, file) {
        (Some(i), _) => i.0,
        (None, Some(text)) => parse_interval(text).map_err(anyhow::Error::msg)?,
        (None, None) => Some(default),
    };
    value.with_context(|| format!("the {what} cannot be off"))
}

impl ServerConfig {
    pub fn resolve(args: ServerArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let file_drives = match &file.data {
            Some(DataPaths::One(p)) => expand_braces(p)?,
            Some(DataPaths::Many(ps)) => {
                let mut all = Vec::new();
                for p in ps {
                    all.extend(expand_braces(p)?);
                }
                all
            }
            None => Vec::new(),
        };
        let file_drives: Vec<PathBuf> = file_drives.into_iter().map(PathBuf::from).collect();
        let mut storage = args.storage;
        if storage.meta_dir.is_none() {
            storage.meta_dir = file.meta_dir.clone();
        }
        let (drives, meta_dir) =
            storage.resolve((!file_drives.is_empty()).then_some(file_drives.as_slice()))?;
        let redundancy = match (args.redundancy, &file.redundancy) {
            (Some(r), _) => Some(r),
            (None, Some(text)) => Some(text.parse().map_err(anyhow::Error::msg)?),
            (None, None) => None,
        };
        let scrub_interval = match (args.scrub_interval, &file.scrub_interval) {
            (Some(i), _) => i.0,
            (None, Some(text)) => parse_interval(text).map_err(anyhow::Error::msg)?,
            (None, None) => Some(Duration::from_secs(24 * 3600)),
        };
        let lifecycle_interval = match (args.lifecycle_interval, &file.lifecycle_interval) {
            (Some(i), _) => i.0,
            (None, Some(text)) => parse_interval(text).map_err(anyhow::Error::msg)?,
            (None, None) => Some(Duration::from_secs(3600)),
        };
        let lifecycle_day = match (args.lifecycle_day, &file.lifecycle_day) {
            (Some(i), _) => i.0,
            (None, Some(text)) => parse_interval(text).map_err(anyhow::Error::msg)?,
            (None, None) => Some(basalt_object::DAY),
        }
        .context("the lifecycle day cannot be off")?;
        let tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
            args.tls_self_signed || file.tls_self_signed.unwrap_or(false),
        ) {
            (Some(cert), Some(key), false) => {
                Some(TlsSetting::Files(crate::tls::TlsFiles { cert, key }))
            }
            (None, None, true) => Some(TlsSetting::SelfSigned),
            (None, None, false) => None,
            (Some(_), Some(_), true) => bail!("give a certificate or --tls-self-signed, not both"),
            _ => bail!("a TLS certificate needs its key, and a key its certificate"),
        };
        let address = args
            .address
            .or(file.address)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9000)));
        let node = match args.node.node_name.or(file.node_name) {
            None => None,
            Some(name) => Some({
                let rpc_address = args
                    .node
                    .rpc_address
                    .or(file.rpc_address)
                    .unwrap_or_else(|| SocketAddr::new(address.ip(), 9100));
                NodeConfig {
                    name,
                    rpc_address,
                    rpc_advertise_address: args
                        .node
                        .rpc_advertise_address
                        .or(file.rpc_advertise_address)
                        .unwrap_or_else(|| rpc_address.to_string()),
                    peers: if args.node.peers.is_empty() {
                        file.peers.unwrap_or_default()
                    } else {
                        args.node.peers
                    },
                    bootstrap_expect: args
                        .node
                        .bootstrap_expect
                        .or(file.bootstrap_expect)
                        .unwrap_or(0),
                    zone: args
                        .node
                        .zone
                        .or(file.zone)
                        .unwrap_or_else(|| "default".to_owned()),
                    snapshot_threshold: args
                        .node
                        .raft_snapshot_threshold
                        .or(file.raft_snapshot_threshold)
                        .unwrap_or(10_000)
                        .max(2),
                    heartbeat_ms: args
                        .node
                        .raft_heartbeat_ms
                        .or(file.raft_heartbeat_ms)
                        .unwrap_or(100),
                    election_timeout_ms: args
                        .node
                        .raft_election_timeout_ms
                        .or(file.raft_election_timeout_ms)
                        .unwrap_or(500),
                }
            }),
        };
        if let Some(node) = &node
            && node.heartbeat_ms * 3 > node.election_timeout_ms
        {
            bail!("the Raft election timeout must be at least three heartbeats");
        }
        let config = Self {
            node,
            address,
            drives,
            cluster: storage.cluster.clone(),
            meta_dir,
            redundancy,
            scrub_interval,
            scrub_rate: args.scrub_rate.or(file.scrub_rate).unwrap_or(64 << 20),
            lifecycle_interval,
            lifecycle_day,
            session_retention: required_interval(
                args.session_retention,
                file.session_retention.as_deref(),
                Duration::from_secs(24 * 3600),
                "session retention",
            )?,
            garbage_grace: match (args.garbage_grace, &file.garbage_grace) {
                (Some(i), _) => i.0,
                (None, Some(text)) => parse_interval(text).map_err(anyhow::Error::msg)?,
                (None, None) => Some(Duration::from_secs(300)),
            }
            .unwrap_or(Duration::ZERO),
            sse_master_key_file: args.sse_master_key_file.or(file.sse_master_key_file),
            sts_roles: args.sts_roles.or(file.sts_roles),
            metrics_address: args.metrics_address.or(file.metrics_address),
            metrics_token: args.metrics_token.or(file.metrics_token),
            otlp_endpoint: args.otlp_endpoint.or(file.otlp_endpoint),
            sse_c_over_http: args.sse_c_over_http || file.sse_c_over_http.unwrap_or(false),
            object_ownership_default: args
                .object_ownership_default
                .or(file.object_ownership_default)
                .unwrap_or_else(|| "BucketOwnerEnforced".to_owned()),
            tls,
            region: args
                .region
                .or(file.region)
                .unwrap_or_else(|| "us-east-1".to_owned()),
            domains: if args.domains.is_empty() {
                file.domains.unwrap_or_default()
            } else {
                args.domains
            },
            chunk_size: args.chunk_size.or(file.chunk_size).unwrap_or(4 << 20),
            inline_threshold: args
                .inline_threshold
                .or(file.inline_threshold)
                .unwrap_or(32 << 10),
            min_part_size: args.min_part_size.or(file.min_part_size).unwrap_or(5 << 20),
            meta_cache: args.meta_cache.or(file.meta_cache).unwrap_or(64 << 20),
            root_user: env("BASALT_ROOT_USER").or(file.root_user),
            root_password: env("BASALT_ROOT_PASSWORD")
                .map(basalt_object::Secret::from)
                .or(file.root_password),
            max_connections: args
                .limits
                .max_connections
                .or(file.max_connections)
                .unwrap_or(4096),
            idle_timeout: required_interval(
                args.limits.idle_timeout,
                file.idle_timeout.as_deref(),
                Duration::from_secs(60),
                "idle timeout",
            )?,
            front_limits: basalt_s3::FrontLimits {
                max_requests: Some(
                    args.limits
                        .max_requests
                        .or(file.max_requests)
                        .unwrap_or(1024),
                ),
                body_read_timeout: required_interval(
                    args.limits.body_read_timeout,
                    file.body_read_timeout.as_deref(),
                    Duration::from_secs(30),
                    "body read timeout",
                )?,
                pre_auth_bytes: usize::try_from(
                    args.limits
                        .pre_auth_budget
                        .or(file.pre_auth_budget)
                        .unwrap_or(64 << 20),
                )
                .context("the pre-authorization budget is too large")?,
            },
        };
        if config.max_connections == 0 || config.front_limits.max_requests == Some(0) {
            bail!("--max-connections and --max-requests must be at least 1");
        }
        if config.chunk_size < 64 << 10 || config.chunk_size > 64 << 20 {
            bail!("chunk size must be between 64 KiB and 64 MiB");
        }
        if config.inline_threshold > 1 << 20 {
            bail!("the inline threshold must be at most 1 MiB");
        }
        Ok(config)
    }
}

fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServerArgs {
        ServerArgs {
            address: None,
            storage: StorageArgs {
                data: vec![],
                meta_dir: None,
                cluster: Default::default(),
            },
            redundancy: None,
            scrub_interval: None,
            scrub_rate: None,
            lifecycle_interval: None,
            lifecycle_day: None,
            garbage_grace: None,
            session_retention: None,
            sse_master_key_file: None,
            sts_roles: None,
            metrics_address: None,
            metrics_token: None,
            otlp_endpoint: None,
            sse_c_over_http: false,
            object_ownership_default: None,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            region: None,
            domains: vec![],
            config: None,
            chunk_size: None,
            inline_threshold: None,
            min_part_size: None,
            meta_cache: None,
            limits: LimitArgs::default(),
            node: NodeArgs::default(),
        }
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basalt.toml");
        std::fs::write(
            &path,
            "region = \"eu-west-1\"\naddress = \"127.0.0.1:9100\"\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path);
        a.address = Some("127.0.0.1:9200".parse().unwrap());
        let c = ServerConfig::resolve(a).unwrap();
        assert_eq!(c.address.port(), 9200);
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.drives, vec![PathBuf::from("basalt-data")]);
        assert_eq!(c.meta_dir, PathBuf::from("basalt-data"));
    }

    #[test]
    fn drive_patterns_expand_and_the_file_may_list_drives() {
        assert_eq!(expand_braces("/d{1...3}").unwrap(), ["/d1", "/d2", "/d3"]);
        assert_eq!(
            expand_braces("/n{1...2}/d{08...09}").unwrap(),
            ["/n1/d08", "/n1/d09", "/n2/d08", "/n2/d09"]
        );
        assert!(expand_braces("/d{3...1}").is_err());
        assert!(expand_braces("/d{1..3}").is_err());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basalt.toml");
        std::fs::write(
            &path,
            "data = [\"/a\", \"/b{1...2}\"]\nredundancy = \"ec:2+1\"\nscrub_interval = \"off\"\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path);
        let c = ServerConfig::resolve(a).unwrap();
        assert_eq!(c.drives.len(), 3);
        assert_eq!(c.meta_dir, PathBuf::from("/a"));
        assert_eq!(c.redundancy, Some("ec:2+1".parse().unwrap()));
        assert_eq!(c.scrub_interval, None);
        assert_eq!(
            parse_interval("15m").unwrap(),
            Some(Duration::from_secs(900))
        );
        assert!(parse_interval("15x").is_err());
    }

    #[test]
    fn no_secret_is_in_the_printed_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basalt.toml");
        std::fs::write(
            &path,
            "root_user = \"admin\"\nroot_password = \"file-password-0123456789\"\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path);
        a.storage.cluster.cluster_secret =
            Some(basalt_object::Secret::new("cluster-secret-0123456789"));
        let config = ServerConfig::resolve(a).unwrap();
        assert_eq!(
            config
                .root_password
                .as_ref()
                .map(basalt_object::Secret::expose),
            Some("file-password-0123456789")
        );
        let printed = format!("{config:?}");
        assert!(!printed.contains("file-password"), "{printed}");
        assert!(!printed.contains("cluster-secret-0123"), "{printed}");
        let front = basalt_s3::FrontConfig {
            region: "us-east-1".into(),
            domains: vec![],
            access_key: "root".into(),
            secret_key: basalt_object::Secret::new("front-secret-0123456789"),
            sse_c_over_http: false,
            object_ownership_default: "BucketOwnerEnforced".into(),
            roles: vec![],
            limits: basalt_s3::FrontLimits::default(),
            cluster_status: None,
            metrics_token: Some(basalt_object::Secret::new("metrics-token-0123")),
        };
        let printed = format!("{front:?}");
        assert!(!printed.contains("front-secret"), "{printed}");
        assert!(!printed.contains("metrics-token-0123"), "{printed}");
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basalt.toml");
        std::fs::write(&path, "regoin = \"x\"\n").unwrap();
        let mut a = args();
        a.config = Some(path);
        assert!(ServerConfig::resolve(a).is_err());
    }
}
