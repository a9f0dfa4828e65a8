//! The Raft log and vote, in their own redb file (`raft.redb`) beside the metadata. Every
//! append and vote is durable (fsync) before openraft is told it is: an entry a node
//! acknowledged to the leader survives the node's crash.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, StorageError, StorageIOError, Vote,
};
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
    recent: Arc<Mutex<RecentEntries>>,
}

/// The newest entries appended, in memory: openraft reads each entry back soon after
/// appending it (to send it to every follower, then to apply it), and these answer that
/// without a read and decode from redb. Their commands are `Bytes`, so a copy is cheap.
#[derive(Default)]
struct RecentEntries {
    /// Consecutive indexes, oldest first.
    entries: VecDeque<Entry<TypeConfig>>,
    bytes: usize,
}

/// Most entries, and bytes of commands, kept in [`RecentEntries`].
const RECENT_ENTRIES: usize = 1024;
const RECENT_BYTES: usize = 64 << 20;

fn entry_bytes(entry: &Entry<TypeConfig>) -> usize {
    match &entry.payload {
        EntryPayload::Normal(proposal) => proposal.commands.iter().map(|c| c.len()).sum(),
        _ => 0,
    }
}

impl RecentEntries {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.log_id.index)
    }

    fn push(&mut self, entry: Entry<TypeConfig>) {
        let follows = self
            .entries
            .back()
            .is_none_or(|last| last.log_id.index + 1 == entry.log_id.index);
        if !follows {
            self.clear();
        }
        self.bytes += entry_bytes(&entry);
        self.entries.push_back(entry);
        while self.entries.len() > RECENT_ENTRIES || self.bytes > RECENT_BYTES {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some(oldest) = self.entries.pop_front() {
            self.bytes -= entry_bytes(&oldest);
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Drops the entries from `index` on (a truncated log).
    fn truncate(&mut self, index: u64) {
        while self.entries.back().is_some_and(|e| e.log_id.index >= index) {
            if let Some(newest) = self.entries.pop_back() {
                self.bytes -= entry_bytes(&newest);
            }
        }
    }

    /// Drops the entries up to `index` (a purged log).
    fn purge(&mut self, index: u64) {
        while self.first_index().is_some_and(|first| first <= index) {
            self.pop_oldest();
        }
    }

    /// The entries `start..end` (`end` exclusive), if all are here.
    fn range(&self, start: u64, end: u64) -> Option<Vec<Entry<TypeConfig>>> {
        let first = self.first_index()?;
        let last = self.entries.back()?.log_id.index;
        if start < first || end > last + 1 {
            return None;
        }
        if start >= end {
            return Some(Vec::new());
        }
        let from = usize::try_from(start - first).ok()?;
        let to = usize::try_from(end - first).ok()?;
        Some(self.entries.range(from..to).cloned().collect())
    }
}

impl LogStore {
    /// Opens (or creates) the log at `path`. Blocking: call at start-up.
    pub fn open(path: &Path) -> std::result::Result<Self, String> {
        let db = Database::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        txn.open_table(LOG).map_err(|e| e.to_string())?;
        txn.open_table(STATE).map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())?;
        Ok(Self {
            db: Arc::new(db),
            recent: Arc::default(),
        })
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, RecentEntries> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let end_exclusive = match end {
            Bound::Included(i) => Some(i.saturating_add(1)),
            Bound::Excluded(i) => Some(i),
            Bound::Unbounded => None,
        };
        if let Some(entries) = end_exclusive.and_then(|end| self.recent().range(start, end)) {
            return Ok(entries);
        }
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

    /// Not stored. It would only spare a restarted node from learning again, from the
    /// leader's next message, how far it may apply, and a restarted node serves no read
    /// before it has heard from the leader anyway (`ClusterNode::linearize`). Storing it was
    /// one more redb commit on every node for every commit, in the Raft core's path.
    async fn save_committed(&mut self, _committed: Option<LogId<NodeId>>) -> Result<()> {
        Ok(())
    }

    /// What an earlier version stored, if anything: entries up to it are committed.
    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>> {
        self.blocking(|db| Ok(Self::state::<Option<LogId<NodeId>>>(db, COMMITTED_KEY)?.flatten()))
            .await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let rows = entries
            .iter()
            .map(|e| Ok((e.log_id.index, encode(e)?)))
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
                let mut recent = self.recent();
                for entry in entries {
                    recent.push(entry);
                }
                drop(recent);
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
        self.recent().truncate(log_id.index);
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
        self.recent().purge(log_id.index);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Proposal;
    use openraft::CommittedLeaderId;

    fn entry(index: u64, bytes: usize) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Proposal {
                at_ms: 0,
                commands: vec![bytes::Bytes::from(vec![0; bytes])],
            }),
        }
    }

    fn indexes(entries: Option<Vec<Entry<TypeConfig>>>) -> Option<Vec<u64>> {
        entries.map(|e| e.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn recent_entries_answer_only_ranges_they_hold_whole() {
        let mut recent = RecentEntries::default();
        assert_eq!(indexes(recent.range(1, 2)), None);
        for index in 5..=9 {
            recent.push(entry(index, 10));
        }
        assert_eq!(indexes(recent.range(6, 8)), Some(vec![6, 7]));
        assert_eq!(indexes(recent.range(5, 10)), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(indexes(recent.range(4, 6)), None, "4 is only in redb");
        assert_eq!(indexes(recent.range(9, 11)), None, "10 is not appended");
        assert_eq!(indexes(recent.range(7, 7)), Some(vec![]));

        recent.truncate(8);
        assert_eq!(indexes(recent.range(5, 9)), None);
        recent.push(entry(8, 10));
        assert_eq!(indexes(recent.range(7, 9)), Some(vec![7, 8]));
        recent.purge(6);
        assert_eq!(indexes(recent.range(6, 8)), None);
        assert_eq!(recent.bytes, 20);

        recent.push(entry(20, 10));
        assert_eq!(
            indexes(recent.range(20, 21)),
            Some(vec![20]),
            "a gap starts over"
        );
        assert_eq!(indexes(recent.range(8, 9)), None);

        recent.push(entry(21, RECENT_BYTES + 1));
        assert_eq!(indexes(recent.range(21, 22)), None, "over the byte bound");
        assert_eq!(recent.bytes, 0);
    }
}
