//! Object writes, copies, deletes and tags.

use basalt_object::{DeleteRequest, ObjectRecord, ObjectWrite};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::convert::{
    ChecksumFields, HeaderInput, checksum_type_of, etag, metadata_vec, requested_algorithms,
    tag_set, tags_of_header, tags_of_set, timestamp, verify_digests,
};
use crate::error::{OrS3, to_s3};
use crate::lock::lock_of_headers;
use crate::sse;

use super::{BasaltS3, no_content, precondition_of, version_arg};

const MAX_DELETE_OBJECTS: usize = 1000;
use super::acl::caller_of;
use super::read::check_read_conditions;
use crate::acl::acl_request_of;

/// The Content-Encoding to store: `aws-chunked` describes how the request body was sent, not
/// the object, so it is dropped (`gzip, aws-chunked` is stored as `gzip`).
pub(super) fn stored_content_encoding(value: Option<String>) -> Option<String> {
    let value = value?;
    let kept: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

pub(super) fn check_copy_source_conditions(
    record: &ObjectRecord,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    check_read_conditions(
        record,
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    )
    .map_err(|e| {
        if *e.code() == S3ErrorCode::NotModified {
            s3_error!(PreconditionFailed)
        } else {
            e
        }
    })
}

/// The bucket, key and version (if named) of a copy source.
pub(super) fn copy_source_of(source: &CopySource) -> S3Result<(&str, &str, Option<&str>)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => Ok((bucket, key, version_arg(version_id.as_deref())?)),
        _ => Err(s3_error!(NotImplemented, "copy sources must be bucket/key")),
    }
}

/// A copy source that is a delete marker: AWS answers 400 InvalidRequest for a version id
/// and 404 NoSuchKey for the current version.
pub(super) fn copy_source_error(e: basalt_object::ObjectError) -> S3Error {
    match e {
        basalt_object::ObjectError::DeleteMarker {
            addressed: true, ..
        } => s3_error!(
            InvalidRequest,
            "The source of a copy request may not specifically refer to a delete marker by version id."
        ),
        other => to_s3(other),
    }
}

impl BasaltS3 {
    pub(super) async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        let version = version_arg(input.version_id.as_deref())?;
        let tags = tags_of_set(input.tagging.tag_set)?;
        let version_id = self
            .store
            .set_object_tags(&input.bucket, &input.key, version, tags)
            .await
            .or_s3()?;
        Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
    }

    pub(super) async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = req.input;
        let version = version_arg(input.version_id.as_deref())?;
        let record = self
            .store
            .head_version(&input.bucket, &input.key, version)
            .await
            .or_s3()?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tag_set(&record.details.tags),
            version_id: Some(record.summary.version_name().to_owned()),
        }))
    }

    pub(super) async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        let version = version_arg(input.version_id.as_deref())?;
        let version_id = self
            .store
            .set_object_tags(&input.bucket, &input.key, version, Vec::new())
            .await
            .or_s3()?;
        no_content(DeleteObjectTaggingOutput { version_id })
    }

    pub(super) async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let caller = caller_of(&req);
        let mut input = req.input;
        let precondition = precondition_of(input.if_match, input.if_none_match)?;
        let lock = lock_of!(input)?;
        let acl = self
            .acl_for_write(&input.bucket, acl_request_of!(input), &caller)
            .await?;
        // Refused before the body is read (a browser POST's fields arrive here).
        let user_metadata = metadata_vec(input.metadata.take())?;
        let given = checksum_fields_of!(input);
        let algorithms =
            requested_algorithms(&given, input.checksum_algorithm.as_ref(), &req.headers)?;
        let requested = sse::requested(sse::sse_headers_of!(input))?;
        let (seal, encryption) = self
            .store
            .sealing(&input.bucket, &input.key, requested)
            .await
            .or_s3()?
            .unzip();
        let staged = self
            .stage_verified(
                input.body,
                input.content_length,
                input.content_md5.as_deref(),
                &given,
                algorithms.clone(),
                req.trailing_headers.as_ref(),
                true,
                seal.as_ref(),
            )
            .await?;
        let write = ObjectWrite {
            headers: HeaderInput {
                content_type: input.content_type,
                content_encoding: stored_content_encoding(input.content_encoding),
                content_disposition: input.content_disposition,
                content_language: input.content_language,
                cache_control: input.cache_control,
                expires: input.expires,
            }
            .into(),
            user_metadata,
            checksum_algorithms: algorithms,
            tags: tags_of_header(input.tagging.as_deref())?,
            lock,
            encryption,
            acl,
        };
        let record = self
            .store
            .put_object(&input.bucket, &input.key, staged, write, precondition)
            .await
            .or_s3()?;
        let sums = ChecksumFields::of(&record.details.checksums);
        let sse = sse::fields(record.details.encryption.as_ref(), &self.region);
        let expiration = self.expiration_of(&input.bucket, &input.key, &record).await;
        Ok(S3Response::new(PutObjectOutput {
            expiration,
            e_tag: Some(etag(&record.summary.etag)),
            server_side_encryption: sse.server_side_encryption,
            sse_customer_algorithm: sse.customer_algorithm,
            sse_customer_key_md5: sse.customer_key_md5,
            ssekms_key_id: sse.kms_key_id,
            ssekms_encryption_context: sse.context,
            bucket_key_enabled: sse.bucket_key_enabled,
            version_id: record.summary.version_id.clone(),
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            checksum_type: checksum_type_of(&record.details.checksums),
            ..Default::default()
        }))
    }

    pub(super) async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let request = DeleteRequest {
            version_id: version_arg(input.version_id.as_deref())?.map(str::to_owned),
            bypass_governance: input.bypass_governance_retention.unwrap_or(false),
        };
        let deleted = self
            .store
            .delete_object(&input.bucket, &input.key, request)
            .await
            .or_s3()?;
        no_content(DeleteObjectOutput {
            delete_marker: deleted.delete_marker.then_some(true),
            version_id: deleted
                .version_id
                .filter(|_| deleted.delete_marker || input.version_id.is_some()),
            ..Default::default()
        })
    }

    pub(super) async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        if input.delete.objects.len() > MAX_DELETE_OBJECTS {
            return Err(s3_error!(
                MalformedXML,
                "a DeleteObjects request may name at most 1000 keys"
            ));
        }
        self.store.bucket(&input.bucket).await.or_s3()?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let bypass_governance = input.bypass_governance_retention.unwrap_or(false);
        // The access check leaves a grant (root's allows everything); keys are checked one
        // by one against it, and without one nothing is allowed.
        let grant = req.extensions.get::<crate::access::Grant>().cloned();
        let allowed = |key: &str| {
            let resource = format!("arn:aws:s3:::{}/{key}", input.bucket);
            grant.as_ref().is_some_and(|g| {
                g.may_delete(&resource)
                    && (!bypass_governance || g.allows("s3:BypassGovernanceRetention", &resource))
            })
        };
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for object in input.delete.objects {
            let result = match version_arg(object.version_id.as_deref()) {
                Err(e) => Err(e),
                Ok(_) if !allowed(&object.key) => Err(s3_error!(AccessDenied, "Access Denied")),
                Ok(version) => {
                    let request = DeleteRequest {
                        version_id: version.map(str::to_owned),
                        bypass_governance,
                    };
                    self.store
                        .delete_object(&input.bucket, &object.key, request)
                        .await
                        .map_err(to_s3)
                }
            };
            match result {
                Ok(d) => {
                    if !quiet {
                        let marker_version = d.version_id.clone().filter(|_| d.delete_marker);
                        deleted.push(DeletedObject {
                            key: Some(object.key),
                            version_id: object.version_id,
                            delete_marker: d.delete_marker.then_some(true),
                            delete_marker_version_id: marker_version,
                        });
                    }
                }
                Err(e) => {
                    errors.push(Error {
                        code: Some(e.code().as_str().to_owned()),
                        key: Some(object.key),
                        message: e.message().map(str::to_owned),
                        version_id: object.version_id,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    pub(super) async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let caller = caller_of(&req);
        let input = req.input;
        // A copy's ACL is the request's, never the source's, as on AWS.
        let acl = self
            .acl_for_write(&input.bucket, acl_request_of!(input), &caller)
            .await?;
        let (src_bucket, src_key, src_version) = copy_source_of(&input.copy_source)?;
        let source = self
            .store
            .head_version(src_bucket, src_key, src_version)
            .await
            .map_err(copy_source_error)?;
        let lock = lock_of!(input)?;
        let source_customer = copy_source_customer_key_of!(input)?;
        let source_key = self
            .store
            .opening(source.details.encryption.as_ref(), source_customer.as_ref())
            .await
            .or_s3()?;
        let requested = sse::requested(sse::sse_headers_of!(input))?;
        let changes_encryption = !matches!(requested, basalt_object::Sse::Default);
        check_copy_source_conditions(
            &source,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        )?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if src_bucket == input.bucket
            && src_key == input.key
            && src_version.is_none()
            && !replace
            && !changes_encryption
        {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        self.store.bucket(&input.bucket).await.or_s3()?;
        let mut algorithms: Vec<_> = source
            .details
            .checksums
            .iter()
            .map(|c| c.algorithm)
            .collect();
        if let Some(a) = input.checksum_algorithm.as_ref() {
            algorithms = vec![crate::convert::algorithm_of(a)?];
        }
        let (seal, encryption) = self
            .store
            .sealing(&input.bucket, &input.key, requested)
            .await
            .or_s3()?
            .unzip();
        let staged = self
            .store
            .stage_copy(
                (src_bucket, src_key),
                &source,
                source_key.as_ref(),
                0..source.summary.size,
                &algorithms,
                true,
                seal.as_ref(),
            )
            .await
            .or_s3()?;
        let tags = match input
            .tagging_directive
            .as_ref()
            .map(TaggingDirective::as_str)
        {
            None | Some(TaggingDirective::COPY) => source.details.tags.clone(),
            Some(TaggingDirective::REPLACE) => tags_of_header(input.tagging.as_deref())?,
            Some(other) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "unknown x-amz-tagging-directive {other}"
                ));
            }
        };
        let write = if replace {
            ObjectWrite {
                headers: HeaderInput {
                    // AWS's type for a replaced copy that names none.
                    content_type: input
                        .content_type
                        .or_else(|| Some("binary/octet-stream".to_owned())),
                    content_encoding: stored_content_encoding(input.content_encoding),
                    content_disposition: input.content_disposition,
                    content_language: input.content_language,
                    cache_control: input.cache_control,
                    expires: input.expires,
                }
                .into(),
                user_metadata: metadata_vec(input.metadata)?,
                checksum_algorithms: algorithms,
                tags,
                lock,
                encryption,
                acl,
            }
        } else {
            ObjectWrite {
                headers: source.details.headers.clone(),
                user_metadata: source.details.user_metadata.clone(),
                checksum_algorithms: algorithms,
                tags,
                lock,
                encryption,
                acl,
            }
        };
        let record = self
            .store
            .put_object(&input.bucket, &input.key, staged, write, None)
            .await
            .or_s3()?;
        let sums = ChecksumFields::of(&record.details.checksums);
        let copied_sse = sse::fields(record.details.encryption.as_ref(), &self.region);
        let expiration = self.expiration_of(&input.bucket, &input.key, &record).await;
        Ok(S3Response::new(CopyObjectOutput {
            expiration,
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&record.summary.etag)),
                last_modified: Some(timestamp(record.summary.last_modified_ms)),
                checksum_crc32: sums.crc32,
                checksum_crc32c: sums.crc32c,
                checksum_crc64nvme: sums.crc64nvme,
                checksum_sha1: sums.sha1,
                checksum_sha256: sums.sha256,
                ..Default::default()
            }),
            version_id: record.summary.version_id.clone(),
            copy_source_version_id: source.summary.version_id.clone(),
            server_side_encryption: copied_sse.server_side_encryption,
            sse_customer_algorithm: copied_sse.customer_algorithm,
            sse_customer_key_md5: copied_sse.customer_key_md5,
            ssekms_key_id: copied_sse.kms_key_id,
            ssekms_encryption_context: copied_sse.context,
            bucket_key_enabled: copied_sse.bucket_key_enabled,
            ..Default::default()
        }))
    }

    /// Stages a request body, checks every digest the client promised, and returns it with
    /// the checksum algorithms it was hashed with.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn stage_verified(
        &self,
        body: Option<StreamingBlob>,
        content_length: Option<i64>,
        content_md5: Option<&str>,
        given: &ChecksumFields,
        algorithms: Vec<basalt_object::ChecksumAlgorithm>,
        trailers: Option<&s3s::TrailingHeaders>,
        allow_inline: bool,
        seal: Option<&basalt_object::DataKey>,
    ) -> S3Result<basalt_object::Staged> {
        let expected_len = content_length.map(|n| u64::try_from(n).unwrap_or(0));
        let staged = match body {
            Some(body) => {
                self.store
                    .stage(body, &algorithms, expected_len, allow_inline, seal)
                    .await
            }
            None => {
                self.store
                    .stage(
                        futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>(),
                        &algorithms,
                        expected_len,
                        allow_inline,
                        seal,
                    )
                    .await
            }
        }
        .or_s3()?;
        verify_digests(
            &staged.digests,
            content_md5,
            given,
            trailers.and_then(|t| t.take()),
        )?;
        Ok(staged)
    }
}
