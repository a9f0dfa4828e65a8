//! A body written to durable stripes but not yet visible: the window in which the caller
//! checks the client's digests. Dropping it uncommitted deletes its stripes.

use std::sync::{Arc, Mutex};

use basalt_data::{ChunkId, Redundancy, ShardInfo, StripeInfo, StripeStore, WrittenStripe};
use basalt_meta::{Codec, Payload, ShardRef, StripeRef};
use bytes::Bytes;

use crate::Digests;

pub struct Staged {
    pub size: u64,
    pub digests: Digests,
    pub(crate) inline: Option<Bytes>,
    pub(crate) guard: StripeGuard,
    /// The body is sealed with a customer's key (SSE-C): its ETag must not be the MD5 of the
    /// plaintext, which would tell anyone who can list the bucket what the data is.
    pub(crate) opaque_etag: bool,
}

impl Staged {
    /// Gives the object an opaque ETag instead of its MD5, as S3 does for SSE-C objects.
    pub fn conceal_etag(&mut self) {
        self.opaque_etag = true;
    }

    /// The ETag the object (or part) gets: the MD5 of its bytes, or for SSE-C random bytes
    /// in the same shape.
    pub(crate) fn etag(&self) -> String {
        if self.opaque_etag {
            hex_simd::encode_to_string(rand::random::<[u8; 16]>(), hex_simd::AsciiCase::Lower)
        } else {
            self.digests.md5_hex()
        }
    }

    /// Hands the payload to a metadata record; from here on the record owns the stripes. Also
    /// returns the stripes written with shards missing, to be healed once committed.
    pub(crate) fn into_payload(mut self) -> (Payload, Vec<StripeInfo>) {
        match self.inline.take() {
            Some(bytes) => (Payload::Inline(bytes.to_vec()), Vec::new()),
            None => {
                let written = self.guard.disarm();
                let degraded = written
                    .iter()
                    .filter(|w| w.degraded())
                    .map(|w| w.info.clone())
                    .collect();
                let stripes = written.iter().map(|w| to_ref(&w.info)).collect();
                (Payload::Stripes(stripes), degraded)
            }
        }
    }
}

pub(crate) fn to_ref(info: &StripeInfo) -> StripeRef {
    StripeRef {
        id: info.id.0,
        len: info.len,
        codec: match info.redundancy {
            Redundancy::None => Codec::None,
            Redundancy::Replica { copies } => Codec::Replica { copies },
            Redundancy::ErasureCoded { data, parity } => Codec::ReedSolomonLeopard { data, parity },
        },
        shards: info
            .shards
            .iter()
            .map(|s| ShardRef {
                drive: s.drive,
                crc32c: s.crc32c,
            })
            .collect(),
    }
}

pub(crate) fn to_info(r: &StripeRef) -> StripeInfo {
    StripeInfo {
        id: ChunkId(r.id),
        len: r.len,
        redundancy: match r.codec {
            Codec::None => Redundancy::None,
            Codec::Replica { copies } => Redundancy::Replica { copies },
            Codec::ReedSolomonLeopard { data, parity } => Redundancy::ErasureCoded { data, parity },
        },
        shards: r
            .shards
            .iter()
            .map(|s| ShardInfo {
                drive: s.drive,
                crc32c: s.crc32c,
            })
            .collect(),
    }
}

/// Stripes written for a write that has not committed. If the write is abandoned (an error, a
/// failed digest, a client that went away — even while a stripe is still being written), the
/// stripes are deleted: a stripe write that finishes after its guard is gone deletes its own
/// shards.
pub(crate) struct StripeGuard {
    store: StripeStore,
    state: Arc<Mutex<GuardState>>,
}

#[derive(Default)]
struct GuardState {
    /// Stripes by their position in the object; writes may finish out of order.
    stripes: Vec<(usize, WrittenStripe)>,
    abandoned: bool,
}

/// Where a stripe write on a blocking thread reports the stripe it wrote.
#[derive(Clone)]
pub(crate) struct StripeSink {
    store: StripeStore,
    state: Arc<Mutex<GuardState>>,
}

fn lock(state: &Mutex<GuardState>) -> std::sync::MutexGuard<'_, GuardState> {
    // The state stays consistent even if a holder panicked: it is a list and a flag.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl StripeSink {
    /// Keeps a freshly written stripe, or deletes it if its write was abandoned meanwhile.
    /// Blocking.
    pub(crate) fn keep(&self, index: usize, stripe: WrittenStripe) {
        let mut state = lock(&self.state);
        if state.abandoned {
            drop(state);
            self.store.delete_blocking(&stripe.info);
        } else {
            state.stripes.push((index, stripe));
        }
    }
}

impl StripeGuard {
    pub(crate) fn new(store: StripeStore) -> Self {
        Self {
            store,
            state: Arc::default(),
        }
    }

    pub(crate) fn sink(&self) -> StripeSink {
        StripeSink {
            store: self.store.clone(),
            state: self.state.clone(),
        }
    }

    /// The stripes written so far, in no particular order (to make their names durable).
    pub(crate) fn written(&self) -> Vec<WrittenStripe> {
        lock(&self.state)
            .stripes
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Counts the shards on `drives` as missing (their directory could not be made durable).
    pub(crate) fn mark_unwritten(&self, drives: &[u16]) {
        if drives.is_empty() {
            return;
        }
        for (_, stripe) in &mut lock(&self.state).stripes {
            for (shard, written) in stripe.info.shards.iter().zip(stripe.written.iter_mut()) {
                if drives.contains(&shard.drive) {
                    *written = false;
                }
            }
        }
    }

    /// Hands over the stripes, in object order; the guard no longer deletes them.
    pub(crate) fn disarm(&mut self) -> Vec<WrittenStripe> {
        let mut stripes = std::mem::take(&mut lock(&self.state).stripes);
        stripes.sort_unstable_by_key(|(index, _)| *index);
        stripes.into_iter().map(|(_, s)| s).collect()
    }
}

impl Drop for StripeGuard {
    fn drop(&mut self) {
        let stripes: Vec<WrittenStripe> = {
            let mut state = lock(&self.state);
            state.abandoned = true;
            state.stripes.drain(..).map(|(_, s)| s).collect()
        };
        if stripes.is_empty() {
            return;
        }
        let store = self.store.clone();
        // Deleting files blocks; without a runtime (shutdown) the startup collector removes them.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(basalt_data::io_lane::spawn(move || {
                for stripe in stripes {
                    store.delete_blocking(&stripe.info);
                }
            }));
        }
    }
}
