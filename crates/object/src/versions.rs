//! Bucket versioning, object lock and lifecycle configuration, and version listings.

use basalt_meta::{
    Command, LifecycleRule, ObjectLock, ObjectLockConfig, Retention, VersionPage, VersioningState,
};

use crate::{ObjectError, ObjectStore, now_ms};

/// A bucket's lifecycle rules may number at most this many (AWS's limit).
pub const MAX_LIFECYCLE_RULES: usize = 1000;

impl ObjectStore {
    pub async fn set_versioning(
        &self,
        bucket: &str,
        state: VersioningState,
    ) -> Result<(), ObjectError> {
        self.meta
            .execute(Command::SetVersioning {
                bucket: bucket.to_owned(),
                state,
            })
            .await?;
        Ok(())
    }

    /// `None` for a bucket that never had versioning enabled.
    pub async fn versioning(&self, bucket: &str) -> Result<Option<VersioningState>, ObjectError> {
        Ok(self.meta.get_versioning(bucket).await?)
    }

    pub async fn set_object_lock_config(
        &self,
        bucket: &str,
        config: ObjectLockConfig,
    ) -> Result<(), ObjectError> {
        self.meta
            .execute(Command::SetObjectLockConfig {
                bucket: bucket.to_owned(),
                config,
            })
            .await?;
        Ok(())
    }

    pub async fn object_lock_config(&self, bucket: &str) -> Result<ObjectLockConfig, ObjectError> {
        self.meta
            .get_object_lock_config(bucket)
            .await?
            .ok_or(ObjectError::NoObjectLockConfiguration)
    }

    /// The lock state of a version (`None`: the current one) in a bucket with object lock.
    pub async fn object_lock_of(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectLock, ObjectError> {
        match self.object_lock_config(bucket).await {
            Err(ObjectError::NoObjectLockConfiguration) => {
                return Err(ObjectError::InvalidRequest(
                    "Bucket is missing Object Lock Configuration".into(),
                ));
            }
            other => other?,
        };
        Ok(self
            .head_version(bucket, key, version_id)
            .await?
            .details
            .lock)
    }

    /// Sets (or with `None` removes) the retention of a version (`None`: the current one).
    pub async fn set_retention(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        retention: Option<Retention>,
        bypass_governance: bool,
    ) -> Result<(), ObjectError> {
        self.meta
            .execute(Command::SetRetention {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: version_id.map(str::to_owned),
                retention,
                bypass_governance,
                now_ms: now_ms(),
            })
            .await?;
        Ok(())
    }

    pub async fn set_legal_hold(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        on: bool,
    ) -> Result<(), ObjectError> {
        self.meta
            .execute(Command::SetLegalHold {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: version_id.map(str::to_owned),
                on,
            })
            .await?;
        Ok(())
    }

    /// Sets (or with `None` removes) a bucket's lifecycle rules, validated by the caller.
    pub async fn set_lifecycle(
        &self,
        bucket: &str,
        rules: Option<Vec<LifecycleRule>>,
    ) -> Result<(), ObjectError> {
        self.meta
            .execute(Command::SetLifecycle {
                bucket: bucket.to_owned(),
                rules,
            })
            .await?;
        Ok(())
    }

    pub async fn lifecycle(&self, bucket: &str) -> Result<Vec<LifecycleRule>, ObjectError> {
        self.meta
            .get_lifecycle(bucket)
            .await?
            .ok_or(ObjectError::NoSuchLifecycleConfiguration)
    }

    pub async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        version_id_marker: Option<&str>,
        max_entries: usize,
    ) -> Result<VersionPage, ObjectError> {
        Ok(self
            .meta
            .list_versions(
                bucket,
                prefix,
                delimiter,
                key_marker,
                version_id_marker,
                max_entries,
            )
            .await?)
    }
}
