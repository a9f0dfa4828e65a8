//! The drives of a node and their identity files.
//!
//! Each drive carries `basalt-drive` (32 bytes, little-endian, version 1): magic `BSLTDRIV`,
//! format version, a reserved byte, the drive's index in its set (u16), the set's drive count
//! (u16), two reserved bytes and the set's 128-bit id. Stripes record drives by index, so the
//! order drives are given in on the command line does not matter, a drive of another set is
//! refused, and an empty directory where a drive used to be is formatted as that drive again
//! once an operator asks for it (`basalt admin heal`), to be refilled by healing.
//!
//! Nothing is created or formatted at start-up except for a brand-new set: a missing path or an
//! empty directory where a known drive should be may be an unmounted disk, and writing there
//! would fill the file system beneath the mount point. Such a drive stays offline.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::DataError;
use crate::remote::{RemoteDrive, RemoteIdentity};
use crate::store::{ChunkStore, sync_dir};

pub(crate) const IDENTITY_FILE: &str = "basalt-drive";
/// How long opening a set waits for drives of other nodes that do not answer yet.
const UNREACHABLE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
const IDENTITY_MAGIC: &[u8; 8] = b"BSLTDRIV";
const IDENTITY_VERSION: u8 = 1;
const IDENTITY_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    set: [u8; 16],
    index: u16,
    count: u16,
}

impl Identity {
    fn to_bytes(self) -> [u8; IDENTITY_LEN] {
        let mut b = [0u8; IDENTITY_LEN];
        b[0..8].copy_from_slice(IDENTITY_MAGIC);
        b[8] = IDENTITY_VERSION;
        b[10..12].copy_from_slice(&self.index.to_le_bytes());
        b[12..14].copy_from_slice(&self.count.to_le_bytes());
        b[16..32].copy_from_slice(&self.set);
        b
    }

    fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != IDENTITY_LEN || &b[0..8] != IDENTITY_MAGIC || b[8] != IDENTITY_VERSION {
            return None;
        }
        Some(Self {
            index: u16::from_le_bytes([b[10], b[11]]),
            count: u16::from_le_bytes([b[12], b[13]]),
            set: b[16..32].try_into().ok()?,
        })
    }
}

/// Where a drive is: a directory of this node, or a drive another node serves.
#[derive(Clone, Debug)]
pub enum Location {
    Local(PathBuf),
    Remote(RemoteDrive),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::Remote(drive) => write!(f, "{drive}"),
        }
    }
}

impl Location {
    fn inspect(&self) -> Found {
        match self {
            Self::Local(path) => inspect(path),
            Self::Remote(drive) => match drive.identity() {
                Ok(RemoteIdentity::Formatted(bytes)) => match Identity::from_bytes(&bytes) {
                    Some(identity) => Found::Formatted(identity),
                    None => Found::Unusable(format!("{IDENTITY_FILE} is damaged")),
                },
                Ok(RemoteIdentity::Blank) => Found::Blank,
                Ok(RemoteIdentity::Missing) => Found::Missing,
                Err(e) => Found::Unreachable(e.to_string()),
            },
        }
    }

    /// Formats the drive as `identity`; `create` makes its directory first.
    fn format(&self, identity: Identity, create: bool) -> Result<(), DataError> {
        match self {
            Self::Local(path) => {
                if create {
                    fs::create_dir_all(path)?;
                }
                Ok(write_identity_bytes(path, &identity.to_bytes())?)
            }
            Self::Remote(drive) => drive.write_identity(&identity.to_bytes(), create),
        }
    }

    fn store(&self) -> ChunkStore {
        match self {
            Self::Local(path) => ChunkStore::new(path),
            Self::Remote(drive) => ChunkStore::remote(drive.clone()),
        }
    }

    /// Whether the location holds a one-drive node's chunk files (a set grown from one drive
    /// keeps them as drive 0's). Remote drives never do.
    fn holds_legacy_chunks(&self) -> bool {
        matches!(self, Self::Local(path) if path.join("chunks").is_dir())
    }
}

/// What is found at a drive path when the node opens it.
pub(crate) enum Found {
    /// A drive of another node that did not answer.
    Unreachable(String),
    Formatted(Identity),
    Blank,
    Missing,
    Unusable(String),
}

pub(crate) fn inspect(path: &Path) -> Found {
    if !path.exists() {
        return Found::Missing;
    }
    match fs::read(path.join(IDENTITY_FILE)) {
        Ok(bytes) => match Identity::from_bytes(&bytes) {
            Some(identity) => Found::Formatted(identity),
            None => Found::Unusable(format!("{IDENTITY_FILE} is damaged")),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Found::Blank,
        Err(e) => Found::Unusable(e.to_string()),
    }
}

pub(crate) fn write_identity_bytes(path: &Path, identity: &[u8]) -> io::Result<()> {
    let tmp = path.join(format!("{IDENTITY_FILE}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(identity)?;
    file.sync_all()?;
    fs::rename(&tmp, path.join(IDENTITY_FILE))?;
    sync_dir(path)
}

/// One drive of the set, by its index.
#[derive(Clone)]
pub struct Drive {
    pub index: u16,
    pub location: Location,
    pub store: ChunkStore,
    /// False for a drive found missing, blank or damaged at start-up: nothing is read from,
    /// written to or deleted on it until it is adopted.
    online: Arc<AtomicBool>,
}

impl Drive {
    pub fn online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    /// Online, and (for a drive of another node) its node not marked down: a write to it can
    /// be expected to land.
    pub fn reachable(&self) -> bool {
        self.online() && self.store.reachable()
    }

    /// (total, available) bytes of the drive's file system, if it can be read. Blocking.
    pub fn space_blocking(&self) -> Option<(u64, u64)> {
        match &self.location {
            Location::Local(path) => local_space_blocking(path),
            Location::Remote(drive) => drive.space(),
        }
    }
}

/// (total, available) bytes of the file system holding `path`, if it can be read. Blocking.
pub fn local_space_blocking(path: &std::path::Path) -> Option<(u64, u64)> {
    let stats = rustix::fs::statvfs(path).ok()?;
    Some((
        stats.f_blocks.saturating_mul(stats.f_frsize),
        stats.f_bavail.saturating_mul(stats.f_frsize),
    ))
}

/// The node's drives, indexed as their identity files say.
pub struct DriveSet {
    set: [u8; 16],
    drives: Vec<Drive>,
    fresh: bool,
}

impl DriveSet {
    /// Opens the drives at `paths`. A new set (no drive formatted yet) is created and
    /// formatted, drives holding chunk files of a one-drive node first (their chunks are drive
    /// 0's). In an existing set, a drive that is missing, blank or damaged stays offline: reads
    /// and writes to it fail and the stripes it held are served from the others.
    pub fn open(paths: &[PathBuf]) -> Result<Self, DataError> {
        let locations: Vec<Location> = paths.iter().cloned().map(Location::Local).collect();
        Self::open_at(&locations)
    }

    /// [`Self::open`] for drives of this node and of others.
    pub fn open_at(paths: &[Location]) -> Result<Self, DataError> {
        Self::open_with(paths, true)
    }

    /// [`Self::open_at`] for a set another node creates: refused with [`DataError::NotFormatted`]
    /// while no drive holds the set yet (the cluster's bootstrap node formats them).
    pub fn open_formatted_at(paths: &[Location]) -> Result<Self, DataError> {
        Self::open_with(paths, false)
    }

    fn open_with(paths: &[Location], may_create: bool) -> Result<Self, DataError> {
        let count = u16::try_from(paths.len())
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| DataError::Layout("between 1 and 65535 drives are needed".into()))?;
        let mut found: Vec<Found> = paths.iter().map(Location::inspect).collect();
        // Nodes started together come up in any order: give the others a moment.
        let deadline = std::time::Instant::now() + UNREACHABLE_GRACE;
        while found.iter().any(|f| matches!(f, Found::Unreachable(_)))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(500));
            for (path, f) in paths.iter().zip(found.iter_mut()) {
                if matches!(f, Found::Unreachable(_)) {
                    *f = path.inspect();
                }
            }
        }
        let mut set = None;
        let mut slots: Vec<Option<&Location>> = vec![None; paths.len()];
        for (path, found) in paths.iter().zip(&found) {
            let Found::Formatted(id) = found else {
                continue;
            };
            if *set.get_or_insert(id.set) != id.set {
                return Err(DataError::Layout(format!(
                    "{path} belongs to another node's drive set"
                )));
            }
            if id.count != count {
                return Err(DataError::Layout(format!(
                    "{path} was formatted as one of {} drives; {count} are given",
                    id.count
                )));
            }
            let slot = slots
                .get_mut(usize::from(id.index))
                .ok_or_else(|| DataError::Layout(format!("{path}: bad index")))?;
            if let Some(other) = slot.replace(path) {
                return Err(DataError::Layout(format!(
                    "{other} and {path} claim the same drive index {}",
                    id.index
                )));
            }
        }
        let fresh = set.is_none();
        if fresh && !may_create {
            return Err(DataError::NotFormatted);
        }
        if fresh
            && let Some((path, Found::Unreachable(reason))) = paths
                .iter()
                .zip(&found)
                .find(|(_, f)| matches!(f, Found::Unreachable(_)))
        {
            // Drives that did not answer may hold an existing set: creating a new one now
            // would orphan it.
            return Err(DataError::Layout(format!(
                "{path} is unreachable ({reason}); a drive set is created only when every drive answers"
            )));
        }
        let set = set.unwrap_or_else(rand::random);
        // Drives without an identity take the free indices: for a new set, one-drive data
        // first, then command-line order; otherwise in place of the drives that are gone.
        let mut order: Vec<usize> = (0..paths.len()).collect();
        if fresh {
            order.sort_by_key(|&i| !paths[i].holds_legacy_chunks());
        }
        let mut free = (0..paths.len()).filter(|i| slots[*i].is_none());
        let mut drives = Vec::with_capacity(paths.len());
        for position in order {
            let (path, found) = (&paths[position], &found[position]);
            let index = match found {
                Found::Formatted(id) => id.index,
                _ => {
                    let Some(i) = free.next() else { continue };
                    i as u16
                }
            };
            let online = match found {
                Found::Formatted(_) => true,
                Found::Blank | Found::Missing if fresh => {
                    let identity = Identity { set, index, count };
                    match path.format(identity, true) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::error!(drive = %path, error = %e, "cannot format drive; it stays offline");
                            false
                        }
                    }
                }
                Found::Blank => {
                    tracing::warn!(drive = %path, index, "blank drive where a drive of this set belongs: offline until `basalt admin heal` adopts it as the replacement");
                    false
                }
                Found::Missing => {
                    tracing::error!(drive = %path, index, "drive path missing (not mounted?): offline");
                    false
                }
                Found::Unusable(reason) => {
                    tracing::error!(drive = %path, index, %reason, "drive unusable: offline");
                    false
                }
                Found::Unreachable(reason) => {
                    tracing::error!(drive = %path, %reason, "drive unreachable: offline until it answers (asked every 10 s)");
                    false
                }
            };
            let store = path.store();
            let online = online
                && match store.prepare_blocking() {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(drive = %path, error = %e, "drive offline");
                        false
                    }
                };
            drives.push(Drive {
                index,
                location: path.clone(),
                store,
                online: Arc::new(AtomicBool::new(online)),
            });
        }
        drives.sort_by_key(|d| d.index);
        Ok(Self { set, drives, fresh })
    }

    /// The set's identity, shared by its drives.
    pub fn id(&self) -> [u8; 16] {
        self.set
    }

    /// Whether this open created the set (no drive was formatted before).
    pub fn is_new(&self) -> bool {
        self.fresh
    }

    pub fn len(&self) -> usize {
        self.drives.len()
    }

    pub fn is_empty(&self) -> bool {
        self.drives.is_empty()
    }

    pub fn get(&self, index: u16) -> Option<&Drive> {
        self.drives.get(usize::from(index))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Drive> {
        self.drives.iter()
    }

    /// Brings an offline drive that answers with `found` back online, if that is the identity
    /// of its slot.
    fn take_back(&self, drive: &Drive, found: Identity) -> bool {
        let count = self.drives.len() as u16;
        if found.set != self.set || found.index != drive.index || found.count != count {
            tracing::error!(drive = %drive.location, index = drive.index, found_index = found.index, "drive answers with another identity than the slot it was given: restart the node");
            return false;
        }
        if let Err(e) = drive.store.prepare_blocking() {
            tracing::warn!(drive = %drive.location, error = %e, "drive answers but cannot be used yet");
            return false;
        }
        drive.online.store(true, Ordering::Release);
        tracing::warn!(drive = %drive.location, index = drive.index, "drive answers again: online");
        true
    }

    /// Whether some drives are other nodes'.
    pub fn has_remote_drives(&self) -> bool {
        self.drives
            .iter()
            .any(|d| matches!(d.location, Location::Remote(_)))
    }

    /// Brings back offline drives of other nodes that answer again as themselves (a node that
    /// was down when this one started). Nothing is formatted. Returns the drives taken back.
    pub fn reconnect_remote_drives_blocking(&self) -> Vec<u16> {
        self.drives
            .iter()
            .filter(|d| !d.online() && matches!(d.location, Location::Remote(_)))
            .filter(|d| match d.location.inspect() {
                Found::Formatted(id) => self.take_back(d, id),
                _ => false,
            })
            .map(|d| d.index)
            .collect()
    }

    /// Formats drives found blank (a replaced drive mounted where the old one was) and brings
    /// them online, and brings back offline drives that answer again as themselves (another
    /// node's drive that was unreachable at start); only on an operator's request. A path that
    /// does not exist is left alone: creating it would write to whatever file system lies
    /// beneath the mount point. Returns the drives adopted.
    pub fn adopt_blank_drives_blocking(&self) -> Vec<u16> {
        let count = self.drives.len() as u16;
        let mut adopted = Vec::new();
        for drive in &self.drives {
            match drive.location.inspect() {
                Found::Blank => {}
                Found::Formatted(id) if !drive.online() => {
                    if self.take_back(drive, id) {
                        adopted.push(drive.index);
                    }
                    continue;
                }
                _ => continue,
            }
            let identity = Identity {
                set: self.set,
                index: drive.index,
                count,
            };
            let formatted = drive
                .location
                .format(identity, false)
                .and_then(|()| drive.store.prepare_blocking());
            match formatted {
                Ok(()) => {
                    drive.online.store(true, Ordering::Release);
                    tracing::warn!(drive = %drive.location, index = drive.index, "blank drive adopted as a replacement");
                    adopted.push(drive.index);
                }
                Err(e) => {
                    tracing::error!(drive = %drive.location, error = %e, "cannot format replaced drive")
                }
            }
        }
        adopted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(d: &Drive) -> PathBuf {
        match &d.location {
            Location::Local(path) => path.clone(),
            Location::Remote(_) => unreachable!("only local drives here"),
        }
    }

    fn paths(root: &Path, n: usize) -> Vec<PathBuf> {
        (0..n).map(|i| root.join(format!("d{i}"))).collect()
    }

    #[test]
    fn drives_keep_their_index_whatever_the_order_given() {
        let root = tempfile::tempdir().unwrap();
        let p = paths(root.path(), 4);
        let set = DriveSet::open(&p).unwrap();
        let order: Vec<_> = set.iter().map(local).collect();
        assert_eq!(order, p);
        let reversed: Vec<_> = p.iter().rev().cloned().collect();
        let again = DriveSet::open(&reversed).unwrap();
        let order: Vec<_> = again.iter().map(local).collect();
        assert_eq!(order, p);
    }

    #[test]
    fn a_replaced_drive_takes_the_missing_index_and_foreign_drives_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let p = paths(root.path(), 3);
        DriveSet::open(&p).unwrap();
        fs::remove_dir_all(&p[1]).unwrap();
        let replacement = root.path().join("new");
        let given = vec![p[0].clone(), replacement.clone(), p[2].clone()];
        let set = DriveSet::open(&given).unwrap();
        assert_eq!(local(set.get(1).unwrap()), replacement);
        assert!(
            !set.get(1).unwrap().online(),
            "a missing path is not created"
        );
        assert!(!replacement.exists());
        fs::create_dir(&replacement).unwrap();
        let set = DriveSet::open(&given).unwrap();
        assert!(
            !set.get(1).unwrap().online(),
            "a blank drive waits to be adopted"
        );
        assert_eq!(set.adopt_blank_drives_blocking(), vec![1]);
        assert!(set.get(1).unwrap().online());
        assert!(DriveSet::open(&given).unwrap().get(1).unwrap().online());

        let other = paths(&root.path().join("other"), 3);
        DriveSet::open(&other).unwrap();
        let mixed = vec![p[0].clone(), other[1].clone(), p[2].clone()];
        assert!(matches!(DriveSet::open(&mixed), Err(DataError::Layout(_))));
        assert!(matches!(DriveSet::open(&p[..2]), Err(DataError::Layout(_))));
    }
}
