//! Basalt's data path, independent of objects, HTTP and the cluster: a node's drives, chunks
//! written as stripes of shards under a redundancy policy (none, replicas, or Reed–Solomon
//! erasure coding), each shard a checksummed file written so that an acknowledged shard survives
//! a crash (temporary file, fsync, rename, directory fsync).

mod chunk_file;
mod drives;
mod error;
mod redundancy;
mod store;
mod stripe;

pub use chunk_file::{ChunkId, ChunkInfo, HEADER_LEN};
pub use drives::{Drive, DriveSet};
pub use error::DataError;
pub use redundancy::Redundancy;
pub use store::ChunkStore;
pub use stripe::{
    DriveScan, Healed, ShardHealth, ShardInfo, StripeCheck, StripeInfo, StripeRead, StripeStore,
    WrittenStripe, shard_id,
};
