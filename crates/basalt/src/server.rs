//! `basalt server`: opens the store, collects garbage left by a crash, serves S3 until SIGTERM
//! or SIGINT, then lets in-flight requests finish.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use basalt_object::{ObjectConfig, ObjectStore, ScrubSchedule, Secret};
use basalt_s3::{FrontConfig, build_service};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::net::TcpListener;

use crate::config::{ServerConfig, TlsSetting};
use crate::idle_io::IdleIo;
use crate::tls::{self, Tls};

const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// A client gets this long to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const CREDENTIALS_FILE: &str = "root-credentials";
/// How long a connection over `--max-connections` may stay open for its one answer.
const OVER_CAP_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    let drives = config.cluster.locations(&config.drives)?;
    let meta_dir = config.meta_dir.clone();
    let object_config = ObjectConfig {
        chunk_size: config.chunk_size,
        inline_threshold: config.inline_threshold,
        min_part_size: config.min_part_size,
        meta_cache_bytes: config.meta_cache,
        redundancy: config.redundancy,
        key_file: config.sse_master_key_file.clone(),
    };
    let (store, cluster) = match &config.node {
        None => {
            let store = tokio::task::spawn_blocking(move || {
                ObjectStore::open(&drives, &meta_dir, object_config)
            })
            .await?
            .with_context(|| format!("opening the store at {}", config.meta_dir.display()))?;
            (store, None)
        }
        Some(node_config) => {
            let opened = crate::node::open(&config, node_config, object_config).await?;
            (opened.store, Some(opened.node))
        }
    };
    // Loaded (or created, atomically) before the node serves anything, not by the first
    // request that needs it: that would be blocking I/O on the async runtime, and a bad file
    // would surface as a failed request instead of a failed start.
    let keys = store.clone();
    tokio::task::spawn_blocking(move || keys.master_keys().map(|_| ()))
        .await?
        .context("loading the SSE-S3 master keys")?;
    let (access_key, secret_key) = root_credentials(&config)?;

    let service = build_service(
        store.clone(),
        &FrontConfig {
            region: config.region.clone(),
            domains: config.domains.clone(),
            access_key,
            secret_key,
            sse_c_over_http: config.sse_c_over_http,
            object_ownership_default: config.object_ownership_default.clone(),
            roles: match &config.sts_roles {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    basalt_s3::RolesFile::parse(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                        .roles
                }
                None => Vec::new(),
            },
            limits: config.front_limits,
            metrics_token: config.metrics_token.clone(),
            cluster_status: cluster.clone().map(|node| {
                basalt_s3::ClusterStatusSource(std::sync::Arc::new(move || {
                    let node = node.clone();
                    Box::pin(async move {
                        serde_json::to_value(node.status().await).unwrap_or_default()
                    })
                }))
            }),
        },
    )
    .map_err(anyhow::Error::msg)?;
    basalt_s3::install_metrics();
    if let Some(address) = config.metrics_address {
        let bound = crate::metrics_listener::spawn(address, service.clone()).await?;
        tracing::info!(address = %bound, "serving Prometheus metrics on GET /metrics");
    }

    // Certificates are ready before the port opens: a client that connects finds them.
    let tls = match &config.tls {
        None => None,
        Some(TlsSetting::Files(files)) => Some(Tls::load(files.clone())?),
        Some(TlsSetting::SelfSigned) => {
            let host = config.address.ip().to_string();
            let files = tls::self_signed(&config.meta_dir.join("tls"), &[host])?;
            Some(Tls::load(files)?)
        }
    };
    let listener = TcpListener::bind(config.address)
        .await
        .with_context(|| format!("binding {}", config.address))?;
    // In a cluster, the leader collects garbage, and no node sweeps for orphan shards at
    // start: other nodes' writes in flight have shards no record names yet.
    let (collected, swept) = if cluster.is_some() {
        (0, None)
    } else {
        store
            .start_up_collection()
            .await
            .context("collecting unreferenced chunks")?
    };
    if collected > 0 {
        tracing::info!(
            stripes = collected,
            "removed chunks freed before the last stop"
        );
    }
    match swept {
        None => {}
        // No clean-stop mark: a first start, a crash, or a version before the mark.
        Some(0) => tracing::info!("no clean stop recorded: swept the drives, no orphan shard"),
        Some(removed) => tracing::info!(
            removed,
            "no clean stop recorded: removed shards left by interrupted writes"
        ),
    }
    store.start_garbage_collector(config.garbage_grace);
    store.start_session_sweeper(config.session_retention);
    store.start_background(ScrubSchedule {
        interval: config.scrub_interval,
        bytes_per_second: config.scrub_rate,
    });
    store.start_lifecycle(basalt_object::LifecycleSchedule {
        interval: config.lifecycle_interval,
        day: config.lifecycle_day,
    });
    if let Some(tls) = &tls {
        tls.reload_on_sighup();
    }
    service.set_ready(true);
    tracing::info!(
        tls = tls.is_some(),
        address = %listener.local_addr()?,
        drives = config.drives.len(),
        redundancy = %store.redundancy(),
        meta = %config.meta_dir.display(),
        "basalt is serving S3"
    );

    let mut http = ConnBuilder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true)
        // A client that half-closes after sending its request still gets the answer.
        .half_close(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let connections = std::sync::Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    loop {
        let Some((socket, peer)) = accept_until(&listener, &mut shutdown).await else {
            break;
        };
        // A connection over the cap is answered 503 SlowDown and closed; its task ends
        // within a short idle timeout, so a flood of them stays bounded too.
        let permit = connections.clone().try_acquire_owned().ok();
        let (service, idle_timeout) = match permit {
            Some(_) => (
                service.for_connection(peer, tls.is_some()),
                config.idle_timeout,
            ),
            None => {
                tracing::warn!(%peer, "connection refused: --max-connections open");
                (
                    service
                        .for_connection(peer, tls.is_some())
                        .over_connection_cap(),
                    OVER_CAP_IDLE_TIMEOUT,
                )
            }
        };
        let activity = std::sync::Arc::new(basalt_s3::ConnectionActivity::default());
        let service = service.with_activity(activity.clone());
        let Some(tls) = &tls else {
            let io = IdleIo::new(socket, activity, idle_timeout);
            let conn = http.serve_connection(TokioIo::new(io), service);
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                drop(permit);
            });
            continue;
        };
        let (acceptor, http, service, watcher) = (
            tls.acceptor(),
            http.clone(),
            service.clone(),
            graceful.watcher(),
        );
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                };
            let io = IdleIo::new(stream, activity, idle_timeout);
            let conn = http.serve_connection(TokioIo::new(io), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    service.set_ready(false);
    tracing::info!("shutting down: waiting for in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {
            tracing::info!("all requests finished");
            // Buffered access logs are delivered before the clean stop is recorded; bounded,
            // since a cluster that lost its quorum cannot take them.
            if tokio::time::timeout(SHUTDOWN_GRACE, service.flush_access_logs()).await.is_err() {
                tracing::warn!("access logs not delivered before the grace period ended");
            }
            // Nothing was cut off: the next start needs no sweep for orphan shards.
            if let Err(e) = store.stopped_cleanly().await {
                tracing::warn!(error = %e, "cannot record the clean stop");
            }
        }
        () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("grace period over; closing remaining connections"),
    }
    if let Some(node) = cluster {
        node.shutdown().await;
    }
    Ok(())
}

/// The next connection (TCP_NODELAY set), or `None` once `shutdown` completes. A failed
/// accept (out of file descriptors…) is logged and retried after a pause.
pub(crate) async fn accept_until<F: Future<Output = ()>>(
    listener: &TcpListener,
    shutdown: &mut std::pin::Pin<&mut F>,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    return Some((socket, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = shutdown.as_mut() => return None,
        }
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Root credentials from the environment or the config file; otherwise those persisted in the
/// data directory; otherwise new ones, generated, persisted (mode 0600) and printed once.
fn root_credentials(config: &ServerConfig) -> anyhow::Result<(String, Secret)> {
    if let (Some(user), Some(password)) = (&config.root_user, &config.root_password) {
        return Ok((user.clone(), password.clone()));
    }
    if config.root_user.is_some() != config.root_password.is_some() {
        anyhow::bail!("set both BASALT_ROOT_USER and BASALT_ROOT_PASSWORD, or neither");
    }
    let path = config.meta_dir.join(CREDENTIALS_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let mut lines = text.lines();
        if let (Some(user), Some(password)) = (lines.next(), lines.next()) {
            return Ok((user.to_owned(), Secret::new(password)));
        }
        anyhow::bail!(
            "{} is malformed: expected the user and the password on two lines",
            path.display()
        );
    }
    let user = format!("basalt{}", random_token(6).to_lowercase());
    let password = random_token(20);
    write_private(&path, &format!("{user}\n{password}\n"))?;
    println!(
        "Basalt root credentials (shown once; stored in {}):",
        path.display()
    );
    println!("  access key: {user}");
    println!("  secret key: {password}");
    Ok((user, Secret::new(password)))
}

fn random_token(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex_simd::encode_to_string(raw, hex_simd::AsciiCase::Upper)
}

pub(crate) fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
