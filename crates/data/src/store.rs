use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use crate::DataError;
use crate::chunk_file::{self, ChunkId, ChunkInfo, HEADER_LEN};
use crate::remote::RemoteDrive;

const TMP_SUFFIX: &str = ".tmp";

/// The chunk files of one drive, under `<drive>/chunks/<first id byte as hex>/<id>`: on this
/// node, or on another that serves the drive (the same operations, over the network).
#[derive(Clone)]
pub struct ChunkStore {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Local(Arc<LocalStore>),
    Remote(RemoteDrive),
}

struct LocalStore {
    root: PathBuf,
    poisoned: AtomicBool,
}

impl ChunkStore {
    /// The chunk files of the drive at `drive`; nothing is touched until
    /// [`ChunkStore::prepare_blocking`] or the first write.
    pub fn new(drive: &Path) -> Self {
        Self {
            backend: Backend::Local(Arc::new(LocalStore {
                root: drive.join("chunks"),
                poisoned: AtomicBool::new(false),
            })),
        }
    }

    /// The chunk files of a drive another node serves.
    pub fn remote(drive: RemoteDrive) -> Self {
        Self {
            backend: Backend::Remote(drive),
        }
    }

    /// False for a drive of another node while that node is marked down; a local drive is
    /// always reachable (its failures show on each call).
    pub fn reachable(&self) -> bool {
        match &self.backend {
            Backend::Local(_) => true,
            Backend::Remote(drive) => drive.reachable(),
        }
    }

    /// Opens the chunk directory of a drive, creating its fan-out directories.
    pub fn open(drive: &Path) -> Result<Self, DataError> {
        let store = Self::new(drive);
        store.prepare_blocking()?;
        Ok(store)
    }

    /// Creates the fan-out directories (a new or replaced drive). Blocking.
    pub fn prepare_blocking(&self) -> Result<(), DataError> {
        match &self.backend {
            Backend::Local(local) => local.prepare(),
            Backend::Remote(drive) => drive.prepare(),
        }
    }

    /// Writes a chunk durably. Blocking: call from a blocking thread.
    pub fn write_blocking(&self, data: &[u8]) -> Result<ChunkInfo, DataError> {
        let info = self.write_in_group_blocking(rand::random(), data)?;
        self.sync_group_blocking(info.id.group())?;
        Ok(info)
    }

    /// Writes a chunk into fan-out directory `group`, with its data fsynced but its directory
    /// entry not yet: the caller writes every chunk of an object into one group and then calls
    /// [`ChunkStore::sync_group_blocking`] once before the chunks are referenced. Blocking.
    pub fn write_in_group_blocking(&self, group: u8, data: &[u8]) -> Result<ChunkInfo, DataError> {
        let len =
            u32::try_from(data.len()).map_err(|_| io::Error::other("chunk larger than 4 GiB"))?;
        let info = ChunkInfo {
            id: ChunkId::random_in_group(group),
            len,
            crc32c: chunk_file::crc32c(data),
        };
        self.write_file_blocking(&info, data)?;
        Ok(info)
    }

    /// Writes the file of a chunk whose id and checksum the caller chose (a shard of a stripe),
    /// fsynced; its directory entry becomes durable with [`ChunkStore::sync_group_blocking`].
    /// Blocking.
    pub fn write_file_blocking(&self, info: &ChunkInfo, data: &[u8]) -> Result<(), DataError> {
        match &self.backend {
            Backend::Local(local) => local.write_file(info, data),
            Backend::Remote(drive) => drive.write_file(info, data),
        }
    }

    /// Makes the directory entries of every chunk written into `group` durable. Blocking.
    pub fn sync_group_blocking(&self, group: u8) -> Result<(), DataError> {
        match &self.backend {
            Backend::Local(local) => local.sync_group(group),
            Backend::Remote(drive) => drive.sync_group(group),
        }
    }

    /// Reads and verifies a whole chunk. Blocking: call from a blocking thread.
    pub fn read_blocking(&self, info: &ChunkInfo) -> Result<Bytes, DataError> {
        match &self.backend {
            Backend::Local(local) => local.read(info),
            Backend::Remote(drive) => drive.read(info),
        }
    }

    /// Deletes a chunk; a chunk already gone is not an error.
    pub fn delete_blocking(&self, id: ChunkId) -> Result<(), DataError> {
        tracing::debug!(chunk = %id, "deleting chunk");
        match &self.backend {
            Backend::Local(local) => local.delete(id),
            Backend::Remote(drive) => drive.delete(id),
        }
    }

    /// Every chunk file on the drive; leftover temporary files (a write cut off by a crash)
    /// are removed on the way. Blocking.
    pub fn scan_blocking(&self) -> Result<Vec<ChunkId>, DataError> {
        self.scan_files_blocking(true).map(|(ids, _)| ids)
    }

    /// Every chunk file on the drive, and the temporary files left by cut-off writes (removed
    /// when `remove_temporary` is set, else only counted). Blocking.
    pub fn scan_files_blocking(
        &self,
        remove_temporary: bool,
    ) -> Result<(Vec<ChunkId>, usize), DataError> {
        match &self.backend {
            Backend::Local(local) => local.scan_files(remove_temporary),
            Backend::Remote(drive) => drive.scan_files(remove_temporary),
        }
    }

    pub async fn write(&self, data: Bytes) -> Result<ChunkInfo, DataError> {
        let store = self.clone();
        run_blocking(move || store.write_blocking(&data)).await
    }

    pub async fn read(&self, info: ChunkInfo) -> Result<Bytes, DataError> {
        let store = self.clone();
        run_blocking(move || store.read_blocking(&info)).await
    }

    pub async fn delete_many(&self, ids: Vec<ChunkId>) -> Result<(), DataError> {
        if ids.is_empty() {
            return Ok(());
        }
        let store = self.clone();
        run_blocking(move || ids.into_iter().try_for_each(|id| store.delete_blocking(id))).await
    }

    #[cfg(test)]
    fn path_of(&self, id: ChunkId) -> PathBuf {
        match &self.backend {
            Backend::Local(local) => local.path_of(id),
            Backend::Remote(_) => unreachable!("tests use local stores"),
        }
    }
}

impl LocalStore {
    fn prepare(&self) -> Result<(), DataError> {
        for b in 0..=255u8 {
            fs::create_dir_all(self.root.join(format!("{b:02x}")))?;
        }
        if let Some(drive) = self.root.parent() {
            sync_dir(drive)?;
        }
        Ok(())
    }

    fn path_of(&self, id: ChunkId) -> PathBuf {
        let hex = id.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    fn check_poison(&self) -> Result<(), DataError> {
        if self.poisoned.load(Ordering::Acquire) {
            Err(DataError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// An fsync failure may have lost written pages without telling us which: the store stops
    /// accepting writes rather than retry and pretend they are durable.
    fn fsync_failed(&self, e: io::Error) -> DataError {
        tracing::error!(error = %e, root = %self.root.display(), "fsync failed; chunk store poisoned");
        self.poisoned.store(true, Ordering::Release);
        DataError::Io(e)
    }

    fn write_file(&self, info: &ChunkInfo, data: &[u8]) -> Result<(), DataError> {
        self.check_poison()?;
        if u64::from(info.len) != data.len() as u64 {
            return Err(io::Error::other("chunk length does not match its data").into());
        }
        tracing::trace!(chunk = %info.id, len = info.len, "writing chunk");
        let path = self.path_of(info.id);
        // A name of its own: two writers of the same shard (the healer and a sweep) must not
        // share a temporary file.
        let tmp = path.with_extension(format!("{:08x}{TMP_SUFFIX}", rand::random::<u32>()));
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let written = file
            .write_all(&chunk_file::header(u64::from(info.len), info.crc32c))
            .and_then(|()| file.write_all(data));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(if e.kind() == io::ErrorKind::StorageFull {
                DataError::DriveFull
            } else {
                e.into()
            });
        }
        file.sync_data().map_err(|e| self.fsync_failed(e))?;
        // The pages are clean now: let the kernel drop them at once. A shard is written once
        // and read later, if ever; keeping it cached only evicts data that is being read and
        // makes every later write find fresh memory for its pages (measured: the cost of
        // copying into the page cache then grows several-fold, see docs/PERFORMANCE.md).
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
        drop(file);
        fs::rename(&tmp, &path)?;
        Ok(())
    }

    fn sync_group(&self, group: u8) -> Result<(), DataError> {
        self.check_poison()?;
        // A directory that cannot be opened (a drive that vanished) is an I/O error; only a
        // failed fsync may have lost pages and poisons the store.
        let dir = File::open(self.root.join(format!("{group:02x}")))?;
        dir.sync_all().map_err(|e| self.fsync_failed(e))
    }

    fn read(&self, info: &ChunkInfo) -> Result<Bytes, DataError> {
        let mut file = match File::open(self.path_of(info.id)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(DataError::NotFound(info.id));
            }
            Err(e) => return Err(e.into()),
        };
        let mut buf = Vec::with_capacity(HEADER_LEN + info.len as usize + 1);
        // Read one byte past the expected end so that a file longer than its record is caught.
        (&mut file)
            .take(HEADER_LEN as u64 + u64::from(info.len) + 1)
            .read_to_end(&mut buf)?;
        chunk_file::verify(info, &buf)?;
        let mut data = Bytes::from(buf);
        Ok(data.split_off(HEADER_LEN))
    }

    fn delete(&self, id: ChunkId) -> Result<(), DataError> {
        match fs::remove_file(self.path_of(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn scan_files(&self, remove_temporary: bool) -> Result<(Vec<ChunkId>, usize), DataError> {
        let mut temporary = 0;
        let mut ids = Vec::new();
        for dir in fs::read_dir(&self.root)? {
            let dir = dir?;
            if !dir.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(dir.path())? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.ends_with(TMP_SUFFIX) {
                    temporary += 1;
                    if remove_temporary {
                        fs::remove_file(entry.path())?;
                    }
                } else if let Some(id) = ChunkId::from_hex(name) {
                    ids.push(id);
                }
            }
        }
        Ok((ids, temporary))
    }
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DataError> + Send + 'static,
) -> Result<T, DataError> {
    crate::io_lane::spawn(f)
        .await
        .await
        .map_err(|e| DataError::Io(io::Error::other(format!("blocking task failed: {e}"))))?
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_chunks_read_back_and_corruption_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let info = store.write_blocking(b"durable bytes").unwrap();
        assert_eq!(&store.read_blocking(&info).unwrap()[..], b"durable bytes");

        let path = store.path_of(info.id);
        let mut raw = fs::read(&path).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0xff;
        fs::write(&path, &raw).unwrap();
        assert!(matches!(
            store.read_blocking(&info),
            Err(DataError::Corrupt { .. })
        ));

        store.delete_blocking(info.id).unwrap();
        assert!(matches!(
            store.read_blocking(&info),
            Err(DataError::NotFound(_))
        ));
        store.delete_blocking(info.id).unwrap();
    }

    #[test]
    fn scan_finds_chunks_and_removes_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let info = store.write_blocking(b"x").unwrap();
        let tmp = store.path_of(ChunkId::random()).with_extension("tmp");
        fs::write(&tmp, b"partial").unwrap();
        assert_eq!(store.scan_blocking().unwrap(), vec![info.id]);
        assert!(!tmp.exists());
    }

    #[test]
    fn a_longer_file_than_recorded_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let info = store.write_blocking(b"abc").unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(store.path_of(info.id))
            .unwrap();
        f.write_all(b"extra").unwrap();
        assert!(matches!(
            store.read_blocking(&info),
            Err(DataError::Corrupt { .. })
        ));
    }
}
