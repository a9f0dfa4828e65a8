//! Bucket records, bucket settings and identities, kept in memory as redb returned them.
//!
//! Every request reads several of them (its access key's identity, the bucket, its access
//! settings, default encryption, lifecycle rules, policy), and each read from redb is a
//! hand-off to a blocking thread and back: under small-object load those hand-offs, not the
//! reads, were the cost. They change rarely. A commit that changes any of them empties the
//! cache (by moving to a new generation) before any of its writers is answered, so a read
//! that begins after a write was acknowledged never finds what the write replaced.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What is cached: one key of one of the cached tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CacheKey {
    Bucket(String),
    /// A bucket's setting, by the setting's name.
    Setting(String, &'static str),
    Identity(String),
}

/// A cached answer: the value's bytes (or none), or, for a setting, that the bucket is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cached {
    NoBucket,
    Value(Option<Arc<[u8]>>),
}

/// More entries than this and the cache starts over: the cached tables hold a few keys per
/// bucket and user.
const MOST_ENTRIES: usize = 16_384;

#[derive(Default)]
pub(crate) struct ReadCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<CacheKey, (u64, Cached)>>,
}

impl ReadCache {
    /// Taken before reading from redb: an answer read under an older generation than the
    /// current one is never cached.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, (u64, Cached)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get(&self, key: &CacheKey) -> Option<Cached> {
        let current = self.generation();
        let entries = self.entries();
        match entries.get(key) {
            Some((generation, cached)) if *generation == current => Some(cached.clone()),
            _ => None,
        }
    }

    /// Keeps `value`, read from redb after [`Self::generation`] returned `generation`.
    pub(crate) fn insert(&self, key: CacheKey, generation: u64, value: Cached) {
        let mut entries = self.entries();
        // Checked under the lock that `invalidate` also takes: a commit that moved on
        // between the read and here has cleared what this would join.
        if generation != self.generation() {
            return;
        }
        if entries.len() >= MOST_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (generation, value));
    }

    /// After a commit that changed a cached table, before its writers are answered.
    pub(crate) fn invalidate(&self) {
        let mut entries = self.entries();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(bytes: &[u8]) -> Cached {
        Cached::Value(Some(Arc::from(bytes)))
    }

    #[test]
    fn an_answer_read_before_a_commit_is_never_served_after_it() {
        let cache = ReadCache::default();
        let key = CacheKey::Setting("photos".into(), "policy");
        assert_eq!(cache.get(&key), None);

        let before = cache.generation();
        cache.insert(key.clone(), before, value(b"old"));
        assert_eq!(cache.get(&key), Some(value(b"old")));
        assert_eq!(cache.get(&CacheKey::Bucket("photos".into())), None);

        // A read began, a commit changed the setting, then the read's answer arrived.
        let began = cache.generation();
        cache.invalidate();
        cache.insert(key.clone(), began, value(b"old"));
        assert_eq!(
            cache.get(&key),
            None,
            "not kept: read under the older generation"
        );

        let now = cache.generation();
        cache.insert(key.clone(), now, Cached::NoBucket);
        assert_eq!(cache.get(&key), Some(Cached::NoBucket));
        cache.invalidate();
        assert_eq!(cache.get(&key), None);
    }
}
