//! The cluster's side of the node-to-node listener: Raft messages from the leader or a
//! candidate, proposals and read-index requests forwarded by other nodes, and the hello a
//! forming cluster exchanges. Every request must carry a valid cluster signature.

use std::sync::Arc;

use basalt_data::ClusterAuth;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use tracing::Instrument;

use crate::network::{APPEND_PATH, RAFT_PREFIX, SNAPSHOT_PATH, VOTE_PATH};
use crate::node::{ClusterNode, NODE_PATH, PROPOSE_PATH, READ_INDEX_PATH};
use crate::types::{NodeId, TypeConfig};

const CLUSTER_PREFIX: &str = "/basalt-node/v1/cluster/";
/// Raft batches and snapshot chunks stay well under this.
const MAX_MESSAGE: usize = 64 << 20;

/// Whether a node-to-node request belongs to the cluster (rather than to the drive server).
pub fn is_cluster_path(path: &str) -> bool {
    path.starts_with(RAFT_PREFIX) || path.starts_with(CLUSTER_PREFIX)
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

fn answer<T: Serialize>(value: &T) -> Response<Full<Bytes>> {
    match postcard::to_stdvec(value) {
        Ok(bytes) => reply(StatusCode::OK, bytes),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response<Full<Bytes>>> {
    postcard::from_bytes(body).map_err(|e| reply(StatusCode::BAD_REQUEST, e.to_string()))
}

/// Serves one cluster request. `node` is `None` until this node's Raft has started: peers are
/// told to come back (503).
pub async fn handle<B>(
    node: Option<Arc<ClusterNode>>,
    auth: &ClusterAuth,
    req: Request<B>,
) -> Response<Full<Bytes>>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !auth.verifies(&req) {
        return reply(StatusCode::FORBIDDEN, "invalid cluster signature");
    }
    let Some(node) = node else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "raft is starting");
    };
    let path = req.uri().path().to_owned();
    // A write or read forwarded by another node is part of that node's request: its span is
    // a child of the caller's. Raft's own traffic (heartbeats, appends) is nobody's request.
    let span = if path == PROPOSE_PATH || path == READ_INDEX_PATH {
        let span = tracing::debug_span!("cluster.serve", path = %path);
        basalt_data::trace_context::adopt_parent(&span, req.headers());
        span
    } else {
        tracing::Span::none()
    };
    async move {
        let body = match Limited::new(req.into_body(), MAX_MESSAGE).collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => return reply(StatusCode::BAD_REQUEST, e.to_string()),
        };
        match dispatch(&node, &path, &body).await {
            Ok(response) | Err(response) => response,
        }
    }
    .instrument(span)
    .await
}

async fn dispatch(
    node: &Arc<ClusterNode>,
    path: &str,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
    Ok(match path {
        APPEND_PATH => {
            let rpc: AppendEntriesRequest<TypeConfig> = decode(body)?;
            answer(&node.raft.append_entries(rpc).await)
        }
        VOTE_PATH => {
            // Unanswered, the request is a vote not granted; the candidate asks again.
            if !node.lease.may_vote() {
                return Err(reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "just started: not voting until a leader's lease granted before could have ended",
                ));
            }
            let rpc: VoteRequest<NodeId> = decode(body)?;
            answer(&node.raft.vote(rpc).await)
        }
        SNAPSHOT_PATH => {
            let rpc: InstallSnapshotRequest<TypeConfig> = decode(body)?;
            answer(&node.raft.install_snapshot(rpc).await)
        }
        PROPOSE_PATH => {
            let bytes: Vec<u8> = decode(body)?;
            let command = basalt_meta::Command::decode(&bytes)
                .map_err(|e| reply(StatusCode::BAD_REQUEST, e.to_string()))?;
            answer(&node.propose_as_leader(command).await)
        }
        READ_INDEX_PATH => answer(&node.read_index_as_leader().await),
        NODE_PATH => answer(&node.hello().await),
        _ => reply(StatusCode::NOT_FOUND, "no such cluster call"),
    })
}
