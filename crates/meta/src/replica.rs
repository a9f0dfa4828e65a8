//! The metadata as one replica of a replicated state machine: commands applied in log order
//! with the log position they reach, in one transaction; the whole replicated state written
//! to, and restored from, a snapshot stream in bounded memory.
//!
//! The log position is opaque here (the consensus layer encodes it): what matters is that it
//! commits with the state it describes, so a restart never applies an entry twice or skips one.

use std::io::{Read, Write};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::MetaError;
use crate::command::{Command, Outcome};
use crate::redb_store::RedbStore;
use crate::state_machine::Tables;
use crate::tables::*;

/// One committed log entry: a command stamped with its leader's time, or `None` for an entry
/// that only moves the log position (a membership change, a leader's blank entry).
#[derive(Debug, Clone)]
pub struct Replicated {
    pub at_ms: i64,
    pub command: Option<Command>,
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"BSNAP\x00\x00\x01";
const END_TAG: u8 = 0xff;
/// A key or value larger than this in a snapshot is corruption, not data.
const MAX_SNAPSHOT_FIELD: u32 = 256 << 20;

type BytesTable = TableDefinition<'static, &'static [u8], &'static [u8]>;
type NamedTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// The tables whose keys are bytes, each with its tag in a snapshot.
const BYTE_TABLES: [(u8, BytesTable); 7] = [
    (1, OBJECTS),
    (2, VERSIONS),
    (3, UPLOADS),
    (4, PARTS),
    (5, BUCKET_SETTINGS),
    (10, CATALOG),
    (11, MISSED_SHARDS),
];
const NAMED_TABLES: [(u8, NamedTable); 2] = [(6, BUCKETS), (7, IDENTITIES)];
const GARBAGE_TAG: u8 = 8;
const SYSTEM_TAG: u8 = 9;

/// Which keys of [`SYSTEM`] are replicated state (the rest are this node's own).
fn replicated_system_key(key: &str) -> bool {
    key == GARBAGE_NEXT_KEY || key.starts_with(CLUSTER_VALUE_PREFIX)
}

fn write_field(out: &mut impl Write, bytes: &[u8]) -> Result<(), MetaError> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| MetaError::Storage("snapshot field over 4 GiB".into()))?;
    out.write_all(&len.to_le_bytes()).map_err(io_error)?;
    out.write_all(bytes).map_err(io_error)
}

fn read_field(input: &mut impl Read) -> Result<Vec<u8>, MetaError> {
    let mut len = [0; 4];
    input.read_exact(&mut len).map_err(io_error)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_SNAPSHOT_FIELD {
        return Err(MetaError::Corrupt(format!("snapshot field of {len} bytes")));
    }
    let mut bytes = vec![0; len as usize];
    input.read_exact(&mut bytes).map_err(io_error)?;
    Ok(bytes)
}

fn io_error(e: std::io::Error) -> MetaError {
    MetaError::Storage(format!("snapshot I/O: {e}"))
}

fn text(bytes: Vec<u8>) -> Result<String, MetaError> {
    String::from_utf8(bytes).map_err(|_| MetaError::Corrupt("snapshot key is not UTF-8".into()))
}

impl RedbStore {
    /// Applies committed entries in order, and records `applied` (the position after the last)
    /// with them in one transaction. Returns each command's result, in order (`None` for
    /// entries without a command). A refused command changes nothing but is still applied
    /// (every replica refuses it the same way); an engine failure aborts the whole batch.
    /// Without `durable` the commit is not fsynced: a crash may roll the state back to an
    /// earlier position, from which the (durable) log is applied again; [`Self::persist`]
    /// makes everything applied so far durable. Blocking.
    pub fn apply_replicated(
        &self,
        entries: &[Replicated],
        applied: &[u8],
        durable: bool,
    ) -> Result<Vec<Option<Result<Outcome, MetaError>>>, MetaError> {
        let mut txn = self.db.begin_write()?;
        if !durable {
            txn.set_durability(redb::Durability::None)
                .map_err(|e| MetaError::Storage(e.to_string()))?;
        }
        let mut results = Vec::with_capacity(entries.len());
        let changed_cached = {
            let mut tables = Tables::open(&txn)?;
            for entry in entries {
                let Some(command) = &entry.command else {
                    results.push(None);
                    continue;
                };
                match tables.apply_stamped(entry.at_ms, command) {
                    Err(
                        e @ (MetaError::Storage(_)
                        | MetaError::Corrupt(_)
                        | MetaError::UnsupportedFormat(_)),
                    ) => return Err(e),
                    other => results.push(Some(other)),
                }
            }
            tables.changed_cached
        };
        txn.open_table(SYSTEM)?.insert(APPLIED_KEY, applied)?;
        txn.commit()?;
        if changed_cached {
            self.cache.invalidate();
        }
        Ok(results)
    }

    /// Makes every commit so far durable (an empty fsynced commit). Blocking.
    pub fn persist(&self) -> Result<(), MetaError> {
        self.db.begin_write()?.commit()?;
        Ok(())
    }

    /// The log position recorded by the last [`Self::apply_replicated`] or snapshot install.
    /// Blocking.
    pub fn applied_position(&self) -> Result<Option<Vec<u8>>, MetaError> {
        let txn = self.db.begin_read()?;
        Ok(txn
            .open_table(SYSTEM)?
            .get(APPLIED_KEY)?
            .map(|v| v.value().to_vec()))
    }

    /// A value set by `Command::SetClusterValue`. Blocking.
    pub fn cluster_value(&self, key: &str) -> Result<Option<Vec<u8>>, MetaError> {
        let txn = self.db.begin_read()?;
        let key = format!("{CLUSTER_VALUE_PREFIX}{key}");
        Ok(txn
            .open_table(SYSTEM)?
            .get(key.as_str())?
            .map(|v| v.value().to_vec()))
    }

    /// Writes the replicated state, as of one read transaction, to `out`, and returns the log
    /// position it reflects. Memory stays bounded by the largest record. Blocking.
    pub fn export_snapshot(&self, out: &mut impl Write) -> Result<Option<Vec<u8>>, MetaError> {
        let txn = self.db.begin_read()?;
        out.write_all(SNAPSHOT_MAGIC).map_err(io_error)?;
        let mut record = |tag: u8, key: &[u8], value: &[u8]| -> Result<(), MetaError> {
            out.write_all(&[tag]).map_err(io_error)?;
            write_field(out, key)?;
            write_field(out, value)
        };
        for (tag, table) in BYTE_TABLES {
            for row in txn.open_table(table)?.iter()? {
                let (k, v) = row?;
                record(tag, k.value(), v.value())?;
            }
        }
        for (tag, table) in NAMED_TABLES {
            for row in txn.open_table(table)?.iter()? {
                let (k, v) = row?;
                record(tag, k.value().as_bytes(), v.value())?;
            }
        }
        for row in txn.open_table(GARBAGE)?.iter()? {
            let (k, v) = row?;
            record(GARBAGE_TAG, &k.value().to_be_bytes(), v.value())?;
        }
        let system = txn.open_table(SYSTEM)?;
        for row in system.iter()? {
            let (k, v) = row?;
            if replicated_system_key(k.value()) {
                record(SYSTEM_TAG, k.value().as_bytes(), v.value())?;
            }
        }
        out.write_all(&[END_TAG]).map_err(io_error)?;
        out.flush().map_err(io_error)?;
        Ok(system.get(APPLIED_KEY)?.map(|v| v.value().to_vec()))
    }

    /// Replaces the replicated state with the snapshot read from `input`, at log position
    /// `applied`, in one durable transaction: a failure leaves the state as it was. This
    /// node's own values (its drive set, its clean-stop mark) stay. Blocking.
    pub fn install_snapshot(&self, input: &mut impl Read, applied: &[u8]) -> Result<(), MetaError> {
        let mut magic = [0; 8];
        input.read_exact(&mut magic).map_err(io_error)?;
        if &magic != SNAPSHOT_MAGIC {
            return Err(MetaError::Corrupt("not a Basalt metadata snapshot".into()));
        }
        let txn = self.db.begin_write()?;
        for (_, table) in BYTE_TABLES {
            txn.open_table(table)?.retain(|_, _| false)?;
        }
        for (_, table) in NAMED_TABLES {
            txn.open_table(table)?.retain(|_, _| false)?;
        }
        txn.open_table(GARBAGE)?.retain(|_, _| false)?;
        txn.open_table(SYSTEM)?
            .retain(|k, _| !replicated_system_key(k) && k != APPLIED_KEY)?;
        loop {
            let mut tag = [0; 1];
            input.read_exact(&mut tag).map_err(io_error)?;
            if tag[0] == END_TAG {
                break;
            }
            let (key, value) = (read_field(input)?, read_field(input)?);
            if let Some((_, table)) = BYTE_TABLES.iter().find(|(t, _)| *t == tag[0]) {
                txn.open_table(*table)?
                    .insert(key.as_slice(), value.as_slice())?;
            } else if let Some((_, table)) = NAMED_TABLES.iter().find(|(t, _)| *t == tag[0]) {
                txn.open_table(*table)?
                    .insert(text(key)?.as_str(), value.as_slice())?;
            } else if tag[0] == GARBAGE_TAG {
                let id: [u8; 8] = key
                    .try_into()
                    .map_err(|_| MetaError::Corrupt("snapshot garbage id".into()))?;
                txn.open_table(GARBAGE)?
                    .insert(u64::from_be_bytes(id), value.as_slice())?;
            } else if tag[0] == SYSTEM_TAG {
                let key = text(key)?;
                if !replicated_system_key(&key) {
                    return Err(MetaError::Corrupt(format!("snapshot system key {key}")));
                }
                txn.open_table(SYSTEM)?
                    .insert(key.as_str(), value.as_slice())?;
            } else {
                return Err(MetaError::Corrupt(format!("snapshot table tag {}", tag[0])));
            }
        }
        txn.open_table(SYSTEM)?.insert(APPLIED_KEY, applied)?;
        txn.commit()?;
        self.cache.invalidate();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BucketRecord, MetaStore};

    fn log() -> Vec<Replicated> {
        let stamped = |at_ms, command| Replicated {
            at_ms,
            command: Some(command),
        };
        vec![
            stamped(
                10,
                Command::CreateBucket {
                    name: "photos".into(),
                    record: BucketRecord { created_ms: 10 },
                    object_lock: false,
                    access: None,
                },
            ),
            Replicated {
                at_ms: 0,
                command: None,
            },
            stamped(
                11,
                Command::SetIdentity {
                    key: "user/alice".into(),
                    value: Some(b"alice".to_vec()),
                },
            ),
            // Refused the same way on every replica.
            stamped(
                12,
                Command::CreateBucket {
                    name: "photos".into(),
                    record: BucketRecord { created_ms: 12 },
                    object_lock: false,
                    access: None,
                },
            ),
            stamped(
                13,
                Command::SetBucketPolicy {
                    bucket: "photos".into(),
                    policy: Some("{}".into()),
                },
            ),
            stamped(
                14,
                Command::SetClusterValue {
                    key: "layout".into(),
                    value: Some(b"three nodes".to_vec()),
                    if_absent: false,
                },
            ),
            stamped(
                15,
                Command::SetClusterValue {
                    key: "layout".into(),
                    value: Some(b"not this one".to_vec()),
                    if_absent: true,
                },
            ),
            stamped(
                16,
                Command::Catalog(crate::CatalogCommand::CreateNamespace {
                    bucket: "photos".into(),
                    namespace: vec!["lakehouse".into()],
                    properties: Default::default(),
                }),
            ),
            // A stripe written short of shards: owed a heal on every replica.
            stamped(
                17,
                Command::WithMissedShards {
                    command: Box::new(Command::PutObject {
                        bucket: "photos".into(),
                        key: "cat.jpg".into(),
                        record: object_with_stripe([9; 16]),
                        precondition: None,
                    }),
                    stripes: vec![[9; 16]],
                },
            ),
        ]
    }

    fn object_with_stripe(id: [u8; 16]) -> crate::ObjectRecord {
        crate::ObjectRecord {
            summary: crate::ObjectSummary {
                size: 1,
                etag: "e".into(),
                ..Default::default()
            },
            details: crate::ObjectDetails {
                headers: Default::default(),
                user_metadata: vec![],
                checksums: vec![],
                part_sizes: vec![],
                payload: crate::Payload::Stripes(vec![crate::StripeRef {
                    id,
                    len: 1,
                    codec: crate::Codec::None,
                    shards: vec![crate::ShardRef {
                        drive: 0,
                        crc32c: 0,
                    }],
                }]),
                tags: vec![],
                lock: Default::default(),
                encryption: None,
                acl: None,
                part_checksums: Vec::new(),
            },
        }
    }

    fn snapshot_of(store: &RedbStore) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut bytes = Vec::new();
        let position = store.export_snapshot(&mut bytes).unwrap();
        (bytes, position)
    }

    fn outcomes(results: &[Option<Result<Outcome, MetaError>>]) -> Vec<String> {
        results
            .iter()
            .map(|r| match r {
                None => "none".to_owned(),
                Some(Ok(_)) => "ok".to_owned(),
                Some(Err(e)) => e.to_string(),
            })
            .collect()
    }

    #[test]
    fn the_same_log_gives_the_same_state_and_a_snapshot_restores_it_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let a = RedbStore::open(&dir.path().join("a.redb")).unwrap();
        let b = RedbStore::open(&dir.path().join("b.redb")).unwrap();
        let entries = log();
        let (first, second) = entries.split_at(3);
        let ra = a.apply_replicated(first, b"pos-3", true).unwrap();
        let rb1 = b.apply_replicated(first, b"pos-3", true).unwrap();
        assert_eq!(outcomes(&ra), outcomes(&rb1));
        let ra = a.apply_replicated(second, b"pos-7", true).unwrap();
        // Batches split differently reach the same state.
        let rb2 = b.apply_replicated(&second[..1], b"pos-4", true).unwrap();
        let rb3 = b.apply_replicated(&second[1..], b"pos-7", true).unwrap();
        assert_eq!(
            outcomes(&ra),
            [outcomes(&rb2), outcomes(&rb3)].concat(),
            "refusals too are the same"
        );
        assert_eq!(outcomes(&ra)[0], MetaError::BucketAlreadyExists.to_string());
        let (snap_a, pos_a) = snapshot_of(&a);
        let (snap_b, pos_b) = snapshot_of(&b);
        assert_eq!(snap_a, snap_b, "same log, same state");
        assert!(
            snap_a.windows(9).any(|w| w == b"lakehouse"),
            "the catalog is part of the snapshot"
        );
        assert_eq!(pos_a.as_deref(), Some(&b"pos-7"[..]));
        assert_eq!(pos_a, pos_b);

        // A replica with other state (and node-local values) takes the snapshot exactly.
        let c = RedbStore::open(&dir.path().join("c.redb")).unwrap();
        c.bind_drive_set([7; 16]).unwrap();
        c.apply_replicated(
            &[Replicated {
                at_ms: 1,
                command: Some(Command::CreateBucket {
                    name: "stale".into(),
                    record: BucketRecord { created_ms: 1 },
                    object_lock: false,
                    access: None,
                }),
            }],
            b"pos-1",
            false,
        )
        .unwrap();
        c.persist().unwrap();
        c.install_snapshot(&mut snap_a.as_slice(), b"pos-7")
            .unwrap();
        let (snap_c, pos_c) = snapshot_of(&c);
        assert_eq!(snap_c, snap_a);
        assert_eq!(pos_c.as_deref(), Some(&b"pos-7"[..]));
        assert_eq!(
            c.drive_set().unwrap(),
            Some([7; 16]),
            "node-local values stay"
        );
        assert_eq!(
            c.cluster_value("layout").unwrap().as_deref(),
            Some(&b"three nodes"[..])
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert!(c.get_bucket("stale").await.unwrap().is_none());
            assert!(c.get_bucket("photos").await.unwrap().is_some());
            let owed = c.missed_shards(None, 10).await.unwrap();
            assert_eq!(
                owed.len(),
                1,
                "the missed-shards table is part of the snapshot"
            );
            assert_eq!((owed[0].0, owed[0].1.noted_ms), ([9; 16], 17));
        });
    }

    #[test]
    fn a_damaged_snapshot_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = RedbStore::open(&dir.path().join("a.redb")).unwrap();
        a.apply_replicated(&log(), b"pos-7", true).unwrap();
        let (snap, _) = snapshot_of(&a);
        let b = RedbStore::open(&dir.path().join("b.redb")).unwrap();
        b.apply_replicated(&log()[..1], b"pos-1", true).unwrap();
        let before = snapshot_of(&b);
        let cut = &snap[..snap.len() - 5];
        assert!(b.install_snapshot(&mut &cut[..], b"pos-7").is_err());
        assert!(
            b.install_snapshot(&mut &b"not a snapshot"[..], b"pos-7")
                .is_err()
        );
        assert_eq!(snapshot_of(&b), before);
    }

    #[test]
    fn commands_round_trip_and_unknown_formats_are_refused() {
        for entry in log() {
            let Some(command) = entry.command else {
                continue;
            };
            let bytes = command.encode();
            assert_eq!(
                format!("{:?}", Command::decode(&bytes).unwrap()),
                format!("{command:?}")
            );
        }
        let mut future = log()[0].command.clone().unwrap().encode();
        future[0] = 99;
        assert!(matches!(
            Command::decode(&future),
            Err(MetaError::UnsupportedFormat(99))
        ));
        assert!(Command::decode(&[]).is_err());
    }
}
