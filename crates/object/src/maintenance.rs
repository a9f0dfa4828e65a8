//! Keeping stored data whole: the background healer (stripes that reads found damaged or that
//! were written short of shards), sweeps over every stripe (an on-demand heal, the rate-limited
//! scrubber, and the offline check `fsck`), and the orphan report.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use basalt_data::shard_id;
use basalt_data::{Healed, ShardHealth, StripeInfo};
use basalt_meta::{Command, PayloadOwner};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::stage::to_info;

/// How often offline drives of other nodes are asked whether they answer again.
const REMOTE_DRIVE_RECHECK: Duration = Duration::from_secs(5);
use crate::store::{blocking, now_ms};
use crate::{ObjectError, ObjectStore};

/// Stripes waiting for the healer; beyond this, damage is left to the next scrub.
const HEAL_QUEUE: usize = 4096;
/// Records read per metadata page during a sweep.
const SWEEP_PAGE: usize = 256;
/// Stripes a sweep checks at once: shard reads of one stripe already run in parallel, a few
/// stripes more keep the drives busy while another stripe decodes.
const SWEEP_CONCURRENCY: usize = 4;

/// What a sweep does with the damage it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepMode {
    /// Report only (fsck without --repair).
    Check,
    /// Rebuild missing and corrupt shards (admin heal, the scrubber, fsck --repair).
    Repair,
}

/// Progress and result of one sweep over every stripe.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SweepReport {
    pub kind: String,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub records: u64,
    pub stripes: u64,
    pub shards_checked: u64,
    pub bytes_checked: u64,
    pub shards_missing: u64,
    pub shards_corrupt: u64,
    pub shards_unreadable: u64,
    pub shards_rebuilt: u64,
    pub bytes_rebuilt: u64,
    /// Bad shards that could not be written back (their drive is gone).
    pub shards_unwritable: u64,
    /// Rebuilt shards placed on a spare drive because theirs is gone.
    pub shards_moved: u64,
    /// Blank drives formatted as replacements before the sweep.
    pub drives_adopted: Vec<u16>,
    /// Records with a chunk too damaged to rebuild, in plain words.
    pub unrecoverable: Vec<String>,
    pub error: Option<String>,
}

impl SweepReport {
    pub fn damaged_shards(&self) -> u64 {
        self.shards_missing + self.shards_corrupt + self.shards_unreadable
    }
}

/// What the background healer has done since the node started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HealerStats {
    pub queued: u64,
    pub dropped: u64,
    pub stripes_healed: u64,
    pub shards_rebuilt: u64,
    pub bytes_rebuilt: u64,
    pub failures: u64,
}

/// One drive as the node sees it now.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DriveStatus {
    pub index: u16,
    pub path: String,
    /// False for a drive found missing, blank or damaged at start-up and not adopted since.
    pub online: bool,
    pub total_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MaintenanceStatus {
    pub redundancy: String,
    pub drives: Vec<DriveStatus>,
    /// The sweep in progress, if any.
    pub running: Option<SweepReport>,
    /// The last sweep that finished.
    pub last: Option<SweepReport>,
    pub healer: HealerStats,
    /// The healer of stripes written with shards missing (see `missed_shards.rs`).
    #[serde(default)]
    pub missed_shards: crate::missed_shards::MissedShardsStatus,
    pub lifecycle: crate::lifecycle::LifecycleStatus,
    /// Background workers restarted after a panic, since start.
    #[serde(default)]
    pub worker_restarts: u64,
}

/// A stripe to heal, and the record that owns it (when known, the healer checks that the
/// record still holds the stripe before writing, and may move shards to spare drives).
type HealJob = (Option<PayloadOwner>, StripeInfo);

pub(crate) struct Maintenance {
    queue: mpsc::Sender<HealJob>,
    /// The healer's queue; a healer restarted after a panic takes it up again.
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<HealJob>>>,
    started: AtomicBool,
    /// Panics of background workers (see `supervisor.rs`).
    pub(crate) restarts: Arc<std::sync::atomic::AtomicU64>,
    status: Mutex<MaintenanceStatus>,
    sweeping: AtomicBool,
    /// Wakes the missed-shards healer early: a node that was away answers again.
    pub(crate) missed_shards_wake: tokio::sync::Notify,
}

impl Maintenance {
    pub(crate) fn new() -> Self {
        let (queue, receiver) = mpsc::channel(HEAL_QUEUE);
        Self {
            queue,
            receiver: Arc::new(tokio::sync::Mutex::new(receiver)),
            started: AtomicBool::new(false),
            restarts: Arc::default(),
            status: Mutex::default(),
            sweeping: AtomicBool::new(false),
            missed_shards_wake: tokio::sync::Notify::new(),
        }
    }

    pub(crate) fn status(&self) -> std::sync::MutexGuard<'_, MaintenanceStatus> {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn queue(&self, owner: Option<PayloadOwner>, stripe: StripeInfo) {
        let queued = self.queue.try_send((owner, stripe)).is_ok();
        let mut status = self.status();
        if queued {
            status.healer.queued += 1;
        } else {
            status.healer.dropped += 1;
        }
    }
}

/// When and how fast the scrubber re-reads everything.
#[derive(Debug, Clone, Copy)]
pub struct ScrubSchedule {
    /// Time between the end of one scrub and the start of the next; `None` disables it.
    pub interval: Option<Duration>,
    /// Bytes of shards read per second at most.
    pub bytes_per_second: u64,
}

impl ObjectStore {
    /// Starts the healer and, if scheduled, the scrubber. Call once, inside the runtime.
    pub fn start_background(&self, scrub: ScrubSchedule) {
        if self.maintenance.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let restarts = self.maintenance.restarts.clone();
        let this = self.clone();
        crate::supervisor::supervise("healer", restarts.clone(), move || {
            let this = this.clone();
            async move {
                let mut receiver = this.maintenance.receiver.lock().await;
                while let Some((owner, stripe)) = receiver.recv().await {
                    this.heal_queued(owner, stripe).await;
                }
            }
        });
        if self.stripes.drives().has_remote_drives() {
            // A node that was down when this one started: take its drives back when it
            // answers, and rebuild what was written while it was away.
            let this = self.clone();
            crate::supervisor::supervise("remote-drive-recheck", restarts.clone(), move || {
                let this = this.clone();
                async move {
                    let mut reconnections = basalt_data::node_reconnections();
                    loop {
                        tokio::time::sleep(REMOTE_DRIVE_RECHECK).await;
                        let store = this.stripes.clone();
                        let back = blocking(move || Ok(store.reconnect_remote_drives_blocking()))
                            .await
                            .unwrap_or_default();
                        // A node that stopped answering for a while missed the shards of the
                        // writes made meanwhile, each noted as owed: pay them now it is back.
                        let now = basalt_data::node_reconnections();
                        if now != reconnections {
                            reconnections = now;
                            this.maintenance.missed_shards_wake.notify_one();
                        }
                        // Drives offline since this node started: nobody knows what they
                        // missed (or whether they are the same disks), so check everything.
                        if !back.is_empty() && this.runs_background() && this.start_heal() {
                            tracing::info!(drives = ?back, "drives of other nodes back online: healing");
                        }
                    }
                }
            });
        }
        self.start_missed_shards_healer();
        if let Some(interval) = scrub.interval {
            let this = self.clone();
            crate::supervisor::supervise("scrubber", restarts, move || {
                let this = this.clone();
                async move {
                    loop {
                        tokio::time::sleep(interval).await;
                        if !this.runs_background() {
                            continue;
                        }
                        match this
                            .sweep("scrub", SweepMode::Repair, Some(scrub.bytes_per_second))
                            .await
                        {
                            Ok(report) => tracing::info!(
                                stripes = report.stripes,
                                damaged = report.damaged_shards(),
                                rebuilt = report.shards_rebuilt,
                                "scrub finished"
                            ),
                            Err(e) => tracing::warn!(error = %e, "scrub did not run"),
                        }
                    }
                }
            });
        }
    }

    async fn heal_queued(&self, owner: Option<PayloadOwner>, stripe: StripeInfo) {
        let id = stripe.id;
        let result = match owner {
            // Known owner: the same check and repair as a sweep, so a stripe deleted since it
            // was queued is not rewritten, and a gone drive's shard may move to a spare.
            Some(owner) => self
                .sweep_stripe(Arc::new(owner), stripe, SweepMode::Repair, true)
                .await
                .and_then(|outcome| match outcome.unrecoverable {
                    Some(reason) => Err(ObjectError::Corrupt(reason)),
                    None => Ok(outcome.healed),
                }),
            None => {
                let store = self.stripes.clone();
                blocking(move || store.heal_blocking(&stripe)).await
            }
        };
        let mut status = self.maintenance.status();
        match result {
            Ok(healed) => {
                if !healed.rebuilt.is_empty() {
                    tracing::info!(stripe = %id, shards = ?healed.rebuilt, "healed");
                    status.healer.stripes_healed += 1;
                }
                status.healer.shards_rebuilt += healed.rebuilt.len() as u64;
                status.healer.bytes_rebuilt += healed.bytes_rebuilt;
                if !healed.unwritable.is_empty() {
                    status.healer.failures += 1;
                }
            }
            Err(e) => {
                tracing::warn!(stripe = %id, error = %e, "could not heal");
                status.healer.failures += 1;
            }
        }
    }

    /// Points the record at shards a heal rebuilt on spare drives; if the record changed
    /// meanwhile, the rebuilt shard files are orphans and go.
    async fn record_moves(
        &self,
        owner: &PayloadOwner,
        stripe: &StripeInfo,
        moves: &[(usize, u16, u16)],
    ) -> Result<(), ObjectError> {
        let outcome = self
            .meta
            .execute(Command::MoveShards {
                owner: owner.clone(),
                stripe: stripe.id.0,
                moves: moves.to_vec(),
            })
            .await?;
        if outcome.existed {
            tracing::info!(stripe = %stripe.id, ?moves, "shards rebuilt on spare drives");
            return Ok(());
        }
        let store = self.stripes.clone();
        let (id, moves) = (stripe.id, moves.to_vec());
        blocking(move || {
            for (shard, _, to) in moves {
                store.delete_file_blocking(to, shard_id(id, shard))?;
            }
            Ok(())
        })
        .await
    }

    /// Whether `owner`'s current record still holds `stripe`.
    async fn still_refers(
        &self,
        owner: &PayloadOwner,
        stripe: &StripeInfo,
    ) -> Result<bool, ObjectError> {
        Ok(self.owned_stripe(owner, stripe.id.0).await?.is_some())
    }

    /// Stripe `id` as `owner`'s current record holds it (its shards where they are now).
    pub(crate) async fn owned_stripe(
        &self,
        owner: &PayloadOwner,
        id: [u8; 16],
    ) -> Result<Option<StripeInfo>, ObjectError> {
        let payload = match owner {
            PayloadOwner::Object {
                bucket,
                key,
                version_id,
            } => self
                .meta
                .get_object_version(
                    bucket,
                    key,
                    version_id.as_deref().unwrap_or(basalt_meta::NULL_VERSION),
                )
                .await?
                .map(|r| r.details.payload),
            PayloadOwner::Part {
                upload_id,
                part_number,
            } => self
                .meta
                .list_parts(upload_id, part_number.saturating_sub(1), 1)
                .await?
                .0
                .into_iter()
                .find(|p| p.part_number == *part_number)
                .map(|p| p.record.payload),
        };
        Ok(payload.and_then(|p| p.stripes().iter().find(|s| s.id == id).map(to_info)))
    }

    /// What maintenance is doing and has done, and the drives' state. Reads each drive's
    /// file-system usage (a `statvfs` per drive, on a blocking thread).
    pub async fn maintenance_status(&self) -> MaintenanceStatus {
        let mut status = self.maintenance.status().clone();
        status.worker_restarts = self.maintenance.restarts.load(Ordering::Relaxed);
        status.redundancy = self.stripes.redundancy().to_string();
        let store = self.stripes.clone();
        status.drives = blocking(move || {
            Ok(store
                .drives()
                .iter()
                .map(|d| {
                    let space = d.space_blocking();
                    DriveStatus {
                        index: d.index,
                        path: d.location.to_string(),
                        online: d.online(),
                        total_bytes: space.map(|s| s.0),
                        available_bytes: space.map(|s| s.1),
                    }
                })
                .collect())
        })
        .await
        .unwrap_or_default();
        status
    }

    /// Starts a repairing sweep in the background unless one is running; returns whether it
    /// started. The status shows it running from the moment this returns.
    pub fn start_heal(&self) -> bool {
        let Some(report) = self.begin_sweep("heal") else {
            return false;
        };
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.run_sweep(report, SweepMode::Repair, None).await {
                tracing::warn!(error = %e, "heal failed");
            }
        });
        true
    }

    /// Reads and verifies every shard of every stored chunk, at most `bytes_per_second` if
    /// given, and in [`SweepMode::Repair`] rebuilds what is missing or corrupt. One sweep runs
    /// at a time.
    pub async fn sweep(
        &self,
        kind: &str,
        mode: SweepMode,
        bytes_per_second: Option<u64>,
    ) -> Result<SweepReport, ObjectError> {
        let report = self
            .begin_sweep(kind)
            .ok_or_else(|| ObjectError::Busy("a heal or scrub is already running".into()))?;
        self.run_sweep(report, mode, bytes_per_second).await
    }

    fn begin_sweep(&self, kind: &str) -> Option<SweepReport> {
        if self.maintenance.sweeping.swap(true, Ordering::AcqRel) {
            return None;
        }
        let report = SweepReport {
            kind: kind.to_owned(),
            started_ms: now_ms(),
            ..SweepReport::default()
        };
        self.maintenance.status().running = Some(report.clone());
        Some(report)
    }

    async fn run_sweep(
        &self,
        mut report: SweepReport,
        mode: SweepMode,
        bytes_per_second: Option<u64>,
    ) -> Result<SweepReport, ObjectError> {
        // Only an operator's heal adopts blank drives: a scheduled scrub must not take an
        // unmounted mount point for a replacement disk.
        if mode == SweepMode::Repair && report.kind == "heal" {
            let store = self.stripes.clone();
            report.drives_adopted = blocking(move || Ok(store.adopt_blank_drives_blocking()))
                .await
                .unwrap_or_default();
        }
        let result = self.sweep_all(&mut report, mode, bytes_per_second).await;
        if let Err(e) = &result {
            report.error = Some(e.to_string());
        }
        report.finished_ms = Some(now_ms());
        {
            let mut status = self.maintenance.status();
            status.running = None;
            status.last = Some(report.clone());
        }
        self.maintenance.sweeping.store(false, Ordering::Release);
        result.map(|()| report)
    }

    async fn sweep_all(
        &self,
        report: &mut SweepReport,
        mode: SweepMode,
        bytes_per_second: Option<u64>,
    ) -> Result<(), ObjectError> {
        let started = Instant::now();
        let mut cursor = None;
        loop {
            let page = self.meta.payload_page(cursor.take(), SWEEP_PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            cursor = Some(last.cursor.clone());
            report.records += page.len() as u64;
            let stripes: Vec<(Arc<PayloadOwner>, usize, StripeInfo)> = page
                .into_iter()
                .flat_map(|entry| {
                    let owner = Arc::new(entry.owner);
                    let stripes = entry.payload.stripes();
                    stripes
                        .into_iter()
                        .enumerate()
                        .map(move |(i, s)| (owner.clone(), i, to_info(&s)))
                        .collect::<Vec<_>>()
                })
                .collect();
            let mut checks = futures::stream::iter(stripes)
                .map(|(owner, index, info)| async move {
                    let outcome = self.sweep_stripe(owner.clone(), info, mode, true).await;
                    (owner, index, outcome)
                })
                .buffered(SWEEP_CONCURRENCY);
            while let Some((owner, index, outcome)) = checks.next().await {
                let outcome = outcome?;
                report.add(&outcome);
                if let Some(reason) = outcome.unrecoverable {
                    report
                        .unrecoverable
                        .push(format!("{owner}: chunk {index}: {reason}"));
                }
                if let Some(rate) = bytes_per_second.filter(|r| *r > 0) {
                    let due = Duration::from_secs_f64(report.bytes_checked as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                if report.stripes.is_multiple_of(64) {
                    self.maintenance.status().running = Some(report.clone());
                }
            }
            self.maintenance.status().running = Some(report.clone());
        }
    }

    /// Checks one stripe with one read of its shards, and repairs it if asked and the stripe
    /// is still in use (an object overwritten or deleted since the page was read is not
    /// resurrected, nor reported).
    /// Checks one stripe of `owner` and in [`SweepMode::Repair`] rebuilds its bad shards;
    /// with `relocate`, one whose drive cannot take it goes to a spare drive.
    pub(crate) async fn sweep_stripe(
        &self,
        owner: Arc<PayloadOwner>,
        info: StripeInfo,
        mode: SweepMode,
        relocate: bool,
    ) -> Result<StripeOutcome, ObjectError> {
        let store = self.stripes.clone();
        let this = self.clone();
        let runtime = tokio::runtime::Handle::current();
        let record_owner = owner.clone();
        let (info, check) = blocking(move || {
            let still_used = || {
                runtime
                    .block_on(this.still_refers(&owner, &info))
                    .unwrap_or(false)
            };
            let check = store.check_blocking(
                &info,
                &|| {
                    // Asked only when a shard is bad.
                    still_used() && mode == SweepMode::Repair
                },
                relocate,
            );
            let gone = check.health.iter().any(|h| *h != ShardHealth::Healthy)
                && check.healed.rebuilt.is_empty()
                && check.rebuild_error.is_none()
                && !still_used();
            Ok((info, (!gone).then_some(check)))
        })
        .await?;
        let mut outcome = StripeOutcome {
            shard_bytes: info.redundancy.shard_len(info.len as usize) as u64
                * info.shards.len() as u64,
            ..StripeOutcome::default()
        };
        let Some(check) = check else {
            return Ok(outcome);
        };
        if !check.healed.moved.is_empty() {
            self.record_moves(&record_owner, &info, &check.healed.moved)
                .await?;
        }
        outcome.health = check.health;
        outcome.healed = check.healed;
        let healthy = outcome
            .health
            .iter()
            .filter(|h| **h == ShardHealth::Healthy)
            .count();
        let needed = info.redundancy.shards_needed();
        if healthy < needed {
            outcome.unrecoverable = Some(format!(
                "only {healthy} of the {needed} shards needed ({}) are intact",
                info.redundancy
            ));
        } else if let Some(e) = check.rebuild_error {
            outcome.unrecoverable = Some(format!("rebuild failed: {e}"));
        }
        Ok(outcome)
    }
}

/// What a sweep learned about one stripe.
#[derive(Debug, Default)]
pub(crate) struct StripeOutcome {
    shard_bytes: u64,
    /// Empty when the stripe was dropped by its owner during the sweep.
    pub(crate) health: Vec<ShardHealth>,
    pub(crate) healed: Healed,
    pub(crate) unrecoverable: Option<String>,
}

impl StripeOutcome {
    /// Every shard is intact now: it was, or it was rebuilt.
    pub(crate) fn whole(&self) -> bool {
        !self.health.is_empty()
            && self.unrecoverable.is_none()
            && self
                .health
                .iter()
                .enumerate()
                .all(|(i, h)| *h == ShardHealth::Healthy || self.healed.rebuilt.contains(&i))
    }
}

impl SweepReport {
    fn add(&mut self, outcome: &StripeOutcome) {
        self.stripes += 1;
        self.bytes_checked += outcome.shard_bytes;
        self.shards_checked += outcome.health.len() as u64;
        for h in &outcome.health {
            match h {
                ShardHealth::Healthy => {}
                ShardHealth::Missing => self.shards_missing += 1,
                ShardHealth::Corrupt(_) => self.shards_corrupt += 1,
                ShardHealth::Unreadable(_) => self.shards_unreadable += 1,
            }
        }
        self.shards_rebuilt += outcome.healed.rebuilt.len() as u64;
        self.bytes_rebuilt += outcome.healed.bytes_rebuilt;
        self.shards_unwritable += outcome.healed.unwritable.len() as u64;
        self.shards_moved += outcome.healed.moved.len() as u64;
    }
}

/// What `basalt fsck` found (and fixed, with repair) on a stopped node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FsckReport {
    pub sweep: SweepReport,
    /// Shard files no record references.
    pub orphans: u64,
    pub orphans_removed: u64,
    /// Temporary files of writes a crash cut off.
    pub temporary_files: u64,
    pub unreadable_drives: Vec<String>,
}

impl FsckReport {
    /// Whether anything is wrong that repair did not fix.
    pub fn clean(&self) -> bool {
        let fixed_all = self.sweep.damaged_shards()
            == self.sweep.shards_rebuilt + self.sweep.shards_unwritable
            && self.sweep.shards_unwritable == 0;
        fixed_all
            && self.sweep.unrecoverable.is_empty()
            && self.orphans == self.orphans_removed
            && self.unreadable_drives.is_empty()
    }
}

impl ObjectStore {
    /// Checks a stopped node: every shard of every record, and every shard file against the
    /// records. With `repair`, rebuilds damaged shards and removes orphans and temporary files;
    /// records whose data cannot be rebuilt are reported and kept.
    pub async fn fsck(&self, repair: bool) -> Result<FsckReport, ObjectError> {
        let mode = if repair {
            SweepMode::Repair
        } else {
            SweepMode::Check
        };
        let mut report = FsckReport {
            sweep: self.sweep("fsck", mode, None).await?,
            ..FsckReport::default()
        };
        let live = self.live_shards().await?;
        let store = self.stripes.clone();
        let scan = blocking(move || Ok(store.scan_blocking(repair))).await?;
        report.temporary_files = scan.temporary as u64;
        report.unreadable_drives = scan
            .unreadable
            .iter()
            .map(|(drive, reason)| format!("drive {drive}: {reason}"))
            .collect();
        let orphans: Vec<_> = scan
            .files
            .into_iter()
            .filter(|file| !live.contains(file))
            .collect();
        report.orphans = orphans.len() as u64;
        if repair {
            let store = self.stripes.clone();
            report.orphans_removed = blocking(move || {
                let mut removed = 0;
                for (drive, id) in &orphans {
                    match store.delete_file_blocking(*drive, *id) {
                        Ok(()) => removed += 1,
                        Err(e) => tracing::warn!(drive, shard = %id, error = %e, "cannot remove an orphan shard"),
                    }
                }
                Ok(removed)
            })
            .await?;
        }
        Ok(report)
    }
}
