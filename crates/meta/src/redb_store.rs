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
    BucketRecord, CorsRule, ObjectDetails, ObjectRecord, ObjectSummary, PartRecord, Payload,
    Record, StripeRef, Tags, UploadRecord, decode, decode_summary, encode,
};
use crate::store::{
    ListEntry, ListPage, MetaStore, PartListing, PayloadCursor, PayloadEntry, PayloadOwner,
    UploadListing, UploadPage,
};

const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
const UPLOADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("uploads");
const PARTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("parts");
/// Per-bucket settings (tagging, and later CORS, versioning…): `bucket 0x00 name`.
const BUCKET_SETTINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bucket_settings");
const TAGGING_SETTING: &str = "tagging";
/// Node-wide facts: the id of the drive set this metadata describes.
const SYSTEM: TableDefinition<&str, &[u8]> = TableDefinition::new("system");
const DRIVE_SET_KEY: &str = "drive-set";
const CORS_SETTING: &str = "cors";

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
        txn.open_table(UPLOADS)?;
        txn.open_table(PARTS)?;
        txn.open_table(BUCKET_SETTINGS)?;
        txn.open_table(SYSTEM)?;
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
    uploads: Table<'txn, &'static [u8], &'static [u8]>,
    parts: Table<'txn, &'static [u8], &'static [u8]>,
    settings: Table<'txn, &'static [u8], &'static [u8]>,
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
            uploads: txn.open_table(UPLOADS)?,
            parts: txn.open_table(PARTS)?,
            settings: txn.open_table(BUCKET_SETTINGS)?,
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
            Command::CreateBucket { name, record } => {
                if self.buckets.get(name.as_str())?.is_some() {
                    return Err(MetaError::BucketAlreadyExists);
                }
                self.buckets
                    .insert(name.as_str(), encode(record).as_slice())?;
                Ok(Outcome::default())
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
                    PayloadOwner::Object { bucket, key } => {
                        let k = keys::object_key(bucket, key);
                        let mut record = self.object(&k)?;
                        let moved = record
                            .as_mut()
                            .is_some_and(|r| move_shards(&mut r.details.payload, stripe, moves));
                        if let (true, Some(record)) = (moved, record) {
                            self.objects
                                .insert(k.as_slice(), encode(&record).as_slice())?;
                        }
                        moved
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
            Command::SetObjectTags { bucket, key, tags } => {
                self.require_bucket(bucket)?;
                let k = keys::object_key(bucket, key);
                let mut record = self.object(&k)?.ok_or(MetaError::NoSuchKey)?;
                record.details.tags.clone_from(tags);
                self.objects
                    .insert(k.as_slice(), encode(&record).as_slice())?;
                Ok(Outcome::default())
            }
            Command::PutObject {
                bucket,
                key,
                record,
                precondition,
            } => {
                self.require_bucket(bucket)?;
                let k = keys::object_key(bucket, key);
                let existing = self.object(&k)?;
                check_precondition(existing.as_ref(), precondition.as_ref())?;
                self.objects
                    .insert(k.as_slice(), encode(record).as_slice())?;
                Ok(Outcome {
                    garbage: Outcome::garbage_of(existing.as_ref()),
                    ..Default::default()
                })
            }
            Command::DeleteObject { bucket, key } => {
                self.require_bucket(bucket)?;
                let k = keys::object_key(bucket, key);
                let removed = self
                    .objects
                    .remove(k.as_slice())?
                    .map(|g| decode::<ObjectRecord>(g.value()))
                    .transpose()?;
                Ok(Outcome {
                    existed: removed.is_some(),
                    garbage: Outcome::garbage_of(removed.as_ref()),
                    object: None,
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
        let object_key = keys::object_key(bucket, key);
        let existing = self.object(&object_key)?;
        check_precondition(existing.as_ref(), precondition)?;

        let record = ObjectRecord {
            summary: ObjectSummary {
                size: chosen.iter().map(|(_, p)| p.size).sum(),
                etag: etag.to_owned(),
                last_modified_ms,
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
            },
        };

        let mut garbage = Outcome::garbage_of(existing.as_ref());
        let listed_numbers: Vec<u32> = chosen.iter().map(|(n, _)| *n).collect();
        for (number, part) in self.remove_parts(upload_id)? {
            if listed_numbers.binary_search(&number).is_err() {
                garbage.extend(part.payload.stripes());
            }
        }
        self.uploads
            .remove(keys::upload_key(bucket, key, upload_id).as_slice())?;
        self.objects
            .insert(object_key.as_slice(), encode(&record).as_slice())?;
        Ok(Outcome {
            garbage,
            object: Some(record),
            existed: existing.is_some(),
        })
    }
}

fn utf8_key(raw: &[u8]) -> Result<String, MetaError> {
    String::from_utf8(raw.to_vec())
        .map_err(|_| MetaError::Corrupt("object key is not UTF-8".into()))
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
    let common_prefix_of = |key: &str| -> Option<usize> {
        let d = delimiter?;
        let rest = key.get(prefix.len()..)?;
        rest.find(d).map(|pos| prefix.len() + pos + d.len())
    };

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
            page.entries.push(ListEntry::Object { key, summary });
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
            let common_prefix_of = |key: &str| -> Option<usize> {
                let d = delimiter.as_deref()?;
                let rest = key.get(prefix.len()..)?;
                rest.find(d).map(|pos| prefix.len() + pos + d.len())
            };
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
            for entry in txn.open_table(OBJECTS)?.iter()? {
                let (_, v) = entry?;
                out.extend(decode::<ObjectRecord>(v.value())?.details.payload.stripes());
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
            for table_id in start_table..=1u8 {
                let table = txn.open_table(if table_id == 0 { OBJECTS } else { PARTS })?;
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
                    let (owner, payload) = if table_id == 0 {
                        let (bucket, key) = keys::split_object_key(raw)
                            .ok_or_else(|| MetaError::Corrupt("object key".into()))?;
                        let record: ObjectRecord = decode(v.value())?;
                        (PayloadOwner::Object { bucket, key }, record.details.payload)
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
    use crate::{CompletePart, Precondition};

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
            },
        }
    }

    async fn bucket(store: &RedbStore, name: &str) {
        store
            .execute(Command::CreateBucket {
                name: name.into(),
                record: BucketRecord { created_ms: 0 },
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
        store
            .execute(Command::DeleteObject {
                bucket: "b".into(),
                key: "k".into(),
            })
            .await
            .unwrap();
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
        store
            .execute(Command::DeleteObject {
                bucket: "b".into(),
                key: "k".into(),
            })
            .await
            .unwrap();
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
}
