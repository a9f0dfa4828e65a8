use thiserror::Error;

use crate::ChunkId;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    #[error("chunk {0} is missing")]
    NotFound(ChunkId),
    #[error("chunk {id} is corrupt: {reason}")]
    Corrupt { id: ChunkId, reason: String },
    #[error("drive I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the chunk store is poisoned by an earlier fsync failure; restart the node")]
    Poisoned,
    #[error("only {readable} of the {needed} shards needed to rebuild the chunk are readable")]
    TooFewShards { readable: usize, needed: usize },
    /// Too few shards readable because nodes holding the others do not answer (not because
    /// shards are known lost): worth retrying once they are back.
    #[error(
        "too few of the {needed} shards needed to rebuild the chunk are reachable: a node holding the others is unreachable"
    )]
    ShardsUnreachable { needed: usize },
    #[error(
        "only {written} of the {needed} shards a write needs reached their drives; too many drives are unavailable"
    )]
    WriteQuorum { written: usize, needed: usize },
    #[error("drive {0} is offline")]
    Offline(u16),
    #[error("the drive is full")]
    DriveFull,
    #[error("drive layout: {0}")]
    Layout(String),
    #[error("erasure codec: {0}")]
    Codec(String),
    #[error("no drive holds the drive set yet (the cluster's bootstrap node formats them)")]
    NotFormatted,
}
