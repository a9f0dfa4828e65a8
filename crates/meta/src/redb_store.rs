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
    BucketRecord, ChunkRef, ObjectDetails, ObjectRecord, ObjectSummary, PartRecord, Payload,
    UploadRecord, decode, decode_summary, encode,
};
use crate::store::{ListEntry, ListPage, MetaStore, PartListing, UploadListing};

const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
const UPLOADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("uploads");
const PARTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("parts");

/// How many commands one commit may carry at most.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Outcome, MetaError>>;

pub struct RedbStore {
    db: Arc<Database>,
    writer: mpsc::Sender<(Command, Reply)>,
    poisoned: Arc<AtomicBool>,
}

impl RedbStore {
    /// Opens (or creates) the store at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self, MetaError> {
        let db = Arc::new(Database::create(path)?);
        let txn = db.begin_write()?;
        txn.open_table(BUCKETS)?;
        txn.open_table(OBJECTS)?;
        txn.open_table(UPLOADS)?;
        txn.open_table(PARTS)?;
        txn.commit()?;

        let (tx, rx) = mpsc::channel::<(Command, Reply)>();
        let poisoned = Arc::new(AtomicBool::new(false));
        let (writer_db, writer_poisoned) = (db.clone(), poisoned.clone());
        std::thread::Builder::new()
            .name("basalt-meta-writer".into())
            .spawn(move || writer_loop(&writer_db, &rx, &writer_poisoned))
            .map_err(|e| MetaError::Storage(format!("cannot start the metadata writer: {e}")))?;
        Ok(Self {
            db,
            writer: tx,
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
        })
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
                    .flat_map(|(_, p)| p.payload.chunks().to_vec())
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
                    .flat_map(|(_, p)| p.payload.chunks().to_vec()),
            );
        }
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
                payload: Payload::Chunks(
                    chosen
                        .iter()
                        .flat_map(|(_, p)| p.payload.chunks().to_vec())
                        .collect(),
                ),
            },
        };

        let mut garbage = Outcome::garbage_of(existing.as_ref());
        let listed_numbers: Vec<u32> = chosen.iter().map(|(n, _)| *n).collect();
        for (number, part) in self.remove_parts(upload_id)? {
            if listed_numbers.binary_search(&number).is_err() {
                garbage.extend_from_slice(part.payload.chunks());
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
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max_uploads: usize,
    ) -> Result<(Vec<UploadListing>, bool), MetaError> {
        let bucket = bucket.to_owned();
        let mut lower = keys::object_key(&bucket, prefix);
        if let Some(marker) = key_marker {
            let after = match upload_id_marker {
                Some(id) => {
                    let mut k = keys::upload_key(&bucket, marker, id);
                    k.push(0);
                    k
                }
                None => {
                    let mut k = keys::object_key(&bucket, marker);
                    k.push(1);
                    k
                }
            };
            lower = lower.max(after);
        }
        let mut upper = keys::object_key(&bucket, prefix);
        upper.push(AFTER_ALL_UTF8);
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(UPLOADS)?;
            let mut out = Vec::new();
            for entry in table.range(lower.as_slice()..upper.as_slice())? {
                let (k, v) = entry?;
                if out.len() == max_uploads {
                    return Ok((out, true));
                }
                let (key, upload_id) = keys::split_upload_key(&bucket, k.value())
                    .ok_or_else(|| MetaError::Corrupt("upload key".into()))?;
                out.push(UploadListing {
                    key,
                    upload_id,
                    record: decode(v.value())?,
                });
            }
            Ok((out, false))
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

    async fn referenced_chunks(&self) -> Result<Vec<ChunkRef>, MetaError> {
        self.read(|db| {
            let txn = db.begin_read()?;
            let mut out = Vec::new();
            for entry in txn.open_table(OBJECTS)?.iter()? {
                let (_, v) = entry?;
                out.extend_from_slice(decode::<ObjectRecord>(v.value())?.details.payload.chunks());
            }
            for entry in txn.open_table(PARTS)?.iter()? {
                let (_, v) = entry?;
                out.extend_from_slice(decode::<PartRecord>(v.value())?.payload.chunks());
            }
            Ok(out)
        })
        .await
    }
}
