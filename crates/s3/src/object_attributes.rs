//! GetObjectAttributes: an object's ETag, checksum, parts (paged), storage class and size in
//! one call, for a version and for SSE-C objects (whose key must be given, as on AWS).

use basalt_object::ObjectStore;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::convert::{ChecksumFields, checksum_type_of, etag, timestamp};
use crate::error::OrS3;

/// AWS's default and largest page of parts.
const MAX_PARTS: i32 = 1000;

pub(crate) async fn get_object_attributes(
    store: &ObjectStore,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let input = req.input;
    let version = crate::handlers::version_arg(input.version_id.as_deref())?;
    let record = store
        .head_version(&input.bucket, &input.key, version)
        .await
        .or_s3()?;
    // An SSE-C object's attributes are given to the holder of its key only.
    let customer = crate::sse::customer_key(
        input.sse_customer_algorithm.as_deref(),
        input.sse_customer_key.as_deref(),
        input.sse_customer_key_md5.as_deref(),
    )?;
    store
        .opening(record.details.encryption.as_ref(), customer.as_ref())
        .await
        .or_s3()?;
    // The list comes as repeated headers (aws-sdk-rust) or as one comma-separated header
    // (boto3), which s3s hands over as a single element.
    let wanted = |name: &str| {
        input
            .object_attributes
            .iter()
            .flat_map(|a| a.as_str().split(','))
            .any(|a| a.trim() == name)
    };
    if input.object_attributes.is_empty() {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-object-attributes must name at least one attribute"
        ));
    }
    let max_parts = match input.max_parts {
        None => MAX_PARTS,
        Some(n @ 0..) => n.min(MAX_PARTS),
        Some(_) => return Err(s3_error!(InvalidArgument, "max-parts must not be negative")),
    };
    let marker = input.part_number_marker.unwrap_or(0).max(0);
    let multipart = !record.details.part_sizes.is_empty();
    let checksum = wanted(ObjectAttributes::CHECKSUM)
        .then(|| {
            let sums = ChecksumFields::of(&record.details.checksums);
            let any = sums.crc32.is_some()
                || sums.crc32c.is_some()
                || sums.crc64nvme.is_some()
                || sums.sha1.is_some()
                || sums.sha256.is_some();
            any.then(|| Checksum {
                checksum_crc32: sums.crc32,
                checksum_crc32c: sums.crc32c,
                checksum_crc64nvme: sums.crc64nvme,
                checksum_sha1: sums.sha1,
                checksum_sha256: sums.sha256,
                checksum_type: checksum_type_of(&record.details.checksums),
            })
        })
        .flatten();
    let object_parts = (wanted(ObjectAttributes::OBJECT_PARTS) && multipart).then(|| {
        let sizes = &record.details.part_sizes;
        let parts: Vec<ObjectPart> = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| (i as i32 + 1, *size))
            .filter(|(n, _)| *n > marker)
            .take(max_parts as usize)
            .map(|(n, size)| {
                let sums = ChecksumFields::of(
                    &part_checksum(&record, n as usize)
                        .into_iter()
                        .collect::<Vec<_>>(),
                );
                ObjectPart {
                    part_number: Some(n),
                    size: Some(size as i64),
                    checksum_crc32: sums.crc32,
                    checksum_crc32c: sums.crc32c,
                    checksum_crc64nvme: sums.crc64nvme,
                    checksum_sha1: sums.sha1,
                    checksum_sha256: sums.sha256,
                }
            })
            .collect();
        let last = parts.last().and_then(|p| p.part_number);
        let truncated = last.is_some_and(|l| (l as usize) < sizes.len());
        GetObjectAttributesParts {
            is_truncated: Some(truncated),
            max_parts: Some(max_parts),
            next_part_number_marker: last.filter(|_| truncated),
            part_number_marker: Some(marker),
            parts: Some(parts),
            total_parts_count: Some(sizes.len() as i32),
        }
    });
    let output = GetObjectAttributesOutput {
        e_tag: wanted(ObjectAttributes::ETAG).then(|| etag(&record.summary.etag)),
        checksum,
        object_parts,
        object_size: wanted(ObjectAttributes::OBJECT_SIZE).then_some(record.summary.size as i64),
        storage_class: wanted(ObjectAttributes::STORAGE_CLASS)
            .then(|| StorageClass::from_static(StorageClass::STANDARD)),
        last_modified: Some(timestamp(record.summary.last_modified_ms)),
        version_id: record.summary.version_id.clone(),
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

/// The stored checksum of part `number` (1-based) of a multipart object, under the object
/// checksum's algorithm.
pub(crate) fn part_checksum(
    record: &basalt_object::ObjectRecord,
    number: usize,
) -> Option<basalt_object::Checksum> {
    let algorithm = record.details.checksums.first()?.algorithm;
    let value = record.details.part_checksums.get(number.checked_sub(1)?)?;
    Some(basalt_object::Checksum {
        algorithm,
        value: value.clone(),
    })
}
