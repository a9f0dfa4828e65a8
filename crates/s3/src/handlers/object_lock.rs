//! Object lock: a bucket's configuration, and retention and legal holds of versions.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use crate::error::{OrS3, to_s3};
use crate::lock::{
    legal_hold_dto, legal_hold_of_body, lock_config_dto, lock_config_of, retention_dto,
    retention_of_body,
};

use super::{BasaltS3, version_arg};

impl BasaltS3 {
    pub(super) async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let input = req.input;
        let config = lock_config_of(input.object_lock_configuration)?;
        self.store
            .set_object_lock_config(&input.bucket, config)
            .await
            .or_s3()?;
        Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
    }

    pub(super) async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let config = self
            .store
            .object_lock_config(&req.input.bucket)
            .await
            .or_s3()?;
        Ok(S3Response::new(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(lock_config_dto(&config)),
        }))
    }

    pub(super) async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let input = req.input;
        let version = version_arg(input.version_id.as_deref())?;
        let retention = retention_of_body(input.retention)?;
        self.store
            .set_retention(
                &input.bucket,
                &input.key,
                version,
                retention,
                input.bypass_governance_retention.unwrap_or(false),
            )
            .await
            .or_s3()?;
        Ok(S3Response::new(PutObjectRetentionOutput::default()))
    }

    pub(super) async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let input = req.input;
        let version = version_arg(input.version_id.as_deref())?;
        let lock = self
            .store
            .object_lock_of(&input.bucket, &input.key, version)
            .await
            .or_s3()?;
        let retention = lock
            .retention
            .ok_or_else(|| to_s3(basalt_object::ObjectError::NoSuchObjectLockConfiguration))?;
        Ok(S3Response::new(GetObjectRetentionOutput {
            retention: Some(retention_dto(retention)),
        }))
    }

    pub(super) async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let input = req.input;
        let version = version_arg(input.version_id.as_deref())?;
        let on = legal_hold_of_body(input.legal_hold)?;
        self.store
            .set_legal_hold(&input.bucket, &input.key, version, on)
            .await
            .or_s3()?;
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    pub(super) async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let input = req.input;
        let version = version_arg(input.version_id.as_deref())?;
        let lock = self
            .store
            .object_lock_of(&input.bucket, &input.key, version)
            .await
            .or_s3()?;
        Ok(S3Response::new(GetObjectLegalHoldOutput {
            legal_hold: Some(legal_hold_dto(lock.legal_hold)),
        }))
    }
}
