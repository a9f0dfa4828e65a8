//! The Raft type configuration: what an entry carries and what applying it answers.

use basalt_meta::{MetaError, Outcome};
use serde::{Deserialize, Serialize};

use crate::layout::NodeInfo;

pub type NodeId = u64;

/// One proposed command: encoded with `Command::encode` (versioned), stamped with the
/// leader's clock when the leader proposes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    pub at_ms: i64,
    #[serde(with = "serde_bytes")]
    pub command: Vec<u8>,
}

/// What applying a proposal answered: the state machine's own result, refusals included.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProposalReply(pub Result<Outcome, MetaError>);

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Proposal,
        R = ProposalReply,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
);
