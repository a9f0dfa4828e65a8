//! Bucket settings: tags, CORS, lifecycle, default encryption and policy.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::convert::{tag_set, tags_of_set};
use crate::error::OrS3;

use super::{BasaltS3, no_content};

impl BasaltS3 {
    pub(super) async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let tags = tags_of_set(req.input.tagging.tag_set)?;
        self.store
            .set_bucket_tags(&req.input.bucket, Some(tags))
            .await
            .or_s3()?;
        Ok(S3Response::new(PutBucketTaggingOutput::default()))
    }

    pub(super) async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let tags = self.store.bucket_tags(&req.input.bucket).await.or_s3()?;
        Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: tag_set(&tags),
        }))
    }

    pub(super) async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.store
            .set_bucket_tags(&req.input.bucket, None)
            .await
            .or_s3()?;
        no_content(DeleteBucketTaggingOutput::default())
    }

    pub(super) async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let rules = crate::cors::rules_of(req.input.cors_configuration)?;
        self.store
            .set_bucket_cors(&req.input.bucket, Some(rules))
            .await
            .or_s3()?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    pub(super) async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let rules = self.store.bucket_cors(&req.input.bucket).await.or_s3()?;
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(crate::cors::dto_of(&rules)),
        }))
    }

    pub(super) async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.store
            .set_bucket_cors(&req.input.bucket, None)
            .await
            .or_s3()?;
        no_content(DeleteBucketCorsOutput::default())
    }

    pub(super) async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let input = req.input;
        self.store.bucket(&input.bucket).await.or_s3()?;
        let rules = crate::lifecycle::rules_of(input.lifecycle_configuration)?;
        self.store
            .set_lifecycle(&input.bucket, Some(rules))
            .await
            .or_s3()?;
        Ok(S3Response::new(
            PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    pub(super) async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let rules = self.store.lifecycle(&req.input.bucket).await.or_s3()?;
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(crate::lifecycle::rules_dto(&rules)),
            ..Default::default()
        }))
    }

    pub(super) async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.store
            .set_lifecycle(&req.input.bucket, None)
            .await
            .or_s3()?;
        no_content(DeleteBucketLifecycleOutput::default())
    }

    pub(super) async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let input = req.input;
        let rules = input.server_side_encryption_configuration.rules;
        let [rule] = rules.as_slice() else {
            return Err(s3_error!(
                MalformedXML,
                "an encryption configuration holds exactly one rule"
            ));
        };
        let default = rule.apply_server_side_encryption_by_default.as_ref();
        let key_id = default.and_then(|d| d.kms_master_key_id.clone());
        let kms_key_id = match default.map(|d| d.sse_algorithm.as_str()) {
            Some(ServerSideEncryption::AES256) if key_id.is_none() => None,
            Some(ServerSideEncryption::AES256) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "a KMSMasterKeyID is allowed only with SSEAlgorithm aws:kms"
                ));
            }
            // Without a key id, the default key (empty: resolved on each write).
            Some(ServerSideEncryption::AWS_KMS) => Some(key_id.unwrap_or_default()),
            Some(ServerSideEncryption::AWS_KMS_DSSE) => {
                return Err(s3_error!(
                    NotImplemented,
                    "Dual-layer SSE-KMS (aws:kms:dsse) is not supported: use aws:kms"
                ));
            }
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "the rule needs ApplyServerSideEncryptionByDefault with SSEAlgorithm AES256 or aws:kms"
                ));
            }
        };
        let config = basalt_object::DefaultEncryption {
            bucket_key_enabled: rule.bucket_key_enabled.unwrap_or(false),
            kms_key_id,
        };
        self.store
            .set_bucket_encryption(&input.bucket, Some(config))
            .await
            .or_s3()?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    pub(super) async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let config = self
            .store
            .bucket_encryption(&req.input.bucket)
            .await
            .or_s3()?;
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
                rules: vec![ServerSideEncryptionRule {
                    apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                        sse_algorithm: ServerSideEncryption::from_static(
                            if config.kms_key_id.is_some() {
                                ServerSideEncryption::AWS_KMS
                            } else {
                                ServerSideEncryption::AES256
                            },
                        ),
                        kms_master_key_id: config.kms_key_id.filter(|k| !k.is_empty()),
                    }),
                    bucket_key_enabled: Some(config.bucket_key_enabled),
                }],
            }),
        }))
    }

    pub(super) async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.store
            .set_bucket_encryption(&req.input.bucket, None)
            .await
            .or_s3()?;
        no_content(DeleteBucketEncryptionOutput::default())
    }

    pub(super) async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let input = req.input;
        self.store.bucket(&input.bucket).await.or_s3()?;
        if input.policy.len() as u64 > crate::body_limits::BUCKET_POLICY_MAX_BYTES {
            return Err(crate::error::custom(
                "PolicyTooLarge",
                http::StatusCode::BAD_REQUEST,
                "Policies must be less than 20 KB",
            ));
        }
        let policy = crate::policy::Policy::parse(&input.policy, true)
            .map_err(|e| s3_error!(MalformedPolicy, "{e}"))?;
        if policy.is_public()
            && self
                .store
                .public_access_block(&input.bucket)
                .await
                .or_s3()?
                .is_some_and(|b| b.block_public_policy)
        {
            return Err(s3_error!(
                AccessDenied,
                "Access Denied: the bucket's public access block refuses public policies"
            ));
        }
        self.store
            .set_bucket_policy(&input.bucket, Some(input.policy))
            .await
            .or_s3()?;
        no_content(PutBucketPolicyOutput::default())
    }

    pub(super) async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        self.store.bucket(&req.input.bucket).await.or_s3()?;
        let policy = self
            .store
            .bucket_policy(&req.input.bucket)
            .await
            .or_s3()?
            .ok_or_else(|| s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"))?;
        Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(policy),
        }))
    }

    pub(super) async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.store
            .set_bucket_policy(&req.input.bucket, None)
            .await
            .or_s3()?;
        no_content(DeleteBucketPolicyOutput::default())
    }

    /// The `x-amz-expiration` a response about the current version of `key` carries, if a
    /// lifecycle rule of the bucket will expire it.
    pub(super) async fn expiration_of(
        &self,
        bucket: &str,
        key: &str,
        record: &basalt_object::ObjectRecord,
    ) -> Option<String> {
        let rules = self.store.lifecycle(bucket).await.ok()?;
        crate::lifecycle::expiration_of(&rules, key, record)
    }
}
