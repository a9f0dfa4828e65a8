//! Drives of other nodes: the shard operations of a [`ChunkStore`](crate::ChunkStore) carried
//! over HTTP/2 to the node that holds the drive, which runs them on its own disks.
//!
//! Every request is authenticated with the cluster secret (an HMAC over the method, path and
//! time, so the secret itself never crosses the network) and, when the cluster is configured
//! with certificates, the connection is mutual TLS: each side presents a certificate signed by
//! the cluster's CA and refuses a peer that does not.
//!
//! The data path is blocking (it runs on blocking threads), so the calls here are blocking
//! too: each runs on a small runtime of its own and the caller waits for its answer.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ring::hmac;

use crate::DataError;
use crate::chunk_file::{self, ChunkId, ChunkInfo};

/// The path prefix of the node-to-node API.
pub const NODE_API_PREFIX: &str = "/basalt-node/v1/drives/";
/// A signed GET here answers 200 while the node serves.
pub const NODE_HEALTH_PATH: &str = "/basalt-node/v1/health";
/// The largest answer a node may send: a shard, or a drive's list of shard ids.
const MAX_ANSWER: usize = 1 << 30;
/// The header carrying `<unix seconds>:<hex HMAC>`.
pub const AUTH_HEADER: &str = "x-basalt-cluster-auth";
/// The header that names a failure's kind, so the caller gets the same [`DataError`] a local
/// drive would have given.
pub const ERROR_HEADER: &str = "x-basalt-error";
/// How far a request's clock may be from the receiver's.
const CLOCK_SKEW_SECS: u64 = 300;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a call may take: a base, plus the time its body takes at a slow but healthy pace.
/// A node that misses it is marked down: reads go around it instead of waiting (a stalled
/// stream would stall the client's download), writes leave its shards to the healer.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const SLOWEST_HEALTHY_BYTES_PER_SEC: u64 = 8 << 20;
/// Listing a drive's files reads every directory of it.
const SCAN_TIMEOUT: Duration = Duration::from_secs(600);

fn at_slowest_pace(len: usize) -> Duration {
    Duration::from_millis(len as u64 * 1000 / SLOWEST_HEALTHY_BYTES_PER_SEC)
}
/// While a node is down, calls to it fail at once, and a background task tries to reconnect
/// this often: no caller waits for a dead node.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(2);
/// HTTP/2 pings on an open connection: a peer cut off by a partition is noticed within
/// interval + timeout, and the calls waiting on it fail rather than hang.
const PING_INTERVAL: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The cluster secret, as a key for signing and checking node-to-node requests.
#[derive(Clone)]
pub struct ClusterAuth {
    key: hmac::Key,
}

impl fmt::Debug for ClusterAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterAuth(..)")
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ClusterAuth {
    pub fn new(secret: &str) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        }
    }

    fn message(secs: u64, method: &Method, path_and_query: &str) -> String {
        format!("basalt-node-v1\n{secs}\n{method}\n{path_and_query}")
    }

    /// The value of [`AUTH_HEADER`] for a request made now.
    pub fn sign(&self, method: &Method, path_and_query: &str) -> String {
        let secs = unix_now();
        let tag = hmac::sign(
            &self.key,
            Self::message(secs, method, path_and_query).as_bytes(),
        );
        format!(
            "{secs}:{}",
            hex_simd::encode_to_string(tag.as_ref(), hex_simd::AsciiCase::Lower)
        )
    }

    /// Whether `req` carries a valid signature; a refusal is logged on `basalt::audit`.
    pub fn verifies<B>(&self, req: &Request<B>) -> bool {
        let path_and_query = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
        let signed = req
            .headers()
            .get(AUTH_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|h| self.verify(h, req.method(), &path_and_query));
        if !signed {
            tracing::warn!(
                target: "basalt::audit",
                event = "node-denied",
                method = %req.method(),
                path = req.uri().path(),
                "a node-to-node request without a valid cluster signature was refused"
            );
        }
        signed
    }

    /// Whether `header` signs this request, made within the allowed clock skew.
    pub fn verify(&self, header: &str, method: &Method, path_and_query: &str) -> bool {
        let Some((secs, tag)) = header.split_once(':') else {
            return false;
        };
        let (Ok(secs), Ok(tag)) = (secs.parse::<u64>(), hex_simd::decode_to_vec(tag)) else {
            return false;
        };
        if unix_now().abs_diff(secs) > CLOCK_SKEW_SECS {
            return false;
        }
        let message = Self::message(secs, method, path_and_query);
        hmac::verify(&self.key, message.as_bytes(), &tag).is_ok()
    }
}

/// How to reach the other nodes: the secret, and TLS when the cluster has certificates.
#[derive(Clone, Debug)]
pub struct ClusterClient {
    pub auth: ClusterAuth,
    /// A client configuration presenting this node's certificate and trusting the cluster CA.
    pub tls: Option<ClientTls>,
}

/// The node's client TLS configuration, replaceable while it runs (certificate rotation):
/// new connections use the latest, open ones keep theirs.
#[derive(Clone, Debug)]
pub struct ClientTls(Arc<std::sync::RwLock<Arc<rustls::ClientConfig>>>);

impl ClientTls {
    pub fn new(config: rustls::ClientConfig) -> Self {
        Self(Arc::new(std::sync::RwLock::new(Arc::new(config))))
    }

    pub fn current(&self) -> Arc<rustls::ClientConfig> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn replace(&self, config: rustls::ClientConfig) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
    }
}

/// The runtime remote calls run on: the data path calls from blocking threads, and a call
/// must not depend on which runtime, if any, the caller belongs to.
fn rpc_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("basalt-rpc")
            .enable_all()
            .build()
            .expect("the node-to-node runtime starts")
    })
}

fn block_on<T: Send + 'static>(
    future: impl Future<Output = Result<T, DataError>> + Send + 'static,
) -> Result<T, DataError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rpc_runtime().spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv()
        .map_err(|_| unavailable("the node-to-node call was dropped"))?
}

fn unavailable(why: impl fmt::Display) -> DataError {
    DataError::Io(io::Error::new(io::ErrorKind::NotConnected, why.to_string()))
}

/// One other node: a single HTTP/2 connection, opened on first use and again after it fails.
pub struct NodeClient {
    /// `host:port`.
    address: String,
    host: String,
    cluster: ClusterClient,
    /// The open connection and its generation, held while connecting so concurrent calls
    /// share one new connection. The generation tells a late failure on an old connection
    /// from one on the current.
    connection: tokio::sync::Mutex<(u64, Option<SendRequest<Full<Bytes>>>)>,
    /// Set when the node stopped answering; cleared by the reconnecting task.
    down: AtomicBool,
}

impl NodeClient {
    pub fn new(address: &str, cluster: ClusterClient) -> Result<Self, DataError> {
        let host = address
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .filter(|h| !h.is_empty())
            .ok_or_else(|| DataError::Layout(format!("{address}: expected host:port")))?;
        Ok(Self {
            host: host.to_owned(),
            address: address.to_owned(),
            cluster,
            connection: tokio::sync::Mutex::new((0, None)),
            down: AtomicBool::new(false),
        })
    }

    /// A new connection: TCP, TLS when configured, the HTTP/2 handshake, all within
    /// [`CONNECT_TIMEOUT`] (a frozen peer completes TCP handshakes in its kernel, and nothing
    /// more).
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, DataError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.handshake())
            .await
            .map_err(|_| unavailable(format!("{}: connection timed out", self.address)))?
    }

    async fn handshake(&self) -> Result<SendRequest<Full<Bytes>>, DataError> {
        let tcp = tokio::net::TcpStream::connect(&self.address)
            .await
            .map_err(|e| unavailable(format!("{}: {e}", self.address)))?;
        let _ = tcp.set_nodelay(true);
        let mut http2 = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(PING_INTERVAL)
            .keep_alive_timeout(PING_TIMEOUT)
            .keep_alive_while_idle(true)
            // Flow-control windows sized to the link's bandwidth-delay product, not to
            // HTTP/2's 64 KiB default: shards are large and nodes may be far apart.
            .adaptive_window(true);
        let (sender, connection) = match &self.cluster.tls {
            None => {
                let (sender, conn) = http2
                    .handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|e| unavailable(format!("{}: {e}", self.address)))?;
                (sender, tokio::spawn(conn))
            }
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| DataError::Layout(format!("{}: {e}", self.host)))?;
                let tls = tokio_rustls::TlsConnector::from(config.current())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        unavailable(format!("{}: TLS handshake failed: {e}", self.address))
                    })?;
                let (sender, conn) = http2
                    .handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| unavailable(format!("{}: {e}", self.address)))?;
                (sender, tokio::spawn(conn))
            }
        };
        // The connection task ends by itself when the peer goes away.
        drop(connection);
        Ok(sender)
    }

    /// Marks the node down (once) and starts a task that reconnects in the background.
    fn mark_down(self: &Arc<Self>, why: &DataError) {
        if self.down.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(node = %self.address, error = %why, "node unreachable; calls to it fail until it answers again");
        let this = self.clone();
        rpc_runtime().spawn(async move {
            loop {
                tokio::time::sleep(RECONNECT_INTERVAL).await;
                // The HTTP/2 handshake completes without the peer's process (a frozen node's
                // kernel accepts the connection): only an answered request proves it is back.
                let Ok(sender) = this.connect().await else {
                    continue;
                };
                if !this.probe(sender.clone()).await {
                    continue;
                }
                let mut connection = this.connection.lock().await;
                *connection = (connection.0 + 1, Some(sender));
                this.down.store(false, Ordering::Release);
                tracing::info!(node = %this.address, "node reachable again");
                RECONNECTIONS.fetch_add(1, Ordering::Relaxed);
                return;
            }
        });
    }

    /// Whether the node answers a signed health request on `sender` in time.
    async fn probe(&self, sender: SendRequest<Full<Bytes>>) -> bool {
        let path = NODE_HEALTH_PATH.to_owned();
        let exchange = self.exchange(sender, Method::GET, &path, Bytes::new(), None);
        matches!(
            tokio::time::timeout(READ_TIMEOUT, exchange).await,
            Ok(Ok((StatusCode::OK, _, _)))
        )
    }

    async fn sender(self: &Arc<Self>) -> Result<(u64, SendRequest<Full<Bytes>>), DataError> {
        let down = || unavailable(format!("{}: unreachable", self.address));
        if self.down.load(Ordering::Acquire) {
            return Err(down());
        }
        let mut connection = self.connection.lock().await;
        // Another caller may have found the node down while this one waited for the lock.
        if self.down.load(Ordering::Acquire) {
            return Err(down());
        }
        if let (generation, Some(sender)) = &*connection
            && !sender.is_closed()
        {
            return Ok((*generation, sender.clone()));
        }
        match self.connect().await {
            Ok(sender) => {
                *connection = (connection.0 + 1, Some(sender.clone()));
                Ok((connection.0, sender))
            }
            Err(e) => {
                drop(connection);
                self.mark_down(&e);
                Err(e)
            }
        }
    }

    async fn exchange(
        &self,
        mut sender: SendRequest<Full<Bytes>>,
        method: Method,
        path_and_query: &str,
        body: Bytes,
        traceparent: Option<&str>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), DataError> {
        let scheme = if self.cluster.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("{scheme}://{}{path_and_query}", self.address))
            .header(AUTH_HEADER, self.cluster.auth.sign(&method, path_and_query));
        if let Some(parent) = traceparent {
            request = request.header(crate::trace_context::TRACEPARENT, parent);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| DataError::Layout(format!("bad node request: {e}")))?;
        let failed = |e: hyper::Error| unavailable(format!("{}: {e}", self.address));
        sender.ready().await.map_err(failed)?;
        let response: Response<hyper::body::Incoming> =
            sender.send_request(request).await.map_err(failed)?;
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| unavailable(format!("{}: {e}", self.address)))?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }

    async fn call(
        self: Arc<Self>,
        method: Method,
        path_and_query: String,
        body: Bytes,
        deadline: Duration,
        traceparent: Option<String>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), DataError> {
        let attempt = async {
            let (generation, sender) = self.sender().await?;
            let result = self
                .exchange(
                    sender,
                    method,
                    &path_and_query,
                    body,
                    traceparent.as_deref(),
                )
                .await;
            Ok::<_, DataError>((generation, result))
        };
        let (generation, result) = match tokio::time::timeout(deadline, attempt).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let late = format!("{}: no answer within {deadline:?}", self.address);
                // Slow, or gone? A node that still answers a health check is only busy (a
                // stalled disk): this call fails, the node stays up. One that does not is
                // marked down, so the calls after this one do not wait too.
                let this = self.clone();
                let why = unavailable(&late);
                rpc_runtime().spawn(async move {
                    let current = this.connection.lock().await.1.clone();
                    let alive = match current {
                        Some(sender) => this.probe(sender).await,
                        None => false,
                    };
                    if !alive {
                        this.connection_failed(None, &why).await;
                    }
                });
                return Err(unavailable(late));
            }
        };
        if let Err(e) = &result {
            self.connection_failed(Some(generation), e).await;
        }
        result
    }

    /// One signed request to the node, answered within `deadline`: the status and body. For
    /// callers beyond the shard path (the consensus layer's messages), which must know
    /// whether a failed request may have reached the node.
    pub async fn request(
        self: &Arc<Self>,
        method: Method,
        path_and_query: String,
        body: Bytes,
        deadline: Duration,
    ) -> Result<(StatusCode, Bytes), RequestFailure> {
        let (generation, sender) = self.sender().await.map_err(RequestFailure::NotSent)?;
        let traceparent = crate::trace_context::current_traceparent();
        let exchange = self.exchange(
            sender,
            method,
            &path_and_query,
            body,
            traceparent.as_deref(),
        );
        match tokio::time::timeout(deadline, exchange).await {
            Ok(Ok((status, _, body))) => Ok((status, body)),
            Ok(Err(e)) => {
                self.connection_failed(Some(generation), &e).await;
                Err(RequestFailure::Lost(e))
            }
            Err(_) => Err(RequestFailure::Lost(unavailable(format!(
                "{}: no answer within {deadline:?}",
                self.address
            )))),
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// False while the node is marked down (calls to it fail at once until it answers again).
    pub fn reachable(&self) -> bool {
        !self.down.load(Ordering::Acquire)
    }

    /// A call failed on connection `generation` (`None`: unknown, it timed out): drop that
    /// connection and go around the node until it answers again. A late failure on a
    /// connection already replaced changes nothing.
    async fn connection_failed(self: &Arc<Self>, generation: Option<u64>, why: &DataError) {
        let mut connection = self.connection.lock().await;
        if generation.is_some_and(|g| g != connection.0) {
            return;
        }
        connection.1 = None;
        drop(connection);
        self.mark_down(why);
    }
}

/// How many times a node that had stopped answering answered again, since start: what it
/// missed meanwhile (shards of writes made without it) needs healing.
static RECONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn node_reconnections() -> u64 {
    RECONNECTIONS.load(Ordering::Relaxed)
}

/// Why [`NodeClient::request`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestFailure {
    /// No connection: the node did not get the request.
    #[error("{0}")]
    NotSent(DataError),
    /// Sent, but no answer came: the node may or may not have acted on it.
    #[error("{0}")]
    Lost(DataError),
}

/// What a remote drive's identity request found.
pub enum RemoteIdentity {
    Formatted(Bytes),
    Blank,
    Missing,
}

/// A drive of another node, by the name that node serves it under.
#[derive(Clone)]
pub struct RemoteDrive {
    node: Arc<NodeClient>,
    name: String,
    /// `https://host:port/name`, for messages.
    url: String,
}

impl fmt::Display for RemoteDrive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl fmt::Debug for RemoteDrive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteDrive({})", self.url)
    }
}

/// Whether `text` names a drive of another node (`http://` or `https://`).
pub fn is_remote(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

impl RemoteDrive {
    /// `http(s)://host:port/<drive name>`; nodes at one address share a connection through
    /// `nodes`. The scheme must match the cluster: https exactly when it has certificates.
    pub fn parse(
        url: &str,
        cluster: &ClusterClient,
        nodes: &mut Vec<Arc<NodeClient>>,
    ) -> Result<Self, DataError> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(DataError::Layout(format!("{url}: not an http(s) URL")));
        };
        if tls != cluster.tls.is_some() {
            return Err(DataError::Layout(format!(
                "{url}: {}",
                if tls {
                    "https drives need the cluster's TLS certificate, key and CA"
                } else {
                    "the cluster has TLS certificates: name its drives with https://"
                }
            )));
        }
        let (address, name) = rest
            .split_once('/')
            .filter(|(_, name)| valid_drive_name(name))
            .ok_or_else(|| {
                DataError::Layout(format!(
                    "{url}: expected http(s)://host:port/<drive name> (letters, digits, - and _)"
                ))
            })?;
        if !tls && !is_loopback_host(address) {
            return Err(DataError::Layout(format!(
                "{url}: plain http:// is for loopback addresses only; give the cluster TLS certificates and use https://"
            )));
        }
        let node = match nodes.iter().find(|n| n.address == address) {
            Some(node) => node.clone(),
            None => {
                let node = Arc::new(NodeClient::new(address, cluster.clone())?);
                nodes.push(node.clone());
                node
            }
        };
        Ok(Self {
            node,
            name: name.to_owned(),
            url: url.to_owned(),
        })
    }

    fn call(
        &self,
        method: Method,
        op: &str,
        query: &str,
        body: Bytes,
        deadline: Duration,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), DataError> {
        let mut path = format!("{NODE_API_PREFIX}{}/{op}", self.name);
        if !query.is_empty() {
            path.push('?');
            path.push_str(query);
        }
        let _span =
            tracing::debug_span!("node.call", node = %self.node.address, drive = %self.name, op)
                .entered();
        let traceparent = crate::trace_context::current_traceparent();
        block_on(
            self.node
                .clone()
                .call(method, path, body, deadline, traceparent),
        )
    }

    /// Calls an operation that answers 2xx on success; anything else becomes the error the
    /// remote drive reported.
    fn expect_ok(
        &self,
        method: Method,
        op: &str,
        query: &str,
        body: Bytes,
        chunk: Option<ChunkId>,
        deadline: Duration,
    ) -> Result<Bytes, DataError> {
        let (status, headers, body) = self.call(method, op, query, body, deadline)?;
        if status.is_success() {
            return Ok(body);
        }
        Err(error_of(status, &headers, &body, chunk, &self.url))
    }

    /// Whether the drive's node is not known to be down.
    pub fn reachable(&self) -> bool {
        self.node.reachable()
    }

    pub fn identity(&self) -> Result<RemoteIdentity, DataError> {
        let (status, headers, body) =
            self.call(Method::GET, "identity", "", Bytes::new(), READ_TIMEOUT)?;
        match status {
            StatusCode::OK => Ok(RemoteIdentity::Formatted(body)),
            // Only the drive server's own answers say blank or missing: a 404 for an unknown
            // drive name (a typo, another version) must not look like a replaced drive.
            StatusCode::NOT_FOUND => {
                match headers.get(ERROR_HEADER).and_then(|v| v.to_str().ok()) {
                    Some("missing") => Ok(RemoteIdentity::Missing),
                    Some("blank") => Ok(RemoteIdentity::Blank),
                    _ => Err(error_of(status, &headers, &body, None, &self.url)),
                }
            }
            _ => Err(error_of(status, &headers, &body, None, &self.url)),
        }
    }

    /// Writes the identity file, durably; `create` makes the drive's directory first (only a
    /// brand-new set does: a missing directory may be an unmounted disk).
    pub fn write_identity(&self, bytes: &[u8], create: bool) -> Result<(), DataError> {
        let query = if create { "create=true" } else { "" };
        self.expect_ok(
            Method::PUT,
            "identity",
            query,
            Bytes::copy_from_slice(bytes),
            None,
            WRITE_TIMEOUT,
        )
        .map(drop)
    }

    pub fn prepare(&self) -> Result<(), DataError> {
        self.expect_ok(
            Method::POST,
            "prepare",
            "",
            Bytes::new(),
            None,
            WRITE_TIMEOUT,
        )
        .map(drop)
    }

    pub fn write_file(&self, info: &ChunkInfo, data: &[u8]) -> Result<(), DataError> {
        self.expect_ok(
            Method::PUT,
            &format!("chunks/{}", info.id),
            &format!("len={}&crc={}", info.len, info.crc32c),
            Bytes::copy_from_slice(data),
            Some(info.id),
            WRITE_TIMEOUT + at_slowest_pace(data.len()),
        )
        .map(drop)
    }

    pub fn sync_group(&self, group: u8) -> Result<(), DataError> {
        self.expect_ok(
            Method::POST,
            &format!("sync/{group}"),
            "",
            Bytes::new(),
            None,
            WRITE_TIMEOUT,
        )
        .map(drop)
    }

    /// Reads a whole chunk; the holder verifies it against its checksum, and so does this
    /// side, since the bytes crossed a network.
    pub fn read(&self, info: &ChunkInfo) -> Result<Bytes, DataError> {
        let data = self.expect_ok(
            Method::GET,
            &format!("chunks/{}", info.id),
            &format!("len={}&crc={}", info.len, info.crc32c),
            Bytes::new(),
            Some(info.id),
            READ_TIMEOUT + at_slowest_pace(info.len as usize),
        )?;
        if data.len() != info.len as usize || chunk_file::crc32c(&data) != info.crc32c {
            return Err(DataError::Corrupt {
                id: info.id,
                reason: format!("damaged on the way from {}", self.url),
            });
        }
        Ok(data)
    }

    pub fn delete(&self, id: ChunkId) -> Result<(), DataError> {
        self.expect_ok(
            Method::DELETE,
            &format!("chunks/{id}"),
            "",
            Bytes::new(),
            Some(id),
            WRITE_TIMEOUT,
        )
        .map(drop)
    }

    pub fn scan_files(&self, remove_temporary: bool) -> Result<(Vec<ChunkId>, usize), DataError> {
        // Removing files is not a GET.
        let method = if remove_temporary {
            Method::POST
        } else {
            Method::GET
        };
        let body = self.expect_ok(
            method,
            "scan",
            &format!("remove_temporary={remove_temporary}"),
            Bytes::new(),
            None,
            SCAN_TIMEOUT,
        )?;
        parse_scan(&body).ok_or_else(|| unavailable(format!("{}: bad scan answer", self.url)))
    }

    /// (total, available) bytes of the drive's file system.
    pub fn space(&self) -> Option<(u64, u64)> {
        let body = self
            .expect_ok(Method::GET, "space", "", Bytes::new(), None, READ_TIMEOUT)
            .ok()?;
        let text = std::str::from_utf8(&body).ok()?;
        let (total, available) = text.trim().split_once(' ')?;
        Some((total.parse().ok()?, available.parse().ok()?))
    }
}

/// Whether `host:port` names this machine (127.0.0.0/8, ::1 or localhost): the only place
/// node-to-node traffic may travel unencrypted.
fn is_loopback_host(address: &str) -> bool {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(crate) fn valid_drive_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `<temporary count>\n` then one chunk id per line.
pub(crate) fn format_scan(ids: &[ChunkId], temporary: usize) -> String {
    let mut out = format!("{temporary}\n");
    for id in ids {
        out.push_str(&id.to_hex());
        out.push('\n');
    }
    out
}

fn parse_scan(body: &[u8]) -> Option<(Vec<ChunkId>, usize)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut lines = text.lines();
    let temporary = lines.next()?.parse().ok()?;
    let ids = lines.map(ChunkId::from_hex).collect::<Option<Vec<_>>>()?;
    Some((ids, temporary))
}

/// The kind name of an error, for [`ERROR_HEADER`].
pub(crate) fn error_kind(e: &DataError) -> &'static str {
    match e {
        DataError::NotFound(_) => "not-found",
        DataError::Corrupt { .. } => "corrupt",
        DataError::Poisoned => "poisoned",
        DataError::DriveFull => "full",
        DataError::Layout(_) => "layout",
        _ => "io",
    }
}

fn error_of(
    status: StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
    chunk: Option<ChunkId>,
    url: &str,
) -> DataError {
    let message = String::from_utf8_lossy(body).into_owned();
    let kind = headers.get(ERROR_HEADER).and_then(|v| v.to_str().ok());
    match (kind, chunk) {
        (Some("not-found"), Some(id)) => DataError::NotFound(id),
        (Some("corrupt"), Some(id)) => DataError::Corrupt {
            id,
            reason: message,
        },
        (Some("poisoned"), _) => DataError::Poisoned,
        (Some("full"), _) => DataError::DriveFull,
        _ if status == StatusCode::FORBIDDEN => unavailable(format!(
            "{url}: refused (wrong cluster secret or clock skew): {message}"
        )),
        _ => DataError::Io(io::Error::other(format!("{url}: {status}: {message}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_the_secret_method_and_path() {
        let auth = ClusterAuth::new("s3cret");
        let header = auth.sign(&Method::GET, "/basalt-node/v1/drives/d1/space");
        assert!(auth.verify(&header, &Method::GET, "/basalt-node/v1/drives/d1/space"));
        assert!(!auth.verify(&header, &Method::DELETE, "/basalt-node/v1/drives/d1/space"));
        assert!(!auth.verify(&header, &Method::GET, "/basalt-node/v1/drives/d2/space"));
        assert!(!ClusterAuth::new("other").verify(
            &header,
            &Method::GET,
            "/basalt-node/v1/drives/d1/space"
        ));
        let (_, tag) = header.split_once(':').unwrap();
        let old = format!("{}:{tag}", unix_now() - 3600);
        assert!(!auth.verify(&old, &Method::GET, "/basalt-node/v1/drives/d1/space"));
        assert!(!auth.verify("garbage", &Method::GET, "/"));
    }

    #[test]
    fn scan_answers_round_trip() {
        let ids = vec![ChunkId::random(), ChunkId::random()];
        assert_eq!(
            parse_scan(format_scan(&ids, 3).as_bytes()),
            Some((ids.clone(), 3))
        );
        assert_eq!(parse_scan(b"x\n"), None);
    }

    #[test]
    fn drive_urls_must_match_the_cluster_tls() {
        let plain = ClusterClient {
            auth: ClusterAuth::new("s"),
            tls: None,
        };
        let mut nodes = Vec::new();
        let a = RemoteDrive::parse("http://127.0.0.2:9100/d1", &plain, &mut nodes).unwrap();
        let b = RemoteDrive::parse("http://127.0.0.2:9100/d2", &plain, &mut nodes).unwrap();
        assert!(Arc::ptr_eq(&a.node, &b.node));
        assert_eq!(nodes.len(), 1);
        assert!(RemoteDrive::parse("https://127.0.0.2:9100/d1", &plain, &mut nodes).is_err());
        assert!(RemoteDrive::parse("http://127.0.0.2:9100/../x", &plain, &mut nodes).is_err());
        assert!(RemoteDrive::parse("http://127.0.0.2:9100/", &plain, &mut nodes).is_err());
        // Off this machine, plain HTTP would carry shards in clear.
        assert!(RemoteDrive::parse("http://10.0.0.2:9100/d1", &plain, &mut nodes).is_err());
        assert!(RemoteDrive::parse("http://localhost:9100/d1", &plain, &mut nodes).is_ok());
        assert!(RemoteDrive::parse("http://[::1]:9100/d1", &plain, &mut nodes).is_ok());
    }
}
