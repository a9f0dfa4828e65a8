//! The single-node metadata engine: redb, with a writer thread that commits batches of
//! commands in one transaction (group commit: concurrent writers share one fsync).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::oneshot;

use crate::MetaError;
use crate::command::{Command, CompleteUpload, Outcome, Precondition};
use crate::keys::{self, AFTER_ALL_UTF8};
use crate::record::{
    BucketRecord, CorsRule, DefaultEncryption, LifecycleRule, NULL_VERSION, ObjectDetails,
    ObjectLockConfig, ObjectRecord, ObjectSummary, PartRecord, Payload, Record, RetentionMode,
    StripeRef, Tags, UploadRecord, VersioningState, decode, decode_summary, encode,
};
use crate::store::{
    ListEntry, ListPage, MetaStore, PartListing, PayloadCursor, PayloadEntry, PayloadOwner,
    UploadListing, UploadPage, VersionEntry, VersionPage,
};

const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
/// The current version of each key (possibly a delete marker): `bucket 0x00 key`.
const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
/// Noncurrent versions, newest first within a key: see [`keys::version_key`]. Every key with
/// a noncurrent version has a current one in [`OBJECTS`].
const VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("versions");
const UPLOADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("uploads");
const PARTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("parts");
/// Per-bucket settings (tagging, and later CORS, versioning…): `bucket 0x00 name`.
const BUCKET_SETTINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bucket_settings");
const TAGGING_SETTING: &str = "tagging";
/// Node-wide facts: the id of the drive set this metadata describes.
const SYSTEM: TableDefinition<&str, &[u8]> = TableDefinition::new("system");
const DRIVE_SET_KEY: &str = "drive-set";
const CORS_SETTING: &str = "cors";
const VERSIONING_SETTING: &str = "versioning";
const OBJECT_LOCK_SETTING: &str = "object-lock";
const LIFECYCLE_SETTING: &str = "lifecycle";
const ENCRYPTION_SETTING: &str = "encryption";
const POLICY_SETTING: &str = "policy";
/// Users and access keys, opaque to the metadata layer.
const IDENTITIES: TableDefinition<&str, &[u8]> = TableDefinition::new("identities");

/// redb's own default is 1 GiB; a node's memory should be bounded by its configuration.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// How many commands one commit may carry at most.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Outcome, MetaError>>;

pub struct RedbStore {
    db: Arc<Database>,
    writer: Option<mpsc::Sender<(Command, Reply)>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    poisoned: Arc<AtomicBool>,
}

impl Drop for RedbStore {
    /// Closing the queue ends the writer thread once it has committed what it holds; waiting
    /// for it releases the database file for the next opener.
    fn drop(&mut self) {
        self.writer.take();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

impl RedbStore {
    /// Opens (or creates) the store at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self, MetaError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens with a page cache of `cache_bytes`: the engine's share of the node's memory.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, MetaError> {
        let db = Arc::new(
            Database::builder()
                .set_cache_size(cache_bytes)
                .create(path)?,
        );
        let txn = db.begin_write()?;
        txn.open_table(BUCKETS)?;
        txn.open_table(OBJECTS)?;
        txn.open_table(VERSIONS)?;
        txn.open_table(UPLOADS)?;
        txn.open_table(PARTS)?;
        txn.open_table(BUCKET_SETTINGS)?;
        txn.open_table(SYSTEM)?;
        txn.open_table(IDENTITIES)?;
        txn.commit()?;

        let (tx, rx) = mpsc::channel::<(Command, Reply)>();
        let poisoned = Arc::new(AtomicBool::new(false));
        let (writer_db, writer_poisoned) = (db.clone(), poisoned.clone());
        let thread = std::thread::Builder::new()
            .name("basalt-meta-writer".into())
            .spawn(move || writer_loop(&writer_db, &rx, &writer_poisoned))
            .map_err(|e| MetaError::Storage(format!("cannot start the metadata writer: {e}")))?;
        Ok(Self {
            db,
            writer: Some(tx),
            writer_thread: Some(thread),
            poisoned,
        })
    }

    async fn read<T, F>(&self, f: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, MetaError> + Send + 'static,
    {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(MetaError::Poisoned);
        }
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| MetaError::Storage(format!("metadata read task failed: {e}")))?
    }
}

fn writer_loop(db: &Database, rx: &mpsc::Receiver<(Command, Reply)>, poisoned: &AtomicBool) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if poisoned.load(Ordering::Acquire) {
            for (_, reply) in batch {
                let _ = reply.send(Err(MetaError::Poisoned));
            }
            continue;
        }
        match commit_batch(db, &batch) {
            Ok(results) => {
                for ((_, reply), result) in batch.into_iter().zip(results) {
                    // The requester may have gone away (client disconnect); the write stands.
                    let _ = reply.send(result);
                }
            }
            Err(BatchError::Commit(e)) => {
                // A failed commit means a failed fsync or write: what is on disk is unknown, so
                // refuse everything from now on rather than retry (see DESIGN.md).
                tracing::error!(error = %e, "metadata commit failed; the store is poisoned");
                poisoned.store(true, Ordering::Release);
                for (_, reply) in batch {
                    let _ = reply.send(Err(MetaError::Poisoned));
                }
            }
            Err(BatchError::Apply(e)) => {
                tracing::error!(error = %e, "metadata batch aborted");
                for (_, reply) in batch {
                    let _ = reply.send(Err(MetaError::Storage(e.to_string())));
                }
            }
        }
    }
}

enum BatchError {
    Apply(MetaError),
    Commit(MetaError),
}

impl RedbStore {
    /// The drive set this metadata was bound to, if any. Blocking: call at open time.
    pub fn drive_set(&self) -> Result<Option<[u8; 16]>, MetaError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SYSTEM)?;
        let Some(value) = table.get(DRIVE_SET_KEY)? else {
            return Ok(None);
        };
        let id: [u8; 16] = value
            .value()
            .try_into()
            .map_err(|_| MetaError::Corrupt("drive set id".into()))?;
        Ok(Some(id))
    }

    /// Records which drive set this metadata describes. Blocking: call at open time.
    pub fn bind_drive_set(&self, id: [u8; 16]) -> Result<(), MetaError> {
        let txn = self.db.begin_write()?;
        txn.open_table(SYSTEM)?
            .insert(DRIVE_SET_KEY, id.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Whether the store holds no bucket (so no record). Blocking: call at open time.
    pub fn is_empty(&self) -> Result<bool, MetaError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(BUCKETS)?.first()?.is_none())
    }

    /// One setting of a bucket; `NoSuchBucket` if the bucket does not exist.
    async fn get_setting<T: Record + Send + 'static>(
        &self,
        bucket: &str,
        name: &'static str,
    ) -> Result<Option<T>, MetaError> {
        let bucket = bucket.to_owned();
        self.read(move |db| {
            let txn = db.begin_read()?;
            if txn.open_table(BUCKETS)?.get(bucket.as_str())?.is_none() {
                return Err(MetaError::NoSuchBucket);
            }
            let k = keys::object_key(&bucket, name);
            txn.open_table(BUCKET_SETTINGS)?
                .get(k.as_slice())?
                .map(|g| decode(g.value()))
                .transpose()
        })
        .await
    }
}

fn commit_batch(
    db: &Database,
    batch: &[(Command, Reply)],
) -> Result<Vec<Result<Outcome, MetaError>>, BatchError> {
    let txn = db.begin_write().map_err(|e| BatchError::Apply(e.into()))?;
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut tables = Tables::open(&txn).map_err(BatchError::Apply)?;
        for (command, _) in batch {
            match tables.apply(command) {
                // Storage errors leave the transaction in an unknown state: abort it all.
                Err(
                    e @ (MetaError::Storage(_)
                    | MetaError::Corrupt(_)
                    | MetaError::UnsupportedFormat(_)),
                ) => {
                    return Err(BatchError::Apply(e));
                }
                other => results.push(other),
            }
        }
    }
    txn.commit().map_err(|e| BatchError::Commit(e.into()))?;
    Ok(results)
}

struct Tables<'txn> {
    buckets: Table<'txn, &'static str, &'static [u8]>,
    objects: Table<'txn, &'static [u8], &'static [u8]>,
    versions: Table<'txn, &'static [u8], &'static [u8]>,
    uploads: Table<'txn, &'static [u8], &'static [u8]>,
    parts: Table<'txn, &'static [u8], &'static [u8]>,
    settings: Table<'txn, &'static [u8], &'static [u8]>,
    identities: Table<'txn, &'static str, &'static [u8]>,
}

/// Moves shards of stripe `id` in `payload` if every one is still where the move starts.
fn move_shards(payload: &mut Payload, id: &[u8; 16], moves: &[(usize, u16, u16)]) -> bool {
    let Payload::Stripes(stripes) = payload else {
        return false;
    };
    let Some(stripe) = stripes.iter_mut().find(|s| &s.id == id) else {
        return false;
    };
    if !moves
        .iter()
        .all(|(i, from, _)| stripe.shards.get(*i).is_some_and(|s| s.drive == *from))
    {
        return false;
    }
    for (i, _, to) in moves {
        if let Some(shard) = stripe.shards.get_mut(*i) {
            shard.drive = *to;
        }
    }
    true
}

/// Where a version of a key is stored.
enum Slot {
    Current,
    Noncurrent(Vec<u8>),
}

/// A noncurrent version as stored: (raw key, sequence number, record bytes).
type StoredVersion<'a> = (Vec<u8>, u64, redb::AccessGuard<'a, &'static [u8]>);

/// The noncurrent versions of a key, newest first.
fn noncurrent_versions<'a>(
    versions: &'a impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket: &str,
    key: &str,
) -> Result<impl Iterator<Item = Result<StoredVersion<'a>, MetaError>> + 'a, MetaError> {
    let (start, end) = keys::versions_range(bucket, key);
    let prefix_len = start.len();
    Ok(versions
        .range(start.as_slice()..end.as_slice())?
        .filter_map(move |entry| match entry {
            Err(e) => Some(Err(MetaError::from(e))),
            Ok((k, v)) => keys::version_seq_of(k.value(), prefix_len)
                .map(|seq| Ok((k.value().to_vec(), seq, v))),
        }))
}

/// Finds a version by its S3 name (`null` for the null version).
fn find_version(
    objects: &impl ReadableTable<&'static [u8], &'static [u8]>,
    versions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket: &str,
    key: &str,
    wanted: &str,
) -> Result<Option<(Slot, ObjectRecord)>, MetaError> {
    let k = keys::object_key(bucket, key);
    match objects.get(k.as_slice())? {
        None => return Ok(None),
        Some(current) => {
            if decode_summary(current.value())?.version_name() == wanted {
                return Ok(Some((Slot::Current, decode(current.value())?)));
            }
        }
    }
    for entry in noncurrent_versions(versions, bucket, key)? {
        let (raw, _, value) = entry?;
        if decode_summary(value.value())?.version_name() == wanted {
            return Ok(Some((Slot::Noncurrent(raw), decode(value.value())?)));
        }
    }
    Ok(None)
}

fn locked(what: &str) -> MetaError {
    MetaError::Locked(format!("{what} is protected by object lock"))
}

fn check_precondition(
    existing: Option<&ObjectRecord>,
    precondition: Option<&Precondition>,
) -> Result<(), MetaError> {
    match (precondition, existing) {
        (None, _) => Ok(()),
        (Some(Precondition::IfNoneMatchAny), None) => Ok(()),
        (Some(Precondition::IfNoneMatchAny), Some(_)) => Err(MetaError::PreconditionFailed),
        (Some(Precondition::IfMatch(_)), None) => Err(MetaError::NoSuchKey),
        (Some(Precondition::IfMatch(etag)), Some(record)) => {
            if etag == "*" || *etag == record.summary.etag {
                Ok(())
            } else {
                Err(MetaError::PreconditionFailed)
            }
        }
    }
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn redb::WriteTransaction) -> Result<Self, MetaError> {
        Ok(Self {
            buckets: txn.open_table(BUCKETS)?,
            objects: txn.open_table(OBJECTS)?,
            versions: txn.open_table(VERSIONS)?,
            uploads: txn.open_table(UPLOADS)?,
            parts: txn.open_table(PARTS)?,
            settings: txn.open_table(BUCKET_SETTINGS)?,
            identities: txn.open_table(IDENTITIES)?,
        })
    }

    /// Stores (or with `None` removes) one setting of an existing bucket.
    fn set_setting<T: serde::Serialize>(
        &mut self,
        bucket: &str,
        name: &str,
        value: Option<&T>,
    ) -> Result<Outcome, MetaError> {
        self.require_bucket(bucket)?;
        let k = keys::object_key(bucket, name);
        match value {
            Some(value) => {
                self.settings
                    .insert(k.as_slice(), encode(value).as_slice())?;
            }
            None => {
                self.settings.remove(k.as_slice())?;
            }
        }
        Ok(Outcome::default())
    }

    fn apply(&mut self, command: &Command) -> Result<Outcome, MetaError> {
        match command {
            Command::CreateBucket {
                name,
                record,
                object_lock,
            } => {
                if self.buckets.get(name.as_str())?.is_some() {
                    return Err(MetaError::BucketAlreadyExists);
                }
                self.buckets
                    .insert(name.as_str(), encode(record).as_slice())?;
                if *object_lock {
                    self.set_setting(name, VERSIONING_SETTING, Some(&VersioningState::Enabled))?;
                    self.set_setting(
                        name,
                        OBJECT_LOCK_SETTING,
                        Some(&ObjectLockConfig::default()),
                    )?;
                }
                Ok(Outcome::default())
            }
            Command::SetVersioning { bucket, state } => {
                if *state == VersioningState::Suspended
                    && self
                        .setting::<ObjectLockConfig>(bucket, OBJECT_LOCK_SETTING)?
                        .is_some()
                {
                    return Err(MetaError::InvalidBucketState(
                        "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.".into(),
                    ));
                }
                self.set_setting(bucket, VERSIONING_SETTING, Some(state))
            }
            Command::SetObjectLockConfig { bucket, config } => {
                if self.setting::<VersioningState>(bucket, VERSIONING_SETTING)?
                    != Some(VersioningState::Enabled)
                {
                    return Err(MetaError::InvalidBucketState(
                        "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration".into(),
                    ));
                }
                self.set_setting(bucket, OBJECT_LOCK_SETTING, Some(config))
            }
            Command::SetBucketPolicy { bucket, policy } => {
                self.set_setting(bucket, POLICY_SETTING, policy.as_ref())
            }
            Command::SetIdentity { key, value } => {
                let existed = match value {
                    Some(v) => self
                        .identities
                        .insert(key.as_str(), v.as_slice())?
                        .is_some(),
                    None => self.identities.remove(key.as_str())?.is_some(),
                };
                Ok(Outcome {
                    existed,
                    ..Default::default()
                })
            }
            Command::SetBucketEncryption { bucket, config } => {
                self.set_setting(bucket, ENCRYPTION_SETTING, config.as_ref())
            }
            Command::SetLifecycle { bucket, rules } => {
                self.set_setting(bucket, LIFECYCLE_SETTING, rules.as_ref())
            }
            Command::DeleteBucket { name } => self.delete_bucket(name),
            Command::SetBucketTags { bucket, tags } => {
                self.set_setting(bucket, TAGGING_SETTING, tags.as_ref())
            }
            Command::SetBucketCors { bucket, rules } => {
                self.set_setting(bucket, CORS_SETTING, rules.as_ref())
            }
            Command::MoveShards {
                owner,
                stripe,
                moves,
            } => {
                let existed = match owner {
                    PayloadOwner::Object {
                        bucket,
                        key,
                        version_id,
                    } => {
                        let wanted = version_id.as_deref().unwrap_or(NULL_VERSION);
                        match find_version(&self.objects, &self.versions, bucket, key, wanted)? {
                            Some((slot, mut record)) => {
                                let moved = move_shards(&mut record.details.payload, stripe, moves);
                                if moved {
                                    self.store_version(bucket, key, &slot, &record)?;
                                }
                                moved
                            }
                            None => false,
                        }
                    }
                    PayloadOwner::Part {
                        upload_id,
                        part_number,
                    } => {
                        let k = keys::part_key(upload_id, *part_number);
                        let mut record = self
                            .parts
                            .get(k.as_slice())?
                            .map(|g| decode::<PartRecord>(g.value()))
                            .transpose()?;
                        let moved = record
                            .as_mut()
                            .is_some_and(|r| move_shards(&mut r.payload, stripe, moves));
                        if let (true, Some(record)) = (moved, record) {
                            self.parts
                                .insert(k.as_slice(), encode(&record).as_slice())?;
                        }
                        moved
                    }
                };
                Ok(Outcome {
                    existed,
                    ..Default::default()
                })
            }
            Command::SetObjectTags {
                bucket,
                key,
                version_id,
                tags,
            } => self.update_version(bucket, key, version_id.as_deref(), |record| {
                record.details.tags.clone_from(tags);
                Ok(())
            }),
            Command::SetRetention {
                bucket,
                key,
                version_id,
                retention,
                bypass_governance,
                now_ms,
            } => {
                self.require_object_lock(bucket)?;
                self.update_version(bucket, key, version_id.as_deref(), |record| {
                    if let Some(old) = record.details.lock.retention
                        && old.until_ms > *now_ms
                    {
                        let weakens = match retention {
                            None => true,
                            Some(new) => {
                                new.until_ms < old.until_ms
                                    || (old.mode == RetentionMode::Compliance
                                        && new.mode == RetentionMode::Governance)
                            }
                        };
                        if weakens && (old.mode == RetentionMode::Compliance || !*bypass_governance)
                        {
                            return Err(locked("the version's retention"));
                        }
                    }
                    record.details.lock.retention = *retention;
                    Ok(())
                })
            }
            Command::SetLegalHold {
                bucket,
                key,
                version_id,
                on,
            } => {
                self.require_object_lock(bucket)?;
                self.update_version(bucket, key, version_id.as_deref(), |record| {
                    record.details.lock.legal_hold = *on;
                    Ok(())
                })
            }
            Command::PutObject {
                bucket,
                key,
                record,
                precondition,
            } => {
                self.require_bucket(bucket)?;
                let existing = self.live_object(bucket, key)?;
                check_precondition(existing.as_ref(), precondition.as_ref())?;
                let mut record = record.clone();
                self.apply_lock_defaults(bucket, &mut record)?;
                let (garbage, version_id) = self.install(bucket, key, record)?;
                Ok(Outcome {
                    garbage,
                    existed: existing.is_some(),
                    version_id: Some(version_id),
                    ..Default::default()
                })
            }
            Command::DeleteObject {
                bucket,
                key,
                version_id,
                marker_version_id,
                bypass_governance,
                now_ms,
                if_modified_ms,
            } => self.delete_object(
                bucket,
                key,
                version_id.as_deref(),
                marker_version_id,
                (*bypass_governance, *now_ms),
                *if_modified_ms,
            ),
            Command::RemoveExpiredDeleteMarker { bucket, key } => {
                let k = keys::object_key(bucket, key);
                let is_marker = self.object(&k)?.is_some_and(|r| r.summary.delete_marker);
                if !is_marker || self.newest_noncurrent(bucket, key)?.is_some() {
                    return Ok(Outcome::default());
                }
                self.objects.remove(k.as_slice())?;
                Ok(Outcome {
                    existed: true,
                    delete_marker: true,
                    ..Default::default()
                })
            }
            Command::CreateUpload {
                bucket,
                key,
                upload_id,
                record,
            } => {
                self.require_bucket(bucket)?;
                let k = keys::upload_key(bucket, key, upload_id);
                self.uploads
                    .insert(k.as_slice(), encode(record).as_slice())?;
                Ok(Outcome::default())
            }
            Command::PutPart {
                bucket,
                key,
                upload_id,
                part_number,
                record,
            } => {
                self.require_upload(bucket, key, upload_id)?;
                let k = keys::part_key(upload_id, *part_number);
                let old = self
                    .parts
                    .insert(k.as_slice(), encode(record).as_slice())?
                    .map(|g| decode::<PartRecord>(g.value()))
                    .transpose()?;
                Ok(Outcome {
                    garbage: Outcome::garbage_of_part(old.as_ref()),
                    ..Default::default()
                })
            }
            Command::CompleteUpload(c) => self.complete_upload(c),
            Command::AbortUpload {
                bucket,
                key,
                upload_id,
            } => {
                self.require_upload(bucket, key, upload_id)?;
                let garbage = self
                    .remove_parts(upload_id)?
                    .into_iter()
                    .flat_map(|(_, p)| p.payload.stripes())
                    .collect();
                self.uploads
                    .remove(keys::upload_key(bucket, key, upload_id).as_slice())?;
                Ok(Outcome {
                    garbage,
                    ..Default::default()
                })
            }
        }
    }

    fn require_bucket(&self, bucket: &str) -> Result<(), MetaError> {
        match self.buckets.get(bucket)? {
            Some(_) => Ok(()),
            None => Err(MetaError::NoSuchBucket),
        }
    }

    fn require_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord, MetaError> {
        self.require_bucket(bucket)?;
        match self
            .uploads
            .get(keys::upload_key(bucket, key, upload_id).as_slice())?
        {
            Some(g) => decode(g.value()),
            None => Err(MetaError::NoSuchUpload),
        }
    }

    fn object(&self, k: &[u8]) -> Result<Option<ObjectRecord>, MetaError> {
        self.objects.get(k)?.map(|g| decode(g.value())).transpose()
    }

    /// The current version unless it is a delete marker: what conditional writes test.
    fn live_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetaError> {
        Ok(self
            .object(&keys::object_key(bucket, key))?
            .filter(|r| !r.summary.delete_marker))
    }

    fn setting<T: Record>(&self, bucket: &str, name: &str) -> Result<Option<T>, MetaError> {
        self.settings
            .get(keys::object_key(bucket, name).as_slice())?
            .map(|g| decode(g.value()))
            .transpose()
    }

    fn require_object_lock(&self, bucket: &str) -> Result<ObjectLockConfig, MetaError> {
        self.require_bucket(bucket)?;
        self.setting(bucket, OBJECT_LOCK_SETTING)?.ok_or_else(|| {
            MetaError::InvalidRequest("Bucket is missing Object Lock Configuration".into())
        })
    }

    /// Refuses lock settings in a bucket without object lock, and applies the bucket's
    /// default retention to a version that names none.
    fn apply_lock_defaults(
        &self,
        bucket: &str,
        record: &mut ObjectRecord,
    ) -> Result<(), MetaError> {
        let config: Option<ObjectLockConfig> = self.setting(bucket, OBJECT_LOCK_SETTING)?;
        let lock = &mut record.details.lock;
        match config {
            None if lock.retention.is_some() || lock.legal_hold => Err(MetaError::InvalidRequest(
                "Bucket is missing Object Lock Configuration".into(),
            )),
            None => Ok(()),
            Some(config) => {
                if lock.retention.is_none()
                    && let Some(default) = config.default_retention
                {
                    lock.retention = Some(crate::record::Retention {
                        mode: default.mode,
                        until_ms: record.summary.last_modified_ms + default.period_ms(),
                    });
                }
                Ok(())
            }
        }
    }

    /// The newest noncurrent version of a key: (raw key, sequence number).
    fn newest_noncurrent(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, u64)>, MetaError> {
        match noncurrent_versions(&self.versions, bucket, key)?.next() {
            Some(entry) => entry.map(|(raw, seq, _)| Some((raw, seq))),
            None => Ok(None),
        }
    }

    /// Keeps `record` as the newest noncurrent version of its key.
    fn archive(&mut self, bucket: &str, key: &str, record: &ObjectRecord) -> Result<(), MetaError> {
        let seq = self
            .newest_noncurrent(bucket, key)?
            .map_or(0, |(_, seq)| seq + 1);
        self.versions.insert(
            keys::version_key(bucket, key, seq).as_slice(),
            encode(record).as_slice(),
        )?;
        Ok(())
    }

    fn store_version(
        &mut self,
        bucket: &str,
        key: &str,
        slot: &Slot,
        record: &ObjectRecord,
    ) -> Result<(), MetaError> {
        let bytes = encode(record);
        match slot {
            Slot::Current => self
                .objects
                .insert(keys::object_key(bucket, key).as_slice(), bytes.as_slice())?,
            Slot::Noncurrent(raw) => self.versions.insert(raw.as_slice(), bytes.as_slice())?,
        };
        Ok(())
    }

    /// Changes one version in place (`None`: the current one); delete markers have nothing
    /// to change.
    fn update_version(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        change: impl FnOnce(&mut ObjectRecord) -> Result<(), MetaError>,
    ) -> Result<Outcome, MetaError> {
        self.require_bucket(bucket)?;
        let found = match version_id {
            Some(wanted) => find_version(&self.objects, &self.versions, bucket, key, wanted)?
                .ok_or(MetaError::NoSuchVersion)?,
            None => (
                Slot::Current,
                self.live_object(bucket, key)?.ok_or(MetaError::NoSuchKey)?,
            ),
        };
        let (slot, mut record) = found;
        if record.summary.delete_marker {
            return Err(MetaError::DeleteMarker);
        }
        change(&mut record)?;
        self.store_version(bucket, key, &slot, &record)?;
        Ok(Outcome {
            version_id: Some(record.summary.version_name().to_owned()),
            ..Default::default()
        })
    }

    /// Makes `record` the current version of its key. With versioning enabled the old current
    /// version is kept as noncurrent; otherwise the record becomes the null version and the
    /// old null version (current or not) is dropped. Returns the garbage and the version id.
    fn install(
        &mut self,
        bucket: &str,
        key: &str,
        mut record: ObjectRecord,
    ) -> Result<(Vec<StripeRef>, String), MetaError> {
        let now_ms = record.summary.last_modified_ms;
        let enabled = self.setting::<VersioningState>(bucket, VERSIONING_SETTING)?
            == Some(VersioningState::Enabled);
        let k = keys::object_key(bucket, key);
        let mut garbage = Vec::new();
        // Every check before the first change: a refused command must change nothing.
        let replaced_null = if enabled {
            None
        } else {
            record.summary.version_id = None;
            let found = find_version(&self.objects, &self.versions, bucket, key, NULL_VERSION)?;
            if found
                .as_ref()
                .is_some_and(|(_, old)| old.details.lock.protects(now_ms, false))
            {
                return Err(locked("the null version"));
            }
            found
        };
        let current = self.object(&k)?;
        if let Some(current) = current
            && (enabled || current.summary.version_id.is_some())
        {
            self.archive(bucket, key, &current)?;
        }
        if let Some((slot, old)) = replaced_null {
            if let Slot::Noncurrent(raw) = slot {
                self.versions.remove(raw.as_slice())?;
            }
            garbage.extend(old.details.payload.stripes());
        }
        let version = record.summary.version_name().to_owned();
        self.objects
            .insert(k.as_slice(), encode(&record).as_slice())?;
        Ok((garbage, version))
    }

    fn delete_object(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        marker_version_id: &str,
        (bypass_governance, now_ms): (bool, i64),
        if_modified_ms: Option<i64>,
    ) -> Result<Outcome, MetaError> {
        self.require_bucket(bucket)?;
        let k = keys::object_key(bucket, key);
        let Some(wanted) = version_id else {
            let current = self.object(&k)?;
            if if_modified_ms.is_some()
                && current.as_ref().map(|c| c.summary.last_modified_ms) != if_modified_ms
            {
                return Ok(Outcome::default());
            }
            if self
                .setting::<VersioningState>(bucket, VERSIONING_SETTING)?
                .is_none()
            {
                let Some(current) = current else {
                    return Ok(Outcome::default());
                };
                if current.details.lock.protects(now_ms, bypass_governance) {
                    return Err(locked("the object"));
                }
                self.objects.remove(k.as_slice())?;
                return Ok(Outcome {
                    existed: true,
                    garbage: current.details.payload.stripes(),
                    ..Default::default()
                });
            }
            let marker = ObjectRecord {
                summary: ObjectSummary {
                    size: 0,
                    etag: String::new(),
                    last_modified_ms: now_ms,
                    version_id: Some(marker_version_id.to_owned()),
                    delete_marker: true,
                },
                details: ObjectDetails {
                    headers: Default::default(),
                    user_metadata: Vec::new(),
                    checksums: Vec::new(),
                    part_sizes: Vec::new(),
                    payload: Payload::Inline(Vec::new()),
                    tags: Vec::new(),
                    lock: Default::default(),
                    encryption: None,
                },
            };
            let (garbage, version_id) = self.install(bucket, key, marker)?;
            return Ok(Outcome {
                garbage,
                existed: current.is_some(),
                version_id: Some(version_id),
                delete_marker: true,
                object: None,
            });
        };
        let Some((slot, record)) =
            find_version(&self.objects, &self.versions, bucket, key, wanted)?
        else {
            return Ok(Outcome {
                version_id: Some(wanted.to_owned()),
                ..Default::default()
            });
        };
        if if_modified_ms.is_some_and(|t| t != record.summary.last_modified_ms) {
            return Ok(Outcome::default());
        }
        if record.details.lock.protects(now_ms, bypass_governance) {
            return Err(locked("the version"));
        }
        match slot {
            Slot::Noncurrent(raw) => {
                self.versions.remove(raw.as_slice())?;
            }
            Slot::Current => {
                self.objects.remove(k.as_slice())?;
                // The next newest version, even a delete marker, becomes the current one.
                if let Some((raw, _)) = self.newest_noncurrent(bucket, key)? {
                    let promoted = self
                        .versions
                        .remove(raw.as_slice())?
                        .map(|g| g.value().to_vec());
                    if let Some(bytes) = promoted {
                        self.objects.insert(k.as_slice(), bytes.as_slice())?;
                    }
                }
            }
        }
        Ok(Outcome {
            existed: true,
            garbage: record.details.payload.stripes(),
            version_id: Some(wanted.to_owned()),
            delete_marker: record.summary.delete_marker,
            object: None,
        })
    }

    fn remove_parts(&mut self, upload_id: &str) -> Result<Vec<(u32, PartRecord)>, MetaError> {
        let (start, end) = keys::parts_range(upload_id);
        let mut removed = Vec::new();
        for entry in self
            .parts
            .extract_from_if(start.as_slice()..end.as_slice(), |_, _| true)?
        {
            let (k, v) = entry?;
            let number = keys::part_number_of(k.value())
                .ok_or_else(|| MetaError::Corrupt("part key".into()))?;
            removed.push((number, decode::<PartRecord>(v.value())?));
        }
        Ok(removed)
    }

    fn delete_bucket(&mut self, name: &str) -> Result<Outcome, MetaError> {
        self.require_bucket(name)?;
        let (start, end) = keys::bucket_range(name);
        if self
            .objects
            .range(start.as_slice()..end.as_slice())?
            .next()
            .is_some()
            || self
                .versions
                .range(start.as_slice()..end.as_slice())?
                .next()
                .is_some()
        {
            return Err(MetaError::BucketNotEmpty);
        }
        let mut upload_ids = Vec::new();
        for entry in self
            .uploads
            .extract_from_if(start.as_slice()..end.as_slice(), |_, _| true)?
        {
            let (k, _) = entry?;
            if let Some((_, id)) = keys::split_upload_key(name, k.value()) {
                upload_ids.push(id);
            }
        }
        let mut garbage = Vec::new();
        for id in upload_ids {
            garbage.extend(
                self.remove_parts(&id)?
                    .into_iter()
                    .flat_map(|(_, p)| p.payload.stripes()),
            );
        }
        let (settings_start, settings_end) = keys::bucket_range(name);
        self.settings.retain_in(
            settings_start.as_slice()..settings_end.as_slice(),
            |_, _| false,
        )?;
        self.buckets.remove(name)?;
        Ok(Outcome {
            garbage,
            ..Default::default()
        })
    }

    fn complete_upload(&mut self, c: &CompleteUpload) -> Result<Outcome, MetaError> {
        let CompleteUpload {
            bucket,
            key,
            upload_id,
            parts: listed,
            min_part_size,
            last_modified_ms,
            etag,
            precondition,
            version_id,
        } = c;
        let (min_part_size, last_modified_ms) = (*min_part_size, *last_modified_ms);
        let precondition = precondition.as_ref();
        let upload = self.require_upload(bucket, key, upload_id)?;
        if listed
            .windows(2)
            .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(MetaError::InvalidPartOrder);
        }
        let mut chosen = Vec::with_capacity(listed.len());
        for part in listed {
            let stored = self
                .parts
                .get(keys::part_key(upload_id, part.part_number).as_slice())?
                .map(|g| decode::<PartRecord>(g.value()))
                .transpose()?;
            match stored {
                Some(record) if record.etag == part.etag => chosen.push((part.part_number, record)),
                _ => return Err(MetaError::InvalidPart(part.part_number)),
            }
        }
        if let Some((_, init)) = chosen.split_last() {
            for (number, record) in init {
                if record.size < min_part_size {
                    return Err(MetaError::EntityTooSmall {
                        part: *number,
                        size: record.size,
                    });
                }
            }
        }
        let existing = self.live_object(bucket, key)?;
        check_precondition(existing.as_ref(), precondition)?;

        let mut record = ObjectRecord {
            summary: ObjectSummary {
                size: chosen.iter().map(|(_, p)| p.size).sum(),
                etag: etag.to_owned(),
                last_modified_ms,
                version_id: Some(version_id.to_owned()),
                delete_marker: false,
            },
            details: ObjectDetails {
                headers: upload.headers,
                user_metadata: upload.user_metadata,
                checksums: Vec::new(),
                part_sizes: chosen.iter().map(|(_, p)| p.size).collect(),
                payload: Payload::Stripes(
                    chosen
                        .iter()
                        .flat_map(|(_, p)| p.payload.stripes())
                        .collect(),
                ),
                tags: upload.tags,
                lock: upload.lock,
                encryption: upload.encryption,
            },
        };
        self.apply_lock_defaults(bucket, &mut record)?;

        let (mut garbage, version) = self.install(bucket, key, record.clone())?;
        let listed_numbers: Vec<u32> = chosen.iter().map(|(n, _)| *n).collect();
        for (number, part) in self.remove_parts(upload_id)? {
            if listed_numbers.binary_search(&number).is_err() {
                garbage.extend(part.payload.stripes());
            }
        }
        self.uploads
            .remove(keys::upload_key(bucket, key, upload_id).as_slice())?;
        record.summary.version_id = (version != NULL_VERSION).then(|| version.clone());
        Ok(Outcome {
            garbage,
            object: Some(record),
            existed: existing.is_some(),
            version_id: Some(version),
            delete_marker: false,
        })
    }
}

fn utf8_key(raw: &[u8]) -> Result<String, MetaError> {
    String::from_utf8(raw.to_vec())
        .map_err(|_| MetaError::Corrupt("object key is not UTF-8".into()))
}

/// Where the common prefix of `key` ends (after the first `delimiter` past `prefix`), if the
/// key rolls up into one: what every listing with a delimiter asks of each key.
fn common_prefix_end(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<usize> {
    let d = delimiter?;
    let rest = key.get(prefix.len()..)?;
    rest.find(d).map(|pos| prefix.len() + pos + d.len())
}

fn list_objects_sync(
    db: &Database,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    start_after: Option<&str>,
    max_entries: usize,
) -> Result<ListPage, MetaError> {
    let txn = db.begin_read()?;
    if txn.open_table(BUCKETS)?.get(bucket)?.is_none() {
        return Err(MetaError::NoSuchBucket);
    }
    let objects = txn.open_table(OBJECTS)?;
    let bucket_len = bucket.len() + 1;
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let common_prefix_of = |key: &str| common_prefix_end(key, prefix, delimiter);

    let mut lower = keys::object_key(bucket, prefix);
    if let Some(after) = start_after {
        let mut after_key = keys::object_key(bucket, after);
        // Resuming after a common prefix skips every key under it.
        if after.starts_with(prefix) && common_prefix_of(after) == Some(after.len()) {
            after_key.push(AFTER_ALL_UTF8);
        } else {
            after_key.push(0);
        }
        lower = lower.max(after_key);
    }
    let mut upper = keys::object_key(bucket, prefix);
    upper.push(AFTER_ALL_UTF8);

    let mut page = ListPage::default();
    'seek: loop {
        for entry in objects.range(lower.as_slice()..upper.as_slice())? {
            let (k, v) = entry?;
            if page.entries.len() == max_entries {
                page.is_truncated = true;
                break 'seek;
            }
            let key = utf8_key(&k.value()[bucket_len..])?;
            if let Some(end) = common_prefix_of(&key) {
                let common = key[..end].to_owned();
                lower = keys::object_key(bucket, &common);
                lower.push(AFTER_ALL_UTF8);
                page.entries.push(ListEntry::CommonPrefix(common));
                continue 'seek;
            }
            let summary = decode_summary(v.value())?;
            if summary.delete_marker {
                continue;
            }
            page.entries.push(ListEntry::Object { key, summary });
        }
        break;
    }
    Ok(page)
}

/// Adds one entry to a version page unless it is full (then marks it truncated).
fn push_version(page: &mut VersionPage, max_entries: usize, entry: VersionEntry) -> bool {
    if page.entries.len() == max_entries {
        page.is_truncated = true;
        return false;
    }
    page.next_marker = Some(match &entry {
        VersionEntry::Version { key, summary, .. } => {
            (key.clone(), Some(summary.version_name().to_owned()))
        }
        VersionEntry::CommonPrefix(p) => (p.clone(), None),
    });
    page.entries.push(entry);
    true
}

#[allow(clippy::too_many_arguments)]
fn list_versions_sync(
    db: &Database,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    key_marker: Option<&str>,
    version_id_marker: Option<&str>,
    max_entries: usize,
) -> Result<VersionPage, MetaError> {
    let txn = db.begin_read()?;
    if txn.open_table(BUCKETS)?.get(bucket)?.is_none() {
        return Err(MetaError::NoSuchBucket);
    }
    let objects = txn.open_table(OBJECTS)?;
    let versions = txn.open_table(VERSIONS)?;
    let bucket_len = bucket.len() + 1;
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let common_prefix_of = |key: &str| common_prefix_end(key, prefix, delimiter);
    let mut page = VersionPage::default();
    // Emits a key's versions newest first, from just after `after` (a version name) if given.
    let emit_key = |page: &mut VersionPage,
                    key: &str,
                    current: &[u8],
                    after: Option<&str>|
     -> Result<bool, MetaError> {
        let mut skipping = after.is_some();
        let current = decode_summary(current)?;
        let mut candidates = std::iter::once(Ok((current, true))).chain(
            noncurrent_versions(&versions, bucket, key)?
                .map(|e| e.and_then(|(_, _, v)| Ok((decode_summary(v.value())?, false)))),
        );
        for candidate in candidates.by_ref() {
            let (summary, is_latest) = candidate?;
            if skipping {
                skipping = after != Some(summary.version_name());
                continue;
            }
            let entry = VersionEntry::Version {
                key: key.to_owned(),
                summary,
                is_latest,
            };
            if !push_version(page, max_entries, entry) {
                return Ok(false);
            }
        }
        Ok(true)
    };

    let mut lower = keys::object_key(bucket, prefix);
    if let Some(marker) = key_marker {
        let mut after = keys::object_key(bucket, marker);
        let rolled_up = marker.starts_with(prefix) && common_prefix_of(marker).is_some();
        if rolled_up && common_prefix_of(marker) == Some(marker.len()) {
            after.push(AFTER_ALL_UTF8);
        } else {
            after.push(0);
        }
        if let Some(version_marker) = version_id_marker
            && marker.starts_with(prefix)
            && !rolled_up
        {
            let k = keys::object_key(bucket, marker);
            if let Some(current) = objects.get(k.as_slice())?
                && !emit_key(&mut page, marker, current.value(), Some(version_marker))?
            {
                return Ok(page);
            }
        }
        lower = lower.max(after);
    }
    let mut upper = keys::object_key(bucket, prefix);
    upper.push(AFTER_ALL_UTF8);

    'seek: loop {
        for entry in objects.range(lower.as_slice()..upper.as_slice())? {
            let (k, v) = entry?;
            let key = utf8_key(&k.value()[bucket_len..])?;
            if let Some(end) = common_prefix_of(&key) {
                let common = key[..end].to_owned();
                lower = keys::object_key(bucket, &common);
                lower.push(AFTER_ALL_UTF8);
                if !push_version(&mut page, max_entries, VersionEntry::CommonPrefix(common)) {
                    break 'seek;
                }
                continue 'seek;
            }
            if !emit_key(&mut page, &key, v.value(), None)? {
                break 'seek;
            }
        }
        break;
    }
    Ok(page)
}

#[async_trait::async_trait]
impl MetaStore for RedbStore {
    async fn execute(&self, command: Command) -> Result<Outcome, MetaError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(MetaError::Poisoned);
        }
        let (tx, rx) = oneshot::channel();
        self.writer
            .as_ref()
            .ok_or(MetaError::Poisoned)?
            .send((command, tx))
            .map_err(|_| MetaError::Poisoned)?;
        rx.await.map_err(|_| MetaError::Poisoned)?
    }

    async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, MetaError> {
        let name = name.to_owned();
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(BUCKETS)?;
            table
                .get(name.as_str())?
                .map(|g| decode(g.value()))
                .transpose()
        })
        .await
    }

    async fn list_buckets(&self) -> Result<Vec<(String, BucketRecord)>, MetaError> {
        self.read(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(BUCKETS)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (k, v) = entry?;
                out.push((k.value().to_owned(), decode(v.value())?));
            }
            Ok(out)
        })
        .await
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetaError> {
        let k = keys::object_key(bucket, key);
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(OBJECTS)?;
            table
                .get(k.as_slice())?
                .map(|g| decode(g.value()))
                .transpose()
        })
        .await
    }

    async fn get_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<ObjectRecord>, MetaError> {
        let (bucket, key, wanted) = (bucket.to_owned(), key.to_owned(), version_id.to_owned());
        self.read(move |db| {
            let txn = db.begin_read()?;
            let objects = txn.open_table(OBJECTS)?;
            let versions = txn.open_table(VERSIONS)?;
            Ok(find_version(&objects, &versions, &bucket, &key, &wanted)?.map(|(_, r)| r))
        })
        .await
    }

    async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        version_id_marker: Option<&str>,
        max_entries: usize,
    ) -> Result<VersionPage, MetaError> {
        let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
        let delimiter = delimiter.map(str::to_owned);
        let key_marker = key_marker.map(str::to_owned);
        let version_id_marker = version_id_marker.map(str::to_owned);
        self.read(move |db| {
            list_versions_sync(
                db,
                &bucket,
                &prefix,
                delimiter.as_deref(),
                key_marker.as_deref(),
                version_id_marker.as_deref(),
                max_entries,
            )
        })
        .await
    }

    async fn get_versioning(&self, bucket: &str) -> Result<Option<VersioningState>, MetaError> {
        self.get_setting(bucket, VERSIONING_SETTING).await
    }

    async fn get_object_lock_config(
        &self,
        bucket: &str,
    ) -> Result<Option<ObjectLockConfig>, MetaError> {
        self.get_setting(bucket, OBJECT_LOCK_SETTING).await
    }

    async fn get_lifecycle(&self, bucket: &str) -> Result<Option<Vec<LifecycleRule>>, MetaError> {
        self.get_setting(bucket, LIFECYCLE_SETTING).await
    }

    async fn get_bucket_encryption(
        &self,
        bucket: &str,
    ) -> Result<Option<DefaultEncryption>, MetaError> {
        self.get_setting(bucket, ENCRYPTION_SETTING).await
    }

    async fn get_bucket_policy(&self, bucket: &str) -> Result<Option<String>, MetaError> {
        self.get_setting(bucket, POLICY_SETTING).await
    }

    async fn get_identity(&self, key: &str) -> Result<Option<Vec<u8>>, MetaError> {
        let key = key.to_owned();
        self.read(move |db| {
            let txn = db.begin_read()?;
            Ok(txn
                .open_table(IDENTITIES)?
                .get(key.as_str())?
                .map(|g| g.value().to_vec()))
        })
        .await
    }

    async fn list_identities(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, MetaError> {
        let prefix = prefix.to_owned();
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(IDENTITIES)?;
            let end = format!("{prefix}\u{10FFFF}");
            let mut out = Vec::new();
            for entry in table.range(prefix.as_str()..end.as_str())? {
                let (k, v) = entry?;
                out.push((k.value().to_owned(), v.value().to_vec()));
            }
            Ok(out)
        })
        .await
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max_entries: usize,
    ) -> Result<ListPage, MetaError> {
        let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
        let delimiter = delimiter.map(str::to_owned);
        let start_after = start_after.map(str::to_owned);
        self.read(move |db| {
            list_objects_sync(
                db,
                &bucket,
                &prefix,
                delimiter.as_deref(),
                start_after.as_deref(),
                max_entries,
            )
        })
        .await
    }

    async fn get_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, MetaError> {
        let k = keys::upload_key(bucket, key, upload_id);
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(UPLOADS)?;
            table
                .get(k.as_slice())?
                .map(|g| decode(g.value()))
                .transpose()
        })
        .await
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max_uploads: usize,
    ) -> Result<UploadPage, MetaError> {
        let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
        let delimiter = delimiter.filter(|d| !d.is_empty()).map(str::to_owned);
        let (key_marker, upload_id_marker) = (
            key_marker.map(str::to_owned),
            upload_id_marker.map(str::to_owned),
        );
        self.read(move |db| {
            let common_prefix_of =
                |key: &str| common_prefix_end(key, &prefix, delimiter.as_deref());
            let mut lower = keys::object_key(&bucket, &prefix);
            if let Some(marker) = key_marker.as_deref() {
                let after = match upload_id_marker.as_deref() {
                    Some(id) => {
                        let mut k = keys::upload_key(&bucket, marker, id);
                        k.push(0);
                        k
                    }
                    None => {
                        let mut k = keys::object_key(&bucket, marker);
                        // After a common prefix, nothing under it; after a key, its uploads.
                        if marker.starts_with(&prefix)
                            && common_prefix_of(marker) == Some(marker.len())
                        {
                            k.push(AFTER_ALL_UTF8);
                        } else {
                            k.push(1);
                        }
                        k
                    }
                };
                lower = lower.max(after);
            }
            let mut upper = keys::object_key(&bucket, &prefix);
            upper.push(AFTER_ALL_UTF8);
            let txn = db.begin_read()?;
            let table = txn.open_table(UPLOADS)?;
            let mut page = UploadPage::default();
            'seek: loop {
                for entry in table.range(lower.as_slice()..upper.as_slice())? {
                    let (k, v) = entry?;
                    if page.uploads.len() + page.common_prefixes.len() == max_uploads {
                        page.is_truncated = true;
                        break 'seek;
                    }
                    let (key, upload_id) = keys::split_upload_key(&bucket, k.value())
                        .ok_or_else(|| MetaError::Corrupt("upload key".into()))?;
                    if let Some(end) = common_prefix_of(&key) {
                        let common = key[..end].to_owned();
                        lower = keys::object_key(&bucket, &common);
                        lower.push(AFTER_ALL_UTF8);
                        page.next_marker = Some((common.clone(), None));
                        page.common_prefixes.push(common);
                        continue 'seek;
                    }
                    page.next_marker = Some((key.clone(), Some(upload_id.clone())));
                    page.uploads.push(UploadListing {
                        key,
                        upload_id,
                        record: decode(v.value())?,
                    });
                }
                break;
            }
            Ok(page)
        })
        .await
    }

    async fn list_parts(
        &self,
        upload_id: &str,
        part_number_marker: u32,
        max_parts: usize,
    ) -> Result<(Vec<PartListing>, bool), MetaError> {
        let (_, upper) = keys::parts_range(upload_id);
        let lower = keys::part_key(upload_id, part_number_marker.saturating_add(1));
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(PARTS)?;
            let mut out = Vec::new();
            for entry in table.range(lower.as_slice()..upper.as_slice())? {
                let (k, v) = entry?;
                if out.len() == max_parts {
                    return Ok((out, true));
                }
                let part_number = keys::part_number_of(k.value())
                    .ok_or_else(|| MetaError::Corrupt("part key".into()))?;
                out.push(PartListing {
                    part_number,
                    record: decode(v.value())?,
                });
            }
            Ok((out, false))
        })
        .await
    }

    async fn referenced_stripes(&self) -> Result<Vec<StripeRef>, MetaError> {
        self.read(|db| {
            let txn = db.begin_read()?;
            let mut out = Vec::new();
            for table in [OBJECTS, VERSIONS] {
                for entry in txn.open_table(table)?.iter()? {
                    let (_, v) = entry?;
                    out.extend(decode::<ObjectRecord>(v.value())?.details.payload.stripes());
                }
            }
            for entry in txn.open_table(PARTS)?.iter()? {
                let (_, v) = entry?;
                out.extend(decode::<PartRecord>(v.value())?.payload.stripes());
            }
            Ok(out)
        })
        .await
    }

    async fn get_bucket_tags(&self, bucket: &str) -> Result<Option<Tags>, MetaError> {
        self.get_setting(bucket, TAGGING_SETTING).await
    }

    async fn get_bucket_cors(&self, bucket: &str) -> Result<Option<Vec<CorsRule>>, MetaError> {
        self.get_setting(bucket, CORS_SETTING).await
    }

    async fn payload_page(
        &self,
        after: Option<PayloadCursor>,
        max: usize,
    ) -> Result<Vec<PayloadEntry>, MetaError> {
        self.read(move |db| {
            let txn = db.begin_read()?;
            let mut out = Vec::new();
            let start_table = after.as_ref().map_or(0, PayloadCursor::table);
            for table_id in start_table..=2u8 {
                let table = txn.open_table(match table_id {
                    0 => OBJECTS,
                    1 => PARTS,
                    _ => VERSIONS,
                })?;
                let range = match after.as_ref().filter(|c| c.table() == table_id) {
                    Some(c) => table.range::<&[u8]>((
                        std::ops::Bound::Excluded(c.key()),
                        std::ops::Bound::Unbounded,
                    ))?,
                    None => table.iter()?,
                };
                for entry in range {
                    if out.len() == max {
                        return Ok(out);
                    }
                    let (k, v) = entry?;
                    let raw = k.value();
                    let (owner, payload) = if table_id != 1 {
                        let (bucket, key) = if table_id == 0 {
                            keys::split_object_key(raw)
                        } else {
                            keys::split_version_key(raw)
                        }
                        .ok_or_else(|| MetaError::Corrupt("object key".into()))?;
                        let record: ObjectRecord = decode(v.value())?;
                        let owner = PayloadOwner::Object {
                            bucket,
                            key,
                            version_id: record.summary.version_id,
                        };
                        (owner, record.details.payload)
                    } else {
                        let part_number = keys::part_number_of(raw)
                            .ok_or_else(|| MetaError::Corrupt("part key".into()))?;
                        let upload_id =
                            String::from_utf8_lossy(&raw[..raw.len().saturating_sub(5)])
                                .into_owned();
                        let record: PartRecord = decode(v.value())?;
                        (
                            PayloadOwner::Part {
                                upload_id,
                                part_number,
                            },
                            record.payload,
                        )
                    };
                    out.push(PayloadEntry {
                        cursor: PayloadCursor::new(table_id, raw.to_vec()),
                        owner,
                        payload,
                    });
                }
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ChunkRef, ObjectDetails, StandardHeaders};
    use crate::{CompletePart, Precondition, RetentionMode, VersionEntry, VersioningState};

    fn open() -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
        (dir, store)
    }

    fn object(etag: &str, chunk: u8) -> ObjectRecord {
        ObjectRecord {
            summary: ObjectSummary {
                size: 1,
                etag: etag.into(),
                last_modified_ms: 0,
                version_id: Some(format!("v-{etag}")),
                delete_marker: false,
            },
            details: ObjectDetails {
                headers: StandardHeaders::default(),
                user_metadata: vec![],
                checksums: vec![],
                part_sizes: vec![],
                payload: Payload::Chunks(vec![ChunkRef {
                    id: [chunk; 16],
                    len: 1,
                    crc32c: 0,
                }]),
                tags: vec![],
                lock: Default::default(),
                encryption: None,
            },
        }
    }

    async fn bucket(store: &RedbStore, name: &str) {
        store
            .execute(Command::CreateBucket {
                name: name.into(),
                record: BucketRecord { created_ms: 0 },
                object_lock: false,
            })
            .await
            .unwrap();
    }

    async fn create_upload(store: &RedbStore, upload_id: &str) {
        let record = UploadRecord {
            initiated_ms: 0,
            headers: StandardHeaders::default(),
            user_metadata: vec![],
            checksum_algorithm: None,
            tags: vec![("from".into(), "upload".into())],
            lock: Default::default(),
            encryption: None,
        };
        store
            .execute(Command::CreateUpload {
                bucket: "b".into(),
                key: "k".into(),
                upload_id: upload_id.into(),
                record,
            })
            .await
            .unwrap();
    }

    fn delete(key: &str, version_id: Option<&str>) -> Command {
        Command::DeleteObject {
            bucket: "b".into(),
            key: key.into(),
            version_id: version_id.map(str::to_owned),
            marker_version_id: format!("marker-{key}-{}", rand_suffix()),
            bypass_governance: false,
            now_ms: 0,
            if_modified_ms: None,
        }
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::AtomicU64;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    fn put(key: &str, record: ObjectRecord, precondition: Option<Precondition>) -> Command {
        Command::PutObject {
            bucket: "b".into(),
            key: key.into(),
            record,
            precondition,
        }
    }

    #[tokio::test]
    async fn tags_of_objects_and_buckets_are_set_replaced_and_removed() {
        let (_dir, store) = open();
        bucket(&store, "b").await;
        assert_eq!(store.get_bucket_tags("b").await.unwrap(), None);
        let tags = vec![("env".to_owned(), "prod".to_owned())];
        let set = |tags| Command::SetBucketTags {
            bucket: "b".into(),
            tags,
        };
        store.execute(set(Some(tags.clone()))).await.unwrap();
        assert_eq!(
            store.get_bucket_tags("b").await.unwrap(),
            Some(tags.clone())
        );
        store.execute(set(None)).await.unwrap();
        assert_eq!(store.get_bucket_tags("b").await.unwrap(), None);
        assert!(matches!(
            store.get_bucket_tags("nope").await,
            Err(MetaError::NoSuchBucket)
        ));

        let tag_object = |key: &str| Command::SetObjectTags {
            bucket: "b".into(),
            key: key.into(),
            version_id: None,
            tags: tags.clone(),
        };
        assert!(matches!(
            store.execute(tag_object("k")).await,
            Err(MetaError::NoSuchKey)
        ));
        store.execute(put("k", object("e", 1), None)).await.unwrap();
        store.execute(tag_object("k")).await.unwrap();
        let record = store.get_object("b", "k").await.unwrap().unwrap();
        assert_eq!(record.details.tags, tags);
        assert_eq!(
            record.summary.etag, "e",
            "tagging leaves the object as it was"
        );

        // Settings go with their bucket.
        store.execute(set(Some(tags.clone()))).await.unwrap();
        store.execute(delete("k", None)).await.unwrap();
        store
            .execute(Command::DeleteBucket { name: "b".into() })
            .await
            .unwrap();
        bucket(&store, "b").await;
        assert_eq!(store.get_bucket_tags("b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn payload_pages_walk_every_object_and_part_once() {
        let (_dir, store) = open();
        bucket(&store, "b").await;
        for (i, key) in ["a", "b/c", "z"].iter().enumerate() {
            store
                .execute(put(key, object("e", i as u8), None))
                .await
                .unwrap();
        }
        create_upload(&store, "u1").await;
        let part = PartRecord {
            size: 1,
            etag: "p".into(),
            last_modified_ms: 0,
            checksum: None,
            payload: Payload::Chunks(vec![]),
        };
        store
            .execute(Command::PutPart {
                bucket: "b".into(),
                key: "k".into(),
                upload_id: "u1".into(),
                part_number: 7,
                record: part,
            })
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.payload_page(cursor.clone(), 2).await.unwrap();
            let Some(last) = page.last() else { break };
            cursor = Some(last.cursor.clone());
            seen.extend(page.into_iter().map(|e| e.owner.to_string()));
        }
        assert_eq!(
            seen,
            [
                "object b/a",
                "object b/b/c",
                "object b/z",
                "part 7 of upload u1"
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_many_concurrent_if_none_match_writers_exactly_one_wins() {
        let (_dir, store) = open();
        let store = Arc::new(store);
        bucket(&store, "b").await;
        let tasks: Vec<_> = (0..64u8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .execute(put(
                            "lock",
                            object(&format!("e{i}"), i),
                            Some(Precondition::IfNoneMatchAny),
                        ))
                        .await
                })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => wins += 1,
                Err(MetaError::PreconditionFailed) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(wins, 1);
    }

    #[tokio::test]
    async fn an_overwrite_returns_the_old_chunks_and_if_match_checks_the_etag() {
        let (_dir, store) = open();
        bucket(&store, "b").await;
        store
            .execute(put("k", object("one", 1), None))
            .await
            .unwrap();
        let err = store
            .execute(put(
                "k",
                object("two", 2),
                Some(Precondition::IfMatch("nope".into())),
            ))
            .await;
        assert!(matches!(err, Err(MetaError::PreconditionFailed)));
        let err = store
            .execute(put(
                "missing",
                object("x", 3),
                Some(Precondition::IfMatch("x".into())),
            ))
            .await;
        assert!(matches!(err, Err(MetaError::NoSuchKey)));
        let out = store
            .execute(put(
                "k",
                object("two", 2),
                Some(Precondition::IfMatch("one".into())),
            ))
            .await
            .unwrap();
        assert_eq!(
            out.garbage,
            vec![StripeRef::from(&ChunkRef {
                id: [1; 16],
                len: 1,
                crc32c: 0
            })]
        );
        assert_eq!(
            store
                .get_object("b", "k")
                .await
                .unwrap()
                .unwrap()
                .summary
                .etag,
            "two"
        );
    }

    #[tokio::test]
    async fn listing_rolls_up_common_prefixes_and_resumes_after_them() {
        let (_dir, store) = open();
        bucket(&store, "b").await;
        bucket(&store, "b2").await;
        for key in ["a.txt", "dir/1", "dir/2", "dir/sub/3", "e.txt", "z/9"] {
            store.execute(put(key, object("e", 0), None)).await.unwrap();
        }
        store
            .execute(Command::PutObject {
                bucket: "b2".into(),
                key: "other".into(),
                record: object("e", 0),
                precondition: None,
            })
            .await
            .unwrap();
        let names = |page: &ListPage| -> Vec<String> {
            page.entries
                .iter()
                .map(|e| match e {
                    ListEntry::Object { key, .. } => key.clone(),
                    ListEntry::CommonPrefix(p) => format!("{p}*"),
                })
                .collect()
        };
        let all = store
            .list_objects("b", "", Some("/"), None, 1000)
            .await
            .unwrap();
        assert_eq!(names(&all), ["a.txt", "dir/*", "e.txt", "z/*"]);
        assert!(!all.is_truncated);

        let first = store
            .list_objects("b", "", Some("/"), None, 2)
            .await
            .unwrap();
        assert_eq!(names(&first), ["a.txt", "dir/*"]);
        assert!(first.is_truncated);
        let rest = store
            .list_objects("b", "", Some("/"), Some("dir/"), 2)
            .await
            .unwrap();
        assert_eq!(names(&rest), ["e.txt", "z/*"]);
        assert!(!rest.is_truncated);

        let inside = store
            .list_objects("b", "dir/", Some("/"), None, 1000)
            .await
            .unwrap();
        assert_eq!(names(&inside), ["dir/1", "dir/2", "dir/sub/*"]);
        let flat = store
            .list_objects("b", "dir/", None, Some("dir/1"), 1000)
            .await
            .unwrap();
        assert_eq!(names(&flat), ["dir/2", "dir/sub/3"]);
        assert!(matches!(
            store.list_objects("nope", "", None, None, 10).await,
            Err(MetaError::NoSuchBucket)
        ));
    }

    #[tokio::test]
    async fn completing_an_upload_checks_parts_and_frees_the_unlisted_ones() {
        let (_dir, store) = open();
        bucket(&store, "b").await;
        create_upload(&store, "u1").await;
        for (n, size) in [(1u32, 10u64), (2, 3), (3, 10)] {
            let record = PartRecord {
                size,
                etag: format!("etag{n}"),
                last_modified_ms: 0,
                checksum: None,
                payload: Payload::Chunks(vec![ChunkRef {
                    id: [n as u8; 16],
                    len: size as u32,
                    crc32c: 0,
                }]),
            };
            store
                .execute(Command::PutPart {
                    bucket: "b".into(),
                    key: "k".into(),
                    upload_id: "u1".into(),
                    part_number: n,
                    record,
                })
                .await
                .unwrap();
        }
        let complete = |parts: Vec<(u32, &str)>| {
            Command::CompleteUpload(crate::CompleteUpload {
                bucket: "b".into(),
                key: "k".into(),
                upload_id: "u1".into(),
                parts: parts
                    .into_iter()
                    .map(|(part_number, etag)| CompletePart {
                        part_number,
                        etag: etag.into(),
                    })
                    .collect(),
                min_part_size: 5,
                last_modified_ms: 1,
                version_id: "v-multipart".into(),
                etag: "final-2".into(),
                precondition: None,
            })
        };
        assert!(matches!(
            store
                .execute(complete(vec![(2, "etag2"), (3, "etag3")]))
                .await,
            Err(MetaError::EntityTooSmall { part: 2, .. })
        ));
        assert!(matches!(
            store.execute(complete(vec![(1, "wrong")])).await,
            Err(MetaError::InvalidPart(1))
        ));
        assert!(matches!(
            store
                .execute(complete(vec![(3, "etag3"), (1, "etag1")]))
                .await,
            Err(MetaError::InvalidPartOrder)
        ));
        assert!(matches!(
            store.execute(complete(vec![(4, "etag4")])).await,
            Err(MetaError::InvalidPart(4))
        ));

        let out = store
            .execute(complete(vec![(1, "etag1"), (3, "etag3")]))
            .await
            .unwrap();
        assert_eq!(
            out.garbage,
            vec![StripeRef::from(&ChunkRef {
                id: [2; 16],
                len: 3,
                crc32c: 0
            })]
        );
        let record = store.get_object("b", "k").await.unwrap().unwrap();
        assert_eq!(record.summary.size, 20);
        assert_eq!(record.summary.etag, "final-2");
        assert_eq!(record.details.part_sizes, vec![10, 10]);
        assert!(store.get_upload("b", "k", "u1").await.unwrap().is_none());
        assert!(store.list_parts("u1", 0, 100).await.unwrap().0.is_empty());
        assert!(matches!(
            store.execute(complete(vec![(1, "etag1")])).await,
            Err(MetaError::NoSuchUpload)
        ));
    }

    #[tokio::test]
    async fn a_bucket_with_objects_is_not_deleted_but_pending_uploads_go_with_it() {
        let (_dir, store) = open();
        bucket(&store, "b").await;
        store.execute(put("k", object("e", 1), None)).await.unwrap();
        assert!(matches!(
            store
                .execute(Command::DeleteBucket { name: "b".into() })
                .await,
            Err(MetaError::BucketNotEmpty)
        ));
        store.execute(delete("k", None)).await.unwrap();
        create_upload(&store, "u").await;
        let record = PartRecord {
            size: 1,
            etag: "p".into(),
            last_modified_ms: 0,
            checksum: None,
            payload: Payload::Chunks(vec![ChunkRef {
                id: [9; 16],
                len: 1,
                crc32c: 0,
            }]),
        };
        store
            .execute(Command::PutPart {
                bucket: "b".into(),
                key: "k".into(),
                upload_id: "u".into(),
                part_number: 1,
                record,
            })
            .await
            .unwrap();
        let out = store
            .execute(Command::DeleteBucket { name: "b".into() })
            .await
            .unwrap();
        assert_eq!(out.garbage.len(), 1);
        assert!(store.get_bucket("b").await.unwrap().is_none());
        assert!(store.referenced_stripes().await.unwrap().is_empty());
        assert!(store.payload_page(None, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn committed_records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        {
            let store = RedbStore::open(&path).unwrap();
            bucket(&store, "b").await;
            store
                .execute(put("k", object("kept", 1), None))
                .await
                .unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(
            store
                .get_object("b", "k")
                .await
                .unwrap()
                .unwrap()
                .summary
                .etag,
            "kept"
        );
    }

    async fn versions_of(store: &RedbStore, key: &str) -> Vec<(String, bool, bool)> {
        let page = store
            .list_versions("b", key, None, None, None, 1000)
            .await
            .unwrap();
        page.entries
            .into_iter()
            .filter_map(|e| match e {
                VersionEntry::Version {
                    key: k,
                    summary,
                    is_latest,
                } if k == key => Some((
                    summary.version_name().to_owned(),
                    summary.delete_marker,
                    is_latest,
                )),
                _ => None,
            })
            .collect()
    }

    fn v(name: &str, marker: bool, latest: bool) -> (String, bool, bool) {
        (name.to_owned(), marker, latest)
    }

    #[tokio::test]
    async fn versioning_keeps_every_version_and_delete_markers_in_order() {
        let (_dir, store) = open();
        bucket(&store, "b").await;
        // Unversioned: the null version is replaced in place.
        store.execute(put("k", object("a", 1), None)).await.unwrap();
        let out = store.execute(put("k", object("b", 2), None)).await.unwrap();
        assert_eq!(out.version_id.as_deref(), Some("null"));
        assert_eq!(out.garbage.len(), 1, "the replaced null version is garbage");
        assert_eq!(versions_of(&store, "k").await, vec![v("null", false, true)]);

        let enable = |state| Command::SetVersioning {
            bucket: "b".into(),
            state,
        };
        store
            .execute(enable(VersioningState::Enabled))
            .await
            .unwrap();
        let out = store.execute(put("k", object("c", 3), None)).await.unwrap();
        assert_eq!(out.version_id.as_deref(), Some("v-c"));
        assert!(out.garbage.is_empty(), "the null version is kept");
        let out = store.execute(delete("k", None)).await.unwrap();
        assert!(out.delete_marker && out.garbage.is_empty());
        let marker = out.version_id.unwrap();
        store.execute(put("k", object("d", 4), None)).await.unwrap();
        assert_eq!(
            versions_of(&store, "k").await,
            vec![
                v("v-d", false, true),
                v(&marker, true, false),
                v("v-c", false, false),
                v("null", false, false)
            ]
        );
        assert_eq!(
            store
                .get_object_version("b", "k", "null")
                .await
                .unwrap()
                .unwrap()
                .summary
                .etag,
            "b"
        );
        assert!(
            store
                .get_object_version("b", "k", "nope")
                .await
                .unwrap()
                .is_none()
        );

        // Deleting the current version by id promotes the next newest, a delete marker here.
        let out = store.execute(delete("k", Some("v-d"))).await.unwrap();
        assert!(out.existed && !out.delete_marker && out.garbage.len() == 1);
        let current = store.get_object("b", "k").await.unwrap().unwrap();
        assert!(current.summary.delete_marker);
        let listed = store.list_objects("b", "", None, None, 10).await.unwrap();
        assert!(listed.entries.is_empty(), "a delete marker hides the key");
        assert!(matches!(
            store
                .execute(put(
                    "k",
                    object("x", 9),
                    Some(Precondition::IfMatch("*".into()))
                ))
                .await,
            Err(MetaError::NoSuchKey)
        ));
        store.execute(delete("k", Some(&marker))).await.unwrap();
        assert_eq!(
            store
                .get_object("b", "k")
                .await
                .unwrap()
                .unwrap()
                .summary
                .etag,
            "c"
        );

        // Suspended: new writes are the null version, replacing the old null version.
        store
            .execute(enable(VersioningState::Suspended))
            .await
            .unwrap();
        let out = store.execute(put("k", object("e", 5), None)).await.unwrap();
        assert_eq!(out.version_id.as_deref(), Some("null"));
        assert_eq!(
            out.garbage.len(),
            1,
            "the old noncurrent null version is replaced"
        );
        let out = store.execute(delete("k", None)).await.unwrap();
        assert_eq!(out.version_id.as_deref(), Some("null"));
        assert_eq!(
            out.garbage.len(),
            1,
            "the null marker replaces the null version"
        );
        assert_eq!(
            versions_of(&store, "k").await,
            vec![v("null", true, true), v("v-c", false, false)]
        );
        assert!(matches!(
            store
                .execute(Command::DeleteBucket { name: "b".into() })
                .await,
            Err(MetaError::BucketNotEmpty)
        ));
        let refs = store.referenced_stripes().await.unwrap();
        assert_eq!(refs.len(), 1, "noncurrent versions keep their data");
        let mut owners = Vec::new();
        for entry in store.payload_page(None, 100).await.unwrap() {
            owners.push(entry.owner);
        }
        assert!(owners.contains(&PayloadOwner::Object {
            bucket: "b".into(),
            key: "k".into(),
            version_id: Some("v-c".into())
        }));
    }

    #[tokio::test]
    async fn version_listings_page_with_key_and_version_markers() {
        let (_dir, store) = open();
        bucket(&store, "b").await;
        store
            .execute(Command::SetVersioning {
                bucket: "b".into(),
                state: VersioningState::Enabled,
            })
            .await
            .unwrap();
        for (key, etag) in [
            ("a", "1"),
            ("a", "2"),
            ("a", "3"),
            ("d/x", "4"),
            ("d/y", "5"),
            ("z", "6"),
        ] {
            store
                .execute(put(key, object(etag, 1), None))
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut marker: Option<(String, Option<String>)> = None;
        loop {
            let page = store
                .list_versions(
                    "b",
                    "",
                    Some("/"),
                    marker.as_ref().map(|m| m.0.as_str()),
                    marker.as_ref().and_then(|m| m.1.as_deref()),
                    2,
                )
                .await
                .unwrap();
            for e in &page.entries {
                seen.push(match e {
                    VersionEntry::Version { key, summary, .. } => {
                        format!("{key}@{}", summary.version_name())
                    }
                    VersionEntry::CommonPrefix(p) => p.clone(),
                });
            }
            if !page.is_truncated {
                break;
            }
            marker = page.next_marker;
        }
        assert_eq!(seen, ["a@v-3", "a@v-2", "a@v-1", "d/", "z@v-6"]);
    }

    #[tokio::test]
    async fn object_lock_refuses_deletes_and_weakening_until_it_passes() {
        let (_dir, store) = open();
        store
            .execute(Command::CreateBucket {
                name: "b".into(),
                record: BucketRecord { created_ms: 0 },
                object_lock: true,
            })
            .await
            .unwrap();
        assert_eq!(
            store.get_versioning("b").await.unwrap(),
            Some(VersioningState::Enabled)
        );
        assert!(matches!(
            store
                .execute(Command::SetVersioning {
                    bucket: "b".into(),
                    state: VersioningState::Suspended
                })
                .await,
            Err(MetaError::InvalidBucketState(_))
        ));
        let mut record = object("g", 1);
        record.details.lock.retention = Some(crate::record::Retention {
            mode: RetentionMode::Governance,
            until_ms: 1000,
        });
        store.execute(put("g", record, None)).await.unwrap();
        let mut record = object("c", 2);
        record.details.lock.retention = Some(crate::record::Retention {
            mode: RetentionMode::Compliance,
            until_ms: 1000,
        });
        store.execute(put("c", record, None)).await.unwrap();

        let delete_at =
            |key: &str, version: &str, now_ms, bypass_governance| Command::DeleteObject {
                bucket: "b".into(),
                key: key.into(),
                version_id: Some(version.into()),
                marker_version_id: "m".into(),
                bypass_governance,
                now_ms,
                if_modified_ms: None,
            };
        assert!(matches!(
            store.execute(delete_at("g", "v-g", 10, false)).await,
            Err(MetaError::Locked(_))
        ));
        assert!(matches!(
            store.execute(delete_at("c", "v-c", 10, true)).await,
            Err(MetaError::Locked(_))
        ));
        // A delete marker is always allowed: the locked version stays.
        store.execute(delete("c", None)).await.unwrap();
        let retain = |key: &str, mode, until_ms, bypass_governance| Command::SetRetention {
            bucket: "b".into(),
            key: key.into(),
            version_id: Some(format!("v-{key}")),
            retention: Some(crate::record::Retention { mode, until_ms }),
            bypass_governance,
            now_ms: 10,
        };
        assert!(matches!(
            store
                .execute(retain("c", RetentionMode::Compliance, 500, true))
                .await,
            Err(MetaError::Locked(_))
        ));
        assert!(matches!(
            store
                .execute(retain("c", RetentionMode::Governance, 2000, true))
                .await,
            Err(MetaError::Locked(_))
        ));
        store
            .execute(retain("c", RetentionMode::Compliance, 2000, false))
            .await
            .unwrap();
        assert!(matches!(
            store
                .execute(retain("g", RetentionMode::Governance, 500, false))
                .await,
            Err(MetaError::Locked(_))
        ));
        store
            .execute(retain("g", RetentionMode::Governance, 500, true))
            .await
            .unwrap();
        store
            .execute(Command::SetLegalHold {
                bucket: "b".into(),
                key: "g".into(),
                version_id: None,
                on: true,
            })
            .await
            .unwrap();
        assert!(matches!(
            store.execute(delete_at("g", "v-g", 600, true)).await,
            Err(MetaError::Locked(_))
        ));
        store
            .execute(Command::SetLegalHold {
                bucket: "b".into(),
                key: "g".into(),
                version_id: None,
                on: false,
            })
            .await
            .unwrap();
        store
            .execute(delete_at("g", "v-g", 600, false))
            .await
            .unwrap();
        assert!(matches!(
            store.execute(delete_at("c", "v-c", 1500, true)).await,
            Err(MetaError::Locked(_))
        ));
        store
            .execute(delete_at("c", "v-c", 2000, false))
            .await
            .unwrap();
    }
}
