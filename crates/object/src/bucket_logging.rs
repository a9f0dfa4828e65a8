//! Server access logging: where a bucket's logs go, and delivering a batch of log lines as
//! one object into the target bucket.

use basalt_meta::{BucketLogging, Command, ObjectRecord};
use bytes::Bytes;

use crate::{ObjectError, ObjectStore};

impl ObjectStore {
    pub async fn bucket_logging(&self, bucket: &str) -> Result<Option<BucketLogging>, ObjectError> {
        Ok(self.meta.get_bucket_logging(bucket).await?)
    }

    /// Sets (or with `None` turns off) a bucket's access logging; the target must exist.
    pub async fn set_bucket_logging(
        &self,
        bucket: &str,
        config: Option<BucketLogging>,
    ) -> Result<(), ObjectError> {
        self.meta
            .execute(Command::SetBucketLogging {
                bucket: bucket.to_owned(),
                config,
            })
            .await?;
        Ok(())
    }

    /// Writes `lines` as the object `target`/`key` (a delivery of access logs), under the
    /// target bucket's default encryption, as any other write to it.
    pub async fn deliver_log(
        &self,
        target: &str,
        key: &str,
        lines: Bytes,
    ) -> Result<ObjectRecord, ObjectError> {
        self.put_bytes(target, key, lines, "text/plain").await
    }
}
