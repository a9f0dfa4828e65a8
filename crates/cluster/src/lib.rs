//! Basalt's cluster: the metadata state machine of `basalt-meta` replicated by Raft
//! ([openraft]), so that every node serves the whole API and the cluster outlives any one node.
//!
//! - [`log_store`]: the Raft log and vote, in a redb file beside the state machine.
//! - [`replica`]: the state machine adapter: committed entries applied to the node's
//!   metadata database, snapshots streamed to and from files.
//! - [`network`] and [`rpc`]: Raft messages, forwarded proposals and read-index requests over
//!   the node-to-node HTTP/2 connection, signed with the cluster secret.
//! - [`cluster_meta`]: [`ClusterMeta`], the `MetaStore` every node's object layer uses: writes
//!   commit through the leader, reads wait until this node has applied what the leader
//!   confirms.
//! - [`lease`]: the leader's lease, which lets it answer reads without a quorum round each.
//! - [`layout`]: the nodes, their drives and zones, and the placement of shards over them.

// openraft's storage and network traits fix their error types (`StorageError`, `RPCError`),
// which are large: the helpers that build them cannot box them.
#![allow(clippy::result_large_err)]

pub mod cluster_meta;
pub mod layout;
pub mod lease;
pub mod log_store;
pub mod network;
pub mod node;
pub mod replica;
pub mod rpc;
mod types;

pub use cluster_meta::ClusterMeta;
pub use layout::{Layout, NodeInfo};
pub use node::{ClusterNode, ClusterSettings, ClusterStatus};
pub use types::{NodeId, Proposal, ProposalReply, TypeConfig};
