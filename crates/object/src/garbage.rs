//! Garbage: the stripes an overwrite or a delete frees, deleted only once no read can need them.
//!
//! A GET reads an object's record, then its stripes, chunk after chunk. If an overwrite
//! committed meanwhile deleted the old stripes at once, the GET would be cut short. So the
//! command that frees stripes records them in the metadata's garbage table, in its own
//! transaction (durable, and replicated with the metadata in a cluster), and the collector
//! here deletes their files only when
//! - the grace period has passed since they were freed (it covers the moment between a read
//!   fetching a record and pinning its stripes, and reads on other nodes), and
//! - no read in flight on this node has them pinned: a read pins the stripes it will read
//!   until its stream is dropped, however long the client takes.
//!
//! A crash between the commit and the collection leaks nothing: the entries stay in the table
//! and the next start collects them (nothing is in flight then).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use basalt_meta::{Command, GarbageRecord};

use crate::ObjectError;
use crate::stage::to_info;
use crate::store::{ObjectStore, now_ms};

/// How many garbage entries one pass of the collector takes at most.
const BATCH: usize = 256;

/// Stripes that reads in flight on this node are reading, with how many reads each.
#[derive(Debug, Default)]
pub(crate) struct ReadPins {
    pinned: Mutex<HashMap<[u8; 16], usize>>,
}

impl ReadPins {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], usize>> {
        self.pinned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Pins `stripes` until the returned guard is dropped.
    pub(crate) fn pin(self: &Arc<Self>, stripes: Vec<[u8; 16]>) -> PinGuard {
        if !stripes.is_empty() {
            let mut pinned = self.lock();
            for id in &stripes {
                *pinned.entry(*id).or_default() += 1;
            }
        }
        PinGuard {
            pins: self.clone(),
            stripes,
        }
    }

    fn any_pinned(&self, record: &GarbageRecord) -> bool {
        let pinned = self.lock();
        record.stripes.iter().any(|s| pinned.contains_key(&s.id))
    }
}

/// Stripes pinned by one read.
pub(crate) struct PinGuard {
    pins: Arc<ReadPins>,
    stripes: Vec<[u8; 16]>,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if self.stripes.is_empty() {
            return;
        }
        let mut pinned = self.pins.lock();
        for id in &self.stripes {
            if let Some(n) = pinned.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    pinned.remove(id);
                }
            }
        }
    }
}

/// What one collection did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GarbageReport {
    /// Stripes whose files were deleted.
    pub stripes: usize,
    /// Entries left for later because a read still has them pinned.
    pub pinned: usize,
}

impl ObjectStore {
    /// Deletes the files of garbage freed at least `grace` ago that no read on this node has
    /// pinned, and forgets those entries. With a zero grace (at start-up, when nothing is in
    /// flight) it takes every entry.
    pub async fn collect_due_garbage(&self, grace: Duration) -> Result<GarbageReport, ObjectError> {
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let mut report = GarbageReport::default();
        let mut skipped = std::collections::HashSet::new();
        loop {
            let due = self
                .meta
                .garbage_due(now_ms().saturating_sub(grace_ms), BATCH + skipped.len())
                .await?;
            let fresh: Vec<(u64, GarbageRecord)> = due
                .into_iter()
                .filter(|(id, _)| !skipped.contains(id))
                .collect();
            if fresh.is_empty() {
                break;
            }
            let (pinned, free): (Vec<_>, Vec<_>) = fresh
                .into_iter()
                .partition(|(_, r)| self.pins.any_pinned(r));
            report.pinned += pinned.len();
            skipped.extend(pinned.iter().map(|(id, _)| *id));
            if free.is_empty() {
                continue;
            }
            let ids: Vec<u64> = free.iter().map(|(id, _)| *id).collect();
            report.stripes += free.iter().map(|(_, r)| r.stripes.len()).sum::<usize>();
            let store = self.stripes.clone();
            crate::store::blocking(move || {
                for (_, record) in &free {
                    for stripe in &record.stripes {
                        store.delete_blocking(&to_info(stripe));
                    }
                }
                Ok(())
            })
            .await?;
            // Files first, then the entries: a crash in between deletes (absent) files again.
            self.meta.execute(Command::ForgetGarbage { ids }).await?;
        }
        Ok(report)
    }

    /// Collects garbage in the background, every `grace / 4` (at least each second, at most
    /// each minute), keeping files `grace` after they were freed.
    pub fn start_garbage_collector(&self, grace: Duration) {
        let every = (grace / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        self.run_periodically("garbage-collector", every, move |store| async move {
            match store.collect_due_garbage(grace).await {
                Ok(r) if r.stripes > 0 => {
                    tracing::debug!(stripes = r.stripes, pinned = r.pinned, "garbage collected");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
            }
        });
    }

    /// Called once at start, before serving: collects every garbage entry (nothing is in
    /// flight), and, if the last run did not stop cleanly, sweeps the drives for shard files
    /// no record references (writes a crash cut off). Returns how many stripes and orphan
    /// files went. A clean stop (see [`Self::stopped_cleanly`]) spares the next start the
    /// sweep, which reads every record.
    pub async fn start_up_collection(&self) -> Result<(usize, Option<usize>), ObjectError> {
        let clean = self.meta.set_clean_stop(false).await?;
        let collected = self.collect_due_garbage(Duration::ZERO).await?.stripes;
        let swept = if clean {
            None
        } else {
            Some(self.collect_garbage().await?)
        };
        Ok((collected, swept))
    }

    /// Records that this run stopped with nothing in flight: the next start needs no sweep.
    pub async fn stopped_cleanly(&self) -> Result<(), ObjectError> {
        self.meta.set_clean_stop(true).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stripe_stays_pinned_while_any_read_holds_it() {
        let pins = Arc::new(ReadPins::default());
        let record = |id: u8| GarbageRecord {
            freed_ms: 0,
            stripes: vec![basalt_meta::StripeRef {
                id: [id; 16],
                len: 1,
                codec: basalt_meta::Codec::None,
                shards: vec![],
            }],
        };
        let a = pins.pin(vec![[1; 16], [2; 16]]);
        let b = pins.pin(vec![[1; 16]]);
        assert!(pins.any_pinned(&record(1)));
        drop(a);
        assert!(pins.any_pinned(&record(1)));
        assert!(!pins.any_pinned(&record(2)));
        drop(b);
        assert!(!pins.any_pinned(&record(1)));
    }
}
