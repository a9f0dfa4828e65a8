//! The Raft log and vote, in their own redb file (`raft.redb`) beside the metadata. Every
//! append and vote is durable (fsync) before openraft is told it is: an entry a node
//! acknowledged to the leader survives the node's crash.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, OptionalSend, StorageError, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::types::{NodeId, TypeConfig};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const VOTE_KEY: &str = "vote";
const PURGED_KEY: &str = "last-purged";
const COMMITTED_KEY: &str = "committed";

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

fn read_error(e: impl ToString) -> StorageError<NodeId> {
    StorageIOError::read_logs(AnyError::error(e.to_string())).into()
}

fn write_error(e: impl ToString) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::error(e.to_string())).into()
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(write_error)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(read_error)
}

#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// Opens (or creates) the log at `path`. Blocking: call at start-up.
    pub fn open(path: &Path) -> std::result::Result<Self, String> {
        let db = Database::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        txn.open_table(LOG).map_err(|e| e.to_string())?;
        txn.open_table(STATE).map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(write_error)?
    }

    fn state<T: serde::de::DeserializeOwned>(db: &Database, key: &str) -> Result<Option<T>> {
        let txn = db.begin_read().map_err(read_error)?;
        let table = txn.open_table(STATE).map_err(read_error)?;
        let value = table.get(key).map_err(read_error)?;
        value.map(|v| decode(v.value())).transpose()
    }

    async fn set_state<T: serde::Serialize>(&self, key: &'static str, value: &T) -> Result<()> {
        let bytes = encode(value)?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(write_error)?;
            txn.open_table(STATE)
                .map_err(write_error)?
                .insert(key, bytes.as_slice())
                .map_err(write_error)?;
            txn.commit().map_err(write_error)
        })
        .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(*i),
            Bound::Excluded(i) => Bound::Excluded(*i),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(read_error)?;
            let table = txn.open_table(LOG).map_err(read_error)?;
            let mut entries = Vec::new();
            for row in table
                .range((Bound::Included(start), end))
                .map_err(read_error)?
            {
                let (_, value) = row.map_err(read_error)?;
                entries.push(decode(value.value())?);
            }
            Ok(entries)
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        self.blocking(|db| {
            let purged: Option<LogId<NodeId>> = Self::state(db, PURGED_KEY)?;
            let txn = db.begin_read().map_err(read_error)?;
            let table = txn.open_table(LOG).map_err(read_error)?;
            let last = match table.last().map_err(read_error)? {
                Some((_, value)) => Some(decode::<Entry<TypeConfig>>(value.value())?.log_id),
                None => purged,
            };
            Ok(LogState {
                last_purged_log_id: purged,
                last_log_id: last,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        self.set_state(VOTE_KEY, vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        self.blocking(|db| Self::state(db, VOTE_KEY)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<()> {
        self.set_state(COMMITTED_KEY, &committed).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>> {
        self.blocking(|db| Ok(Self::state::<Option<LogId<NodeId>>>(db, COMMITTED_KEY)?.flatten()))
            .await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let rows = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, encode(&e)?)))
            .collect::<Result<Vec<_>>>()?;
        let written = self
            .blocking(move |db| {
                let txn = db.begin_write().map_err(write_error)?;
                {
                    let mut table = txn.open_table(LOG).map_err(write_error)?;
                    for (index, bytes) in &rows {
                        table.insert(index, bytes.as_slice()).map_err(write_error)?;
                    }
                }
                txn.commit().map_err(write_error)
            })
            .await;
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(write_error)?;
            txn.open_table(LOG)
                .map_err(write_error)?
                .retain_in(log_id.index.., |_, _| false)
                .map_err(write_error)?;
            txn.commit().map_err(write_error)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let purged = encode(&log_id)?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(write_error)?;
            txn.open_table(STATE)
                .map_err(write_error)?
                .insert(PURGED_KEY, purged.as_slice())
                .map_err(write_error)?;
            txn.open_table(LOG)
                .map_err(write_error)?
                .retain_in(..=log_id.index, |_, _| false)
                .map_err(write_error)?;
            txn.commit().map_err(write_error)
        })
        .await
    }
}
