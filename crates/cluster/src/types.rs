//! The Raft type configuration: what an entry carries and what applying it answers.

use basalt_meta::{MetaError, Outcome};
use serde::{Deserialize, Serialize};

use crate::layout::NodeInfo;

pub type NodeId = u64;

/// One log entry: the commands proposed together (concurrent writes share an entry, and so
/// its round trips and fsyncs), each encoded with `Command::encode` (versioned), stamped with
/// the leader's clock when the leader proposes them.
///
/// The commands are `Bytes` (encoded as byte strings, as `serde_bytes` did) so that an entry
/// the log hands out again, to replicate or apply it, is shared rather than copied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    pub at_ms: i64,
    pub commands: Vec<bytes::Bytes>,
}

/// What applying a proposal answered: the state machine's own result for each command, in
/// order, refusals included.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProposalReply(pub Vec<Result<Outcome, MetaError>>);

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Proposal,
        R = ProposalReply,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
);
