//! Raft messages to other nodes: postcard over the node-to-node HTTP/2 connection (one per
//! peer, shared with shard traffic), signed with the cluster secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use basalt_data::{ClusterClient, DataError, NodeClient, RequestFailure};
use bytes::Bytes;
use http::{Method, StatusCode};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::layout::NodeInfo;
use crate::lease::LeaderLease;
use crate::types::{NodeId, TypeConfig};

pub const RAFT_PREFIX: &str = "/basalt-node/v1/raft/";
pub const APPEND_PATH: &str = "/basalt-node/v1/raft/append";
pub const VOTE_PATH: &str = "/basalt-node/v1/raft/vote";
pub const SNAPSHOT_PATH: &str = "/basalt-node/v1/raft/snapshot";

/// The clients of the other nodes, by RPC address: one connection each, whoever calls.
#[derive(Clone)]
pub struct Peers {
    cluster: ClusterClient,
    clients: Arc<Mutex<HashMap<String, Arc<NodeClient>>>>,
    /// Renewed by every `AppendEntries` a follower accepts.
    lease: LeaderLease,
}

impl Peers {
    pub fn new(cluster: ClusterClient, lease: LeaderLease) -> Self {
        Self {
            cluster,
            clients: Arc::default(),
            lease,
        }
    }

    pub fn client(&self, address: &str) -> Result<Arc<NodeClient>, DataError> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(address) {
            return Ok(client.clone());
        }
        let client = Arc::new(NodeClient::new(address, self.cluster.clone())?);
        clients.insert(address.to_owned(), client.clone());
        Ok(client)
    }

    /// Posts `message` (postcard) to `path` on the node at `address` and decodes the answer.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
        message: &Req,
        deadline: Duration,
    ) -> Result<Resp, CallError> {
        let body = postcard::to_stdvec(message).map_err(|e| CallError::Encoding(e.to_string()))?;
        let client = self.client(address).map_err(CallError::NotSent)?;
        let (status, answer) = client
            .request(Method::POST, path.to_owned(), Bytes::from(body), deadline)
            .await
            .map_err(|e| match e {
                RequestFailure::NotSent(e) => CallError::NotSent(e),
                RequestFailure::Lost(e) => CallError::Lost(e),
            })?;
        if status != StatusCode::OK {
            return Err(CallError::Refused(
                status,
                String::from_utf8_lossy(&answer).into_owned(),
            ));
        }
        postcard::from_bytes(&answer).map_err(|e| CallError::Encoding(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The node did not get the message.
    #[error("{0}")]
    NotSent(DataError),
    /// The message went out and no answer came: the node may have acted on it.
    #[error("{0}")]
    Lost(DataError),
    #[error("answered {0}: {1}")]
    Refused(StatusCode, String),
    #[error("bad message: {0}")]
    Encoding(String),
}

impl Peers {
    async fn raft_call<Req, Resp, E>(
        &self,
        target: NodeId,
        address: &str,
        path: &str,
        message: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<Resp, RaftError<NodeId, E>> = self
            .call(address, path, message, option.hard_ttl())
            .await
            .map_err(|e| match e {
                CallError::NotSent(_) => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(target, e)))
    }
}

impl RaftNetworkFactory<TypeConfig> for Peers {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        PeerNetwork {
            peers: self.clone(),
            target,
            address: node.rpc.clone(),
        }
    }
}

pub struct PeerNetwork {
    peers: Peers,
    target: NodeId,
    address: String,
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        let (sent, vote) = (std::time::Instant::now(), rpc.vote);
        let answer = self
            .peers
            .raft_call(self.target, &self.address, APPEND_PATH, &rpc, &option)
            .await;
        // Any answer but a higher vote means the follower took this node as its leader (and
        // so refuses votes for its lease), whether or not its log matched.
        if let Ok(response) = &answer
            && !matches!(response, AppendEntriesResponse::HigherVote(_))
        {
            self.peers.lease.acknowledged(self.target, vote, sent);
        }
        answer
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.peers
            .raft_call(self.target, &self.address, SNAPSHOT_PATH, &rpc, &option)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.peers
            .raft_call(self.target, &self.address, VOTE_PATH, &rpc, &option)
            .await
    }
}
