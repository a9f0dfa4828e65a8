//! A body written to durable chunks but not yet visible: the window in which the caller
//! checks the client's digests. Dropping it uncommitted deletes its chunks.

use basalt_data::{ChunkId, ChunkInfo, ChunkStore};
use basalt_meta::{ChunkRef, Payload};
use bytes::Bytes;

use crate::Digests;

pub struct Staged {
    pub size: u64,
    pub digests: Digests,
    pub(crate) inline: Option<Bytes>,
    pub(crate) guard: ChunkGuard,
}

impl Staged {
    /// Hands the payload to a metadata record; from here on the record owns the chunks.
    pub(crate) fn into_payload(mut self) -> Payload {
        match self.inline.take() {
            Some(bytes) => Payload::Inline(bytes.to_vec()),
            None => Payload::Chunks(self.guard.disarm().into_iter().map(to_ref).collect()),
        }
    }
}

pub(crate) fn to_ref(info: ChunkInfo) -> ChunkRef {
    ChunkRef {
        id: info.id.0,
        len: info.len,
        crc32c: info.crc32c,
    }
}

pub(crate) fn to_info(r: &ChunkRef) -> ChunkInfo {
    ChunkInfo {
        id: ChunkId(r.id),
        len: r.len,
        crc32c: r.crc32c,
    }
}

/// Chunks written for a write that has not committed. If the write is abandoned (an error, a
/// failed digest, a client that went away), the guard deletes them.
pub(crate) struct ChunkGuard {
    store: ChunkStore,
    chunks: Vec<ChunkInfo>,
}

impl ChunkGuard {
    pub(crate) fn new(store: ChunkStore) -> Self {
        Self {
            store,
            chunks: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, info: ChunkInfo) {
        self.chunks.push(info);
    }

    pub(crate) fn disarm(&mut self) -> Vec<ChunkInfo> {
        std::mem::take(&mut self.chunks)
    }
}

impl Drop for ChunkGuard {
    fn drop(&mut self) {
        let ids: Vec<ChunkId> = self.chunks.drain(..).map(|c| c.id).collect();
        if ids.is_empty() {
            return;
        }
        let store = self.store.clone();
        // Deleting files blocks; without a runtime (shutdown) the startup collector removes them.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn_blocking(move || {
                for id in ids {
                    if let Err(e) = store.delete_blocking(id) {
                        tracing::warn!(chunk = %id, error = %e, "could not delete an abandoned chunk");
                    }
                }
            });
        }
    }
}
