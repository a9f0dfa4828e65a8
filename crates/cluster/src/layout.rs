//! Who is in the cluster and what each node brings: its addresses, zone and drives. The
//! layout is the replicated Raft membership (each member's `NodeInfo`), so every node names
//! every drive the same way: a drive's cluster-wide index is its position in the layout's node
//! order.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::types::NodeId;

/// One node as the cluster knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    /// Node-to-node address (`host:port`): Raft, forwarded requests, its drives.
    pub rpc: String,
    /// Where it serves S3 (`host:port`).
    pub s3: String,
    pub zone: String,
    /// The names of the drives it serves, in its own order.
    pub drives: Vec<String>,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.rpc)
    }
}

/// A node's Raft id, derived from its name (FNV-1a, 64 bits): names are what operators give,
/// ids what the protocol needs, and the same name always gives the same id.
pub fn node_id(name: &str) -> NodeId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash.max(1)
}

/// The nodes of the cluster, in id order, and the layout's epoch (raised by every change).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub epoch: u64,
    pub nodes: Vec<NodeInfo>,
}

/// One drive of the layout: its node (index into `nodes`) and its name there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutDrive<'a> {
    pub node: usize,
    pub info: &'a NodeInfo,
    pub name: &'a str,
}

impl Layout {
    pub fn new(mut nodes: Vec<NodeInfo>) -> Self {
        nodes.sort_by_key(|n| node_id(&n.name));
        Self { epoch: 1, nodes }
    }

    /// Every drive of the cluster in cluster-wide index order.
    pub fn drives(&self) -> Vec<LayoutDrive<'_>> {
        self.nodes
            .iter()
            .enumerate()
            .flat_map(|(node, info)| {
                info.drives.iter().map(move |name| LayoutDrive {
                    node,
                    info,
                    name: name.as_str(),
                })
            })
            .collect()
    }

    /// Distinct zones, in node order: a drive's zone index is its position here.
    pub fn zones(&self) -> Vec<&str> {
        let mut zones: Vec<&str> = Vec::new();
        for node in &self.nodes {
            if !zones.contains(&node.zone.as_str()) {
                zones.push(&node.zone);
            }
        }
        zones
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, drives: &[&str]) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            rpc: format!("{name}:9100"),
            s3: format!("{name}:9000"),
            zone: "z".into(),
            drives: drives.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    #[test]
    fn drive_order_is_the_same_whatever_order_nodes_were_given_in() {
        let a = Layout::new(vec![node("n1", &["a", "b"]), node("n2", &["c"])]);
        let b = Layout::new(vec![node("n2", &["c"]), node("n1", &["a", "b"])]);
        assert_eq!(a, b);
        assert_eq!(a.drives().len(), 3);
        assert_eq!(
            a.drives()[2].name,
            if node_id("n1") < node_id("n2") {
                "c"
            } else {
                "b"
            }
        );
    }

    #[test]
    fn node_ids_are_stable_and_distinct() {
        assert_eq!(node_id("n1"), node_id("n1"));
        assert_ne!(node_id("n1"), node_id("n2"));
        assert_ne!(node_id(""), 0);
    }
}
