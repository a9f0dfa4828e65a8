//! Basalt's data path, independent of objects, HTTP and the cluster: a node's drives, chunks
//! written as stripes of shards under a redundancy policy (none, replicas, or Reed–Solomon
//! erasure coding), each shard a checksummed file written so that an acknowledged shard survives
//! a crash (temporary file, fsync, rename, directory fsync). A drive may belong to another node
//! that serves it (`remote`, `drive_server`): the same shard operations, over mutual TLS.

mod chunk_file;
mod drive_server;
mod drives;
mod error;
pub mod io_lane;
mod redundancy;
mod remote;
mod store;
mod stripe;
pub mod trace_context;

pub use chunk_file::{ChunkId, ChunkInfo, HEADER_LEN};
pub use drive_server::DriveServer;
pub use drives::{Drive, DriveSet, Location, local_space_blocking};
pub use error::DataError;
pub use redundancy::Redundancy;
pub use remote::{
    AUTH_HEADER, ClientTls, ClusterAuth, ClusterClient, NODE_HEALTH_PATH, NodeClient, RemoteDrive,
    RequestFailure, is_remote, node_reconnections,
};
pub use store::ChunkStore;
pub use stripe::{
    DriveScan, FailureDomain, Healed, ShardHealth, ShardInfo, StripeCheck, StripeInfo, StripeRead,
    StripeStore, WrittenStripe, shard_id,
};
