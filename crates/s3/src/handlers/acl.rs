//! ACLs, object ownership and public access blocks: who owns a bucket and its objects, what
//! their ACLs grant, and what a bucket refuses to make public.

use basalt_object::{Acl, BucketAccess, ObjectOwnership, ObjectRecord, Owner, PublicAccessBlock};
use http::StatusCode;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::acl::{
    AclRequest, Caller, acl_of_policy, acl_request_of, grants_dto, owner_dto, ownership_name,
    ownership_of, root_owner,
};
use crate::error::{OrS3, custom};

use super::{BasaltS3, no_content, version_arg};

/// Who sent a request, from the grant its access check left (none: anonymous).
pub(super) fn caller_of<T>(req: &S3Request<T>) -> Caller {
    req.extensions
        .get::<crate::access::Grant>()
        .map(|g| g.caller.clone())
        .unwrap_or(Caller { owner: None })
}

fn acls_not_supported() -> s3s::S3Error {
    s3_error!(
        AccessControlListNotSupported,
        "The bucket does not allow ACLs"
    )
}

fn public_acl_blocked() -> s3s::S3Error {
    s3_error!(AccessDenied, "Access Denied: the bucket blocks public ACLs")
}

impl BasaltS3 {
    /// A bucket's access record; buckets made before ACLs are the root user's, ACLs disabled.
    pub(super) async fn bucket_access(&self, bucket: &str) -> S3Result<BucketAccess> {
        Ok(self
            .store
            .bucket_access(bucket)
            .await
            .or_s3()?
            .unwrap_or_else(|| BucketAccess {
                acl: Acl::private(root_owner()),
                ownership: Some(ObjectOwnership::BucketOwnerEnforced),
            }))
    }

    pub(super) async fn bucket_owner(&self, bucket: &str) -> S3Result<Owner> {
        Ok(self.bucket_access(bucket).await?.acl.owner)
    }

    async fn blocks_public_acls(&self, bucket: &str) -> S3Result<bool> {
        Ok(self
            .store
            .public_access_block(bucket)
            .await
            .or_s3()?
            .is_some_and(|b| b.block_public_acls))
    }

    /// The ACL a new object version gets: `None` where ACLs are disabled (or where it would be
    /// the bucket owner's `private` anyway). The writer owns what it writes, except in a
    /// `BucketOwnerPreferred` bucket with `bucket-owner-full-control`.
    pub(super) async fn acl_for_write(
        &self,
        bucket: &str,
        asked: AclRequest<'_>,
        caller: &Caller,
    ) -> S3Result<Option<Acl>> {
        let access = self.bucket_access(bucket).await?;
        if access.acls_disabled() {
            return if asked.fits_owner_enforced() {
                Ok(None)
            } else {
                Err(acls_not_supported())
            };
        }
        let bucket_owner = access.acl.owner;
        let writer = caller.owner.clone().unwrap_or_else(|| bucket_owner.clone());
        let owner = if access.ownership == Some(ObjectOwnership::BucketOwnerPreferred)
            && asked.canned == Some("bucket-owner-full-control")
        {
            bucket_owner.clone()
        } else {
            writer
        };
        let acl = asked
            .resolve(&self.store, &owner, &bucket_owner)
            .await?
            .unwrap_or_else(|| Acl::private(owner));
        if acl.is_public() && self.blocks_public_acls(bucket).await? {
            return Err(public_acl_blocked());
        }
        Ok((acl != Acl::private(bucket_owner)).then_some(acl))
    }

    /// The ACL that applies to an object version.
    async fn object_acl(&self, bucket: &str, record: &ObjectRecord) -> S3Result<Acl> {
        let access = self.bucket_access(bucket).await?;
        Ok(match &record.details.acl {
            Some(acl) if !access.acls_disabled() => acl.clone(),
            _ => Acl::private(access.acl.owner),
        })
    }

    pub(super) async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let access = self.bucket_access(&req.input.bucket).await?;
        let acl = if access.acls_disabled() {
            Acl::private(access.acl.owner)
        } else {
            access.acl
        };
        Ok(S3Response::new(GetBucketAclOutput {
            grants: Some(grants_dto(&acl)),
            owner: Some(owner_dto(&acl.owner)),
        }))
    }

    pub(super) async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let input = req.input;
        let access = self.bucket_access(&input.bucket).await?;
        let owner = access.acl.owner.clone();
        let asked = acl_request_of!(input, bucket);
        let acl = self
            .acl_of_request(asked, input.access_control_policy, &owner, &owner)
            .await?;
        if access.acls_disabled() && acl != Acl::private(owner.clone()) {
            return Err(acls_not_supported());
        }
        if acl.is_public() && self.blocks_public_acls(&input.bucket).await? {
            return Err(public_acl_blocked());
        }
        self.store
            .set_bucket_access(
                &input.bucket,
                BucketAccess {
                    acl,
                    ownership: access.ownership,
                },
            )
            .await
            .or_s3()?;
        Ok(S3Response::new(PutBucketAclOutput {}))
    }

    /// The ACL a PutBucketAcl or PutObjectAcl asks for: headers or a document, not both.
    async fn acl_of_request(
        &self,
        asked: AclRequest<'_>,
        document: Option<AccessControlPolicy>,
        owner: &Owner,
        bucket_owner: &Owner,
    ) -> S3Result<Acl> {
        match (document, asked.is_empty()) {
            (Some(document), true) => acl_of_policy(&self.store, document, owner).await,
            (Some(_), false) => Err(s3_error!(
                UnexpectedContent,
                "This request does not support content with ACL headers"
            )),
            (None, false) => Ok(asked
                .resolve(&self.store, owner, bucket_owner)
                .await?
                .unwrap_or_else(|| Acl::private(owner.clone()))),
            (None, true) => Err(s3_error!(
                MalformedACLError,
                "The request names no ACL: give x-amz-acl, x-amz-grant-* or an AccessControlPolicy"
            )),
        }
    }

    pub(super) async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let input = req.input;
        let version = version_arg(input.version_id.as_deref())?;
        let record = self
            .store
            .head_version(&input.bucket, &input.key, version)
            .await
            .or_s3()?;
        let acl = self.object_acl(&input.bucket, &record).await?;
        Ok(S3Response::new(GetObjectAclOutput {
            grants: Some(grants_dto(&acl)),
            owner: Some(owner_dto(&acl.owner)),
            request_charged: None,
        }))
    }

    pub(super) async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let input = req.input;
        let version = version_arg(input.version_id.as_deref())?;
        let access = self.bucket_access(&input.bucket).await?;
        let record = self
            .store
            .head_version(&input.bucket, &input.key, version)
            .await
            .or_s3()?;
        let current = self.object_acl(&input.bucket, &record).await?;
        let bucket_owner = access.acl.owner.clone();
        let asked = acl_request_of!(input);
        let acl = self
            .acl_of_request(
                asked,
                input.access_control_policy,
                &current.owner,
                &bucket_owner,
            )
            .await?;
        if access.acls_disabled() {
            if acl != Acl::private(current.owner) {
                return Err(acls_not_supported());
            }
            return Ok(S3Response::new(PutObjectAclOutput::default()));
        }
        if acl.is_public() && self.blocks_public_acls(&input.bucket).await? {
            return Err(public_acl_blocked());
        }
        self.store
            .set_object_acl(&input.bucket, &input.key, version, acl)
            .await
            .or_s3()?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }

    pub(super) async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        let access = self.bucket_access(&req.input.bucket).await?;
        let Some(ownership) = access.ownership else {
            return Err(s3_error!(
                OwnershipControlsNotFoundError,
                "The bucket ownership controls were not found"
            ));
        };
        Ok(S3Response::new(GetBucketOwnershipControlsOutput {
            ownership_controls: Some(OwnershipControls {
                rules: vec![OwnershipControlsRule {
                    object_ownership: s3s::dto::ObjectOwnership::from_static(ownership_name(
                        ownership,
                    )),
                }],
            }),
        }))
    }

    pub(super) async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        let input = req.input;
        let [rule] = input.ownership_controls.rules.as_slice() else {
            return Err(s3_error!(
                MalformedXML,
                "Ownership controls take exactly one rule"
            ));
        };
        let ownership = ownership_of(rule.object_ownership.as_str())
            .map_err(|_| s3_error!(MalformedXML, "unknown ObjectOwnership"))?;
        let access = self.bucket_access(&input.bucket).await?;
        if ownership == ObjectOwnership::BucketOwnerEnforced
            && access.acl != Acl::private(access.acl.owner.clone())
        {
            return Err(s3_error!(
                InvalidBucketAclWithObjectOwnership,
                "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
            ));
        }
        self.store
            .set_bucket_access(
                &input.bucket,
                BucketAccess {
                    acl: access.acl,
                    ownership: Some(ownership),
                },
            )
            .await
            .or_s3()?;
        Ok(S3Response::new(PutBucketOwnershipControlsOutput {}))
    }

    pub(super) async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        let access = self.bucket_access(&req.input.bucket).await?;
        self.store
            .set_bucket_access(
                &req.input.bucket,
                BucketAccess {
                    acl: access.acl,
                    ownership: None,
                },
            )
            .await
            .or_s3()?;
        no_content(DeleteBucketOwnershipControlsOutput {})
    }

    pub(super) async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        let block = self
            .store
            .public_access_block(&req.input.bucket)
            .await
            .or_s3()?
            .ok_or_else(|| {
                custom(
                    "NoSuchPublicAccessBlockConfiguration",
                    StatusCode::NOT_FOUND,
                    "The public access block configuration was not found",
                )
            })?;
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(PublicAccessBlockConfiguration {
                block_public_acls: Some(block.block_public_acls),
                ignore_public_acls: Some(block.ignore_public_acls),
                block_public_policy: Some(block.block_public_policy),
                restrict_public_buckets: Some(block.restrict_public_buckets),
            }),
        }))
    }

    pub(super) async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let input = req.input;
        self.store.bucket(&input.bucket).await.or_s3()?;
        let config = input.public_access_block_configuration;
        let block = PublicAccessBlock {
            block_public_acls: config.block_public_acls.unwrap_or(false),
            ignore_public_acls: config.ignore_public_acls.unwrap_or(false),
            block_public_policy: config.block_public_policy.unwrap_or(false),
            restrict_public_buckets: config.restrict_public_buckets.unwrap_or(false),
        };
        self.store
            .set_public_access_block(&input.bucket, Some(block))
            .await
            .or_s3()?;
        Ok(S3Response::new(PutPublicAccessBlockOutput {}))
    }

    pub(super) async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        self.store.bucket(&req.input.bucket).await.or_s3()?;
        self.store
            .set_public_access_block(&req.input.bucket, None)
            .await
            .or_s3()?;
        no_content(DeletePublicAccessBlockOutput {})
    }

    pub(super) async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        self.store.bucket(&req.input.bucket).await.or_s3()?;
        let text = self
            .store
            .bucket_policy(&req.input.bucket)
            .await
            .or_s3()?
            .ok_or_else(|| s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"))?;
        let is_public = crate::policy::Policy::parse(&text, true).is_ok_and(|p| p.is_public());
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus {
                is_public: Some(is_public),
            }),
        }))
    }
}
