//! A body written to durable chunks but not yet visible: the window in which the caller
//! checks the client's digests. Dropping it uncommitted deletes its chunks.

use basalt_data::{ChunkId, ChunkInfo, ChunkStore};
use basalt_meta::{ChunkRef, Payload};
use std::sync::{Arc, Mutex};

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
/// failed digest, a client that went away — even while a chunk is still being written), the
/// chunks are deleted: a chunk write that finishes after its guard is gone deletes its own file.
pub(crate) struct ChunkGuard {
    store: ChunkStore,
    state: Arc<Mutex<GuardState>>,
}

#[derive(Default)]
struct GuardState {
    /// Chunks by their position in the object; writes may finish out of order.
    chunks: Vec<(usize, ChunkInfo)>,
    abandoned: bool,
}

/// Where a chunk write on a blocking thread reports the chunk it wrote.
#[derive(Clone)]
pub(crate) struct ChunkSink {
    store: ChunkStore,
    state: Arc<Mutex<GuardState>>,
}

fn lock(state: &Mutex<GuardState>) -> std::sync::MutexGuard<'_, GuardState> {
    // The state stays consistent even if a holder panicked: it is a list and a flag.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ChunkSink {
    /// Keeps a freshly written chunk, or deletes it if its write was abandoned meanwhile.
    /// Blocking.
    pub(crate) fn keep(&self, index: usize, info: ChunkInfo) {
        let mut state = lock(&self.state);
        if state.abandoned {
            drop(state);
            if let Err(e) = self.store.delete_blocking(info.id) {
                tracing::warn!(chunk = %info.id, error = %e, "could not delete an abandoned chunk");
            }
        } else {
            state.chunks.push((index, info));
        }
    }
}

impl ChunkGuard {
    pub(crate) fn new(store: ChunkStore) -> Self {
        Self {
            store,
            state: Arc::default(),
        }
    }

    pub(crate) fn sink(&self) -> ChunkSink {
        ChunkSink {
            store: self.store.clone(),
            state: self.state.clone(),
        }
    }

    /// Hands over the chunks, in object order; the guard no longer deletes them.
    pub(crate) fn disarm(&mut self) -> Vec<ChunkInfo> {
        let mut chunks = std::mem::take(&mut lock(&self.state).chunks);
        chunks.sort_unstable_by_key(|(index, _)| *index);
        chunks.into_iter().map(|(_, info)| info).collect()
    }
}

impl Drop for ChunkGuard {
    fn drop(&mut self) {
        let ids: Vec<ChunkId> = {
            let mut state = lock(&self.state);
            state.abandoned = true;
            state.chunks.drain(..).map(|(_, c)| c.id).collect()
        };
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
