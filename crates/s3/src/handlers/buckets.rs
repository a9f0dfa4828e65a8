//! Buckets: create, delete, head, location and versioning.

use basalt_object::{Acl, BucketAccess, ObjectOwnership, VersioningState};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::acl::{acl_request_of, ownership_of, root_owner};
use crate::error::{OrS3, to_s3};

use super::acl::caller_of;
use super::{BasaltS3, no_content};

impl BasaltS3 {
    pub(super) async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let caller = caller_of(&req);
        let input = req.input;
        let object_lock = input.object_lock_enabled_for_bucket.unwrap_or(false);
        let bucket = input.bucket.clone();
        if bucket == crate::admin::ADMIN_BUCKET {
            return Err(s3_error!(
                InvalidBucketName,
                "the bucket name {bucket} is reserved for Basalt's admin API"
            ));
        }
        // New buckets have ACLs disabled unless they ask otherwise, as on AWS (or the
        // operator's `--object-ownership-default`).
        let ownership = match input.object_ownership.as_ref() {
            Some(o) => ownership_of(o.as_str())?,
            None => self.default_ownership,
        };
        let asked = acl_request_of!(input, bucket);
        if ownership == ObjectOwnership::BucketOwnerEnforced && !asked.fits_owner_enforced() {
            return Err(s3_error!(
                InvalidBucketAclWithObjectOwnership,
                "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
            ));
        }
        let owner = caller.owner.clone().unwrap_or_else(root_owner);
        let acl = asked
            .resolve(&self.store, &owner, &owner)
            .await?
            .unwrap_or_else(|| Acl::private(owner.clone()));
        let access = BucketAccess {
            acl,
            ownership: Some(ownership),
        };
        match self
            .store
            .create_bucket(&bucket, object_lock, Some(access))
            .await
        {
            Ok(()) => {}
            Err(basalt_object::ObjectError::BucketAlreadyExists) => {
                if self.bucket_owner(&bucket).await?.id != owner.id {
                    return Err(s3_error!(
                        BucketAlreadyExists,
                        "The requested bucket name is not available."
                    ));
                }
                // us-east-1 answers a re-create by the owner with 200 and keeps the bucket as
                // it is (legacy behaviour tools rely on); every other region with 409.
                if self.region != "us-east-1" {
                    return Err(s3_error!(
                        BucketAlreadyOwnedByYou,
                        "Your previous request to create the named bucket succeeded and you already own it."
                    ));
                }
            }
            Err(e) => return Err(to_s3(e)),
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    pub(super) async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.store.delete_bucket(&req.input.bucket).await.or_s3()?;
        no_content(DeleteBucketOutput {})
    }

    pub(super) async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.store.bucket(&req.input.bucket).await.or_s3()?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    pub(super) async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.store.bucket(&req.input.bucket).await.or_s3()?;
        let location_constraint = (self.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }

    pub(super) async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let input = req.input;
        let config = input.versioning_configuration;
        if config
            .mfa_delete
            .as_ref()
            .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
        {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
        }
        let state = match config.status.as_ref().map(BucketVersioningStatus::as_str) {
            Some(BucketVersioningStatus::ENABLED) => VersioningState::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => VersioningState::Suspended,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "Status must be Enabled or Suspended"
                ));
            }
        };
        self.store
            .set_versioning(&input.bucket, state)
            .await
            .or_s3()?;
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    pub(super) async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let state = self.store.versioning(&req.input.bucket).await.or_s3()?;
        Ok(S3Response::new(GetBucketVersioningOutput {
            status: state.map(|s| {
                BucketVersioningStatus::from_static(match s {
                    VersioningState::Enabled => BucketVersioningStatus::ENABLED,
                    VersioningState::Suspended => BucketVersioningStatus::SUSPENDED,
                })
            }),
            mfa_delete: None,
        }))
    }
}
