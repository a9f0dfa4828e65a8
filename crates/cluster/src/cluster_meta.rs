//! [`ClusterMeta`]: the metadata store of a cluster node. Commands commit through the Raft
//! leader (forwarded from any node); every read first waits until this node has applied all
//! that the leader had committed when the read began, so a write acknowledged by any node is
//! seen by a read on any other (linearizable). A node that cannot reach a quorum answers
//! `Unavailable` (503) rather than serve what may be stale.

use std::sync::Arc;

use basalt_meta::{
    BucketAccess, BucketLogging, BucketRecord, Command, CorsRule, DefaultEncryption, GarbageRecord,
    LifecycleRule, ListPage, MetaError, MetaStore, MissedShards, Namespace, NamespaceRecord,
    ObjectLockConfig, ObjectRecord, Outcome, PartListing, PayloadCursor, PayloadEntry,
    PublicAccessBlock, StripeRef, TableRecord, Tags, UploadPage, UploadRecord, VersionPage,
    VersioningState,
};

use crate::node::ClusterNode;

pub struct ClusterMeta {
    node: Arc<ClusterNode>,
}

impl ClusterMeta {
    pub fn new(node: Arc<ClusterNode>) -> Self {
        Self { node }
    }
}

#[async_trait::async_trait]
impl MetaStore for ClusterMeta {
    async fn execute(&self, command: Command) -> Result<Outcome, MetaError> {
        basalt_meta::read_fence::forget();
        self.node.propose(command).await
    }

    async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.get_bucket(name).await
    }

    async fn list_buckets(&self) -> Result<Vec<(String, BucketRecord)>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.list_buckets().await
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.get_object(bucket, key).await
    }

    async fn get_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<ObjectRecord>, MetaError> {
        self.node.linearize().await?;
        self.node
            .meta
            .get_object_version(bucket, key, version_id)
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
        self.node.linearize().await?;
        self.node
            .meta
            .list_versions(
                bucket,
                prefix,
                delimiter,
                key_marker,
                version_id_marker,
                max_entries,
            )
            .await
    }

    async fn get_versioning(&self, bucket: &str) -> Result<Option<VersioningState>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.get_versioning(bucket).await
    }

    async fn get_object_lock_config(
        &self,
        bucket: &str,
    ) -> Result<Option<ObjectLockConfig>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.get_object_lock_config(bucket).await
    }

    async fn get_lifecycle(&self, bucket: &str) -> Result<Option<Vec<LifecycleRule>>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.get_lifecycle(bucket).await
    }

    async fn get_bucket_policy(&self, bucket: &str) -> Result<Option<String>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.get_bucket_policy(bucket).await
    }

    async fn get_identity(&self, key: &str) -> Result<Option<Vec<u8>>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.get_identity(key).await
    }

    async fn list_identities(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.list_identities(prefix).await
    }

    async fn get_bucket_encryption(
        &self,
        bucket: &str,
    ) -> Result<Option<DefaultEncryption>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.get_bucket_encryption(bucket).await
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max_entries: usize,
    ) -> Result<ListPage, MetaError> {
        self.node.linearize().await?;
        self.node
            .meta
            .list_objects(bucket, prefix, delimiter, start_after, max_entries)
            .await
    }

    async fn get_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.get_upload(bucket, key, upload_id).await
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
        self.node.linearize().await?;
        self.node
            .meta
            .list_uploads(
                bucket,
                prefix,
                delimiter,
                key_marker,
                upload_id_marker,
                max_uploads,
            )
            .await
    }

    async fn list_parts(
        &self,
        upload_id: &str,
        part_number_marker: u32,
        max_parts: usize,
    ) -> Result<(Vec<PartListing>, bool), MetaError> {
        self.node.linearize().await?;
        self.node
            .meta
            .list_parts(upload_id, part_number_marker, max_parts)
            .await
    }

    async fn get_bucket_tags(&self, bucket: &str) -> Result<Option<Tags>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.get_bucket_tags(bucket).await
    }

    async fn get_bucket_cors(&self, bucket: &str) -> Result<Option<Vec<CorsRule>>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.get_bucket_cors(bucket).await
    }

    async fn get_bucket_access(&self, bucket: &str) -> Result<Option<BucketAccess>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.get_bucket_access(bucket).await
    }

    async fn get_public_access_block(
        &self,
        bucket: &str,
    ) -> Result<Option<PublicAccessBlock>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.get_public_access_block(bucket).await
    }

    async fn get_bucket_logging(&self, bucket: &str) -> Result<Option<BucketLogging>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.get_bucket_logging(bucket).await
    }

    async fn catalog_namespace(
        &self,
        bucket: &str,
        namespace: &[String],
    ) -> Result<Option<NamespaceRecord>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.catalog_namespace(bucket, namespace).await
    }

    async fn catalog_namespaces(
        &self,
        bucket: &str,
        parent: &[String],
    ) -> Result<Vec<Namespace>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.catalog_namespaces(bucket, parent).await
    }

    async fn catalog_table(
        &self,
        bucket: &str,
        namespace: &[String],
        name: &str,
    ) -> Result<Option<TableRecord>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.catalog_table(bucket, namespace, name).await
    }

    async fn catalog_tables(
        &self,
        bucket: &str,
        namespace: &[String],
    ) -> Result<Vec<(String, TableRecord)>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.catalog_tables(bucket, namespace).await
    }

    async fn garbage_due(
        &self,
        freed_by_ms: i64,
        limit: usize,
    ) -> Result<Vec<(u64, GarbageRecord)>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.garbage_due(freed_by_ms, limit).await
    }

    async fn missed_shards(
        &self,
        after: Option<[u8; 16]>,
        limit: usize,
    ) -> Result<Vec<([u8; 16], MissedShards)>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.missed_shards(after, limit).await
    }

    async fn set_clean_stop(&self, clean: bool) -> Result<bool, MetaError> {
        // Node-local: never replicated.
        self.node.meta.set_clean_stop(clean).await
    }

    async fn referenced_stripes(&self) -> Result<Vec<StripeRef>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.referenced_stripes().await
    }

    async fn payload_page(
        &self,
        after: Option<PayloadCursor>,
        max: usize,
    ) -> Result<Vec<PayloadEntry>, MetaError> {
        self.node.linearize().await?;
        self.node.meta.payload_page(after, max).await
    }
}
