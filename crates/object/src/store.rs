use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use basalt_data::{ChunkId, DataError, Redundancy, StripeInfo, StripeStore, shard_id};
use basalt_meta::{
    Acl, BucketAccess, BucketRecord, Checksum, ChecksumAlgorithm, Command, CompletePart,
    CompleteUpload, CorsRule, DefaultEncryption, Encryption, ListPage, MetaStore, ObjectDetails,
    ObjectLock, ObjectRecord, ObjectSummary, PartListing, PartRecord, Payload, PayloadOwner,
    Precondition, RedbStore, StandardHeaders, StripeRef, Tags, UploadPage, UploadRecord,
};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::task::JoinHandle;

use crate::ObjectError;
use crate::crypto::{CustomerKey, DataKey, MasterKeySource, MasterKeys};
use crate::digest::{Hashers, composite_checksum, full_object_checksum, multipart_etag};
use crate::kms::{BuiltinKms, KeyManager};
use crate::maintenance::Maintenance;
use crate::stage::{Staged, StripeGuard, StripeSink, to_info};
use crate::tags::{MAX_BUCKET_TAGS, MAX_OBJECT_TAGS, validate_tags};

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
    /// How new chunks are protected; `None` picks the default for the number of drives.
    pub redundancy: Option<Redundancy>,
    /// The SSE-S3 master key file (created on first use if missing); `None`:
    /// `<meta-dir>/sse-master.keys`.
    pub key_file: Option<PathBuf>,
}

impl Default for ObjectConfig {
    fn default() -> Self {
        Self {
            chunk_size: 4 << 20,
            inline_threshold: 32 << 10,
            min_part_size: 5 << 20,
            meta_cache_bytes: basalt_meta::DEFAULT_CACHE_BYTES,
            redundancy: None,
            key_file: None,
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
    /// Tags of the new object (`x-amz-tagging`); checked against AWS's limits.
    pub tags: Tags,
    /// Retention and legal hold of the new version (`x-amz-object-lock-*`).
    pub lock: ObjectLock,
    /// How the staged body was sealed (see [`ObjectStore::sealing`]).
    pub encryption: Option<Encryption>,
    /// The new version's ACL, where the bucket lets ACLs count (`None`: the bucket owner's).
    pub acl: Option<Acl>,
}

/// The encryption a write asks for.
#[derive(Debug, Clone, Default)]
pub enum Sse {
    /// None, unless the bucket has a default encryption.
    #[default]
    Default,
    /// SSE-S3 (`x-amz-server-side-encryption: AES256`).
    Managed,
    /// SSE-C.
    Customer(CustomerKey),
    /// SSE-KMS (`aws:kms`).
    Kms(KmsRequest),
}

/// What an SSE-KMS write asks for.
#[derive(Debug, Clone, Default)]
pub struct KmsRequest {
    /// An id, alias or ARN; `None`: the bucket default's key, else the default key.
    pub key_id: Option<String>,
    /// The caller's encryption context (`x-amz-server-side-encryption-context`).
    pub context: BTreeMap<String, String>,
    /// `x-amz-server-side-encryption-bucket-key-enabled`; `None`: the bucket default's.
    pub bucket_key: Option<bool>,
}

/// Which version a delete addresses, and whether governance retention may be bypassed.
#[derive(Debug, Clone, Default)]
pub struct DeleteRequest {
    /// `None`: the key (a delete marker where versioning is on); `"null"`: the null version.
    pub version_id: Option<String>,
    pub bypass_governance: bool,
}

/// What a delete did, as S3 reports it.
#[derive(Debug, Clone, Default)]
pub struct Deleted {
    pub existed: bool,
    /// The version deleted or the delete marker created.
    pub version_id: Option<String>,
    pub delete_marker: bool,
}

/// A new version id: the time in microseconds then random bits, 32 hex digits, so ids are
/// unique and roughly ordered by creation.
pub fn new_version_id() -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let random: u64 = rand::random();
    format!("{micros:016x}{random:016x}")
}

/// A random (version 4) UUID, as KMS key ids and Iceberg tables are named.
pub fn new_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex_simd::encode_to_string(b, hex_simd::AsciiCase::Lower);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Whether `id` could name a version: `null` or an id from [`new_version_id`].
pub fn is_valid_version_id(id: &str) -> bool {
    id == basalt_meta::NULL_VERSION
        || (id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Clone)]
pub struct ObjectStore {
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) stripes: StripeStore,
    config: ObjectConfig,
    pub(crate) maintenance: Arc<Maintenance>,
    pub(crate) master_key_source: MasterKeySource,
    /// Where SSE-KMS data keys come from: the built-in key store unless another is plugged in.
    pub(crate) key_manager: Arc<dyn KeyManager>,
    /// Stripes that reads in flight are reading: garbage the collector leaves for now.
    pub(crate) pins: Arc<crate::garbage::ReadPins>,
    /// Whether this node runs the periodic workers now (lifecycle, scrub, garbage, full
    /// heals): always on one node; in a cluster, only on the Raft leader, so they run once
    /// per cluster and move with leadership.
    background_gate: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl ObjectStore {
    pub fn new(meta: Arc<dyn MetaStore>, stripes: StripeStore, config: ObjectConfig) -> Self {
        let master_key_source = MasterKeySource::new(config.key_file.clone());
        let key_manager = Arc::new(BuiltinKms::new(meta.clone(), master_key_source.clone()));
        Self {
            meta,
            stripes,
            config,
            maintenance: Arc::new(Maintenance::new()),
            master_key_source,
            key_manager,
            pins: Arc::default(),
            background_gate: Arc::new(|| true),
        }
    }

    /// Runs the periodic workers only while `gate` answers true (see `background_gate`).
    pub fn with_background_gate(mut self, gate: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.background_gate = Arc::new(gate);
        self
    }

    pub(crate) fn runs_background(&self) -> bool {
        (self.background_gate)()
    }

    /// A node's store: metadata in `<meta_dir>/meta.redb`, chunks as stripes over `drives`
    /// (each drive's shard files under `<drive>/chunks`).
    pub fn open(
        drives: &[basalt_data::Location],
        meta_dir: &Path,
        mut config: ObjectConfig,
    ) -> Result<Self, ObjectError> {
        if config.key_file.is_none() {
            config.key_file = Some(meta_dir.join("sse-master.keys"));
        }
        std::fs::create_dir_all(meta_dir)
            .map_err(|e| ObjectError::Internal(format!("{}: {e}", meta_dir.display())))?;
        let stripes = StripeStore::open_at(drives, config.redundancy)?;
        let meta =
            RedbStore::open_with_cache(&meta_dir.join("meta.redb"), config.meta_cache_bytes)?;
        let set = stripes.drives().id();
        match meta.drive_set()? {
            Some(bound) if bound == set => {}
            Some(_) => {
                return Err(ObjectError::Internal(format!(
                    "the metadata in {} belongs to another drive set than the drives given: wrong --meta-dir or --data",
                    meta_dir.display()
                )));
            }
            None if !stripes.drives().is_new() && meta.is_empty()? => {
                // Starting here would make the start-up clean-up delete every shard.
                return Err(ObjectError::Internal(format!(
                    "the drives hold an existing drive set but the metadata in {} is new: wrong --meta-dir, an unmounted metadata disk, or lost metadata; refusing to start",
                    meta_dir.display()
                )));
            }
            None => meta.bind_drive_set(set)?,
        }
        Ok(Self::new(Arc::new(meta), stripes, config))
    }

    /// A single-node store with one drive: metadata in `<dir>/meta.redb`, chunks under
    /// `<dir>/chunks`.
    pub fn open_single_drive(dir: &Path, config: ObjectConfig) -> Result<Self, ObjectError> {
        Self::open(
            &[basalt_data::Location::Local(dir.to_path_buf())],
            dir,
            config,
        )
    }

    pub fn config(&self) -> &ObjectConfig {
        &self.config
    }

    /// The policy new chunks are written with.
    pub fn redundancy(&self) -> Redundancy {
        self.stripes.redundancy()
    }

    /// Every shard file any record references, by (drive, file id).
    pub(crate) async fn live_shards(&self) -> Result<HashSet<(u16, ChunkId)>, ObjectError> {
        Ok(self
            .meta
            .referenced_stripes()
            .await?
            .iter()
            .flat_map(|stripe| {
                stripe
                    .shards
                    .iter()
                    .enumerate()
                    .map(|(i, shard)| (shard.drive, shard_id(ChunkId(stripe.id), i)))
            })
            .collect())
    }

    /// Removes shard files that no record references: writes cut off by a crash, and deletes
    /// whose file removal did not happen. Run before serving requests. Returns how many went.
    pub async fn collect_garbage(&self) -> Result<usize, ObjectError> {
        let live = self.live_shards().await?;
        let store = self.stripes.clone();
        blocking(move || {
            let scan = store.scan_blocking(true);
            for (drive, reason) in &scan.unreadable {
                tracing::warn!(drive, %reason, "cannot list a drive's shards");
            }
            let mut removed = 0;
            for (drive, id) in scan.files {
                if live.contains(&(drive, id)) {
                    continue;
                }
                // A drive that refuses deletes (read-only after an error) keeps its orphans;
                // the node still starts: its data is served from the other drives.
                match store.delete_file_blocking(drive, id) {
                    Ok(()) => removed += 1,
                    Err(e) => tracing::warn!(drive, shard = %id, error = %e, "cannot remove an orphan shard"),
                }
            }
            Ok(removed)
        })
        .await
    }

    /// Deletes stripes no command ever published (a refused write's): no read can have them.
    /// Stripes a command frees go to the garbage table instead (see `garbage.rs`).
    fn discard_unpublished(&self, garbage: Vec<StripeRef>) {
        if garbage.is_empty() {
            return;
        }
        let store = self.stripes.clone();
        // Whatever a failure leaves behind, the startup collector removes.
        tokio::spawn(basalt_data::io_lane::spawn(move || {
            for stripe in &garbage {
                store.delete_blocking(&to_info(stripe));
            }
        }));
    }

    /// Hands stripes of `owner` found damaged (or written short of shards) to the background
    /// healer.
    pub(crate) fn queue_heal(
        &self,
        owner: Option<&PayloadOwner>,
        stripes: impl IntoIterator<Item = StripeInfo>,
    ) {
        for stripe in stripes {
            self.maintenance.queue(owner.cloned(), stripe);
        }
    }

    /// Stripes just written with shards missing, already noted as owed a heal: on a single
    /// node the healer takes them at once (a failing drive's shard goes to a spare). In a
    /// cluster the missed-shards healer waits for the node that was away instead of moving
    /// its shards to another.
    fn queue_degraded(&self, owner: &PayloadOwner, degraded: Vec<StripeInfo>) {
        if !self.stripes.drives().has_remote_drives() {
            self.queue_heal(Some(owner), degraded);
        }
    }

    // ---- buckets ----

    /// Creates a bucket; with `object_lock`, versioned and with object lock enabled.
    /// `access`: the bucket's owner, ACL and ownership (`None`: the root user's, ACLs off).
    pub async fn create_bucket(
        &self,
        name: &str,
        object_lock: bool,
        access: Option<BucketAccess>,
    ) -> Result<(), ObjectError> {
        let record = BucketRecord {
            created_ms: now_ms(),
        };
        self.meta
            .execute(Command::CreateBucket {
                name: name.to_owned(),
                record,
                object_lock,
                access,
            })
            .await?;
        Ok(())
    }

    pub async fn delete_bucket(&self, name: &str) -> Result<(), ObjectError> {
        self.meta
            .execute(Command::DeleteBucket {
                name: name.to_owned(),
            })
            .await?;
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
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn stage<S, E>(
        &self,
        mut body: S,
        algorithms: &[ChecksumAlgorithm],
        expected_len: Option<u64>,
        allow_inline: bool,
        seal: Option<&DataKey>,
    ) -> Result<Staged, ObjectError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let chunk_size = self.config.chunk_size;
        let guard = StripeGuard::new(self.stripes.clone());
        let mut pipeline = ChunkPipeline::new(
            self.stripes.clone(),
            &guard,
            Hashers::new(algorithms),
            seal.cloned(),
        );
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
            match seal {
                Some(key) => Bytes::from(key.seal(&tail)),
                None => tail,
            }
        });
        Ok(Staged {
            size,
            digests: hashers.finish(),
            inline,
            guard,
            opaque_etag: false,
        })
    }

    /// Stages `range` of an existing object as a new body (CopyObject, UploadPartCopy). A
    /// source that fails to read is stored data gone bad, not a client's broken body.
    #[allow(clippy::too_many_arguments)]
    pub async fn stage_copy(
        &self,
        (bucket, key): (&str, &str),
        source: &ObjectRecord,
        source_key: Option<&DataKey>,
        range: Range<u64>,
        algorithms: &[ChecksumAlgorithm],
        allow_inline: bool,
        seal: Option<&DataKey>,
    ) -> Result<Staged, ObjectError> {
        let len = range.end - range.start;
        let stream = self.read((bucket, key), source, range, source_key).await?;
        self.stage(stream, algorithms, Some(len), allow_inline, seal)
            .await
            .map_err(|e| match e {
                ObjectError::Body(detail) => ObjectError::Corrupt(format!("copy source: {detail}")),
                other => other,
            })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %bucket, key = %key))]
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        mut staged: Staged,
        write: ObjectWrite,
        precondition: Option<Precondition>,
    ) -> Result<ObjectRecord, ObjectError> {
        if matches!(write.encryption, Some(Encryption::Customer { .. })) {
            staged.conceal_etag();
        }
        let summary = ObjectSummary {
            size: staged.size,
            etag: staged.etag(),
            last_modified_ms: now_ms(),
            version_id: Some(new_version_id()),
            delete_marker: false,
        };
        validate_tags(&write.tags, MAX_OBJECT_TAGS)?;
        let checksums = stored_checksums(&staged.digests.checksums, &write.checksum_algorithms);
        let (payload, degraded) = staged.into_payload();
        let record = ObjectRecord {
            summary,
            details: ObjectDetails {
                headers: write.headers,
                user_metadata: write.user_metadata,
                checksums,
                part_sizes: Vec::new(),
                payload,
                tags: write.tags,
                lock: write.lock,
                encryption: write.encryption,
                acl: write.acl,
                part_checksums: Vec::new(),
            },
        };
        let mut record = record;
        let command = Command::PutObject {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            record: record.clone(),
            precondition,
        };
        let outcome = self
            .execute_owning(command, record.details.payload.stripes(), &degraded)
            .await?;
        record.summary.version_id = outcome
            .version_id
            .filter(|v| v != basalt_meta::NULL_VERSION);
        let owner = PayloadOwner::Object {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: record.summary.version_id.clone(),
        };
        self.queue_degraded(&owner, degraded);
        Ok(record)
    }

    /// Runs a command whose record owns `stripes`: if the command is refused, they are freed.
    /// If its outcome is unknown (a cluster that lost its leader mid-commit may still commit
    /// it), they stay: deleting them could leave a committed record without its data. The
    /// `degraded` ones (written with shards missing) are noted in the same command as owed a
    /// heal, so the debt is as durable as the record and outlives this node.
    async fn execute_owning(
        &self,
        command: Command,
        stripes: Vec<StripeRef>,
        degraded: &[StripeInfo],
    ) -> Result<basalt_meta::Outcome, ObjectError> {
        let command = if degraded.is_empty() {
            command
        } else {
            Command::WithMissedShards {
                command: Box::new(command),
                stripes: degraded.iter().map(|s| s.id.0).collect(),
            }
        };
        match self.meta.execute(command).await {
            Ok(outcome) => Ok(outcome),
            Err(e @ basalt_meta::MetaError::Indeterminate(_)) => {
                tracing::warn!(
                    error = %e,
                    stripes = stripes.len(),
                    "a write's outcome is unknown: its shards stay (an orphan sweep removes them if it was not applied)"
                );
                Err(e.into())
            }
            Err(e) => {
                self.discard_unpublished(stripes);
                Err(e.into())
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %bucket, key = %key))]
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        request: DeleteRequest,
    ) -> Result<Deleted, ObjectError> {
        self.delete_object_if(bucket, key, request, None).await
    }

    /// Deletes as [`Self::delete_object`] does, if the version addressed was last modified at
    /// `if_modified_ms`.
    pub(crate) async fn delete_object_if(
        &self,
        bucket: &str,
        key: &str,
        request: DeleteRequest,
        if_modified_ms: Option<i64>,
    ) -> Result<Deleted, ObjectError> {
        let outcome = self
            .meta
            .execute(Command::DeleteObject {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: request.version_id,
                marker_version_id: new_version_id(),
                bypass_governance: request.bypass_governance,
                now_ms: now_ms(),
                if_modified_ms,
            })
            .await?;
        Ok(Deleted {
            existed: outcome.existed,
            version_id: outcome.version_id,
            delete_marker: outcome.delete_marker,
        })
    }

    // ---- tags ----

    /// Replaces the tags of a version (`None`: the current one); returns its version id.
    pub async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: Tags,
    ) -> Result<Option<String>, ObjectError> {
        validate_tags(&tags, MAX_OBJECT_TAGS)?;
        let outcome = self
            .meta
            .execute(Command::SetObjectTags {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: version_id.map(str::to_owned),
                tags,
            })
            .await?;
        Ok(outcome.version_id)
    }

    /// Sets (`Some`) or removes (`None`) a bucket's tag set.
    pub async fn set_bucket_tags(
        &self,
        bucket: &str,
        tags: Option<Tags>,
    ) -> Result<(), ObjectError> {
        if let Some(tags) = &tags {
            validate_tags(tags, MAX_BUCKET_TAGS)?;
        }
        self.meta
            .execute(Command::SetBucketTags {
                bucket: bucket.to_owned(),
                tags,
            })
            .await?;
        Ok(())
    }

    pub async fn bucket_tags(&self, bucket: &str) -> Result<Tags, ObjectError> {
        self.meta
            .get_bucket_tags(bucket)
            .await?
            .ok_or(ObjectError::NoSuchTagSet)
    }

    // ---- encryption ----

    /// Uses the master keys in `text` (a key file's contents) rather than a file of this
    /// node's: in a cluster they are replicated state, the same on every node.
    pub fn use_master_keys(&self, text: &str) -> Result<(), ObjectError> {
        let keys = MasterKeys::parse(text)
            .map_err(|e| ObjectError::Internal(format!("SSE-S3 master keys: {e}")))?;
        self.master_key_source.set(keys)
    }

    /// The node's SSE-S3 master keys, loaded (or created) on first use.
    pub fn master_keys(&self) -> Result<Arc<MasterKeys>, ObjectError> {
        self.master_key_source.get()
    }

    /// The key to seal a new object (or upload) `bucket`/`key` with, and its record: what
    /// the request asks for, or the bucket's default encryption.
    pub async fn sealing(
        &self,
        bucket: &str,
        key: &str,
        requested: Sse,
    ) -> Result<Option<(DataKey, Encryption)>, ObjectError> {
        let kms = match requested {
            Sse::Customer(customer) => return Ok(Some(customer.new_data_key())),
            Sse::Managed => return Ok(Some(self.master_keys()?.new_data_key())),
            Sse::Kms(request) => {
                let default = self.meta.get_bucket_encryption(bucket).await?;
                KmsRequest {
                    key_id: request.key_id.or_else(|| {
                        default
                            .as_ref()
                            .and_then(|d| d.kms_key_id.clone())
                            .filter(|k| !k.is_empty())
                    }),
                    bucket_key: request
                        .bucket_key
                        .or_else(|| default.map(|d| d.bucket_key_enabled)),
                    context: request.context,
                }
            }
            Sse::Default => match self.meta.get_bucket_encryption(bucket).await? {
                None => return Ok(None),
                Some(DefaultEncryption {
                    kms_key_id: None, ..
                }) => return Ok(Some(self.master_keys()?.new_data_key())),
                Some(DefaultEncryption {
                    kms_key_id: Some(key_id),
                    bucket_key_enabled,
                }) => KmsRequest {
                    key_id: Some(key_id).filter(|k| !k.is_empty()),
                    context: BTreeMap::new(),
                    bucket_key: Some(bucket_key_enabled),
                },
            },
        };
        let bucket_key = kms.bucket_key.unwrap_or(false);
        let context = crate::kms::encryption_context(bucket, key, bucket_key, kms.context);
        let wrapped = self
            .key_manager
            .generate_data_key(kms.key_id.as_deref(), &context)
            .await?;
        Ok(Some((
            wrapped.key,
            Encryption::Kms {
                key_id: wrapped.key_id,
                key_version: wrapped.key_version,
                wrapped_key: wrapped.wrapped,
                context,
                bucket_key,
            },
        )))
    }

    /// The key that opens an object (or upload) sealed as `encryption` says.
    pub async fn opening(
        &self,
        encryption: Option<&Encryption>,
        customer: Option<&CustomerKey>,
    ) -> Result<Option<DataKey>, ObjectError> {
        match encryption {
            None => Ok(None),
            Some(Encryption::Managed {
                key_id,
                wrapped_key,
            }) => Ok(Some(self.master_keys()?.unwrap(key_id, wrapped_key)?)),
            Some(Encryption::Customer {
                salt, key_check, ..
            }) => match customer {
                Some(key) => Ok(Some(key.open_record(salt, key_check)?)),
                None => Err(ObjectError::InvalidRequest(
                    "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.".into(),
                )),
            },
            Some(Encryption::Kms {
                key_id,
                key_version,
                wrapped_key,
                context,
                ..
            }) => Ok(Some(
                self.key_manager
                    .decrypt(key_id, *key_version, wrapped_key, context)
                    .await?,
            )),
        }
    }

    pub async fn set_bucket_encryption(
        &self,
        bucket: &str,
        config: Option<DefaultEncryption>,
    ) -> Result<(), ObjectError> {
        match config.as_ref().map(|c| c.kms_key_id.as_deref()) {
            None => {}
            // Fail now, not on the first write, if the key file cannot be made.
            Some(None) => {
                self.master_keys()?;
            }
            // Or if the key does not exist (the default key is made on first use).
            Some(Some(key_id)) => {
                let key_id = Some(key_id).filter(|k| !k.is_empty());
                self.key_manager.describe(key_id).await?;
            }
        }
        self.meta
            .execute(Command::SetBucketEncryption {
                bucket: bucket.to_owned(),
                config,
            })
            .await?;
        Ok(())
    }

    pub async fn bucket_encryption(&self, bucket: &str) -> Result<DefaultEncryption, ObjectError> {
        self.meta
            .get_bucket_encryption(bucket)
            .await?
            .ok_or(ObjectError::NoBucketEncryption)
    }

    // ---- CORS ----

    /// Sets (`Some`) or removes (`None`) a bucket's CORS rules (validated by the caller, which
    /// knows the protocol's rules).
    pub async fn set_bucket_cors(
        &self,
        bucket: &str,
        rules: Option<Vec<CorsRule>>,
    ) -> Result<(), ObjectError> {
        self.meta
            .execute(Command::SetBucketCors {
                bucket: bucket.to_owned(),
                rules,
            })
            .await?;
        Ok(())
    }

    pub async fn bucket_cors(&self, bucket: &str) -> Result<Vec<CorsRule>, ObjectError> {
        self.meta
            .get_bucket_cors(bucket)
            .await?
            .ok_or(ObjectError::NoSuchCorsConfiguration)
    }

    // ---- reading ----

    /// The current version of a key; a delete marker there reads as `NoSuchKey`.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectRecord, ObjectError> {
        self.head_version(bucket, key, None).await
    }

    /// One version of a key (`None`: the current one, `"null"`: the null version). Addressing
    /// a delete marker is an error that carries its version id.
    pub async fn head_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectRecord, ObjectError> {
        let found = match version_id {
            None => self.meta.get_object(bucket, key).await?,
            Some(v) => self.meta.get_object_version(bucket, key, v).await?,
        };
        match found {
            Some(record) if record.summary.delete_marker => Err(ObjectError::DeleteMarker {
                version_id: record.summary.version_name().to_owned(),
                addressed: version_id.is_some(),
                last_modified_ms: record.summary.last_modified_ms,
            }),
            Some(record) => Ok(record),
            None => {
                self.bucket(bucket).await?;
                Err(match version_id {
                    Some(_) => ObjectError::NoSuchVersion,
                    None => ObjectError::NoSuchKey,
                })
            }
        }
    }

    /// Streams `range` of the object, reading only the chunks the range covers. The first
    /// chunk is read and verified before this returns, so damage there is an error the caller
    /// can still report in the status line. Stripes read with a shard missing or corrupt are
    /// queued for healing.
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %bucket, key = %key))]
    pub async fn read(
        &self,
        (bucket, key): (&str, &str),
        record: &ObjectRecord,
        range: Range<u64>,
        sealed_by: Option<&DataKey>,
    ) -> Result<ByteStream, ObjectError> {
        let owner = PayloadOwner::Object {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: record.summary.version_id.clone(),
        };
        let stripes = match &record.details.payload {
            Payload::Inline(data) => {
                let opened;
                let data = match sealed_by {
                    Some(key) => {
                        opened = key.open(data)?;
                        &opened
                    }
                    None => data,
                };
                let slice = data
                    .get(range.start as usize..range.end as usize)
                    .ok_or_else(|| {
                        ObjectError::Corrupt("inline data shorter than its record".into())
                    })?;
                let bytes = Bytes::copy_from_slice(slice);
                return Ok(Box::pin(futures::stream::once(async move { Ok(bytes) })));
            }
            other => other.stripes(),
        };
        let mut wanted = Vec::new();
        let mut offset = 0u64;
        // A sealed chunk is opened whole: the stored range covers it all, `plain` is the slice
        // of the opened chunk.
        let overhead = if sealed_by.is_some() {
            crate::SEAL_OVERHEAD as u32
        } else {
            0
        };
        for stripe in &stripes {
            let plain_len = stripe.len.checked_sub(overhead).ok_or_else(|| {
                ObjectError::Corrupt("an encrypted chunk is shorter than its seal".into())
            })?;
            let chunk_range = offset..offset + u64::from(plain_len);
            offset = chunk_range.end;
            if chunk_range.end <= range.start || chunk_range.start >= range.end || plain_len == 0 {
                continue;
            }
            let from = range.start.saturating_sub(chunk_range.start) as usize;
            let to = (range.end.min(chunk_range.end) - chunk_range.start) as usize;
            let stored = if sealed_by.is_some() {
                0..stripe.len as usize
            } else {
                from..to
            };
            wanted.push((to_info(stripe), stored, from..to));
        }
        if offset != record.summary.size {
            return Err(ObjectError::Corrupt(
                "chunk lengths do not add up to the object size".into(),
            ));
        }
        let this = self.clone();
        let sealed_by = sealed_by.cloned();
        // Until the stream is dropped, an overwrite or delete does not remove these stripes.
        let pin = self
            .pins
            .pin(wanted.iter().map(|(info, _, _)| info.id.0).collect());
        let mut stream = futures::stream::iter(wanted)
            .map(move |(info, stored, plain)| {
                let _pinned = &pin;
                let (this, owner, sealed_by) = (this.clone(), owner.clone(), sealed_by.clone());
                async move {
                    let store = this.stripes.clone();
                    let stripe = info.id.0;
                    let (info, read) =
                        blocking(move || Ok(store.read_blocking(&info, stored).map(|r| (info, r))))
                            .await?
                            .inspect_err(|e| tracing::error!(error = %e, "chunk read failed"))?;
                    if !read.damaged.is_empty() {
                        this.queue_heal(Some(&owner), [info]);
                    }
                    let pieces = match sealed_by {
                        None => read.pieces,
                        Some(key) => {
                            let opened = basalt_data::io_lane::spawn(move || {
                                key.open_chunk(&stripe, &read.pieces.concat())
                                    .map(|chunk| Bytes::from(chunk).slice(plain))
                            })
                            .await
                            .await
                            .map_err(task_failed)??;
                            vec![opened]
                        }
                    };
                    Ok::<_, ObjectError>(futures::stream::iter(pieces.into_iter().map(Ok)))
                }
            })
            .buffered(READS_IN_FLIGHT)
            .try_flatten()
            .boxed();
        match stream.try_next().await? {
            None => Ok(Box::pin(futures::stream::empty())),
            Some(first) => Ok(Box::pin(
                futures::stream::once(async move { Ok(first) }).chain(stream),
            )),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %bucket))]
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

    /// `full_object_checksum`: the object's checksum will be of the whole object
    /// (FULL_OBJECT), not of its parts' checksums (COMPOSITE).
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        write: ObjectWrite,
        full_object_checksum: bool,
    ) -> Result<String, ObjectError> {
        validate_tags(&write.tags, MAX_OBJECT_TAGS)?;
        let upload_id = ChunkId::random().to_hex();
        let record = UploadRecord {
            initiated_ms: now_ms(),
            headers: write.headers,
            user_metadata: write.user_metadata,
            checksum_algorithm: write.checksum_algorithms.first().copied(),
            tags: write.tags,
            lock: write.lock,
            encryption: write.encryption,
            acl: write.acl,
            full_object_checksum,
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

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %bucket, key = %key))]
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
        let (size, etag) = (staged.size, staged.etag());
        let (payload, degraded) = staged.into_payload();
        let record = PartRecord {
            size,
            etag,
            last_modified_ms: now_ms(),
            checksum,
            payload,
        };
        let command = Command::PutPart {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            part_number,
            record: record.clone(),
        };
        self.execute_owning(command, record.payload.stripes(), &degraded)
            .await?;
        let owner = PayloadOwner::Part {
            upload_id: upload_id.to_owned(),
            part_number,
        };
        self.queue_degraded(&owner, degraded);
        Ok(record)
    }

    /// Completes an upload. Where the upload has a checksum algorithm, each listed part's
    /// stored checksum must equal the one the client lists (if it lists one), and the object
    /// gets the parts' checksum (COMPOSITE or FULL_OBJECT, as the upload was created), which
    /// must equal `expected_checksum` when the client sent one.
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %bucket, key = %key))]
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        mut parts: Vec<CompletePart>,
        precondition: Option<Precondition>,
        expected_checksum: Option<Checksum>,
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
        let upload = match self.upload(bucket, key, upload_id).await {
            Err(ObjectError::NoSuchUpload) => {
                return self.completed_already(bucket, key, &etag).await;
            }
            other => other?,
        };
        let checksum = match upload.checksum_algorithm {
            Some(algorithm) => Some(
                self.parts_checksum(
                    upload_id,
                    algorithm,
                    upload.full_object_checksum,
                    &mut parts,
                )
                .await?,
            ),
            None => None,
        };
        if let (Some(expected), Some(computed)) = (&expected_checksum, &checksum)
            && (expected.algorithm != computed.algorithm || expected.value != computed.value)
        {
            return Err(ObjectError::BadDigest(format!(
                "the object's checksum is {}, not {}",
                computed.value, expected.value
            )));
        }
        let command = Command::CompleteUpload(CompleteUpload {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            parts,
            min_part_size: self.config.min_part_size,
            last_modified_ms: now_ms(),
            etag: etag.clone(),
            precondition,
            version_id: new_version_id(),
            checksum,
        });
        let outcome = match self.meta.execute(command).await.map_err(ObjectError::from) {
            Ok(outcome) => outcome,
            Err(ObjectError::NoSuchUpload) => {
                return self.completed_already(bucket, key, &etag).await;
            }
            Err(ObjectError::EntityTooSmall { part, size, .. }) => {
                return Err(ObjectError::EntityTooSmall {
                    part,
                    size,
                    min: self.config.min_part_size,
                });
            }
            Err(e) => return Err(e),
        };
        outcome
            .object
            .ok_or_else(|| ObjectError::Internal("completion returned no object".into()))
    }

    /// A completion sent again (a retry whose first answer was lost): the upload is gone, and
    /// if the current object is the one these parts made, S3 answers it again rather than
    /// NoSuchUpload.
    async fn completed_already(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
    ) -> Result<ObjectRecord, ObjectError> {
        match self.head_version(bucket, key, None).await {
            Ok(current) if current.summary.etag == etag => Ok(current),
            _ => Err(ObjectError::NoSuchUpload),
        }
    }

    /// The object checksum of the listed parts, from their stored checksums (which each part
    /// must have, under `algorithm`); fills in each part's stored value so the commit checks
    /// that it still holds.
    async fn parts_checksum(
        &self,
        upload_id: &str,
        algorithm: ChecksumAlgorithm,
        full_object: bool,
        parts: &mut [CompletePart],
    ) -> Result<Checksum, ObjectError> {
        let mut stored = std::collections::HashMap::new();
        let mut marker = 0;
        loop {
            let (page, truncated) = self.meta.list_parts(upload_id, marker, 1000).await?;
            for listing in &page {
                stored.insert(listing.part_number, listing.record.clone());
            }
            match page.last() {
                Some(last) if truncated => marker = last.part_number,
                _ => break,
            }
        }
        let mut sums = Vec::with_capacity(parts.len());
        for part in parts.iter_mut() {
            let record = stored
                .get(&part.part_number)
                .ok_or(ObjectError::InvalidPart(part.part_number))?;
            let value = match &record.checksum {
                Some(c) if c.algorithm == algorithm => c.value.clone(),
                _ => return Err(ObjectError::InvalidPart(part.part_number)),
            };
            if part.checksum.as_ref().is_some_and(|given| *given != value) {
                return Err(ObjectError::InvalidPart(part.part_number));
            }
            part.checksum = Some(value.clone());
            sums.push((value, record.size));
        }
        let value = if full_object {
            let with_sizes: Vec<(&str, u64)> = sums.iter().map(|(v, s)| (v.as_str(), *s)).collect();
            full_object_checksum(algorithm, &with_sizes)
        } else {
            let values: Vec<&str> = sums.iter().map(|(v, _)| v.as_str()).collect();
            composite_checksum(algorithm, &values)
        }
        .ok_or_else(|| ObjectError::InvalidRequest("the parts' checksums do not combine".into()))?;
        Ok(Checksum { algorithm, value })
    }

    pub async fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), ObjectError> {
        self.meta
            .execute(Command::AbortUpload {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
            })
            .await?;
        Ok(())
    }

    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max_uploads: usize,
    ) -> Result<UploadPage, ObjectError> {
        self.bucket(bucket).await?;
        Ok(self
            .meta
            .list_uploads(
                bucket,
                prefix,
                delimiter,
                key_marker,
                upload_id_marker,
                max_uploads,
            )
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

/// How many chunks one GET reads ahead of the one being sent: enough to keep a drive's queue
/// busy when the data is not in the page cache.
const READS_IN_FLIGHT: usize = 4;

/// How many stripe writes (each ending in fsyncs) one PUT keeps in flight.
const WRITES_IN_FLIGHT: usize = 2;

/// Hashing runs on one blocking thread in chunk order while stripe writes (encoding, then the
/// shards in parallel) run on others, so a PUT goes as fast as the slower of the two rather
/// than their sum. Memory: the chunk being hashed and the stripes being written.
struct ChunkPipeline<'g> {
    store: StripeStore,
    guard: &'g StripeGuard,
    sink: StripeSink,
    hashers: Option<Hashers>,
    hashing: Option<JoinHandle<Hashers>>,
    writes: VecDeque<JoinHandle<Result<(), DataError>>>,
    next_index: usize,
    /// The fan-out directory of all of this write's shards.
    group: u8,
    /// Seals each chunk before it is encoded (encryption at rest).
    seal: Option<DataKey>,
}

fn task_failed(e: tokio::task::JoinError) -> ObjectError {
    ObjectError::Internal(format!("blocking task failed: {e}"))
}

/// Runs blocking drive work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DataError> + Send + 'static,
) -> Result<T, ObjectError> {
    Ok(basalt_data::io_lane::spawn(f)
        .await
        .await
        .map_err(task_failed)??)
}

impl<'g> ChunkPipeline<'g> {
    fn new(
        store: StripeStore,
        guard: &'g StripeGuard,
        hashers: Hashers,
        seal: Option<DataKey>,
    ) -> Self {
        Self {
            store,
            guard,
            sink: guard.sink(),
            hashers: Some(hashers),
            hashing: None,
            writes: VecDeque::new(),
            next_index: 0,
            group: rand::random(),
            seal,
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
        self.hashing = Some(
            basalt_data::io_lane::spawn(move || {
                hashers.update(&to_hash);
                hashers
            })
            .await,
        );
        while self.writes.len() >= WRITES_IN_FLIGHT {
            if let Some(write) = self.writes.pop_front() {
                write.await.map_err(task_failed)??;
            }
        }
        let (store, sink) = (self.store.clone(), self.sink.clone());
        let (index, group, seal) = (self.next_index, self.group, self.seal.clone());
        self.next_index += 1;
        self.writes.push_back(
            basalt_data::io_lane::spawn(move || {
                let id = basalt_data::ChunkId::random_in_group(group);
                let chunk = match seal {
                    Some(key) => Bytes::from(key.seal_chunk(&id.0, &chunk)),
                    None => chunk,
                };
                store
                    .write_as_blocking(id, &chunk)
                    .map(|stripe| sink.keep(index, stripe))
            })
            .await,
        );
        Ok(())
    }

    async fn finish(mut self) -> Result<Hashers, ObjectError> {
        while let Some(write) = self.writes.pop_front() {
            write.await.map_err(task_failed)??;
        }
        if self.next_index > 0 {
            // All shards share one directory per drive: one fsync each makes their names
            // durable.
            let (store, group, written) = (self.store.clone(), self.group, self.guard.written());
            let unsynced = blocking(move || store.sync_blocking(group, &written)).await?;
            self.guard.mark_unwritten(&unsynced);
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
