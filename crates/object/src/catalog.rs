//! The Iceberg catalog of a bucket, as the object layer offers it: the catalog's state (in the
//! metadata), and the small objects a catalog reads and writes whole (table metadata files).

use basalt_meta::{
    CatalogCommand, Command, ListEntry, Namespace, NamespaceRecord, StandardHeaders, TableRecord,
};
use bytes::Bytes;
use futures::TryStreamExt;

use crate::{DeleteRequest, ObjectError, ObjectRecord, ObjectStore, ObjectWrite, Sse};

/// Objects listed (and deleted) per page when a table's files are purged.
const PURGE_PAGE: usize = 1000;

impl ObjectStore {
    pub async fn catalog_execute(&self, command: CatalogCommand) -> Result<(), ObjectError> {
        self.meta.execute(Command::Catalog(command)).await?;
        Ok(())
    }

    pub async fn catalog_namespace(
        &self,
        bucket: &str,
        namespace: &[String],
    ) -> Result<Option<NamespaceRecord>, ObjectError> {
        Ok(self.meta.catalog_namespace(bucket, namespace).await?)
    }

    pub async fn catalog_namespaces(
        &self,
        bucket: &str,
        parent: &[String],
    ) -> Result<Vec<Namespace>, ObjectError> {
        Ok(self.meta.catalog_namespaces(bucket, parent).await?)
    }

    pub async fn catalog_table(
        &self,
        bucket: &str,
        namespace: &[String],
        name: &str,
    ) -> Result<Option<TableRecord>, ObjectError> {
        Ok(self.meta.catalog_table(bucket, namespace, name).await?)
    }

    pub async fn catalog_tables(
        &self,
        bucket: &str,
        namespace: &[String],
    ) -> Result<Vec<(String, TableRecord)>, ObjectError> {
        Ok(self.meta.catalog_tables(bucket, namespace).await?)
    }

    /// Writes `data` as the object `bucket`/`key`, under the bucket's default encryption, as
    /// any other write to it.
    pub async fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        data: Bytes,
        content_type: &str,
    ) -> Result<ObjectRecord, ObjectError> {
        let (seal, encryption) = self.sealing(bucket, key, Sse::Default).await?.unzip();
        let len = data.len() as u64;
        let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(data)]);
        let staged = self
            .stage(body, &[], Some(len), true, seal.as_ref())
            .await?;
        let write = ObjectWrite {
            headers: StandardHeaders {
                content_type: Some(content_type.to_owned()),
                ..Default::default()
            },
            encryption,
            ..Default::default()
        };
        self.put_object(bucket, key, staged, write, None).await
    }

    /// Reads the whole current version of a small object (at most `max_bytes`; larger is
    /// `InvalidRequest`). Objects under a customer's key (SSE-C) cannot be read this way.
    pub async fn read_bytes(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<Bytes, ObjectError> {
        let record = self.head_object(bucket, key).await?;
        if record.summary.size > max_bytes {
            return Err(ObjectError::InvalidRequest(format!(
                "{key} is {} bytes, more than the {max_bytes} read whole",
                record.summary.size
            )));
        }
        let key_of = self
            .opening(record.details.encryption.as_ref(), None)
            .await?;
        let stream = self
            .read(
                (bucket, key),
                &record,
                0..record.summary.size,
                key_of.as_ref(),
            )
            .await?;
        let pieces: Vec<Bytes> = stream.try_collect().await?;
        Ok(pieces.concat().into())
    }

    /// Deletes every current object whose key starts with `prefix` (a purged table's files);
    /// how many.
    pub async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<usize, ObjectError> {
        let mut deleted = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .list_objects(bucket, prefix, None, after.as_deref(), PURGE_PAGE)
                .await?;
            let keys: Vec<String> = page
                .entries
                .into_iter()
                .filter_map(|e| match e {
                    ListEntry::Object { key, .. } => Some(key),
                    ListEntry::CommonPrefix(_) => None,
                })
                .collect();
            if keys.is_empty() {
                return Ok(deleted);
            }
            // Paged by key, so a key that cannot go (a version kept by a lock) is passed.
            after = keys.last().cloned();
            for key in keys {
                let request = DeleteRequest {
                    version_id: None,
                    bypass_governance: false,
                };
                match self.delete_object(bucket, &key, request).await {
                    Ok(_) | Err(ObjectError::NoSuchKey) => deleted += 1,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}
