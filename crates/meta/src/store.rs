use crate::{
    BucketRecord, ChunkRef, Command, MetaError, ObjectRecord, ObjectSummary, Outcome, PartRecord,
    UploadRecord,
};

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

/// The metadata store. Implementations must apply each [`Command`] atomically and durably
/// before returning, and reads must observe every command that has returned.
#[async_trait::async_trait]
pub trait MetaStore: Send + Sync + 'static {
    async fn execute(&self, command: Command) -> Result<Outcome, MetaError>;

    async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, MetaError>;

    async fn list_buckets(&self) -> Result<Vec<(String, BucketRecord)>, MetaError>;

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetaError>;

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

    /// Uploads of a bucket in (key, upload id) order, after the given markers.
    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max_uploads: usize,
    ) -> Result<(Vec<UploadListing>, bool), MetaError>;

    async fn list_parts(
        &self,
        upload_id: &str,
        part_number_marker: u32,
        max_parts: usize,
    ) -> Result<(Vec<PartListing>, bool), MetaError>;

    /// Every chunk any record references: the live set for garbage collection.
    async fn referenced_chunks(&self) -> Result<Vec<ChunkRef>, MetaError>;
}
