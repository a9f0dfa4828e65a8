//! Multipart uploads: create, parts, copies of parts, complete, abort and their listings.

use basalt_object::{CompletePart, ObjectWrite};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::convert::{
    ChecksumFields, HeaderInput, algorithm_name, checksum_type_of, etag, metadata_vec,
    requested_algorithms, tags_of_header, timestamp,
};
use crate::error::OrS3;
use crate::lock::lock_of_headers;
use crate::sse;

use super::{BasaltS3, no_content, precondition_of};
use crate::acl::owner_dto;

const MAX_PART_NUMBER: i32 = 10_000;
use super::acl::caller_of;
use super::listing::max_of;
use super::objects::{
    check_copy_source_conditions, copy_source_error, copy_source_of, stored_content_encoding,
};
use crate::acl::acl_request_of;

fn part_number_of(n: i32) -> S3Result<u32> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(n as u32)
    } else {
        Err(s3_error!(
            InvalidArgument,
            "part number must be an integer between 1 and 10000"
        ))
    }
}

impl BasaltS3 {
    pub(super) async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let caller = caller_of(&req);
        let input = req.input;
        let acl = self
            .acl_for_write(&input.bucket, acl_request_of!(input), &caller)
            .await?;
        let algorithm = input
            .checksum_algorithm
            .as_ref()
            .map(crate::convert::algorithm_of)
            .transpose()?;
        let full_object = full_object_checksum_of(algorithm, input.checksum_type.as_ref())?;
        let requested = sse::requested(sse::sse_headers_of!(input))?;
        // The parts are sealed with the upload's data key, recovered from this record.
        let encryption = self
            .store
            .sealing(&input.bucket, &input.key, requested)
            .await
            .or_s3()?
            .map(|(_, record)| record);
        let sse = sse::fields(encryption.as_ref(), &self.region);
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
            user_metadata: metadata_vec(input.metadata)?,
            checksum_algorithms: algorithm.into_iter().collect(),
            tags: tags_of_header(input.tagging.as_deref())?,
            lock: lock_of!(input)?,
            encryption,
            acl,
        };
        let upload_id = self
            .store
            .create_upload(&input.bucket, &input.key, write, full_object)
            .await
            .or_s3()?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            server_side_encryption: sse.server_side_encryption,
            sse_customer_algorithm: sse.customer_algorithm,
            sse_customer_key_md5: sse.customer_key_md5,
            ssekms_key_id: sse.kms_key_id,
            ssekms_encryption_context: sse.context,
            bucket_key_enabled: sse.bucket_key_enabled,
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_algorithm: input.checksum_algorithm,
            checksum_type: algorithm.map(|_| checksum_type_name(full_object)),
            ..Default::default()
        }))
    }

    pub(super) async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        let part_number = part_number_of(input.part_number)?;
        let upload = self
            .store
            .upload(&input.bucket, &input.key, &input.upload_id)
            .await
            .or_s3()?;
        let given = checksum_fields_of!(input);
        let mut algorithms =
            requested_algorithms(&given, input.checksum_algorithm.as_ref(), &req.headers)?;
        if let Some(a) = upload.checksum_algorithm
            && !algorithms.contains(&a)
        {
            algorithms.push(a);
        }
        let customer = customer_key_of!(input)?;
        let seal = self
            .store
            .opening(upload.encryption.as_ref(), customer.as_ref())
            .await
            .or_s3()?;
        let mut staged = self
            .stage_verified(
                input.body,
                input.content_length,
                input.content_md5.as_deref(),
                &given,
                algorithms.clone(),
                req.trailing_headers.as_ref(),
                false,
                seal.as_ref(),
            )
            .await?;
        let stored_algorithm = upload
            .checksum_algorithm
            .or_else(|| algorithms.first().copied());
        if matches!(
            upload.encryption,
            Some(basalt_object::Encryption::Customer { .. })
        ) {
            staged.conceal_etag();
        }
        let part = self
            .store
            .upload_part(
                &input.bucket,
                &input.key,
                &input.upload_id,
                part_number,
                staged,
                stored_algorithm,
            )
            .await
            .or_s3()?;
        let sums = ChecksumFields::of(part.checksum.as_slice());
        let sse = sse::fields(upload.encryption.as_ref(), &self.region);
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(etag(&part.etag)),
            server_side_encryption: sse.server_side_encryption,
            sse_customer_algorithm: sse.customer_algorithm,
            sse_customer_key_md5: sse.customer_key_md5,
            ssekms_key_id: sse.kms_key_id,
            bucket_key_enabled: sse.bucket_key_enabled,
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            ..Default::default()
        }))
    }

    pub(super) async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        let part_number = part_number_of(input.part_number)?;
        let upload = self
            .store
            .upload(&input.bucket, &input.key, &input.upload_id)
            .await
            .or_s3()?;
        let (src_bucket, src_key, src_version) = copy_source_of(&input.copy_source)?;
        let source = self
            .store
            .head_version(src_bucket, src_key, src_version)
            .await
            .map_err(copy_source_error)?;
        check_copy_source_conditions(
            &source,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        )?;
        let size = source.summary.size;
        let range = match input.copy_source_range.as_deref() {
            None => 0..size,
            Some(r) => {
                let parsed = Range::parse(r).map_err(|_| {
                    s3_error!(
                        InvalidArgument,
                        "x-amz-copy-source-range must be bytes=first-last"
                    )
                })?;
                match parsed {
                    Range::Int {
                        first,
                        last: Some(last),
                    } if first <= last && last < size => first..last + 1,
                    _ => {
                        return Err(s3_error!(
                            InvalidRange,
                            "the copy source range is not satisfiable"
                        ));
                    }
                }
            }
        };
        let algorithms: Vec<_> = upload.checksum_algorithm.into_iter().collect();
        let source_customer = copy_source_customer_key_of!(input)?;
        let source_key = self
            .store
            .opening(source.details.encryption.as_ref(), source_customer.as_ref())
            .await
            .or_s3()?;
        let customer = customer_key_of!(input)?;
        let seal = self
            .store
            .opening(upload.encryption.as_ref(), customer.as_ref())
            .await
            .or_s3()?;
        let mut staged = self
            .store
            .stage_copy(
                (src_bucket, src_key),
                &source,
                source_key.as_ref(),
                range,
                &algorithms,
                false,
                seal.as_ref(),
            )
            .await
            .or_s3()?;
        if matches!(
            upload.encryption,
            Some(basalt_object::Encryption::Customer { .. })
        ) {
            staged.conceal_etag();
        }
        let part = self
            .store
            .upload_part(
                &input.bucket,
                &input.key,
                &input.upload_id,
                part_number,
                staged,
                upload.checksum_algorithm,
            )
            .await
            .or_s3()?;
        let sums = ChecksumFields::of(part.checksum.as_slice());
        let sse = sse::fields(upload.encryption.as_ref(), &self.region);
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(etag(&part.etag)),
                last_modified: Some(timestamp(part.last_modified_ms)),
                checksum_crc32: sums.crc32,
                checksum_crc32c: sums.crc32c,
                checksum_crc64nvme: sums.crc64nvme,
                checksum_sha1: sums.sha1,
                checksum_sha256: sums.sha256,
            }),
            copy_source_version_id: source.summary.version_id.clone(),
            server_side_encryption: sse.server_side_encryption,
            sse_customer_algorithm: sse.customer_algorithm,
            sse_customer_key_md5: sse.customer_key_md5,
            ssekms_key_id: sse.kms_key_id,
            bucket_key_enabled: sse.bucket_key_enabled,
            ..Default::default()
        }))
    }

    pub(super) async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let precondition = precondition_of(input.if_match, input.if_none_match)?;
        let listed = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if listed.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "the completion must list at least one part"
            ));
        }
        let mut parts = Vec::with_capacity(listed.len());
        for p in listed {
            let part_number = p
                .part_number
                .ok_or_else(|| s3_error!(MalformedXML, "every listed part needs a PartNumber"))
                .and_then(part_number_of)?;
            let etag = p
                .e_tag
                .ok_or_else(|| s3_error!(MalformedXML, "every listed part needs an ETag"))?;
            let given = checksum_fields_of!(p);
            parts.push(CompletePart {
                part_number,
                etag: etag.value().trim_matches('"').to_owned(),
                checksum: given.single()?.map(|c| c.value),
            });
        }
        if let Some(asked) = &input.checksum_type {
            let upload = self
                .store
                .upload(&input.bucket, &input.key, &input.upload_id)
                .await
                .or_s3()?;
            if upload.checksum_algorithm.is_some()
                && checksum_type_name(upload.full_object_checksum) != *asked
            {
                return Err(s3_error!(
                    InvalidRequest,
                    "The upload was created using the {} checksum mode. The complete request must use the same checksum mode.",
                    checksum_type_name(upload.full_object_checksum).as_str()
                ));
            }
        }
        let expected_checksum = checksum_fields_of!(input).single()?;
        let record = self
            .store
            .complete_upload(
                &input.bucket,
                &input.key,
                &input.upload_id,
                parts,
                precondition,
                expected_checksum,
            )
            .await
            .or_s3()?;
        let sums = ChecksumFields::of(&record.details.checksums);
        let sse = sse::fields(record.details.encryption.as_ref(), &self.region);
        let expiration = self.expiration_of(&input.bucket, &input.key, &record).await;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            expiration,
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            checksum_type: checksum_type_of(&record.details.checksums),
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&record.summary.etag)),
            version_id: record.summary.version_id.clone(),
            server_side_encryption: sse.server_side_encryption,
            ssekms_key_id: sse.kms_key_id,
            bucket_key_enabled: sse.bucket_key_enabled,
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        }))
    }

    pub(super) async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.store
            .abort_upload(&input.bucket, &input.key, &input.upload_id)
            .await
            .or_s3()?;
        no_content(AbortMultipartUploadOutput::default())
    }

    pub(super) async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let max_parts = max_of(input.max_parts, "max-parts")?;
        let owner = self.bucket_owner(&input.bucket).await?;
        let marker = input
            .part_number_marker
            .map(|m| m.max(0) as u32)
            .unwrap_or(0);
        let upload = self
            .store
            .upload(&input.bucket, &input.key, &input.upload_id)
            .await
            .or_s3()?;
        let (parts, truncated) = self
            .store
            .list_parts(
                &input.bucket,
                &input.key,
                &input.upload_id,
                marker,
                max_parts,
            )
            .await
            .or_s3()?;
        let next_marker = parts.last().map(|p| p.part_number as i32);
        let parts = parts
            .into_iter()
            .map(|p| {
                let sums = ChecksumFields::of(p.record.checksum.as_slice());
                Part {
                    part_number: Some(p.part_number as i32),
                    e_tag: Some(etag(&p.record.etag)),
                    size: Some(p.record.size as i64),
                    last_modified: Some(timestamp(p.record.last_modified_ms)),
                    checksum_crc32: sums.crc32,
                    checksum_crc32c: sums.crc32c,
                    checksum_crc64nvme: sums.crc64nvme,
                    checksum_sha1: sums.sha1,
                    checksum_sha256: sums.sha256,
                }
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max_parts as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next_marker,
            is_truncated: Some(truncated),
            parts: Some(parts),
            owner: Some(owner_dto(&owner)),
            initiator: Some(Initiator {
                display_name: Some(owner.display_name.clone()),
                id: Some(owner.id.clone()),
            }),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm: upload
                .checksum_algorithm
                .map(|a| ChecksumAlgorithm::from(algorithm_name(a).to_owned())),
            checksum_type: upload
                .checksum_algorithm
                .map(|_| checksum_type_name(upload.full_object_checksum)),
            ..Default::default()
        }))
    }

    pub(super) async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let max_uploads = max_of(input.max_uploads, "max-uploads")?;
        let owner = self.bucket_owner(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let page = self
            .store
            .list_uploads(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                input.key_marker.as_deref(),
                input.upload_id_marker.as_deref(),
                max_uploads,
            )
            .await
            .or_s3()?;
        let truncated = page.is_truncated;
        let (next_key_marker, next_upload_id_marker) = match page.next_marker {
            Some((key, id)) => (Some(key), id),
            None => (None, None),
        };
        let common_prefixes: Vec<CommonPrefix> = page
            .common_prefixes
            .into_iter()
            .map(|p| CommonPrefix { prefix: Some(p) })
            .collect();
        let uploads = page.uploads;
        let uploads = uploads
            .into_iter()
            .map(|u| MultipartUpload {
                key: Some(u.key),
                upload_id: Some(u.upload_id),
                initiated: Some(timestamp(u.record.initiated_ms)),
                owner: Some(owner_dto(&owner)),
                initiator: Some(Initiator {
                    display_name: Some(owner.display_name.clone()),
                    id: Some(owner.id.clone()),
                }),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            next_key_marker,
            next_upload_id_marker,
            max_uploads: Some(max_uploads as i32),
            is_truncated: Some(truncated),
            uploads: Some(uploads),
            delimiter: input.delimiter,
            common_prefixes: (!common_prefixes.is_empty()).then_some(common_prefixes),
            ..Default::default()
        }))
    }
}

/// Whether an upload's object checksum is of the whole object: as `x-amz-checksum-type` asks,
/// by default only for CRC64NVME (AWS's defaults); SHA checksums cannot be combined, and
/// CRC64NVME has no composite form.
fn full_object_checksum_of(
    algorithm: Option<basalt_object::ChecksumAlgorithm>,
    asked: Option<&ChecksumType>,
) -> S3Result<bool> {
    use basalt_object::ChecksumAlgorithm as A;
    let Some(algorithm) = algorithm else {
        return match asked {
            None => Ok(false),
            Some(_) => Err(s3_error!(
                InvalidRequest,
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
            )),
        };
    };
    let full = match asked.map(ChecksumType::as_str) {
        None => algorithm == A::Crc64Nvme,
        Some(ChecksumType::FULL_OBJECT) => true,
        Some(ChecksumType::COMPOSITE) => false,
        Some(other) => {
            return Err(s3_error!(
                InvalidRequest,
                "unknown x-amz-checksum-type {other}"
            ));
        }
    };
    let combinable = matches!(algorithm, A::Crc32 | A::Crc32c | A::Crc64Nvme);
    if (full && !combinable) || (!full && algorithm == A::Crc64Nvme) {
        return Err(s3_error!(
            InvalidRequest,
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            checksum_type_name(full).as_str(),
            algorithm_name(algorithm).to_lowercase()
        ));
    }
    Ok(full)
}

fn checksum_type_name(full_object: bool) -> ChecksumType {
    ChecksumType::from_static(if full_object {
        ChecksumType::FULL_OBJECT
    } else {
        ChecksumType::COMPOSITE
    })
}
