//! Who owns a bucket and its objects, their ACLs and the bucket's public access block: stored
//! here, evaluated by the S3 front beside policies.

use basalt_meta::{Acl, BucketAccess, Command, PublicAccessBlock};

use crate::{ObjectError, ObjectStore};

impl ObjectStore {
    /// A bucket's owner, ACL and ownership setting; `None` for buckets made before ACLs (the
    /// root user's, ACLs disabled).
    pub async fn bucket_access(&self, bucket: &str) -> Result<Option<BucketAccess>, ObjectError> {
        self.bucket(bucket).await?;
        Ok(self.meta.get_bucket_access(bucket).await?)
    }

    pub async fn set_bucket_access(
        &self,
        bucket: &str,
        access: BucketAccess,
    ) -> Result<(), ObjectError> {
        self.meta
            .execute(Command::SetBucketAccess {
                bucket: bucket.to_owned(),
                access,
            })
            .await?;
        Ok(())
    }

    pub async fn public_access_block(
        &self,
        bucket: &str,
    ) -> Result<Option<PublicAccessBlock>, ObjectError> {
        self.bucket(bucket).await?;
        Ok(self.meta.get_public_access_block(bucket).await?)
    }

    /// Sets (or with `None` removes) a bucket's public access block.
    pub async fn set_public_access_block(
        &self,
        bucket: &str,
        block: Option<PublicAccessBlock>,
    ) -> Result<(), ObjectError> {
        self.meta
            .execute(Command::SetPublicAccessBlock {
                bucket: bucket.to_owned(),
                block,
            })
            .await?;
        Ok(())
    }

    /// Replaces the ACL of a version (`None`: the current one); returns the version's id.
    pub async fn set_object_acl(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        acl: Acl,
    ) -> Result<Option<String>, ObjectError> {
        let outcome = self
            .meta
            .execute(Command::SetObjectAcl {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: version_id.map(str::to_owned),
                acl,
            })
            .await?;
        Ok(outcome.version_id)
    }
}
