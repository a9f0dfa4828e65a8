use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use basalt_data::{ChunkId, ChunkStore};
use basalt_meta::{
    BucketRecord, Checksum, ChecksumAlgorithm, ChunkRef, Command, CompletePart, CompleteUpload,
    ListPage, MetaStore, ObjectDetails, ObjectRecord, ObjectSummary, PartListing, PartRecord,
    Payload, Precondition, RedbStore, StandardHeaders, UploadListing, UploadRecord,
};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, TryStreamExt};

use crate::ObjectError;
use crate::digest::{Hashers, multipart_etag};
use crate::stage::{ChunkGuard, ChunkSink, Staged, to_info};
use basalt_data::DataError;
use std::collections::VecDeque;
use tokio::task::JoinHandle;

/// An object's bytes as they stream out; errors after the first chunk cut the stream short.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ObjectError>> + Send>>;

#[derive(Debug, Clone)]
pub struct ObjectConfig {
    /// Objects are cut into chunks of this size (the last may be shorter).
    pub chunk_size: usize,
    /// Objects up to this size live inside their metadata record.
    pub inline_threshold: usize,
    /// Every multipart part but the last must be at least this large.
    pub min_part_size: u64,
    /// Page cache of the metadata engine, in bytes.
    pub meta_cache_bytes: usize,
}

impl Default for ObjectConfig {
    fn default() -> Self {
        Self {
            chunk_size: 4 << 20,
            inline_threshold: 32 << 10,
            min_part_size: 5 << 20,
            meta_cache_bytes: basalt_meta::DEFAULT_CACHE_BYTES,
        }
    }
}

/// The description of an object being written, everything but its bytes.
#[derive(Debug, Clone, Default)]
pub struct ObjectWrite {
    pub headers: StandardHeaders,
    pub user_metadata: Vec<(String, String)>,
    /// Which of the staged body's checksums to store with the object.
    pub checksum_algorithms: Vec<ChecksumAlgorithm>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Clone)]
pub struct ObjectStore {
    meta: Arc<dyn MetaStore>,
    chunks: ChunkStore,
    config: ObjectConfig,
}

impl ObjectStore {
    pub fn new(meta: Arc<dyn MetaStore>, chunks: ChunkStore, config: ObjectConfig) -> Self {
        Self {
            meta,
            chunks,
            config,
        }
    }

    /// A single-node store with one drive: metadata in `<dir>/meta.redb`, chunks under
    /// `<dir>/chunks`.
    pub fn open_single_drive(dir: &Path, config: ObjectConfig) -> Result<Self, ObjectError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ObjectError::Internal(format!("{}: {e}", dir.display())))?;
        let meta = RedbStore::open_with_cache(&dir.join("meta.redb"), config.meta_cache_bytes)?;
        let chunks = ChunkStore::open(dir)?;
        Ok(Self::new(Arc::new(meta), chunks, config))
    }

    pub fn config(&self) -> &ObjectConfig {
        &self.config
    }

    /// Removes chunk files that no record references: writes cut off by a crash, and deletes
    /// whose file removal did not happen. Run before serving requests. Returns how many went.
    pub async fn collect_garbage(&self) -> Result<usize, ObjectError> {
        let live: HashSet<[u8; 16]> = self
            .meta
            .referenced_chunks()
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        let store = self.chunks.clone();
        let on_disk = tokio::task::spawn_blocking(move || store.scan_blocking())
            .await
            .map_err(|e| ObjectError::Internal(e.to_string()))??;
        let orphans: Vec<ChunkId> = on_disk
            .into_iter()
            .filter(|id| !live.contains(&id.0))
            .collect();
        let count = orphans.len();
        self.chunks.delete_many(orphans).await?;
        Ok(count)
    }

    fn reclaim(&self, garbage: Vec<ChunkRef>) {
        if garbage.is_empty() {
            return;
        }
        let store = self.chunks.clone();
        tokio::spawn(async move {
            let ids = garbage.iter().map(|c| ChunkId(c.id)).collect();
            if let Err(e) = store.delete_many(ids).await {
                // The startup collector removes whatever is left.
                tracing::warn!(error = %e, "could not delete unreferenced chunks");
            }
        });
    }

    // ---- buckets ----

    pub async fn create_bucket(&self, name: &str) -> Result<(), ObjectError> {
        let record = BucketRecord {
            created_ms: now_ms(),
        };
        self.meta
            .execute(Command::CreateBucket {
                name: name.to_owned(),
                record,
            })
            .await?;
        Ok(())
    }

    pub async fn delete_bucket(&self, name: &str) -> Result<(), ObjectError> {
        let outcome = self
            .meta
            .execute(Command::DeleteBucket {
                name: name.to_owned(),
            })
            .await?;
        self.reclaim(outcome.garbage);
        Ok(())
    }

    pub async fn bucket(&self, name: &str) -> Result<BucketRecord, ObjectError> {
        self.meta
            .get_bucket(name)
            .await?
            .ok_or(ObjectError::NoSuchBucket)
    }

    pub async fn list_buckets(&self) -> Result<Vec<(String, BucketRecord)>, ObjectError> {
        Ok(self.meta.list_buckets().await?)
    }

    // ---- writing ----

    /// Streams `body` into durable chunks while hashing it. `expected_len`, when the client
    /// declared one, must match what arrived. Parts of multipart uploads pass
    /// `allow_inline = false`: they are always chunk files.
    pub async fn stage<S, E>(
        &self,
        mut body: S,
        algorithms: &[ChecksumAlgorithm],
        expected_len: Option<u64>,
        allow_inline: bool,
    ) -> Result<Staged, ObjectError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let chunk_size = self.config.chunk_size;
        let guard = ChunkGuard::new(self.chunks.clone());
        let mut pipeline =
            ChunkPipeline::new(self.chunks.clone(), guard.sink(), Hashers::new(algorithms));
        // Each chunk gets a buffer of exactly its size: no reallocation as it fills. A body
        // known to be smaller gets a buffer of its own size.
        let first = expected_len.map_or(chunk_size, |n| (n as usize).min(chunk_size));
        let mut buf = BytesMut::with_capacity(first);
        let mut size: u64 = 0;

        while let Some(piece) = body.next().await {
            // On an error, chunks still being written report to the guard, which deletes them.
            let mut piece = piece.map_err(|e| ObjectError::Body(e.to_string()))?;
            size += piece.len() as u64;
            while !piece.is_empty() {
                let take = piece.len().min(chunk_size - buf.len());
                buf.extend_from_slice(&piece.split_to(take));
                if buf.len() == chunk_size {
                    let full = std::mem::replace(&mut buf, BytesMut::with_capacity(chunk_size));
                    pipeline.push(full.freeze()).await?;
                }
            }
        }
        if let Some(expected) = expected_len
            && expected != size
        {
            return Err(ObjectError::IncompleteBody {
                received: size,
                expected,
            });
        }
        let tail = buf.freeze();
        let inline = allow_inline && size as usize <= self.config.inline_threshold;
        if !inline && (!tail.is_empty() || size == 0) {
            pipeline.push(tail.clone()).await?;
        }
        let mut hashers = pipeline.finish().await?;
        let inline = inline.then(|| {
            hashers.update(&tail);
            tail
        });
        Ok(Staged {
            size,
            digests: hashers.finish(),
            inline,
            guard,
        })
    }

    /// Stages `range` of an existing object as a new body (CopyObject, UploadPartCopy). A
    /// source that fails to read is stored data gone bad, not a client's broken body.
    pub async fn stage_copy(
        &self,
        source: &ObjectRecord,
        range: Range<u64>,
        algorithms: &[ChecksumAlgorithm],
        allow_inline: bool,
    ) -> Result<Staged, ObjectError> {
        let len = range.end - range.start;
        let stream = self.read(source, range).await?;
        self.stage(stream, algorithms, Some(len), allow_inline)
            .await
            .map_err(|e| match e {
                ObjectError::Body(detail) => ObjectError::Corrupt(format!("copy source: {detail}")),
                other => other,
            })
    }

    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        staged: Staged,
        write: ObjectWrite,
        precondition: Option<Precondition>,
    ) -> Result<ObjectRecord, ObjectError> {
        let record = ObjectRecord {
            summary: ObjectSummary {
                size: staged.size,
                etag: staged.digests.md5_hex(),
                last_modified_ms: now_ms(),
            },
            details: ObjectDetails {
                headers: write.headers,
                user_metadata: write.user_metadata,
                checksums: stored_checksums(&staged.digests.checksums, &write.checksum_algorithms),
                part_sizes: Vec::new(),
                payload: staged.into_payload(),
            },
        };
        let command = Command::PutObject {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            record: record.clone(),
            precondition,
        };
        let outcome = self
            .execute_owning(command, record.details.payload.chunks())
            .await?;
        self.reclaim(outcome.garbage);
        Ok(record)
    }

    /// Runs a command whose record owns `chunks`: if the command is refused, they are freed.
    async fn execute_owning(
        &self,
        command: Command,
        chunks: &[ChunkRef],
    ) -> Result<basalt_meta::Outcome, ObjectError> {
        match self.meta.execute(command).await {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                self.reclaim(chunks.to_vec());
                Err(e.into())
            }
        }
    }

    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<bool, ObjectError> {
        let outcome = self
            .meta
            .execute(Command::DeleteObject {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            })
            .await?;
        self.reclaim(outcome.garbage);
        Ok(outcome.existed)
    }

    // ---- reading ----

    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectRecord, ObjectError> {
        match self.meta.get_object(bucket, key).await? {
            Some(record) => Ok(record),
            None => {
                self.bucket(bucket).await?;
                Err(ObjectError::NoSuchKey)
            }
        }
    }

    /// Streams `range` of the object. The first chunk is read and verified before this
    /// returns, so damage there is an error the caller can still report in the status line.
    pub async fn read(
        &self,
        record: &ObjectRecord,
        range: Range<u64>,
    ) -> Result<ByteStream, ObjectError> {
        let chunks = match &record.details.payload {
            Payload::Inline(data) => {
                let slice = data
                    .get(range.start as usize..range.end as usize)
                    .ok_or_else(|| {
                        ObjectError::Corrupt("inline data shorter than its record".into())
                    })?;
                let bytes = Bytes::copy_from_slice(slice);
                return Ok(Box::pin(futures::stream::once(async move { Ok(bytes) })));
            }
            Payload::Chunks(chunks) => chunks,
        };
        let mut wanted = Vec::new();
        let mut offset = 0u64;
        for chunk in chunks {
            let chunk_range = offset..offset + u64::from(chunk.len);
            offset = chunk_range.end;
            if chunk_range.end <= range.start || chunk_range.start >= range.end || chunk.len == 0 {
                continue;
            }
            let from = range.start.saturating_sub(chunk_range.start) as usize;
            let to = (range.end.min(chunk_range.end) - chunk_range.start) as usize;
            wanted.push((to_info(chunk), from..to));
        }
        if offset != record.summary.size {
            return Err(ObjectError::Corrupt(
                "chunk lengths do not add up to the object size".into(),
            ));
        }
        let store = self.chunks.clone();
        let mut stream = futures::stream::iter(wanted)
            .map(move |(info, slice)| {
                let store = store.clone();
                async move {
                    let data = store
                        .read(info)
                        .await
                        .inspect_err(|e| tracing::error!(error = %e, "chunk read failed"))?;
                    Ok::<_, ObjectError>(data.slice(slice))
                }
            })
            .buffered(2)
            .boxed();
        match stream.try_next().await? {
            None => Ok(Box::pin(futures::stream::empty())),
            Some(first) => Ok(Box::pin(
                futures::stream::once(async move { Ok(first) }).chain(stream),
            )),
        }
    }

    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max_entries: usize,
    ) -> Result<ListPage, ObjectError> {
        Ok(self
            .meta
            .list_objects(bucket, prefix, delimiter, start_after, max_entries)
            .await?)
    }

    // ---- multipart ----

    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        write: ObjectWrite,
    ) -> Result<String, ObjectError> {
        let upload_id = ChunkId::random().to_hex();
        let record = UploadRecord {
            initiated_ms: now_ms(),
            headers: write.headers,
            user_metadata: write.user_metadata,
            checksum_algorithm: write.checksum_algorithms.first().copied(),
        };
        self.meta
            .execute(Command::CreateUpload {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                upload_id: upload_id.clone(),
                record,
            })
            .await?;
        Ok(upload_id)
    }

    pub async fn upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord, ObjectError> {
        match self.meta.get_upload(bucket, key, upload_id).await? {
            Some(u) => Ok(u),
            None => {
                self.bucket(bucket).await?;
                Err(ObjectError::NoSuchUpload)
            }
        }
    }

    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        staged: Staged,
        checksum_algorithm: Option<ChecksumAlgorithm>,
    ) -> Result<PartRecord, ObjectError> {
        let checksum = checksum_algorithm
            .and_then(|a| stored_checksums(&staged.digests.checksums, &[a]).pop());
        let record = PartRecord {
            size: staged.size,
            etag: staged.digests.md5_hex(),
            last_modified_ms: now_ms(),
            checksum,
            payload: staged.into_payload(),
        };
        let command = Command::PutPart {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            part_number,
            record: record.clone(),
        };
        let outcome = self
            .execute_owning(command, record.payload.chunks())
            .await?;
        self.reclaim(outcome.garbage);
        Ok(record)
    }

    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletePart>,
        precondition: Option<Precondition>,
    ) -> Result<ObjectRecord, ObjectError> {
        let etags: Vec<String> = parts.iter().map(|p| p.etag.clone()).collect();
        let Some(etag) = multipart_etag(&etags) else {
            // A missing upload is reported before anything about its part list, as AWS does.
            self.upload(bucket, key, upload_id).await?;
            let bad = parts.iter().find(|p| {
                hex_simd::decode_to_vec(p.etag.as_bytes()).map_or(true, |v| v.len() != 16)
            });
            return Err(ObjectError::InvalidPart(bad.map_or(0, |p| p.part_number)));
        };
        let command = Command::CompleteUpload(CompleteUpload {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            parts,
            min_part_size: self.config.min_part_size,
            last_modified_ms: now_ms(),
            etag,
            precondition,
        });
        let outcome = self
            .meta
            .execute(command)
            .await
            .map_err(|e| match ObjectError::from(e) {
                ObjectError::EntityTooSmall { part, size, .. } => ObjectError::EntityTooSmall {
                    part,
                    size,
                    min: self.config.min_part_size,
                },
                other => other,
            })?;
        self.reclaim(outcome.garbage);
        outcome
            .object
            .ok_or_else(|| ObjectError::Internal("completion returned no object".into()))
    }

    pub async fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), ObjectError> {
        let outcome = self
            .meta
            .execute(Command::AbortUpload {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
            })
            .await?;
        self.reclaim(outcome.garbage);
        Ok(())
    }

    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max_uploads: usize,
    ) -> Result<(Vec<UploadListing>, bool), ObjectError> {
        self.bucket(bucket).await?;
        Ok(self
            .meta
            .list_uploads(bucket, prefix, key_marker, upload_id_marker, max_uploads)
            .await?)
    }

    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number_marker: u32,
        max_parts: usize,
    ) -> Result<(Vec<PartListing>, bool), ObjectError> {
        self.upload(bucket, key, upload_id).await?;
        Ok(self
            .meta
            .list_parts(upload_id, part_number_marker, max_parts)
            .await?)
    }

    /// The byte range of part `part_number` (1-based) of an object.
    pub fn part_range(record: &ObjectRecord, part_number: u32) -> Option<Range<u64>> {
        let sizes = &record.details.part_sizes;
        if sizes.is_empty() {
            return (part_number == 1).then_some(0..record.summary.size);
        }
        let index = (part_number as usize).checked_sub(1)?;
        let start: u64 = sizes.get(..index)?.iter().sum();
        Some(start..start + sizes.get(index)?)
    }
}

/// How many chunk writes (each ending in an fsync) one PUT keeps in flight.
const WRITES_IN_FLIGHT: usize = 2;

/// Hashing runs on one blocking thread in chunk order while chunk writes run on others, so a
/// PUT goes as fast as the slower of the two rather than their sum. Memory: the chunk being
/// hashed and the chunks being written.
struct ChunkPipeline {
    store: ChunkStore,
    sink: ChunkSink,
    hashers: Option<Hashers>,
    hashing: Option<JoinHandle<Hashers>>,
    writes: VecDeque<JoinHandle<Result<(), DataError>>>,
    next_index: usize,
    /// The fan-out directory of all of this write's chunks.
    group: u8,
}

fn task_failed(e: tokio::task::JoinError) -> ObjectError {
    ObjectError::Internal(format!("blocking task failed: {e}"))
}

impl ChunkPipeline {
    fn new(store: ChunkStore, sink: ChunkSink, hashers: Hashers) -> Self {
        Self {
            store,
            sink,
            hashers: Some(hashers),
            hashing: None,
            writes: VecDeque::new(),
            next_index: 0,
            group: rand::random(),
        }
    }

    async fn hashers(&mut self) -> Result<Hashers, ObjectError> {
        if let Some(task) = self.hashing.take() {
            return task.await.map_err(task_failed);
        }
        self.hashers
            .take()
            .ok_or_else(|| ObjectError::Internal("hasher lost".into()))
    }

    async fn push(&mut self, chunk: Bytes) -> Result<(), ObjectError> {
        let mut hashers = self.hashers().await?;
        let to_hash = chunk.clone();
        self.hashing = Some(tokio::task::spawn_blocking(move || {
            hashers.update(&to_hash);
            hashers
        }));
        while self.writes.len() >= WRITES_IN_FLIGHT {
            if let Some(write) = self.writes.pop_front() {
                write.await.map_err(task_failed)??;
            }
        }
        let (store, sink) = (self.store.clone(), self.sink.clone());
        let (index, group) = (self.next_index, self.group);
        self.next_index += 1;
        self.writes.push_back(tokio::task::spawn_blocking(move || {
            store
                .write_in_group_blocking(group, &chunk)
                .map(|info| sink.keep(index, info))
        }));
        Ok(())
    }

    async fn finish(mut self) -> Result<Hashers, ObjectError> {
        while let Some(write) = self.writes.pop_front() {
            write.await.map_err(task_failed)??;
        }
        if self.next_index > 0 {
            // All chunks share one directory: one fsync makes all their names durable.
            let (store, group) = (self.store.clone(), self.group);
            tokio::task::spawn_blocking(move || store.sync_group_blocking(group))
                .await
                .map_err(task_failed)??;
        }
        self.hashers().await
    }
}

fn stored_checksums(computed: &[Checksum], wanted: &[ChecksumAlgorithm]) -> Vec<Checksum> {
    computed
        .iter()
        .filter(|c| wanted.contains(&c.algorithm))
        .cloned()
        .collect()
}
