//! The state machine openraft drives: committed entries applied to this node's metadata
//! database (`meta.redb`) with the log position they reach, in one transaction; snapshots
//! streamed between that database and files, never held whole in memory.

use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use basalt_meta::{Command, MetaError, Outcome, RedbStore, Replicated};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use tokio::sync::Mutex;

use crate::layout::NodeInfo;
use crate::types::{NodeId, ProposalReply, TypeConfig};

type Result<T> = std::result::Result<T, StorageError<NodeId>>;
type Membership = StoredMembership<NodeId, NodeInfo>;
type Position = (Option<LogId<NodeId>>, Membership);

/// Names the current snapshot (its meta, whose id names its data file): replaced atomically,
/// so a crash leaves either the old snapshot or the new one, never one's data with the
/// other's position.
const CURRENT_META: &str = "current.meta";

fn data_file(dir: &Path, snapshot_id: &str) -> PathBuf {
    dir.join(format!("{snapshot_id}.snap"))
}

/// Removes the data files of snapshots other than `keep`.
fn remove_old_snapshots(dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path != keep && path.extension().is_some_and(|e| e == "snap") {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn sm_error(e: impl ToString) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

fn snapshot_error(e: impl ToString) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
}

fn encode_position(position: &Position) -> Result<Vec<u8>> {
    postcard::to_stdvec(position).map_err(sm_error)
}

fn decode_position(bytes: Option<Vec<u8>>) -> Result<Position> {
    match bytes {
        Some(bytes) => postcard::from_bytes(&bytes).map_err(sm_error),
        None => Ok((None, Membership::default())),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(sm_error)?
}

/// Writes `bytes` to `path` durably: a temporary file, fsynced, renamed, the directory
/// fsynced.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, path)?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// This node's replica of the metadata, and its snapshots.
pub struct Replica {
    meta: Arc<RedbStore>,
    snapshots: PathBuf,
    /// The file a snapshot from the leader is being received into.
    receiving: Mutex<Option<PathBuf>>,
}

impl Replica {
    pub fn new(meta: Arc<RedbStore>, snapshots: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&snapshots)?;
        Ok(Self {
            meta,
            snapshots,
            receiving: Mutex::new(None),
        })
    }

    pub fn meta(&self) -> &Arc<RedbStore> {
        &self.meta
    }
}

/// Builds a snapshot of the replica as of one read transaction.
pub struct SnapshotBuilder {
    meta: Arc<RedbStore>,
    snapshots: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let (meta, dir) = (self.meta.clone(), self.snapshots.clone());
        let (snapshot_meta, data) = blocking(move || {
            // The log before the snapshot may be purged once it exists: what it covers must
            // be durable here first.
            meta.persist().map_err(sm_error)?;
            let building = dir.join(format!("building-{:016x}.snap", rand_id()));
            let file = std::fs::File::create(&building).map_err(snapshot_error)?;
            let mut out = BufWriter::new(file);
            let position = meta.export_snapshot(&mut out).map_err(sm_error)?;
            let file = out.into_inner().map_err(snapshot_error)?;
            file.sync_all().map_err(snapshot_error)?;
            let (last_log_id, last_membership) = decode_position(position)?;
            let snapshot_id = match last_log_id {
                Some(id) => format!("{}-{}-{:x}", id.leader_id.term, id.index, rand_id()),
                None => format!("0-0-{:x}", rand_id()),
            };
            let snapshot_meta = SnapshotMeta {
                last_log_id,
                last_membership,
                snapshot_id,
            };
            let data = data_file(&dir, &snapshot_meta.snapshot_id);
            std::fs::rename(&building, &data).map_err(snapshot_error)?;
            let encoded = postcard::to_stdvec(&snapshot_meta).map_err(snapshot_error)?;
            write_durably(&dir.join(CURRENT_META), &encoded).map_err(snapshot_error)?;
            remove_old_snapshots(&dir, &data);
            Ok((snapshot_meta, data))
        })
        .await?;
        let file = tokio::fs::File::open(&data).await.map_err(snapshot_error)?;
        tracing::info!(snapshot = %snapshot_meta.snapshot_id, "metadata snapshot built");
        Ok(Snapshot {
            meta: snapshot_meta,
            snapshot: Box::new(file),
        })
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

impl RaftStateMachine<TypeConfig> for Replica {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<Position> {
        let meta = self.meta.clone();
        blocking(move || decode_position(meta.applied_position().map_err(sm_error)?)).await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ProposalReply>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let meta = self.meta.clone();
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        blocking(move || {
            let (_, mut membership) = decode_position(meta.applied_position().map_err(sm_error)?)?;
            let mut batch = Vec::with_capacity(entries.len());
            // How many commands each entry contributed: its reply gathers their results.
            let mut counts = Vec::with_capacity(entries.len());
            let mut last = None;
            for entry in entries {
                last = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => counts.push(0),
                    EntryPayload::Membership(m) => {
                        membership = Membership::new(Some(entry.log_id), m);
                        counts.push(0);
                    }
                    // A command this build cannot read stops this replica: applying it wrong,
                    // or skipping it, would make it diverge from the others.
                    EntryPayload::Normal(proposal) => {
                        counts.push(proposal.commands.len());
                        for command in &proposal.commands {
                            batch.push(Replicated {
                                at_ms: proposal.at_ms,
                                command: Some(Command::decode(command).map_err(sm_error)?),
                            });
                        }
                    }
                }
            }
            let position = encode_position(&(last, membership))?;
            // Not fsynced: the log is, and a crash re-applies from it (see `persist` before
            // snapshots).
            let mut results = meta
                .apply_replicated(&batch, &position, false)
                .map_err(sm_error)?
                .into_iter();
            Ok(counts
                .into_iter()
                .map(|n| {
                    ProposalReply(
                        results
                            .by_ref()
                            .take(n)
                            .map(|r| r.unwrap_or_else(|| Ok(Outcome::default())))
                            .collect(),
                    )
                })
                .collect())
        })
        .await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            meta: self.meta.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>> {
        let path = self
            .snapshots
            .join(format!("receiving-{:016x}.snap", rand_id()));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(snapshot_error)?;
        if let Some(old) = self.receiving.lock().await.replace(path) {
            let _ = tokio::fs::remove_file(old).await;
        }
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        snapshot_meta: &SnapshotMeta<NodeId, NodeInfo>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<()> {
        let path = self
            .receiving
            .lock()
            .await
            .take()
            .ok_or_else(|| snapshot_error("no snapshot was being received"))?;
        let mut file = *snapshot;
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(snapshot_error)?;
        file.sync_all().await.map_err(snapshot_error)?;
        drop(file);
        let (meta, dir) = (self.meta.clone(), self.snapshots.clone());
        let position = encode_position(&(
            snapshot_meta.last_log_id,
            snapshot_meta.last_membership.clone(),
        ))?;
        let encoded_meta = postcard::to_stdvec(snapshot_meta).map_err(snapshot_error)?;
        let id = snapshot_meta.snapshot_id.clone();
        // The id names a file here: only what this crate's builder makes.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(snapshot_error(format!("bad snapshot id {id:?}")));
        }
        let logged = id.clone();
        blocking(move || {
            let file = std::fs::File::open(&path).map_err(snapshot_error)?;
            meta.install_snapshot(&mut BufReader::new(file), &position)
                .map_err(|e: MetaError| sm_error(e))?;
            let data = data_file(&dir, &id);
            std::fs::rename(&path, &data).map_err(snapshot_error)?;
            write_durably(&dir.join(CURRENT_META), &encoded_meta).map_err(snapshot_error)?;
            remove_old_snapshots(&dir, &data);
            Ok(())
        })
        .await?;
        tracing::info!(snapshot = %logged, "metadata snapshot installed from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        let dir = self.snapshots.clone();
        let Ok(bytes) = tokio::fs::read(dir.join(CURRENT_META)).await else {
            return Ok(None);
        };
        let meta: SnapshotMeta<NodeId, NodeInfo> =
            postcard::from_bytes(&bytes).map_err(snapshot_error)?;
        let file = tokio::fs::File::open(data_file(&dir, &meta.snapshot_id))
            .await
            .map_err(snapshot_error)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(file),
        }))
    }
}
