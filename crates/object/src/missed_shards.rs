//! Stripes written with shards missing, healed once their drives answer again.
//!
//! A write succeeds with its write quorum of shards: a node that is down (or a drive that
//! fails) misses the others. The command that publishes such a stripe notes it in the
//! metadata's missed-shards table, in the same transaction as the record (so the debt is as
//! durable as the write, replicated with it in a cluster, and outlives the coordinator). Here
//! the node that runs background work (the Raft leader in a cluster) walks that table: a
//! stripe whose drives all answer is checked and its missing shards rebuilt where the
//! placement put them, then its entry is forgotten. A stripe whose owner is gone is forgotten
//! too (the state machine also drops entries of stripes that become garbage).
//!
//! Nothing sweeps the whole store when a node returns: the cost of a return is the writes it
//! missed, not the data the cluster holds.

use std::sync::Arc;
use std::time::Duration;

use basalt_meta::{Command, PayloadOwner};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::maintenance::SweepMode;
use crate::store::now_ms;
use crate::{ObjectError, ObjectStore};

/// Entries read per metadata page.
const PAGE: usize = 256;
/// Stripes healed at once.
const CONCURRENCY: usize = 4;
/// Time between passes while something is owed and progress is being made (and between
/// looks at an empty table).
const PASS_INTERVAL: Duration = Duration::from_secs(5);
/// Passes that heal nothing back off up to this (a drive that is gone for good).
const MAX_PASS_INTERVAL: Duration = Duration::from_secs(300);

/// What the missed-shards healer has done (in `basalt admin status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissedShardsStatus {
    /// Stripes still owed a heal after the last pass.
    pub owed: u64,
    /// Of those, stripes waiting for a drive that does not answer.
    pub waiting: u64,
    /// Stripes whose missing shards were rebuilt, since this node started.
    pub stripes_healed: u64,
    pub last_pass_started_ms: Option<i64>,
    pub last_pass_finished_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// One pass over the table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MissedShardsPass {
    pub healed: u64,
    /// Entries forgotten because their stripe is no longer anybody's.
    pub gone: u64,
    pub waiting: u64,
    /// Stripes that could not be rebuilt (too few shards left, or a rebuild that failed).
    pub failed: u64,
}

impl MissedShardsPass {
    fn owed(&self) -> u64 {
        self.waiting + self.failed
    }
}

/// How one entry was settled.
enum Settled {
    Healed,
    Gone,
    Waiting,
}

impl ObjectStore {
    /// Walks the missed-shards table once: heals every stripe whose drives all answer and
    /// forgets the entries it settled.
    pub async fn heal_missed_shards(&self) -> Result<MissedShardsPass, ObjectError> {
        let mut pass = MissedShardsPass::default();
        let mut after = None;
        loop {
            let page = self.meta.missed_shards(after, PAGE).await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(*last);
            let mut settled = Vec::new();
            // A few stripes at once: each one's shard reads already run in parallel, a few
            // more keep the drives busy while another stripe decodes.
            let mut outcomes = futures::stream::iter(page)
                .map(|(id, missed)| async move { (id, self.settle_missed(id, missed.owner).await) })
                .buffer_unordered(CONCURRENCY);
            while let Some((id, outcome)) = outcomes.next().await {
                match outcome {
                    Ok(Settled::Healed) => {
                        pass.healed += 1;
                        settled.push(id);
                    }
                    Ok(Settled::Gone) => {
                        pass.gone += 1;
                        settled.push(id);
                    }
                    Ok(Settled::Waiting) => pass.waiting += 1,
                    Err(e) => {
                        tracing::warn!(stripe = %hex_simd::encode_to_string(id, hex_simd::AsciiCase::Lower), error = %e, "a stripe owed a heal could not be rebuilt");
                        pass.failed += 1;
                    }
                }
            }
            if !settled.is_empty() {
                self.meta
                    .execute(Command::ForgetMissedShards { stripes: settled })
                    .await?;
            }
        }
        Ok(pass)
    }

    async fn settle_missed(
        &self,
        id: [u8; 16],
        owner: PayloadOwner,
    ) -> Result<Settled, ObjectError> {
        let Some(stripe) = self.owned_stripe(&owner, id).await? else {
            return Ok(Settled::Gone);
        };
        let drives = self.stripes.drives();
        let answering = stripe.shards.iter().all(|s| {
            drives
                .get(s.drive)
                .is_some_and(basalt_data::Drive::reachable)
        });
        if !answering {
            return Ok(Settled::Waiting);
        }
        // A node that is away comes back: its shards are rebuilt where the placement put
        // them, not moved off it. A single node's drive that refuses writes is failing:
        // a spare drive takes its shard.
        let relocate = !drives.has_remote_drives();
        let outcome = self
            .sweep_stripe(Arc::new(owner), stripe, SweepMode::Repair, relocate)
            .await?;
        if outcome.health.is_empty() {
            return Ok(Settled::Gone);
        }
        if let Some(reason) = outcome.unrecoverable {
            return Err(ObjectError::Corrupt(reason));
        }
        Ok(if outcome.whole() {
            Settled::Healed
        } else {
            Settled::Waiting
        })
    }

    /// Starts the background healer of missed shards: a pass every few seconds on the node
    /// that runs background work, sooner when a node answers again, less often while passes
    /// heal nothing.
    pub(crate) fn start_missed_shards_healer(&self) {
        let this = self.clone();
        let restarts = self.maintenance.restarts.clone();
        crate::supervisor::supervise("missed-shards-healer", restarts, move || {
            let this = this.clone();
            async move {
                let mut interval = PASS_INTERVAL;
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        () = this.maintenance.missed_shards_wake.notified() => {
                            interval = PASS_INTERVAL;
                        }
                    }
                    if !this.runs_background() {
                        continue;
                    }
                    let started = now_ms();
                    let result = this.heal_missed_shards().await;
                    let mut status = this.maintenance.status();
                    let missed = &mut status.missed_shards;
                    missed.last_pass_started_ms = Some(started);
                    missed.last_pass_finished_ms = Some(now_ms());
                    match result {
                        Ok(pass) => {
                            missed.owed = pass.owed();
                            missed.waiting = pass.waiting;
                            missed.stripes_healed += pass.healed;
                            missed.last_error = None;
                            if pass.healed > 0 {
                                tracing::info!(
                                    healed = pass.healed,
                                    owed = pass.owed(),
                                    "rebuilt shards that writes missed"
                                );
                            }
                            interval = if pass.owed() == 0 || pass.healed > 0 {
                                PASS_INTERVAL
                            } else {
                                (interval * 2).min(MAX_PASS_INTERVAL)
                            };
                        }
                        Err(e) => {
                            missed.last_error = Some(e.to_string());
                            interval = PASS_INTERVAL;
                        }
                    }
                }
            }
        });
    }
}
