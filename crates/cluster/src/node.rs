//! One node of the cluster: its Raft instance over the local replica, how it forms the
//! cluster with its peers, and how it proposes commands and confirms reads from any node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_data::ClusterClient;
use basalt_meta::{Command, MetaError, Outcome, RedbStore};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, Raft, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::layout::{Layout, NodeInfo, node_id};
use crate::lease::LeaderLease;
use crate::log_store::LogStore;
use crate::network::{CallError, Peers};
use crate::replica::Replica;
use crate::types::{NodeId, Proposal, TypeConfig};

pub const PROPOSE_PATH: &str = "/basalt-node/v1/cluster/propose";
pub const READ_INDEX_PATH: &str = "/basalt-node/v1/cluster/read-index";
pub const NODE_PATH: &str = "/basalt-node/v1/cluster/node";

/// How long a write or read waits for a leader (an election, a partition healing) before it
/// is refused with 503.
const LEADER_WAIT: Duration = Duration::from_secs(8);
/// One forwarded proposal or read-index request.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
const DISCOVERY_INTERVAL: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub me: NodeInfo,
    /// The RPC addresses of the other nodes (this node's own may be among them).
    pub peers: Vec<String>,
    /// With N > 0: the cluster is formed once N nodes (this one included) answer, by the one
    /// with the lowest id. 0: this node only joins a cluster formed by another.
    pub bootstrap_expect: usize,
    /// Log entries between snapshots (the log before a snapshot is then purged).
    pub snapshot_threshold: u64,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    /// This node's drives (directories), for the capacity it reports.
    pub drive_paths: Vec<std::path::PathBuf>,
}

/// What a node answers about itself at [`NODE_PATH`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeHello {
    pub info: NodeInfo,
    /// Whether it already knows a membership (it belongs to a formed cluster).
    pub member: bool,
    /// Bytes of its drives' file systems: total and still available (each file system once).
    pub capacity_bytes: u64,
    pub available_bytes: u64,
}

/// What formation asks of the caller.
pub enum Formation {
    /// The cluster exists: this node is one of its members.
    Member,
    /// This node forms the cluster with `layout`: prepare its drives, then call
    /// [`ClusterNode::initialize`].
    Bootstrap(Layout),
}

/// A node's view of the cluster, for `basalt admin cluster status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub node: String,
    pub node_id: NodeId,
    pub leader: Option<String>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub layout_epoch: u64,
    pub state: String,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub id: NodeId,
    pub up: bool,
    pub zone: String,
    pub rpc: String,
    pub s3: String,
    pub drives: usize,
    /// Of its drives' file systems, when it answered.
    pub capacity_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    /// On the leader: the last log index this node is known to hold.
    pub matched_index: Option<u64>,
}

pub struct ClusterNode {
    pub id: NodeId,
    pub me: NodeInfo,
    pub raft: Raft<TypeConfig>,
    pub meta: Arc<RedbStore>,
    pub peers: Peers,
    pub lease: LeaderLease,
    drive_paths: Vec<std::path::PathBuf>,
    proposals: mpsc::UnboundedSender<Submitted>,
    reads: mpsc::UnboundedSender<ReadWaiter>,
}

/// A read waiting for a read index: every read that arrives while one is being fetched
/// shares the next fetch (one quorum round for all of them).
type ReadWaiter = oneshot::Sender<Result<Option<u64>, String>>;
/// Read-index fetches in flight at once.
const READ_ROUNDS_IN_FLIGHT: usize = 2;

fn start_read_indexer(node: std::sync::Weak<ClusterNode>) -> mpsc::UnboundedSender<ReadWaiter> {
    let (tx, mut rx) = mpsc::unbounded_channel::<ReadWaiter>();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(READ_ROUNDS_IN_FLIGHT));
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            // Every waiter here arrived before the fetch below starts: its index covers them.
            let mut waiters = vec![first];
            while let Ok(next) = rx.try_recv() {
                waiters.push(next);
            }
            let Some(node) = node.upgrade() else {
                return;
            };
            tokio::spawn(async move {
                let _permit = permit;
                let index = node.fetch_read_index().await.map_err(|e| e.to_string());
                for waiter in waiters {
                    let _ = waiter.send(index.clone());
                }
            });
        }
    });
    tx
}

/// How long a proposal may wait to be committed before its writers are told 503.
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Most commands in one log entry.
const MAX_BATCH: usize = 256;
/// Log entries proposed by this leader and not yet applied, at most: while they are, new
/// commands gather into the next entry (group commit, as the single-node engine does). One:
/// measured on this 2-core machine (`scripts/perf-cluster.sh`, 32 writers), 4 KiB PUTs ran at
/// 1,558/s with 4 entries in flight, 1,630/s with 2 and 1,773/s with 1, since fewer, larger
/// entries cost fewer log commits and fsyncs on every node; an entry of 256 commands still
/// keeps a slow network's round trips full.
const ENTRIES_IN_FLIGHT: usize = 1;

type Submitted = (
    Command,
    oneshot::Sender<Result<Result<Outcome, MetaError>, Refusal>>,
);

/// Proposes the commands submitted to it in batches: one log entry, so one append, one
/// fsync and one replication round trip, for every command that arrived meanwhile.
fn start_proposer(raft: Raft<TypeConfig>) -> mpsc::UnboundedSender<Submitted> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Submitted>();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(ENTRIES_IN_FLIGHT));
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let raft = raft.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let at_ms = now_ms();
                let (commands, replies): (Vec<_>, Vec<_>) = batch
                    .into_iter()
                    .map(|(mut command, reply)| {
                        command.stamp(at_ms);
                        (bytes::Bytes::from(command.encode()), reply)
                    })
                    .unzip();
                let written = tokio::time::timeout(
                    PROPOSAL_TIMEOUT,
                    raft.client_write(Proposal { at_ms, commands }),
                )
                .await;
                // A leader cut off from its quorum commits nothing: its writes fail (maybe
                // applied later by the new leader's log, maybe not: the client is told so).
                let Ok(written) = written else {
                    for reply in replies {
                        let _ = reply.send(Err(Refusal::Indeterminate(
                            "not committed in time (no quorum?)".into(),
                        )));
                    }
                    return;
                };
                match written {
                    Ok(response) => {
                        for (reply, result) in replies.into_iter().zip(response.data.0) {
                            let _ = reply.send(Ok(result));
                        }
                    }
                    Err(e) => {
                        let refusal = match e {
                            // Before the append, or when the entry was truncated away: never
                            // applied.
                            RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
                                Refusal::NotLeader(forward.leader_id)
                            }
                            // A fatal error (the node stopping) may come after the append.
                            other => Refusal::Indeterminate(other.to_string()),
                        };
                        for reply in replies {
                            let _ = reply.send(Err(refusal.clone()));
                        }
                    }
                }
            });
        }
    });
    tx
}

/// The layout's epoch: 1 for the membership the cluster formed with, raised by every
/// membership change (it is one more than the change's log index).
fn layout_epoch(metrics: &openraft::RaftMetrics<NodeId, NodeInfo>) -> u64 {
    metrics
        .membership_config
        .log_id()
        .map_or(0, |id| id.index + 1)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn unavailable(why: impl std::fmt::Display) -> MetaError {
    MetaError::Unavailable(why.to_string())
}

/// Why a forwarded request was refused by the node it was sent to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Refusal {
    /// It is not the leader (any more): ask the one it names, if any.
    NotLeader(Option<NodeId>),
    /// Refused before anything was proposed.
    Unavailable(String),
    /// Proposed, and then no answer: a later leader may still commit it, or not.
    Indeterminate(String),
}

impl ClusterNode {
    /// Starts Raft over the replica in `meta` (this node's `meta.redb`) with its log in
    /// `dir/raft.redb` and snapshots under `dir/snapshots`. Blocking parts run off the runtime.
    pub async fn start(
        settings: &ClusterSettings,
        meta: Arc<RedbStore>,
        dir: &Path,
        client: ClusterClient,
    ) -> Result<Arc<Self>, String> {
        let id = node_id(&settings.me.name);
        let log_path = dir.join("raft.redb");
        let log = tokio::task::spawn_blocking(move || LogStore::open(&log_path))
            .await
            .map_err(|e| e.to_string())??;
        let replica = Replica::new(meta.clone(), dir.join("snapshots"))
            .map_err(|e| format!("snapshots directory: {e}"))?;
        let config = Config {
            cluster_name: "basalt".into(),
            heartbeat_interval: settings.heartbeat_ms,
            election_timeout_min: settings.election_timeout_ms,
            election_timeout_max: settings.election_timeout_ms * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_threshold),
            max_in_snapshot_log_to_keep: settings.snapshot_threshold / 10,
            install_snapshot_timeout: 10_000,
            ..Config::default()
        }
        .validate()
        .map_err(|e| format!("raft settings: {e}"))?;
        let lease = LeaderLease::new(
            Duration::from_millis(config.election_timeout_min),
            Duration::from_millis(config.election_timeout_max),
        );
        let peers = Peers::new(client, lease.clone());
        let raft = Raft::new(id, Arc::new(config), peers.clone(), log, replica)
            .await
            .map_err(|e| format!("starting raft: {e}"))?;
        // Until a lease this node may have granted before it started has ended, it neither
        // votes (`rpc.rs`) nor stands for election, where its own vote would count.
        raft.runtime_config().elect(false);
        let (electing, wait) = (raft.clone(), lease.until_may_vote());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            electing.runtime_config().elect(true);
        });
        Ok(Arc::new_cyclic(|this| Self {
            id,
            me: settings.me.clone(),
            proposals: start_proposer(raft.clone()),
            reads: start_read_indexer(this.clone()),
            drive_paths: settings.drive_paths.clone(),
            raft,
            meta,
            peers,
            lease,
        }))
    }

    /// The members as the replicated membership names them.
    fn members(&self) -> BTreeMap<NodeId, NodeInfo> {
        let metrics = self.raft.metrics().borrow().clone();
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| (*id, node.clone()))
            .collect()
    }

    pub fn is_member(&self) -> bool {
        !self.members().is_empty()
    }

    /// The layout of the formed cluster: its members, in id order.
    pub fn layout(&self) -> Layout {
        let metrics = self.raft.metrics().borrow().clone();
        let mut layout = Layout::new(self.members().into_values().collect());
        layout.epoch = layout_epoch(&metrics);
        layout
    }

    /// What this node says of itself. Blocking (it reads its file systems' sizes).
    pub fn hello_blocking(&self) -> NodeHello {
        let mut seen = Vec::new();
        let (mut capacity_bytes, mut available_bytes) = (0, 0);
        for path in &self.drive_paths {
            // Drives on one file system are counted once.
            let device = std::fs::metadata(path).ok().map(|m| {
                use std::os::unix::fs::MetadataExt;
                m.dev()
            });
            if device.is_some_and(|d| seen.contains(&d)) {
                continue;
            }
            seen.extend(device);
            if let Some((total, available)) = basalt_data::local_space_blocking(path) {
                capacity_bytes += total;
                available_bytes += available;
            }
        }
        NodeHello {
            info: self.me.clone(),
            member: self.is_member(),
            capacity_bytes,
            available_bytes,
        }
    }

    pub async fn hello(self: &Arc<Self>) -> NodeHello {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.hello_blocking())
            .await
            .unwrap_or_else(|_| NodeHello {
                info: self.me.clone(),
                member: self.is_member(),
                capacity_bytes: 0,
                available_bytes: 0,
            })
    }

    /// Waits until this node belongs to a formed cluster, or is the one to form it.
    pub async fn form(&self, settings: &ClusterSettings) -> Formation {
        let mut last_report = Instant::now();
        loop {
            if self.is_member() {
                return Formation::Member;
            }
            let mut known = BTreeMap::from([(self.id, self.me.clone())]);
            let mut any_member = false;
            for address in settings.peers.iter().filter(|a| **a != self.me.rpc) {
                let hello: Result<NodeHello, CallError> = self
                    .peers
                    .call(address, NODE_PATH, &(), Duration::from_secs(2))
                    .await;
                if let Ok(hello) = hello {
                    any_member |= hello.member;
                    known.insert(node_id(&hello.info.name), hello.info);
                }
            }
            let lowest = known.keys().next().copied();
            if settings.bootstrap_expect > 0
                && known.len() >= settings.bootstrap_expect
                && !any_member
                && lowest == Some(self.id)
            {
                return Formation::Bootstrap(Layout::new(known.into_values().collect()));
            }
            if last_report.elapsed() > Duration::from_secs(5) {
                last_report = Instant::now();
                tracing::info!(
                    known = known.len(),
                    expect = settings.bootstrap_expect,
                    "waiting for the cluster to form"
                );
            }
            tokio::time::sleep(DISCOVERY_INTERVAL).await;
        }
    }

    /// Forms the cluster with the nodes of `layout` as its voters.
    pub async fn initialize(&self, layout: &Layout) -> Result<(), String> {
        let members: BTreeMap<NodeId, NodeInfo> = layout
            .nodes
            .iter()
            .map(|n| (node_id(&n.name), n.clone()))
            .collect();
        let names: BTreeSet<&str> = layout.nodes.iter().map(|n| n.name.as_str()).collect();
        match self.raft.initialize(members).await {
            Ok(()) => {
                tracing::info!(nodes = ?names, "cluster formed");
                Ok(())
            }
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(format!("forming the cluster: {e}")),
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// On every forwarded write and read: looked up in place, not by copying the metrics.
    fn rpc_address(&self, id: NodeId) -> Option<String> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.rpc.clone())
    }

    /// Waits (up to `deadline`) for a leader to be known.
    async fn await_leader(&self, deadline: Instant) -> Result<NodeId, MetaError> {
        let mut metrics = self.raft.metrics();
        loop {
            if let Some(leader) = metrics.borrow().current_leader {
                return Ok(leader);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(unavailable("no Raft leader: the cluster has no quorum"));
            }
            let _ = tokio::time::timeout(left, metrics.changed()).await;
        }
    }

    /// Proposes `command` as the leader, in the next batch: stamped with this node's clock,
    /// committed by a quorum, applied here. `NotLeader` if this node is not the leader.
    pub async fn propose_as_leader(
        &self,
        command: Command,
    ) -> Result<Result<Outcome, MetaError>, Refusal> {
        let (reply, answer) = oneshot::channel();
        self.proposals
            .send((command, reply))
            .map_err(|_| Refusal::Unavailable("the node is shutting down".into()))?;
        answer
            .await
            .map_err(|_| Refusal::Indeterminate("the proposal was dropped".into()))?
    }

    /// Commits `command` through the leader, wherever it is, and returns what applying it
    /// answered. Retried only while it is certain the command was not proposed (no leader, a
    /// leader that refused it, a leader that could not be reached).
    #[tracing::instrument(name = "raft.commit", level = "debug", skip_all)]
    pub async fn propose(&self, command: Command) -> Result<Outcome, MetaError> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let leader = self.await_leader(deadline).await?;
            let refusal = if leader == self.id {
                match self.propose_as_leader(command.clone()).await {
                    Ok(result) => return result,
                    Err(refusal) => refusal,
                }
            } else {
                let address = self
                    .rpc_address(leader)
                    .ok_or_else(|| unavailable("the leader is not in the membership"))?;
                let answer: Result<Result<Result<Outcome, MetaError>, Refusal>, CallError> = self
                    .peers
                    .call(&address, PROPOSE_PATH, &command.encode(), FORWARD_TIMEOUT)
                    .await;
                match answer {
                    Ok(Ok(result)) => return result,
                    Ok(Err(refusal)) => refusal,
                    Err(CallError::NotSent(e)) => {
                        tracing::debug!(error = %e, "leader unreachable; waiting for another");
                        Refusal::NotLeader(None)
                    }
                    Err(e) => {
                        return Err(MetaError::Indeterminate(format!(
                            "the leader did not answer: {e}"
                        )));
                    }
                }
            };
            match refusal {
                Refusal::NotLeader(_) => {}
                Refusal::Unavailable(why) => return Err(unavailable(why)),
                Refusal::Indeterminate(why) => return Err(MetaError::Indeterminate(why)),
            }
            if Instant::now() >= deadline {
                return Err(unavailable("no Raft leader accepted the write in time"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// As the leader: the index every read must see. From the lease when it holds one (no
    /// messages), else confirmed by a quorum (openraft's read index).
    pub async fn read_index_as_leader(&self) -> Result<Option<u64>, Refusal> {
        if let Some(index) = self.leased_read_index().await {
            return Ok(Some(index));
        }
        match self.raft.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map(|id| id.index)),
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(Refusal::NotLeader(f.leader_id))
            }
            Err(e) => Err(Refusal::Unavailable(e.to_string())),
        }
    }

    /// The commit index, if this node leads and holds its lease (see [`crate::lease`]), and
    /// has committed an entry of its own term: before that, what earlier leaders committed
    /// may not be committed (and applied) here yet.
    async fn leased_read_index(&self) -> Option<u64> {
        let (vote, committed) = self
            .raft
            .with_raft_state(|state| {
                (state.server_state == openraft::ServerState::Leader)
                    .then(|| (*state.vote_ref(), state.committed))
            })
            .await
            .ok()??;
        let committed = committed?;
        if committed.leader_id.term != vote.leader_id().term {
            return None;
        }
        let voters = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_joint_config()
            .clone();
        self.lease
            .held(self.id, &vote, &voters)
            .then_some(committed.index)
    }

    /// Returns once this node has applied everything committed before the call: a read that
    /// follows sees every write acknowledged anywhere before it began (linearizable reads).
    #[tracing::instrument(name = "raft.read_index", level = "debug", skip_all)]
    pub async fn linearize(&self) -> Result<(), MetaError> {
        // This request already confirmed a read index, and waited for it to apply.
        if basalt_meta::read_fence::confirmed().is_some() {
            return Ok(());
        }
        let (waiter, answer) = oneshot::channel();
        self.reads
            .send(waiter)
            .map_err(|_| unavailable("the node is shutting down"))?;
        let index = answer
            .await
            .map_err(|_| unavailable("the read was dropped"))?
            .map_err(unavailable)?;
        self.raft
            .wait(Some(LEADER_WAIT))
            .applied_index_at_least(index, "linearizable read")
            .await
            .map_err(|e| unavailable(format!("catching up with the leader: {e}")))?;
        if let Some(index) = index {
            basalt_meta::read_fence::confirm(index);
        }
        Ok(())
    }

    /// The leader's read index, from the leader (this node or another), confirmed by a quorum.
    async fn fetch_read_index(&self) -> Result<Option<u64>, MetaError> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let leader = self.await_leader(deadline).await?;
            let index = if leader == self.id {
                self.read_index_as_leader().await
            } else {
                let address = self
                    .rpc_address(leader)
                    .ok_or_else(|| unavailable("the leader is not in the membership"))?;
                let answer: Result<Result<Option<u64>, Refusal>, CallError> = self
                    .peers
                    .call(&address, READ_INDEX_PATH, &(), FORWARD_TIMEOUT)
                    .await;
                answer.unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "read index: leader unreachable");
                    Err(Refusal::NotLeader(None))
                })
            };
            match index {
                Ok(index) => return Ok(index),
                Err(Refusal::Unavailable(why) | Refusal::Indeterminate(why)) => {
                    return Err(unavailable(why));
                }
                Err(Refusal::NotLeader(_)) => {}
            }
            if Instant::now() >= deadline {
                return Err(unavailable("no Raft leader confirmed the read in time"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether this node leads the cluster now: the cluster's single background workers run
    /// on it (and move with leadership).
    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.id)
    }

    pub async fn status(self: &Arc<Self>) -> ClusterStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let members = self.members();
        let mut nodes = Vec::with_capacity(members.len());
        for (id, info) in &members {
            let hello = if *id == self.id {
                Some(self.hello().await)
            } else {
                let hello: Result<NodeHello, CallError> = self
                    .peers
                    .call(&info.rpc, NODE_PATH, &(), Duration::from_secs(1))
                    .await;
                hello.ok()
            };
            let matched_index = metrics
                .replication
                .as_ref()
                .and_then(|r| r.get(id).copied().flatten())
                .map(|l| l.index);
            nodes.push(NodeStatus {
                name: info.name.clone(),
                id: *id,
                up: hello.is_some(),
                capacity_bytes: hello.as_ref().map(|h| h.capacity_bytes),
                used_bytes: hello
                    .as_ref()
                    .map(|h| h.capacity_bytes.saturating_sub(h.available_bytes)),
                zone: info.zone.clone(),
                rpc: info.rpc.clone(),
                s3: info.s3.clone(),
                drives: info.drives.len(),
                matched_index,
            });
        }
        ClusterStatus {
            node: self.me.name.clone(),
            node_id: self.id,
            leader: metrics
                .current_leader
                .and_then(|l| members.get(&l).map(|n| n.name.clone())),
            term: metrics.current_term,
            last_log_index: metrics.last_log_index,
            commit_index: metrics.last_applied.map(|l| l.index),
            applied_index: metrics.last_applied.map(|l| l.index),
            snapshot_index: metrics.snapshot.map(|l| l.index),
            layout_epoch: layout_epoch(&metrics),
            state: format!("{:?}", metrics.state),
            nodes,
        }
    }

    /// Stops Raft, then makes what it applied durable (applies are not fsynced one by one).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
        let meta = self.meta.clone();
        match tokio::task::spawn_blocking(move || meta.persist()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot persist the applied metadata"),
            Err(e) => tracing::warn!(error = %e, "cannot persist the applied metadata"),
        }
    }
}
