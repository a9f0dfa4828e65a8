//! Node-to-node settings and `basalt drive-server`: a node that serves its drives to the node
//! coordinating them. Requests are signed with the cluster secret; with `--cluster-tls-*`,
//! connections are mutual TLS: both sides present a certificate the cluster CA signed, and
//! each refuses a peer without one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use basalt_data::{
    ClientTls, ClusterAuth, ClusterClient, DriveServer, Location, RemoteDrive, is_remote,
};
use clap::Args;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent node-to-node requests per connection (a coordinator keeps one connection).
const MAX_STREAMS_PER_PEER: u32 = 32;

/// How this node authenticates to other nodes and they to it.
#[derive(Debug, Clone, Default, Args)]
pub struct ClusterArgs {
    /// Shared secret of the cluster's nodes: node-to-node requests are signed with it
    #[arg(long, env = "BASALT_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<basalt_object::Secret>,
    /// This node's certificate for node-to-node mutual TLS (PEM, signed by --cluster-tls-ca)
    #[arg(
        long,
        env = "BASALT_CLUSTER_TLS_CERT",
        requires_all = ["cluster_tls_key", "cluster_tls_ca"]
    )]
    pub cluster_tls_cert: Option<PathBuf>,
    /// The private key of --cluster-tls-cert (PEM)
    #[arg(long, env = "BASALT_CLUSTER_TLS_KEY", requires = "cluster_tls_cert")]
    pub cluster_tls_key: Option<PathBuf>,
    /// The CA that signs every node's certificate (PEM): peers must present one it signed
    #[arg(long, env = "BASALT_CLUSTER_TLS_CA", requires = "cluster_tls_cert")]
    pub cluster_tls_ca: Option<PathBuf>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

struct TlsFiles<'a> {
    cert: &'a Path,
    key: &'a Path,
    ca: &'a Path,
}

impl TlsFiles<'_> {
    fn roots(&self) -> anyhow::Result<Arc<rustls::RootCertStore>> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates(self.ca)? {
            roots
                .add(cert)
                .with_context(|| format!("{}: not a usable CA certificate", self.ca.display()))?;
        }
        Ok(Arc::new(roots))
    }

    fn identity(&self) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let key = PrivateKeyDer::from_pem_file(self.key)
            .with_context(|| format!("reading the private key {}", self.key.display()))?;
        Ok((certificates(self.cert)?, key))
    }
}

impl ClusterArgs {
    fn tls_files(&self) -> Option<TlsFiles<'_>> {
        Some(TlsFiles {
            cert: self.cluster_tls_cert.as_deref()?,
            key: self.cluster_tls_key.as_deref()?,
            ca: self.cluster_tls_ca.as_deref()?,
        })
    }

    pub fn auth(&self) -> anyhow::Result<ClusterAuth> {
        match self
            .cluster_secret
            .as_ref()
            .map(basalt_object::Secret::expose)
        {
            Some(secret) if secret.len() >= 16 => Ok(ClusterAuth::new(secret)),
            Some(_) => bail!("the cluster secret must be at least 16 characters"),
            None => bail!("drives of other nodes need --cluster-secret (BASALT_CLUSTER_SECRET)"),
        }
    }

    fn client_config(&self) -> anyhow::Result<Option<rustls::ClientConfig>> {
        let Some(files) = self.tls_files() else {
            return Ok(None);
        };
        let (certs, key) = files.identity()?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(files.roots()?)
            .with_client_auth_cert(certs, key)
            .context("the cluster certificate and key do not form a usable pair")?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(config))
    }

    /// How to reach other nodes: signed requests, over mutual TLS when configured. With TLS,
    /// SIGHUP re-reads the certificate, key and CA files for new connections.
    pub fn client(&self) -> anyhow::Result<ClusterClient> {
        let tls = self.client_config()?.map(ClientTls::new);
        if let Some(tls) = &tls {
            let (args, tls) = (self.clone(), tls.clone());
            reload_on_sighup(move || {
                let config = args.client_config()?.context("cluster TLS files")?;
                tls.replace(config);
                Ok(())
            });
        }
        Ok(ClusterClient {
            auth: self.auth()?,
            tls,
        })
    }

    /// A TLS acceptor that requires a client certificate the cluster CA signed; SIGHUP builds
    /// it again from the files, for new connections.
    pub fn acceptor(&self) -> anyhow::Result<Option<Arc<RwLock<TlsAcceptor>>>> {
        let Some(acceptor) = self.build_acceptor()? else {
            return Ok(None);
        };
        let current = Arc::new(RwLock::new(acceptor));
        let (args, swapped) = (self.clone(), current.clone());
        reload_on_sighup(move || {
            let acceptor = args.build_acceptor()?.context("cluster TLS files")?;
            *swapped
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = acceptor;
            Ok(())
        });
        Ok(Some(current))
    }

    fn build_acceptor(&self) -> anyhow::Result<Option<TlsAcceptor>> {
        let Some(files) = self.tls_files() else {
            return Ok(None);
        };
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(files.roots()?, provider())
                .build()
                .context("building the client-certificate verifier")?;
        let (certs, key) = files.identity()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .context("the cluster certificate and key do not form a usable pair")?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(TlsAcceptor::from(Arc::new(config))))
    }

    /// Where each of `drives` is: a directory here, or a drive another node serves
    /// (`http(s)://host:port/<name>`).
    pub fn locations(&self, drives: &[PathBuf]) -> anyhow::Result<Vec<Location>> {
        let mut client = None;
        let mut nodes = Vec::new();
        let mut out = Vec::with_capacity(drives.len());
        for drive in drives {
            let text = drive.to_string_lossy();
            if !is_remote(&text) {
                out.push(Location::Local(drive.clone()));
                continue;
            }
            if client.is_none() {
                client = Some(self.client()?);
            }
            let cluster = client.as_ref().context("cluster client")?;
            let remote = RemoteDrive::parse(&text, cluster, &mut nodes)?;
            out.push(Location::Remote(remote));
        }
        Ok(out)
    }
}

/// Runs `reload` on every SIGHUP for as long as the process runs; a failed reload keeps what
/// was in use.
fn reload_on_sighup(reload: impl Fn() -> anyhow::Result<()> + Send + 'static) {
    crate::tls::on_sighup(move || match reload() {
        Ok(()) => tracing::info!("cluster TLS certificates reloaded"),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cluster TLS reload failed; the previous certificates stay in use")
        }
    });
}

/// `basalt drive-server`: serve this node's drives to the node that coordinates them.
#[derive(Debug, Args)]
pub struct DriveServerArgs {
    /// Address of the node-to-node listener
    #[arg(long, env = "BASALT_NODE_ADDRESS", default_value = "127.0.0.1:9100")]
    pub address: SocketAddr,
    /// A drive to serve, as NAME=DIRECTORY; repeat for several. The coordinating node names
    /// it as http(s)://<address>/NAME
    #[arg(long = "drive", required = true, value_parser = parse_drive)]
    pub drives: Vec<(String, PathBuf)>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Export traces of the shard calls served here (OTLP over HTTP), e.g.
    /// http://127.0.0.1:4318 [default: off]
    #[arg(long, env = "BASALT_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

impl DriveServerArgs {
    /// Where this drive server's traces go, if anywhere.
    pub fn trace_export(&self) -> Option<crate::telemetry::TraceExport> {
        Some(crate::telemetry::TraceExport {
            endpoint: self.otlp_endpoint.clone()?,
            instance: self.address.to_string(),
        })
    }
}

fn parse_drive(text: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = text
        .split_once('=')
        .ok_or_else(|| format!("{text}: expected NAME=DIRECTORY"))?;
    Ok((name.to_owned(), PathBuf::from(path)))
}

pub async fn run_drive_server(args: DriveServerArgs) -> anyhow::Result<()> {
    let auth = args.cluster.auth()?;
    let acceptor = args.cluster.acceptor()?;
    if acceptor.is_none() && !args.address.ip().is_loopback() {
        bail!(
            "{}: shards would cross the network in clear; give --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca (plain HTTP/2 is for loopback addresses only)",
            args.address
        );
    }
    let server = Arc::new(DriveServer::new(args.drives.clone(), auth)?);
    let listener = TcpListener::bind(args.address)
        .await
        .with_context(|| format!("binding {}", args.address))?;
    tracing::info!(
        address = %listener.local_addr()?,
        mutual_tls = acceptor.is_some(),
        drives = ?server.drive_names().collect::<Vec<_>>(),
        "basalt is serving its drives to the cluster"
    );
    let handler: NodeHandler = Arc::new(move |req| {
        let server = server.clone();
        Box::pin(async move { server.handle(req).await })
    });
    serve_node_listener(
        listener,
        acceptor,
        handler,
        crate::server::shutdown_signal(),
    )
    .await;
    Ok(())
}

/// What answers node-to-node requests on a listener.
pub type NodeHandler = Arc<
    dyn Fn(
            http::Request<hyper::body::Incoming>,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = http::Response<http_body_util::Full<bytes::Bytes>>> + Send>,
        > + Send
        + Sync,
>;

/// Serves node-to-node HTTP/2 (mutual TLS with `acceptor`) on `listener` until `shutdown`.
pub async fn serve_node_listener(
    listener: TcpListener,
    acceptor: Option<Arc<RwLock<TlsAcceptor>>>,
    handler: NodeHandler,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = ConnBuilder::new(TokioExecutor::new());
    http.http1().timer(TokioTimer::new());
    // Each stream may buffer a shard: bound what one peer connection can hold in memory.
    http.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_PEER)
        .adaptive_window(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let Some((socket, peer)) = crate::server::accept_until(&listener, &mut shutdown).await
        else {
            break;
        };
        let (handler, http, acceptor, watcher) = (
            handler.clone(),
            http.clone(),
            acceptor.clone(),
            graceful.watcher(),
        );
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, std::convert::Infallible>(handler(req).await) }
            });
            let result =
                match acceptor {
                    None => {
                        let conn = http.serve_connection(TokioIo::new(socket), service);
                        watcher.watch(conn.into_owned()).await
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor
                            .read()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .clone();
                        let stream =
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket))
                                .await
                            {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(e)) => {
                                    tracing::warn!(
                                        target: "basalt::audit",
                                        event = "node-denied",
                                        peer = %peer,
                                        error = %e,
                                        "node-to-node TLS handshake refused"
                                    );
                                    return;
                                }
                                Err(_) => return,
                            };
                        let conn = http.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                };
            if let Err(e) = result {
                tracing::debug!(error = %e, "node connection ended with an error");
            }
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {}
    }
}
