//! Stripes across the drives of a node: a chunk is written as the shards its redundancy policy
//! makes, each shard a checksummed chunk file on its own drive; reads fetch the data shards they
//! need in parallel and decode only when one is missing or corrupt.
//!
//! Shard `i` of stripe `s` is the chunk file whose id is `s` with its last byte XORed with `i`:
//! shard 0 has the stripe's own id (so a one-drive chunk file of format v1 is shard 0 of a
//! `none` stripe), and every shard of a stripe shares the stripe's fan-out directory.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use crate::chunk_file::{self, ChunkId, ChunkInfo};
use crate::drives::{DriveSet, Location};
use crate::{DataError, Redundancy};

/// Where one shard of a stripe lives and its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardInfo {
    pub drive: u16,
    pub crc32c: u32,
}

/// Everything a reader needs to find, verify and decode one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeInfo {
    pub id: ChunkId,
    /// Bytes of the chunk (before padding and parity).
    pub len: u32,
    pub redundancy: Redundancy,
    /// One per shard, in shard order: data shards first, then parity.
    pub shards: Vec<ShardInfo>,
}

pub fn shard_id(stripe: ChunkId, index: usize) -> ChunkId {
    let mut id = stripe.0;
    id[15] ^= index as u8;
    ChunkId(id)
}

impl StripeInfo {
    /// The chunk file of shard `index`.
    pub fn shard_file(&self, index: usize) -> Option<ChunkInfo> {
        let shard = self.shards.get(index)?;
        Some(ChunkInfo {
            id: shard_id(self.id, index),
            len: self.redundancy.shard_len(self.len as usize) as u32,
            crc32c: shard.crc32c,
        })
    }
}

/// A stripe just written: which of its shards reached their drive.
#[derive(Debug, Clone)]
pub struct WrittenStripe {
    pub info: StripeInfo,
    pub written: Vec<bool>,
}

impl WrittenStripe {
    /// Whether some shard is missing and the stripe needs healing.
    pub fn degraded(&self) -> bool {
        self.written.iter().any(|w| !w)
    }
}

/// The bytes of a range of a chunk, in order, and the shards that failed on the way.
#[derive(Debug)]
pub struct StripeRead {
    pub pieces: Vec<Bytes>,
    pub damaged: Vec<usize>,
}

/// The state of one shard as a full check finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardHealth {
    Healthy,
    Missing,
    Corrupt(String),
    Unreadable(String),
}

impl ShardHealth {
    fn of(result: &Result<Bytes, DataError>) -> Self {
        match result {
            Ok(_) => Self::Healthy,
            Err(DataError::NotFound(_)) => Self::Missing,
            Err(DataError::Corrupt { reason, .. }) => Self::Corrupt(reason.clone()),
            Err(e) => Self::Unreadable(e.to_string()),
        }
    }
}

/// What healing one stripe did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Healed {
    /// Shards rebuilt and written back to their drive.
    pub rebuilt: Vec<usize>,
    pub bytes_rebuilt: u64,
    /// Shards that were bad but could not be written back (their drive is gone, and no spare
    /// drive took them).
    pub unwritable: Vec<(usize, String)>,
    /// Shards written to a spare drive because theirs is gone: (shard, from drive, to drive).
    /// The stripe's record must be updated to point at them.
    pub moved: Vec<(usize, u16, u16)>,
}

/// What one check of a stripe found, and what it rebuilt.
#[derive(Debug, Default)]
pub struct StripeCheck {
    /// One per shard, in shard order.
    pub health: Vec<ShardHealth>,
    pub healed: Healed,
    /// Why the bad shards could not be rebuilt, if they could not.
    pub rebuild_error: Option<DataError>,
}

/// Shard files found on the drives.
#[derive(Debug, Default)]
pub struct DriveScan {
    pub files: Vec<(u16, ChunkId)>,
    pub temporary: usize,
    pub unreadable: Vec<(u16, String)>,
}

/// Where a drive is, for placement: the zone and the node it belongs to (indices into the
/// cluster's zones and nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureDomain {
    pub zone: u32,
    pub node: u32,
}

/// A drive's rendezvous score for a stripe: every coordinator computes the same, and adding
/// or removing a drive moves only the stripes that drive wins or loses.
fn rendezvous_score(id: &ChunkId, drive: usize) -> u64 {
    let mut x = u64::from_le_bytes([
        id.0[8], id.0[9], id.0[10], id.0[11], id.0[12], id.0[13], id.0[14], id.0[15],
    ]) ^ (drive as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // splitmix64's finalizer: every input bit moves every output bit.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `count` distinct drives for a stripe by rendezvous hashing over (zone → node → drive):
/// each pick is the best-scoring drive in a zone not used yet (while one remains), then on a
/// node not used yet (while one remains).
fn spread_over_domains(id: &ChunkId, domains: &[FailureDomain], count: usize) -> Vec<u16> {
    let scores: Vec<u64> = (0..domains.len())
        .map(|d| rendezvous_score(id, d))
        .collect();
    let zones = {
        let mut z: Vec<u32> = domains.iter().map(|d| d.zone).collect();
        z.sort_unstable();
        z.dedup();
        z.len()
    };
    let nodes = {
        let mut n: Vec<u32> = domains.iter().map(|d| d.node).collect();
        n.sort_unstable();
        n.dedup();
        n.len()
    };
    let mut chosen: Vec<usize> = Vec::with_capacity(count);
    while chosen.len() < count.min(domains.len()) {
        let used_zones: Vec<u32> = chosen.iter().map(|&d| domains[d].zone).collect();
        let used_nodes: Vec<u32> = chosen.iter().map(|&d| domains[d].node).collect();
        let zone_left = used_zones
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            < zones;
        let node_left = used_nodes
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            < nodes;
        let best = (0..domains.len())
            .filter(|d| !chosen.contains(d))
            .max_by_key(|&d| {
                (
                    !(zone_left && used_zones.contains(&domains[d].zone)),
                    !(node_left && used_nodes.contains(&domains[d].node)),
                    scores[d],
                )
            });
        match best {
            Some(d) => chosen.push(d),
            None => break,
        }
    }
    chosen.into_iter().map(|d| d as u16).collect()
}

#[derive(Clone)]
pub struct StripeStore {
    inner: Arc<Inner>,
}

struct Inner {
    drives: DriveSet,
    redundancy: Redundancy,
    /// Per drive, in drive order: its failure domains (zone, node) in a cluster; empty on one
    /// node.
    domains: Vec<FailureDomain>,
    /// Per drive: whether its last write failed, so a lost drive is reported once, not per shard.
    failing: Vec<AtomicBool>,
}

impl StripeStore {
    /// Opens the node's drives; new stripes get `redundancy`, or the default for the number of
    /// drives.
    pub fn open(paths: &[PathBuf], redundancy: Option<Redundancy>) -> Result<Self, DataError> {
        let locations: Vec<Location> = paths.iter().cloned().map(Location::Local).collect();
        Self::open_at(&locations, redundancy)
    }

    /// [`Self::open`] for drives of this node and of others.
    pub fn open_at(
        locations: &[Location],
        redundancy: Option<Redundancy>,
    ) -> Result<Self, DataError> {
        Self::with_drives(DriveSet::open_at(locations)?, redundancy, Vec::new())
    }

    /// A store over drives already opened, spread over failure domains (one per drive, in
    /// drive order): no two shards of a stripe share a node, nor a zone when there are as many
    /// zones as shards.
    pub fn with_drives(
        drives: DriveSet,
        redundancy: Option<Redundancy>,
        domains: Vec<FailureDomain>,
    ) -> Result<Self, DataError> {
        if !domains.is_empty() && domains.len() != drives.len() {
            return Err(DataError::Layout(format!(
                "{} failure domains for {} drives",
                domains.len(),
                drives.len()
            )));
        }
        let redundancy = redundancy.unwrap_or_else(|| Redundancy::default_for(drives.len()));
        if redundancy.shard_count() > drives.len() {
            return Err(DataError::Layout(format!(
                "{redundancy} puts {} shards on distinct drives; the node has {}",
                redundancy.shard_count(),
                drives.len()
            )));
        }
        let failing = (0..drives.len()).map(|_| AtomicBool::new(false)).collect();
        Ok(Self {
            inner: Arc::new(Inner {
                drives,
                redundancy,
                domains,
                failing,
            }),
        })
    }

    pub fn redundancy(&self) -> Redundancy {
        self.inner.redundancy
    }

    pub fn drives(&self) -> &DriveSet {
        &self.inner.drives
    }

    /// Distinct drives for the shards of a stripe: a rotation that starts at a drive picked by
    /// the stripe id, so data and parity spread evenly over the drives.
    fn placement(&self, id: ChunkId, count: usize) -> Vec<u16> {
        if !self.inner.domains.is_empty() {
            return spread_over_domains(&id, &self.inner.domains, count);
        }
        let n = self.inner.drives.len();
        let start = u64::from_le_bytes([
            id.0[1], id.0[2], id.0[3], id.0[4], id.0[5], id.0[6], id.0[7], id.0[8],
        ]) % n as u64;
        (0..count)
            .map(|i| ((start as usize + i) % n) as u16)
            .collect()
    }

    fn note(&self, drive: u16, result: &Result<(), DataError>) {
        let Some(flag) = self.inner.failing.get(usize::from(drive)) else {
            return;
        };
        let was_failing = flag.swap(result.is_err(), Ordering::Relaxed);
        match result {
            Err(e) if !was_failing => {
                tracing::error!(drive, error = %e, "drive write failed; its shards go missing until healed");
            }
            Ok(()) if was_failing => tracing::info!(drive, "drive writes succeed again"),
            _ => {}
        }
    }

    fn write_shard(&self, drive: u16, file: &ChunkInfo, data: &[u8]) -> Result<(), DataError> {
        let result = match self.inner.drives.get(drive) {
            Some(d) if d.online() => d.store.write_file_blocking(file, data),
            Some(_) => Err(DataError::Offline(drive)),
            None => Err(DataError::Layout(format!("no drive {drive}"))),
        };
        self.note(drive, &result);
        result
    }

    fn read_shard(&self, stripe: &StripeInfo, index: usize) -> Result<Bytes, DataError> {
        let (Some(file), Some(shard)) = (stripe.shard_file(index), stripe.shards.get(index)) else {
            return Err(DataError::Layout(format!("stripe has no shard {index}")));
        };
        match self.inner.drives.get(shard.drive) {
            Some(d) if d.online() => d.store.read_blocking(&file),
            Some(_) => Err(DataError::Offline(shard.drive)),
            None => Err(DataError::Layout(format!("no drive {}", shard.drive))),
        }
    }

    /// Reads shards `indices` of a stripe, in parallel when there are several.
    fn read_shards(
        &self,
        stripe: &StripeInfo,
        indices: &[usize],
    ) -> Vec<(usize, Result<Bytes, DataError>)> {
        if indices.len() <= 1 {
            return indices
                .iter()
                .map(|&i| (i, self.read_shard(stripe, i)))
                .collect();
        }
        let span = tracing::Span::current();
        let span = &span;
        std::thread::scope(|scope| {
            let handles: Vec<_> = indices
                .iter()
                .map(|&i| {
                    let thread = std::thread::Builder::new().spawn_scoped(scope, move || {
                        let _entered = span.enter();
                        self.read_shard(stripe, i)
                    });
                    (i, thread)
                })
                .collect();
            handles
                .into_iter()
                .map(|(i, thread)| (i, joined(thread)))
                .collect()
        })
    }

    /// Writes `chunk` as a new stripe in fan-out directory `group`, every shard fsynced; the
    /// directory entries become durable with [`StripeStore::sync_blocking`]. Fails, leaving
    /// nothing behind, when fewer shards than the write quorum reach their drives. Blocking.
    pub fn write_blocking(&self, group: u8, chunk: &Bytes) -> Result<WrittenStripe, DataError> {
        self.write_as_blocking(ChunkId::random_in_group(group), chunk)
    }

    /// [`StripeStore::write_blocking`] under an id the caller drew (with
    /// [`ChunkId::random_in_group`]) before: a sealed chunk names its stripe inside the seal.
    pub fn write_as_blocking(
        &self,
        id: ChunkId,
        chunk: &Bytes,
    ) -> Result<WrittenStripe, DataError> {
        let _span = tracing::debug_span!("stripe.write", bytes = chunk.len()).entered();
        let redundancy = self.inner.redundancy;
        let len =
            u32::try_from(chunk.len()).map_err(|_| DataError::Layout("chunk > 4 GiB".into()))?;
        let shards = redundancy.encode(chunk)?;
        let drives = self.placement(id, shards.len());
        let info = StripeInfo {
            id,
            len,
            redundancy,
            shards: shards
                .iter()
                .zip(&drives)
                .map(|(data, &drive)| ShardInfo {
                    drive,
                    crc32c: chunk_file::crc32c(data),
                })
                .collect(),
        };
        let files: Vec<ChunkInfo> = (0..shards.len())
            .filter_map(|i| info.shard_file(i))
            .collect();
        let results: Vec<Result<(), DataError>> = if shards.len() == 1 {
            vec![self.write_shard(drives[0], &files[0], &shards[0])]
        } else {
            let span = tracing::Span::current();
            let span = &span;
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..shards.len())
                    .map(|i| {
                        let (drive, file, data) = (drives[i], &files[i], &shards[i]);
                        std::thread::Builder::new().spawn_scoped(scope, move || {
                            let _entered = span.enter();
                            self.write_shard(drive, file, data)
                        })
                    })
                    .collect();
                handles.into_iter().map(joined).collect()
            })
        };
        let written: Vec<bool> = results.iter().map(Result::is_ok).collect();
        let count = written.iter().filter(|w| **w).count();
        let quorum = redundancy.write_quorum();
        if count < quorum {
            let stripe = WrittenStripe { info, written };
            self.delete_blocking(&stripe.info);
            // Every drive that failed is full: say so rather than blame unavailability.
            if results
                .iter()
                .all(|r| matches!(r, Ok(()) | Err(DataError::DriveFull)))
            {
                return Err(DataError::DriveFull);
            }
            if shards.len() == 1
                && let Some(Err(e)) = results.into_iter().next()
            {
                return Err(e);
            }
            return Err(DataError::WriteQuorum {
                written: count,
                needed: quorum,
            });
        }
        Ok(WrittenStripe { info, written })
    }

    /// Makes the directory entries of the stripes written into `group` durable, on every drive
    /// that holds one of their shards; fails if a stripe is left with fewer durable shards than
    /// its write quorum. Answers the drives that failed to sync: the shards written there may
    /// not survive, so their stripes are owed a heal. Blocking.
    pub fn sync_blocking(
        &self,
        group: u8,
        stripes: &[WrittenStripe],
    ) -> Result<Vec<u16>, DataError> {
        let mut used = vec![false; self.inner.drives.len()];
        for stripe in stripes {
            for (shard, written) in stripe.info.shards.iter().zip(&stripe.written) {
                if *written && let Some(u) = used.get_mut(usize::from(shard.drive)) {
                    *u = true;
                }
            }
        }
        let mut synced = vec![false; used.len()];
        let mut last_error = None;
        for drive in self.inner.drives.iter() {
            if !used[usize::from(drive.index)] {
                continue;
            }
            let result = drive.store.sync_group_blocking(group);
            self.note(drive.index, &result);
            match result {
                Ok(()) => synced[usize::from(drive.index)] = true,
                Err(e) => last_error = Some(e),
            }
        }
        let Some(error) = last_error else {
            return Ok(Vec::new());
        };
        for stripe in stripes {
            let durable = stripe
                .info
                .shards
                .iter()
                .zip(&stripe.written)
                .filter(|(s, w)| **w && synced[usize::from(s.drive)])
                .count();
            let quorum = stripe.info.redundancy.write_quorum();
            if durable < quorum {
                return Err(if stripe.info.shards.len() == 1 {
                    error
                } else {
                    DataError::WriteQuorum {
                        written: durable,
                        needed: quorum,
                    }
                });
            }
        }
        Ok(self
            .inner
            .drives
            .iter()
            .map(|d| d.index)
            .filter(|&d| used[usize::from(d)] && !synced[usize::from(d)])
            .collect())
    }

    /// Reads bytes `range` of a stripe's chunk, verifying every shard read. Erasure-coded
    /// stripes read only the data shards the range covers, in parallel, and fall back to the
    /// other shards and a decode when one of those fails. Blocking.
    pub fn read_blocking(
        &self,
        stripe: &StripeInfo,
        range: Range<usize>,
    ) -> Result<StripeRead, DataError> {
        let _span = tracing::debug_span!("stripe.read", bytes = range.len()).entered();
        let redundancy = stripe.redundancy;
        let len = stripe.len as usize;
        if range.end > len
            || range.start > range.end
            || stripe.shards.len() != redundancy.shard_count()
        {
            return Err(DataError::Corrupt {
                id: stripe.id,
                reason: "stripe record does not match its policy or the range asked".into(),
            });
        }
        if let Redundancy::None | Redundancy::Replica { .. } = redundancy {
            let mut damaged = Vec::new();
            let mut last_error = None;
            for i in 0..stripe.shards.len() {
                match self.read_shard(stripe, i) {
                    Ok(data) => {
                        return Ok(StripeRead {
                            pieces: vec![data.slice(range)],
                            damaged,
                        });
                    }
                    Err(e) => {
                        log_unreadable(stripe, i, &e);
                        damaged.push(i);
                        last_error = Some(e);
                    }
                }
            }
            return Err(match last_error {
                Some(e) if stripe.shards.len() == 1 => e,
                _ => DataError::TooFewShards {
                    readable: 0,
                    needed: 1,
                },
            });
        }
        let k = redundancy.shards_needed();
        let wanted: Vec<usize> = (0..k)
            .filter(|&i| {
                let r = redundancy.data_range(len, i);
                r.start < range.end && range.start < r.end
            })
            .collect();
        let mut shards: Vec<Option<Bytes>> = vec![None; stripe.shards.len()];
        let mut damaged = Vec::new();
        let mut unreachable = false;
        let mut collect = |results: Vec<(usize, Result<Bytes, DataError>)>,
                           shards: &mut Vec<Option<Bytes>>,
                           damaged: &mut Vec<usize>| {
            for (i, result) in results {
                match result {
                    Ok(data) => shards[i] = Some(data),
                    Err(e) => {
                        log_unreadable(stripe, i, &e);
                        unreachable |= is_unreachable(&e);
                        damaged.push(i);
                    }
                }
            }
        };
        collect(self.read_shards(stripe, &wanted), &mut shards, &mut damaged);
        if wanted.iter().any(|&i| shards[i].is_none()) {
            let rest: Vec<usize> = (0..stripe.shards.len())
                .filter(|i| !wanted.contains(i))
                .collect();
            collect(self.read_shards(stripe, &rest), &mut shards, &mut damaged);
            redundancy
                .reconstruct_data(len, &mut shards)
                .map_err(|e| match e {
                    DataError::TooFewShards { needed, .. } if unreachable => {
                        DataError::ShardsUnreachable { needed }
                    }
                    other => other,
                })?;
            // Decoded shards must be the bytes that were written, or the client gets an error.
            for &i in &wanted {
                let (Some(data), Some(shard)) = (&shards[i], stripe.shards.get(i)) else {
                    continue;
                };
                if damaged.contains(&i) && chunk_file::crc32c(data) != shard.crc32c {
                    return Err(DataError::Corrupt {
                        id: stripe.id,
                        reason: format!("decoded shard {i} does not match its recorded checksum"),
                    });
                }
            }
        }
        let mut pieces = Vec::with_capacity(wanted.len());
        for i in wanted {
            let r = redundancy.data_range(len, i);
            let from = range.start.max(r.start) - r.start;
            let to = range.end.min(r.end) - r.start;
            let shard = shards[i].as_ref().ok_or(DataError::TooFewShards {
                readable: 0,
                needed: k,
            })?;
            pieces.push(shard.slice(from..to));
        }
        damaged.sort_unstable();
        Ok(StripeRead { pieces, damaged })
    }

    /// Reads and verifies every shard of a stripe. Blocking.
    pub fn inspect_blocking(&self, stripe: &StripeInfo) -> Vec<ShardHealth> {
        self.check_blocking(stripe, &|| false, false).health
    }

    /// Rebuilds every missing or corrupt shard of a stripe from the others and writes it back
    /// to its drive, durably. Fails when too few shards survive to rebuild from. Blocking.
    pub fn heal_blocking(&self, stripe: &StripeInfo) -> Result<Healed, DataError> {
        let check = self.check_blocking(stripe, &|| true, false);
        match check.rebuild_error {
            Some(e) => Err(e),
            None => Ok(check.healed),
        }
    }

    /// Reads and verifies every shard of a stripe once; if some are bad and `repair()` says
    /// so (asked only then, so a caller can first confirm the stripe is still in use), rebuilds
    /// them from the others and writes them back to their drives, durably. With `relocate`, a
    /// shard whose drive cannot take it goes to a spare drive (one holding no shard of the
    /// stripe), reported in [`Healed::moved`] for the caller to record. Blocking.
    pub fn check_blocking(
        &self,
        stripe: &StripeInfo,
        repair: &dyn Fn() -> bool,
        relocate: bool,
    ) -> StripeCheck {
        let all: Vec<usize> = (0..stripe.shards.len()).collect();
        let mut shards: Vec<Option<Bytes>> = vec![None; stripe.shards.len()];
        let mut check = StripeCheck {
            health: vec![ShardHealth::Healthy; stripe.shards.len()],
            ..StripeCheck::default()
        };
        for (i, result) in self.read_shards(stripe, &all) {
            check.health[i] = ShardHealth::of(&result);
            shards[i] = result.ok();
        }
        let bad: Vec<usize> = (0..shards.len()).filter(|&i| shards[i].is_none()).collect();
        if bad.is_empty() || !repair() {
            return check;
        }
        if let Err(e) = stripe
            .redundancy
            .reconstruct(stripe.len as usize, &mut shards)
        {
            check.rebuild_error = Some(e);
            return check;
        }
        // Every rebuilt shard must be the bytes that were written before any is stored.
        for &i in &bad {
            let (Some(file), Some(data)) = (stripe.shard_file(i), shards[i].as_ref()) else {
                continue;
            };
            if chunk_file::crc32c(data) != file.crc32c {
                check.rebuild_error = Some(DataError::Corrupt {
                    id: stripe.id,
                    reason: format!("rebuilt shard {i} does not match its recorded checksum"),
                });
                return check;
            }
        }
        let mut written: Vec<(usize, u16)> = Vec::new();
        for i in bad {
            let (Some(file), Some(data), Some(shard)) = (
                stripe.shard_file(i),
                shards[i].as_ref(),
                stripe.shards.get(i),
            ) else {
                continue;
            };
            let taken: Vec<u16> = written.iter().map(|(_, d)| *d).collect();
            let mut target = match self.write_shard(shard.drive, &file, data) {
                Ok(()) => Some(shard.drive),
                Err(e) => {
                    check.healed.unwritable.push((i, e.to_string()));
                    None
                }
            };
            if target.is_none() && relocate {
                target = self.write_to_spare(stripe, &taken, &file, data);
                if target.is_some() {
                    check.healed.unwritable.pop();
                }
            }
            if let Some(drive) = target {
                written.push((i, drive));
            }
        }
        // A shard counts as rebuilt (or moved) only once its name is durable.
        let mut synced: Vec<(u16, bool)> = Vec::new();
        for &(i, drive) in &written {
            let ok = match synced.iter().find(|(d, _)| *d == drive) {
                Some((_, ok)) => *ok,
                None => {
                    let ok =
                        self.inner.drives.get(drive).is_some_and(|d| {
                            d.store.sync_group_blocking(stripe.id.group()).is_ok()
                        });
                    synced.push((drive, ok));
                    ok
                }
            };
            let Some(shard) = stripe.shards.get(i) else {
                continue;
            };
            if ok {
                check.healed.rebuilt.push(i);
                check.healed.bytes_rebuilt += u64::from(stripe.shard_file(i).map_or(0, |f| f.len));
                if drive != shard.drive {
                    check.healed.moved.push((i, shard.drive, drive));
                }
            } else {
                check
                    .healed
                    .unwritable
                    .push((i, format!("drive {drive} failed to sync")));
                if drive != shard.drive
                    && let Some(d) = self.inner.drives.get(drive)
                {
                    let _ = d.store.delete_blocking(shard_id(stripe.id, i));
                }
            }
        }
        check
    }

    /// Writes a shard to a drive that holds no shard of the stripe (nor one just written);
    /// returns the drive, or `None` if no spare drive took it.
    fn write_to_spare(
        &self,
        stripe: &StripeInfo,
        taken: &[u16],
        file: &ChunkInfo,
        data: &[u8],
    ) -> Option<u16> {
        let n = self.inner.drives.len();
        let start = stripe.shards.last().map_or(0, |s| usize::from(s.drive) + 1);
        (0..n)
            .map(|i| ((start + i) % n) as u16)
            .filter(|d| !stripe.shards.iter().any(|s| s.drive == *d) && !taken.contains(d))
            .find(|d| self.write_shard(*d, file, data).is_ok())
    }

    /// Deletes every shard file of a stripe; shards already gone are not an error, and a drive
    /// that fails leaves an orphan for the collector. Blocking.
    pub fn delete_blocking(&self, stripe: &StripeInfo) {
        for (i, shard) in stripe.shards.iter().enumerate() {
            if let Some(d) = self.inner.drives.get(shard.drive)
                && d.online()
                && let Err(e) = d.store.delete_blocking(shard_id(stripe.id, i))
            {
                tracing::warn!(stripe = %stripe.id, shard = i, error = %e, "could not delete shard");
            }
        }
    }

    /// Deletes one shard file found on a drive (an orphan). Blocking.
    pub fn delete_file_blocking(&self, drive: u16, id: ChunkId) -> Result<(), DataError> {
        match self.inner.drives.get(drive) {
            Some(d) if d.online() => d.store.delete_blocking(id),
            _ => Ok(()),
        }
    }

    /// Lists the shard files of every drive; temporary files of cut-off writes are removed
    /// when `remove_temporary` is set. A drive that cannot be listed is reported, not fatal.
    /// Blocking.
    pub fn scan_blocking(&self, remove_temporary: bool) -> DriveScan {
        let mut scan = DriveScan::default();
        for drive in self.inner.drives.iter() {
            if !drive.online() {
                scan.unreadable.push((drive.index, "offline".to_owned()));
                continue;
            }
            match drive.store.scan_files_blocking(remove_temporary) {
                Ok((ids, temporary)) => {
                    scan.files
                        .extend(ids.into_iter().map(|id| (drive.index, id)));
                    scan.temporary += temporary;
                }
                Err(e) => scan.unreadable.push((drive.index, e.to_string())),
            }
        }
        scan
    }

    /// See [`DriveSet::reconnect_remote_drives_blocking`].
    pub fn reconnect_remote_drives_blocking(&self) -> Vec<u16> {
        self.inner.drives.reconnect_remote_drives_blocking()
    }

    /// See [`DriveSet::adopt_blank_drives_blocking`].
    pub fn adopt_blank_drives_blocking(&self) -> Vec<u16> {
        self.inner.drives.adopt_blank_drives_blocking()
    }
}

/// A lost drive makes every read of its shards fail the same way: that is worth a debug line
/// per shard, while corruption is worth a warning each time.
fn log_unreadable(stripe: &StripeInfo, shard: usize, error: &DataError) {
    if let DataError::NotFound(_) = error {
        tracing::debug!(stripe = %stripe.id, shard, "shard missing; reading around it");
    } else {
        tracing::warn!(stripe = %stripe.id, shard, %error, "shard unreadable; reading around it");
    }
}

/// The result of a shard I/O thread; a thread that could not start or panicked is a failed
/// shard, never a failed process.
fn joined<T>(
    thread: std::io::Result<std::thread::ScopedJoinHandle<'_, Result<T, DataError>>>,
) -> Result<T, DataError> {
    match thread {
        Ok(handle) => handle.join().unwrap_or_else(|_| {
            Err(DataError::Io(std::io::Error::other(
                "shard I/O thread panicked",
            )))
        }),
        Err(e) => Err(DataError::Io(e)),
    }
}

/// A shard read that failed because its node or drive did not answer, not because the shard is
/// known to be lost.
fn is_unreachable(e: &DataError) -> bool {
    match e {
        DataError::Io(io) => io.kind() == std::io::ErrorKind::NotConnected,
        DataError::Offline(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn shards_spread_over_nodes_and_zones_first() {
        // 3 nodes of 2 drives, nodes 0 and 1 in zone 0, node 2 in zone 1.
        let domains: Vec<FailureDomain> = [(0, 0), (0, 0), (0, 1), (0, 1), (1, 2), (1, 2)]
            .iter()
            .map(|&(zone, node)| FailureDomain { zone, node })
            .collect();
        let mut per_drive = [0usize; 6];
        for _ in 0..600 {
            let id = ChunkId::random();
            let three = spread_over_domains(&id, &domains, 3);
            let nodes: std::collections::BTreeSet<u32> = three
                .iter()
                .map(|&d| domains[usize::from(d)].node)
                .collect();
            assert_eq!(nodes.len(), 3, "no two shards on one node: {three:?}");
            let two = spread_over_domains(&id, &domains, 2);
            let zones: std::collections::BTreeSet<u32> =
                two.iter().map(|&d| domains[usize::from(d)].zone).collect();
            assert_eq!(zones.len(), 2, "no two shards in one zone: {two:?}");
            assert_eq!(spread_over_domains(&id, &domains, 3), three, "stable");
            let six = spread_over_domains(&id, &domains, 6);
            let distinct: std::collections::BTreeSet<u16> = six.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                6,
                "more shards than nodes still take distinct drives"
            );
            for d in three {
                per_drive[usize::from(d)] += 1;
            }
        }
        assert!(
            per_drive.iter().all(|&n| n > 150),
            "spread evenly: {per_drive:?}"
        );
    }
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use std::fs;

    fn node(n: usize, policy: &str) -> (tempfile::TempDir, Vec<PathBuf>, StripeStore) {
        let root = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..n).map(|i| root.path().join(format!("d{i}"))).collect();
        let store = StripeStore::open(&paths, Some(policy.parse().unwrap())).unwrap();
        (root, paths, store)
    }

    fn read_all(
        store: &StripeStore,
        info: &StripeInfo,
    ) -> Result<(Vec<u8>, Vec<usize>), DataError> {
        let read = store.read_blocking(info, 0..info.len as usize)?;
        Ok((read.pieces.concat(), read.damaged))
    }

    fn shard_path(paths: &[PathBuf], info: &StripeInfo, i: usize) -> PathBuf {
        let id = shard_id(info.id, i).to_hex();
        paths[usize::from(info.shards[i].drive)]
            .join("chunks")
            .join(&id[..2])
            .join(id)
    }

    #[test]
    fn lost_and_rotten_shards_are_read_around_and_healed() {
        let (_root, paths, store) = node(6, "ec:4+2");
        let chunk: Bytes = (0..1_000_003u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let written = store.write_blocking(7, &chunk).unwrap();
        assert!(!written.degraded());
        store
            .sync_blocking(7, std::slice::from_ref(&written))
            .unwrap();
        let info = written.info;
        let drives: std::collections::HashSet<u16> = info.shards.iter().map(|s| s.drive).collect();
        assert_eq!(drives.len(), 6, "shards share a drive");

        fs::remove_file(shard_path(&paths, &info, 1)).unwrap();
        let rotten = shard_path(&paths, &info, 4);
        let mut raw = fs::read(&rotten).unwrap();
        raw[100] ^= 0x10;
        fs::write(&rotten, raw).unwrap();
        let (bytes, damaged) = read_all(&store, &info).unwrap();
        assert_eq!(bytes, chunk);
        assert_eq!(damaged, vec![1, 4]);

        // A range inside one intact data shard reads only that shard.
        let r = store.read_blocking(&info, 10..20).unwrap();
        assert_eq!(r.pieces.concat(), &chunk[10..20]);
        assert!(r.damaged.is_empty());

        let healed = store.heal_blocking(&info).unwrap();
        assert_eq!(healed.rebuilt, vec![1, 4]);
        assert!(
            store
                .inspect_blocking(&info)
                .iter()
                .all(|h| *h == ShardHealth::Healthy)
        );

        for i in [0, 2, 5] {
            fs::remove_file(shard_path(&paths, &info, i)).unwrap();
        }
        assert!(matches!(
            read_all(&store, &info),
            Err(DataError::TooFewShards {
                readable: 3,
                needed: 4
            })
        ));
    }

    #[test]
    fn writes_need_their_quorum() {
        let (_root, paths, store) = node(6, "ec:4+2");
        fs::remove_dir_all(&paths[0]).unwrap();
        fs::remove_dir_all(&paths[3]).unwrap();
        let chunk = Bytes::from(vec![5u8; 4096]);
        let written = store.write_blocking(1, &chunk).unwrap();
        assert!(written.degraded());
        store
            .sync_blocking(1, std::slice::from_ref(&written))
            .unwrap();
        assert_eq!(read_all(&store, &written.info).unwrap().0, chunk);

        fs::remove_dir_all(&paths[5]).unwrap();
        assert!(matches!(
            store.write_blocking(1, &chunk),
            Err(DataError::WriteQuorum {
                written: 3,
                needed: 4
            })
        ));
        let left: usize = store.scan_blocking(false).files.len();
        assert_eq!(
            left, 3,
            "only the first stripe's shards on the surviving drives remain"
        );
    }

    /// Property: random sizes, policies and sets of lost shards (at most the parity) read back
    /// exactly, from disk.
    #[test]
    fn random_stripes_survive_random_losses() {
        let mut rng = StdRng::seed_from_u64(42);
        for policy in ["none", "replica:3", "ec:2+1", "ec:4+2", "ec:3+3"] {
            let (_root, paths, store) = node(6, policy);
            for _ in 0..12 {
                let len = rng.random_range(0..200_000);
                let chunk: Bytes = (0..len)
                    .map(|_| rng.random::<u8>())
                    .collect::<Vec<_>>()
                    .into();
                let written = store.write_blocking(rng.random(), &chunk).unwrap();
                let info = written.info;
                let r = info.redundancy;
                let losses = rng.random_range(0..=r.shard_count() - r.shards_needed());
                for _ in 0..losses {
                    let _ = fs::remove_file(shard_path(
                        &paths,
                        &info,
                        rng.random_range(0..r.shard_count()),
                    ));
                }
                assert_eq!(read_all(&store, &info).unwrap().0, chunk, "{policy} {len}");
                let from = rng.random_range(0..=len);
                let to = rng.random_range(from..=len);
                let part = store
                    .read_blocking(&info, from..to)
                    .unwrap()
                    .pieces
                    .concat();
                assert_eq!(part, &chunk[from..to]);
            }
        }
    }
}
