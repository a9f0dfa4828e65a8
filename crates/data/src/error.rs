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
}
