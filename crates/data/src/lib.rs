//! Basalt's data path on one drive: chunk files with a checksummed header, written so that an
//! acknowledged chunk survives a crash (temporary file, fsync, rename, directory fsync).
//!
//! The data path knows nothing of objects, HTTP or the cluster: it stores and returns chunks by
//! id. Erasure coding across drives builds on this as stripes of chunks.

mod chunk_file;
mod error;
mod store;

pub use chunk_file::{ChunkId, ChunkInfo, HEADER_LEN};
pub use error::DataError;
pub use store::ChunkStore;
