use crate::{
    BucketAccess, BucketLogging, CorsRule, DefaultEncryption, LifecycleRule, ObjectLockConfig,
    PublicAccessBlock, Tags, VersioningState,
};
use crate::{
    BucketRecord, Command, GarbageRecord, MetaError, MissedShards, ObjectRecord, ObjectSummary,
    Outcome, PartRecord, Payload, StripeRef, UploadRecord,
};
use crate::{Namespace, NamespaceRecord, TableRecord};

/// One entry of an object listing, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    Object {
        key: String,
        summary: ObjectSummary,
    },
    /// Keys that share the prefix up to and including the delimiter, rolled up.
    CommonPrefix(String),
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub entries: Vec<ListEntry>,
    /// Set when more entries follow; the last entry's key (or common prefix) is the marker
    /// to continue from.
    pub is_truncated: bool,
}

/// One entry of ListObjectVersions, in key order and, within a key, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionEntry {
    Version {
        key: String,
        summary: ObjectSummary,
        is_latest: bool,
    },
    CommonPrefix(String),
}

#[derive(Debug, Clone, Default)]
pub struct VersionPage {
    pub entries: Vec<VersionEntry>,
    pub is_truncated: bool,
    /// Where the next page starts: the last key (or common prefix) and version listed.
    pub next_marker: Option<(String, Option<String>)>,
}

/// A page of ListMultipartUploads: uploads, and keys rolled up at the delimiter.
#[derive(Debug, Clone, Default)]
pub struct UploadPage {
    pub uploads: Vec<UploadListing>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// Where the next page starts: the last key (or common prefix) and upload id listed.
    pub next_marker: Option<(String, Option<String>)>,
}

#[derive(Debug, Clone)]
pub struct UploadListing {
    pub key: String,
    pub upload_id: String,
    pub record: UploadRecord,
}

#[derive(Debug, Clone)]
pub struct PartListing {
    pub part_number: u32,
    pub record: PartRecord,
}

/// A position in the walk of [`MetaStore::payload_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadCursor {
    /// 0: objects, 1: parts, 2: noncurrent versions.
    table: u8,
    key: Vec<u8>,
}

impl PayloadCursor {
    pub(crate) fn new(table: u8, key: Vec<u8>) -> Self {
        Self { table, key }
    }

    pub(crate) fn table(&self) -> u8 {
        self.table
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }
}

/// Which record a payload belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PayloadOwner {
    /// One version of an object (`None`: the null version).
    Object {
        bucket: String,
        key: String,
        version_id: Option<String>,
    },
    Part {
        upload_id: String,
        part_number: u32,
    },
}

impl std::fmt::Display for PayloadOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Object {
                bucket,
                key,
                version_id: None,
            } => write!(f, "object {bucket}/{key}"),
            Self::Object {
                bucket,
                key,
                version_id: Some(v),
            } => write!(f, "object {bucket}/{key} version {v}"),
            Self::Part {
                upload_id,
                part_number,
            } => write!(f, "part {part_number} of upload {upload_id}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PayloadEntry {
    pub cursor: PayloadCursor,
    pub owner: PayloadOwner,
    pub payload: Payload,
}

/// The metadata store. Implementations must apply each [`Command`] atomically and durably
/// before returning, and reads must observe every command that has returned.
#[async_trait::async_trait]
pub trait MetaStore: Send + Sync + 'static {
    async fn execute(&self, command: Command) -> Result<Outcome, MetaError>;

    async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, MetaError>;

    async fn list_buckets(&self) -> Result<Vec<(String, BucketRecord)>, MetaError>;

    /// The current version of a key, which may be a delete marker.
    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetaError>;

    /// One version of a key by its id (`"null"` for the null version).
    async fn get_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<ObjectRecord>, MetaError>;

    /// ListObjectVersions: every version and delete marker of the keys under `prefix`, after
    /// (`key_marker`, `version_id_marker`), rolled up at `delimiter` like `list_objects`.
    async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        version_id_marker: Option<&str>,
        max_entries: usize,
    ) -> Result<VersionPage, MetaError>;

    /// The bucket's versioning state (`None`: never set); `NoSuchBucket` if it does not exist.
    async fn get_versioning(&self, bucket: &str) -> Result<Option<VersioningState>, MetaError>;

    /// The bucket's object-lock configuration if object lock is enabled.
    async fn get_object_lock_config(
        &self,
        bucket: &str,
    ) -> Result<Option<ObjectLockConfig>, MetaError>;

    async fn get_lifecycle(&self, bucket: &str) -> Result<Option<Vec<LifecycleRule>>, MetaError>;

    async fn get_bucket_policy(&self, bucket: &str) -> Result<Option<String>, MetaError>;

    async fn get_identity(&self, key: &str) -> Result<Option<Vec<u8>>, MetaError>;

    /// Identity records whose key starts with `prefix`, in key order.
    async fn list_identities(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, MetaError>;

    async fn get_bucket_encryption(
        &self,
        bucket: &str,
    ) -> Result<Option<DefaultEncryption>, MetaError>;

    /// Lists keys of `bucket` that start with `prefix` and sort after `start_after`, rolling
    /// keys up to common prefixes at the first `delimiter` after the prefix.
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max_entries: usize,
    ) -> Result<ListPage, MetaError>;

    async fn get_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, MetaError>;

    /// Uploads of a bucket in (key, upload id) order, after the given markers; keys with
    /// `delimiter` after `prefix` roll up into common prefixes (each counts as one entry).
    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max_uploads: usize,
    ) -> Result<UploadPage, MetaError>;

    async fn list_parts(
        &self,
        upload_id: &str,
        part_number_marker: u32,
        max_parts: usize,
    ) -> Result<(Vec<PartListing>, bool), MetaError>;

    /// A bucket's tag set, if one is set; `NoSuchBucket` if the bucket does not exist.
    async fn get_bucket_tags(&self, bucket: &str) -> Result<Option<Tags>, MetaError>;

    /// A bucket's CORS rules, if set; `NoSuchBucket` if the bucket does not exist.
    async fn get_bucket_access(&self, bucket: &str) -> Result<Option<BucketAccess>, MetaError>;

    async fn get_public_access_block(
        &self,
        bucket: &str,
    ) -> Result<Option<PublicAccessBlock>, MetaError>;

    async fn get_bucket_logging(&self, bucket: &str) -> Result<Option<BucketLogging>, MetaError>;

    async fn get_bucket_cors(&self, bucket: &str) -> Result<Option<Vec<CorsRule>>, MetaError>;

    /// A namespace of a bucket's Iceberg catalog.
    async fn catalog_namespace(
        &self,
        bucket: &str,
        namespace: &[String],
    ) -> Result<Option<NamespaceRecord>, MetaError>;

    /// The namespaces directly under `parent` (the top level when it is empty), in order.
    async fn catalog_namespaces(
        &self,
        bucket: &str,
        parent: &[String],
    ) -> Result<Vec<Namespace>, MetaError>;

    async fn catalog_table(
        &self,
        bucket: &str,
        namespace: &[String],
        name: &str,
    ) -> Result<Option<TableRecord>, MetaError>;

    /// The tables of a namespace, in name order.
    async fn catalog_tables(
        &self,
        bucket: &str,
        namespace: &[String],
    ) -> Result<Vec<(String, TableRecord)>, MetaError>;

    /// Garbage freed at or before `freed_by_ms`, oldest first, at most `limit` entries.
    async fn garbage_due(
        &self,
        freed_by_ms: i64,
        limit: usize,
    ) -> Result<Vec<(u64, GarbageRecord)>, MetaError>;

    /// Writes (`true`, at a clean shutdown) or removes (`false`, at start) the mark of a
    /// clean stop; returns whether it was there. Node-local, never replicated: a node that
    /// finds no mark at start did not stop cleanly.
    async fn set_clean_stop(&self, clean: bool) -> Result<bool, MetaError>;

    /// Every stripe any record references: the live set for garbage collection.
    async fn referenced_stripes(&self) -> Result<Vec<StripeRef>, MetaError>;

    /// Stripes owed a heal (published with shards missing), in stripe-id order after
    /// `after`, at most `limit`.
    async fn missed_shards(
        &self,
        after: Option<[u8; 16]>,
        limit: usize,
    ) -> Result<Vec<([u8; 16], MissedShards)>, MetaError>;

    /// The payloads of objects and of uploaded parts, in a stable order, after `after` (a
    /// cursor from an earlier page): how scrubbing, healing and fsck walk all data in bounded
    /// memory.
    async fn payload_page(
        &self,
        after: Option<PayloadCursor>,
        max: usize,
    ) -> Result<Vec<PayloadEntry>, MetaError>;
}
