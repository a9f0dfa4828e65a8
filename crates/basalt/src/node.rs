//! `basalt server --node-name …`: one node of a cluster. It serves its drives and the cluster's
//! Raft messages on its RPC address, forms (or rejoins) the cluster with its peers, and opens
//! the object store over every node's drives with the Raft-replicated metadata.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use basalt_cluster::{
    ClusterMeta, ClusterNode, ClusterSettings, Layout, NodeInfo, node::Formation,
};
use basalt_data::{
    DataError, DriveServer, DriveSet, FailureDomain, Location, RemoteDrive, StripeStore,
};
use basalt_meta::RedbStore;
use basalt_object::{ObjectConfig, ObjectStore};
use tokio::net::TcpListener;

use crate::cluster::NodeHandler;
use crate::config::{NodeConfig, ServerConfig};

/// How long a node waits for the bootstrap node to format the drives.
const FORMAT_WAIT: Duration = Duration::from_secs(120);

/// The name a node serves its `i`-th drive under.
fn drive_name(i: usize) -> String {
    format!("d{i}")
}

pub struct ClusterStore {
    pub store: ObjectStore,
    pub node: Arc<ClusterNode>,
}

/// Where each drive of `layout` is, from this node: its own as directories, the others' as
/// drives served by their nodes; and each drive's failure domain.
fn locations(
    layout: &Layout,
    me: &str,
    local: &[PathBuf],
    client: &basalt_data::ClusterClient,
) -> anyhow::Result<(Vec<Location>, Vec<FailureDomain>)> {
    let zones = layout.zones();
    let scheme = if client.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut nodes = Vec::new();
    let mut out = Vec::new();
    let mut domains = Vec::new();
    for drive in layout.drives() {
        let zone = zones
            .iter()
            .position(|z| *z == drive.info.zone)
            .context("zone of a drive")?;
        domains.push(FailureDomain {
            zone: u32::try_from(zone)?,
            node: u32::try_from(drive.node)?,
        });
        if drive.info.name == me {
            let index: usize = drive
                .name
                .strip_prefix('d')
                .and_then(|i| i.parse().ok())
                .context("this node's drive names")?;
            let path = local.get(index).with_context(|| {
                format!(
                    "the cluster layout gives this node {} drives; --data names {}",
                    drive.info.drives.len(),
                    local.len()
                )
            })?;
            out.push(Location::Local(path.clone()));
        } else {
            let url = format!("{scheme}://{}/{}", drive.info.rpc, drive.name);
            out.push(Location::Remote(RemoteDrive::parse(
                &url, client, &mut nodes,
            )?));
        }
    }
    Ok((out, domains))
}

/// The cluster value holding the SSE-S3 master keys.
const MASTER_KEYS_VALUE: &str = "sse-master-keys";

/// The SSE-S3 master keys, cluster-wide: replicated state, so an object sealed through one
/// node opens through any. The first node to find none proposes its `--sse-master-key-file`
/// (or a fresh key); the first proposal committed wins.
async fn replicated_master_keys(
    node: &ClusterNode,
    meta: &Arc<RedbStore>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        match node.linearize().await {
            Ok(()) => break,
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::info!(error = %e, "waiting for a quorum to read the cluster's SSE-S3 master keys");
            }
            Err(e) => return Err(e).context("reading the cluster's SSE-S3 master keys"),
        }
    }
    let stored = async |meta: &Arc<RedbStore>| -> anyhow::Result<Option<String>> {
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || meta.cluster_value(MASTER_KEYS_VALUE))
            .await??
            .map(String::from_utf8)
            .transpose()
            .context("the cluster's SSE-S3 master keys are not text")
    };
    let text = match stored(meta).await? {
        Some(text) => text,
        None => {
            let proposed = match file {
                Some(path) => tokio::fs::read_to_string(path)
                    .await
                    .with_context(|| format!("reading {}", path.display()))?,
                None => basalt_object::MasterKeys::generate_text(),
            };
            node.propose(basalt_meta::Command::SetClusterValue {
                key: MASTER_KEYS_VALUE.into(),
                value: Some(proposed.into_bytes()),
                if_absent: true,
            })
            .await
            .context("storing the cluster's SSE-S3 master keys")?;
            node.linearize().await?;
            stored(meta)
                .await?
                .context("the cluster's SSE-S3 master keys vanished")?
        }
    };
    if let Some(path) = file
        && tokio::fs::read_to_string(path)
            .await
            .is_ok_and(|local| local != text)
    {
        tracing::warn!(file = %path.display(), "--sse-master-key-file differs from the cluster's SSE-S3 master keys; the cluster's are used");
    }
    Ok(text)
}

pub async fn open(
    config: &ServerConfig,
    node_config: &NodeConfig,
    object_config: ObjectConfig,
) -> anyhow::Result<ClusterStore> {
    if config
        .drives
        .iter()
        .any(|d| basalt_data::is_remote(&d.to_string_lossy()))
    {
        bail!(
            "a cluster node names only its own drives with --data: the others come from the cluster layout"
        );
    }
    if config.cluster.cluster_secret.is_none() {
        bail!(
            "a cluster node needs --cluster-secret (BASALT_CLUSTER_SECRET), the same on every node"
        );
    }
    let client = config.cluster.client()?;
    let auth = config.cluster.auth()?;
    let acceptor = config.cluster.acceptor()?;
    if acceptor.is_none() && !node_config.rpc_address.ip().is_loopback() {
        bail!(
            "{}: node-to-node traffic would cross the network in clear; give --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca (plain HTTP/2 is for loopback addresses only)",
            node_config.rpc_address
        );
    }
    tokio::fs::create_dir_all(&config.meta_dir)
        .await
        .with_context(|| format!("creating {}", config.meta_dir.display()))?;
    let meta_path = config.meta_dir.join("meta.redb");
    let cache = config.meta_cache;
    let meta = Arc::new(
        tokio::task::spawn_blocking(move || RedbStore::open_with_cache(&meta_path, cache))
            .await??,
    );

    // The drives and the cluster's messages are served before the cluster forms: the
    // bootstrap node formats every node's drives, and Raft needs its peers to answer.
    let served: Vec<(String, PathBuf)> = config
        .drives
        .iter()
        .enumerate()
        .map(|(i, path)| (drive_name(i), path.clone()))
        .collect();
    for (_, path) in &served {
        tokio::fs::create_dir_all(path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
    }
    let drive_server = Arc::new(DriveServer::new(served, auth.clone())?);
    let cell: Arc<OnceLock<Arc<ClusterNode>>> = Arc::default();
    let handler: NodeHandler = {
        let (cell, auth) = (cell.clone(), auth.clone());
        Arc::new(move |req| {
            let (cell, auth, drive_server) = (cell.clone(), auth.clone(), drive_server.clone());
            Box::pin(async move {
                if basalt_cluster::rpc::is_cluster_path(req.uri().path()) {
                    basalt_cluster::rpc::handle(cell.get().cloned(), &auth, req).await
                } else {
                    drive_server.handle(req).await
                }
            })
        })
    };
    let listener = TcpListener::bind(node_config.rpc_address)
        .await
        .with_context(|| format!("binding {}", node_config.rpc_address))?;
    tokio::spawn(crate::cluster::serve_node_listener(
        listener,
        acceptor,
        handler,
        std::future::pending(),
    ));

    let me = NodeInfo {
        name: node_config.name.clone(),
        rpc: node_config.rpc_advertise_address.clone(),
        s3: config.address.to_string(),
        zone: node_config.zone.clone(),
        drives: (0..config.drives.len()).map(drive_name).collect(),
    };
    let settings = ClusterSettings {
        me,
        peers: node_config.peers.clone(),
        bootstrap_expect: node_config.bootstrap_expect,
        snapshot_threshold: node_config.snapshot_threshold,
        heartbeat_ms: node_config.heartbeat_ms,
        election_timeout_ms: node_config.election_timeout_ms,
        drive_paths: config.drives.clone(),
    };
    let node = ClusterNode::start(&settings, meta.clone(), &config.meta_dir, client.clone())
        .await
        .map_err(anyhow::Error::msg)?;
    let _ = cell.set(node.clone());
    tracing::info!(node = %node_config.name, id = node.id, rpc = %node_config.rpc_address, advertised = %node_config.rpc_advertise_address, "cluster node started; joining the cluster");

    let mut formatted = None;
    if let Formation::Bootstrap(layout) = node.form(&settings).await {
        let (paths, _) = locations(&layout, &node_config.name, &config.drives, &client)?;
        let set = tokio::task::spawn_blocking(move || DriveSet::open_at(&paths))
            .await?
            .context("formatting the cluster's drives")?;
        formatted = Some(set);
        node.initialize(&layout).await.map_err(anyhow::Error::msg)?;
    }
    let layout = node.layout();
    let (paths, domains) = locations(&layout, &node_config.name, &config.drives, &client)?;
    let drives = match formatted {
        Some(set) => set,
        None => {
            let deadline = std::time::Instant::now() + FORMAT_WAIT;
            loop {
                let attempt = paths.clone();
                match tokio::task::spawn_blocking(move || DriveSet::open_formatted_at(&attempt))
                    .await?
                {
                    Ok(set) => break set,
                    Err(DataError::NotFormatted) if std::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => return Err(e).context("opening the cluster's drives"),
                }
            }
        }
    };
    let set_id = drives.id();
    let bound = meta.clone();
    tokio::task::spawn_blocking(move || match bound.drive_set()? {
        Some(id) if id != set_id => Err(anyhow::anyhow!(
            "the metadata here belongs to another drive set than the cluster's drives"
        )),
        Some(_) => Ok(()),
        None => Ok(bound.bind_drive_set(set_id)?),
    })
    .await??;
    let stripes = StripeStore::with_drives(drives, config.redundancy, domains)?;
    let gate = node.clone();
    let store = ObjectStore::new(
        Arc::new(ClusterMeta::new(node.clone())),
        stripes,
        object_config,
    )
    .with_background_gate(move || gate.is_leader());
    let keys = replicated_master_keys(&node, &meta, config.sse_master_key_file.as_deref()).await?;
    store.use_master_keys(&keys)?;
    tracing::info!(
        nodes = layout.nodes.len(),
        drives = layout.drives().len(),
        epoch = layout.epoch,
        "cluster layout loaded"
    );
    Ok(ClusterStore { store, node })
}
