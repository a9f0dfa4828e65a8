//! The single-node metadata engine: redb, with a writer thread that commits batches of
//! commands in one transaction (group commit: concurrent writers share one fsync).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::oneshot;

use crate::MetaError;
use crate::acl::{BucketAccess, PublicAccessBlock};
use crate::catalog::{Namespace, NamespaceRecord, TableRecord};
use crate::command::{Command, Outcome};
use crate::keys::{self, AFTER_ALL_UTF8};
use crate::record::{
    BucketLogging, BucketRecord, CorsRule, DefaultEncryption, GarbageRecord, LifecycleRule,
    MissedShards, ObjectLockConfig, ObjectRecord, PartRecord, Record, StripeRef, Tags,
    UploadRecord, VersioningState, decode,
};
use crate::store::{
    ListPage, MetaStore, PartListing, PayloadCursor, PayloadEntry, PayloadOwner, UploadListing,
    UploadPage, VersionPage,
};

use crate::listing::{common_prefix_end, list_objects_sync, list_versions_sync};
use crate::read_cache::{CacheKey, Cached, ReadCache};
use crate::state_machine::{Tables, find_version};
use crate::tables::*;

/// redb's own default is 1 GiB; a node's memory should be bounded by its configuration.
/// Most blocking threads reading metadata at once; with the data lane, below the runtime's
/// blocking-thread limit, so neither can take the other's threads.
pub const META_READ_THREADS: usize = 16;

static META_READ_LANE: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(META_READ_THREADS);

pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// How many commands one commit may carry at most.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Outcome, MetaError>>;

pub struct RedbStore {
    pub(crate) db: Arc<Database>,
    pub(crate) cache: Arc<ReadCache>,
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
        txn.open_table(GARBAGE)?;
        txn.open_table(CATALOG)?;
        txn.open_table(MISSED_SHARDS)?;
        txn.commit()?;

        let (tx, rx) = mpsc::channel::<(Command, Reply)>();
        let poisoned = Arc::new(AtomicBool::new(false));
        let cache = Arc::new(ReadCache::default());
        let (writer_db, writer_poisoned, writer_cache) =
            (db.clone(), poisoned.clone(), cache.clone());
        let thread = std::thread::Builder::new()
            .name("basalt-meta-writer".into())
            .spawn(move || writer_loop(&writer_db, &rx, &writer_poisoned, &writer_cache))
            .map_err(|e| MetaError::Storage(format!("cannot start the metadata writer: {e}")))?;
        Ok(Self {
            db,
            cache,
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
        // Its own lane, apart from shard I/O (see `basalt_data::io_lane`): never closed.
        let permit = META_READ_LANE.acquire().await.ok();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&db)
        })
        .await
        .map_err(|e| MetaError::Storage(format!("metadata read task failed: {e}")))?
    }
}

fn writer_loop(
    db: &Database,
    rx: &mpsc::Receiver<(Command, Reply)>,
    poisoned: &AtomicBool,
    cache: &ReadCache,
) {
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
            Ok((results, changed_cached)) => {
                if changed_cached {
                    cache.invalidate();
                }
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
        let owned = bucket.to_owned();
        let found = self
            .cached_read(CacheKey::Setting(owned.clone(), name), move |txn| {
                if txn.open_table(BUCKETS)?.get(owned.as_str())?.is_none() {
                    return Ok(Cached::NoBucket);
                }
                let k = keys::object_key(&owned, name);
                Ok(Cached::Value(
                    txn.open_table(BUCKET_SETTINGS)?
                        .get(k.as_slice())?
                        .map(|g| Arc::from(g.value())),
                ))
            })
            .await?;
        match found {
            Cached::NoBucket => Err(MetaError::NoSuchBucket),
            Cached::Value(bytes) => bytes.map(|b| decode(&b)).transpose(),
        }
    }

    /// The value under `name` (a bucket's or an identity's) in `table`, through the cache.
    async fn cached_row(
        &self,
        table: redb::TableDefinition<'static, &'static str, &'static [u8]>,
        name: &str,
        key: fn(String) -> CacheKey,
    ) -> Result<Option<Arc<[u8]>>, MetaError> {
        let name = name.to_owned();
        let found = self
            .cached_read(key(name.clone()), move |txn| {
                Ok(Cached::Value(
                    txn.open_table(table)?
                        .get(name.as_str())?
                        .map(|g| Arc::from(g.value())),
                ))
            })
            .await?;
        Ok(match found {
            Cached::Value(bytes) => bytes,
            Cached::NoBucket => None,
        })
    }

    /// Reads one key of a cached table: from the cache, or with `read` (in a blocking
    /// thread), keeping what it answered.
    async fn cached_read(
        &self,
        key: CacheKey,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<Cached, MetaError> + Send + 'static,
    ) -> Result<Cached, MetaError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(MetaError::Poisoned);
        }
        if let Some(hit) = self.cache.get(&key) {
            return Ok(hit);
        }
        let generation = self.cache.generation();
        let found = self.read(move |db| read(&db.begin_read()?)).await?;
        self.cache.insert(key, generation, found.clone());
        Ok(found)
    }
}

/// The commands' results, and whether they changed a table the read cache holds.
fn commit_batch(
    db: &Database,
    batch: &[(Command, Reply)],
) -> Result<(Vec<Result<Outcome, MetaError>>, bool), BatchError> {
    let txn = db.begin_write().map_err(|e| BatchError::Apply(e.into()))?;
    let mut results = Vec::with_capacity(batch.len());
    // The batch's commands are stamped with one time, taken by the one writer.
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let changed_cached = {
        let mut tables = Tables::open(&txn).map_err(BatchError::Apply)?;
        for (command, _) in batch {
            match tables.apply_stamped(at_ms, command) {
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
        tables.changed_cached
    };
    txn.commit().map_err(|e| BatchError::Commit(e.into()))?;
    Ok((results, changed_cached))
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
        self.cached_row(BUCKETS, name, CacheKey::Bucket)
            .await?
            .map(|b| decode(&b))
            .transpose()
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
        Ok(self
            .cached_row(IDENTITIES, key, CacheKey::Identity)
            .await?
            .map(|b| b.to_vec()))
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

    async fn garbage_due(
        &self,
        freed_by_ms: i64,
        limit: usize,
    ) -> Result<Vec<(u64, GarbageRecord)>, MetaError> {
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(GARBAGE)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (id, value) = entry?;
                let record: GarbageRecord = decode(value.value())?;
                // Entries are in the order they were freed: the first too young ends the run.
                if record.freed_ms > freed_by_ms || out.len() >= limit {
                    break;
                }
                out.push((id.value(), record));
            }
            Ok(out)
        })
        .await
    }

    async fn missed_shards(
        &self,
        after: Option<[u8; 16]>,
        limit: usize,
    ) -> Result<Vec<([u8; 16], MissedShards)>, MetaError> {
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(MISSED_SHARDS)?;
            let start = after.unwrap_or_default();
            let mut out = Vec::new();
            for entry in table.range(start.as_slice()..)? {
                let (id, value) = entry?;
                let id: [u8; 16] = id
                    .value()
                    .try_into()
                    .map_err(|_| MetaError::Corrupt("missed-shards stripe id".into()))?;
                if after == Some(id) {
                    continue;
                }
                if out.len() >= limit {
                    break;
                }
                out.push((id, decode(value.value())?));
            }
            Ok(out)
        })
        .await
    }

    async fn set_clean_stop(&self, clean: bool) -> Result<bool, MetaError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write()?;
            let was = {
                let mut system = txn.open_table(SYSTEM)?;
                if clean {
                    system.insert(CLEAN_STOP_KEY, [1u8].as_slice())?.is_some()
                } else {
                    system.remove(CLEAN_STOP_KEY)?.is_some()
                }
            };
            txn.commit()?;
            Ok(was)
        })
        .await
        .map_err(|e| MetaError::Storage(format!("metadata task failed: {e}")))?
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

    async fn get_bucket_access(&self, bucket: &str) -> Result<Option<BucketAccess>, MetaError> {
        self.get_setting(bucket, ACCESS_SETTING).await
    }

    async fn get_public_access_block(
        &self,
        bucket: &str,
    ) -> Result<Option<PublicAccessBlock>, MetaError> {
        self.get_setting(bucket, PUBLIC_ACCESS_BLOCK_SETTING).await
    }

    async fn get_bucket_logging(&self, bucket: &str) -> Result<Option<BucketLogging>, MetaError> {
        self.get_setting(bucket, LOGGING_SETTING).await
    }

    async fn catalog_namespace(
        &self,
        bucket: &str,
        namespace: &[String],
    ) -> Result<Option<NamespaceRecord>, MetaError> {
        let (bucket, namespace) = (bucket.to_owned(), namespace.to_vec());
        self.read(move |db| {
            let txn = db.begin_read()?;
            crate::catalog::namespace(&txn.open_table(CATALOG)?, &bucket, &namespace)
        })
        .await
    }

    async fn catalog_namespaces(
        &self,
        bucket: &str,
        parent: &[String],
    ) -> Result<Vec<Namespace>, MetaError> {
        let (bucket, parent) = (bucket.to_owned(), parent.to_vec());
        self.read(move |db| {
            let txn = db.begin_read()?;
            crate::catalog::namespaces(&txn.open_table(CATALOG)?, &bucket, &parent)
        })
        .await
    }

    async fn catalog_table(
        &self,
        bucket: &str,
        namespace: &[String],
        name: &str,
    ) -> Result<Option<TableRecord>, MetaError> {
        let (bucket, namespace, name) = (bucket.to_owned(), namespace.to_vec(), name.to_owned());
        self.read(move |db| {
            let txn = db.begin_read()?;
            crate::catalog::table(&txn.open_table(CATALOG)?, &bucket, &namespace, &name)
        })
        .await
    }

    async fn catalog_tables(
        &self,
        bucket: &str,
        namespace: &[String],
    ) -> Result<Vec<(String, TableRecord)>, MetaError> {
        let (bucket, namespace) = (bucket.to_owned(), namespace.to_vec());
        self.read(move |db| {
            let txn = db.begin_read()?;
            crate::catalog::tables(&txn.open_table(CATALOG)?, &bucket, &namespace)
        })
        .await
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
#[path = "redb_store_tests.rs"]
mod tests;
