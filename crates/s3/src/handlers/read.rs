//! GET and HEAD: conditions, ranges, parts and the headers that describe an object.

use basalt_object::{ObjectRecord, ObjectStore};
use futures::TryStreamExt;
use http::StatusCode;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::convert::{ChecksumFields, checksum_type_of, etag, metadata_map, millis, timestamp};
use crate::error::{OrS3, custom};
use crate::lock::lock_fields;
use crate::sse;

use super::{BasaltS3, version_arg};

fn etag_matches(condition: &ETagCondition, current: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == current,
    }
}

/// 304, with the validators a cache revalidates by (RFC 9110 §15.4.5), as S3 sends them.
fn not_modified(record: &ObjectRecord) -> S3Error {
    let mut e = S3Error::new(S3ErrorCode::NotModified);
    e.set_status_code(StatusCode::NOT_MODIFIED);
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", record.summary.etag)) {
        headers.insert(http::header::ETAG, v);
    }
    let mut modified = Vec::new();
    if timestamp(record.summary.last_modified_ms)
        .format(TimestampFormat::HttpDate, &mut modified)
        .is_ok()
        && let Ok(v) = http::HeaderValue::from_bytes(&modified)
    {
        headers.insert(http::header::LAST_MODIFIED, v);
    }
    e.set_headers(headers);
    e
}

/// The read conditions of GET and HEAD, in the precedence RFC 9110 and S3 give them.
pub(super) fn check_read_conditions(
    record: &ObjectRecord,
    if_match: Option<&IfMatch>,
    if_none_match: Option<&IfNoneMatch>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let current = &record.summary.etag;
    // HTTP dates have whole seconds: compare at that precision.
    let modified_s = record.summary.last_modified_ms / 1000;
    match if_match {
        Some(c) if !etag_matches(c, current) => return Err(s3_error!(PreconditionFailed)),
        None => {
            if let Some(t) = if_unmodified_since
                && modified_s > millis(t) / 1000
            {
                return Err(s3_error!(PreconditionFailed));
            }
        }
        _ => {}
    }
    match if_none_match {
        Some(c) if etag_matches(c, current) => return Err(not_modified(record)),
        None => {
            if let Some(t) = if_modified_since
                && modified_s <= millis(t) / 1000
            {
                return Err(not_modified(record));
            }
        }
        _ => {}
    }
    Ok(())
}

/// GET and HEAD take the same inputs, under the same names, in two s3s types: look the object
/// up, check its conditions, plan the range and describe it once for both.
macro_rules! prepare_read {
    ($self:ident, $input:ident) => {{
        let record = $self
            .store
            .head_version(
                &$input.bucket,
                &$input.key,
                version_arg($input.version_id.as_deref())?,
            )
            .await
            .or_s3()?;
        check_read_conditions(
            &record,
            $input.if_match.as_ref(),
            $input.if_none_match.as_ref(),
            $input.if_modified_since.as_ref(),
            $input.if_unmodified_since.as_ref(),
        )?;
        let customer = customer_key_of!($input)?;
        let opened = $self
            .store
            .opening(record.details.encryption.as_ref(), customer.as_ref())
            .await
            .or_s3()?;
        let plan = plan_read(&record, $input.part_number, $input.range)?;
        let overrides = Overrides {
            content_type: $input.response_content_type,
            content_encoding: $input.response_content_encoding,
            content_disposition: $input.response_content_disposition,
            content_language: $input.response_content_language,
            cache_control: $input.response_cache_control,
            expires: $input.response_expires,
        };
        let mut output = describe(
            &record,
            &plan,
            overrides,
            $input.checksum_mode.is_some(),
            &$self.region,
        );
        if $input.version_id.is_none() {
            output.expiration = $self
                .expiration_of(&$input.bucket, &$input.key, &record)
                .await;
        }
        (record, plan, output, opened)
    }};
}

/// Which bytes a GET or HEAD covers, and how the response describes them.
struct ReadPlan {
    range: std::ops::Range<u64>,
    content_range: Option<String>,
    parts_count: Option<i32>,
    /// The part a `partNumber` read covers.
    part: Option<u32>,
}

fn plan_read(
    record: &ObjectRecord,
    part_number: Option<i32>,
    range: Option<Range>,
) -> S3Result<ReadPlan> {
    let size = record.summary.size;
    let content_range =
        |r: &std::ops::Range<u64>| format!("bytes {}-{}/{size}", r.start, r.end.saturating_sub(1));
    match (part_number, range) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "Range and partNumber cannot both be given"
        )),
        (Some(n), None) => {
            let r = u32::try_from(n)
                .ok()
                .and_then(|n| ObjectStore::part_range(record, n))
                .ok_or_else(|| {
                    // 400 as the conformance suites expect (AWS's reference page says 416).
                    custom(
                        "InvalidPartNumber",
                        StatusCode::BAD_REQUEST,
                        "the requested part number is not satisfiable",
                    )
                })?;
            Ok(ReadPlan {
                content_range: (size > 0).then(|| content_range(&r)),
                parts_count: Some(record.details.part_sizes.len().max(1) as i32),
                range: r,
                part: u32::try_from(n).ok(),
            })
        }
        // A suffix range of an empty object is the whole (empty) object, as S3 answers it:
        // 200 without Content-Range, not a `bytes 0-0/0` that names a byte that is not there.
        (None, Some(Range::Suffix { .. })) if size == 0 => Ok(ReadPlan {
            range: 0..0,
            content_range: None,
            parts_count: None,
            part: None,
        }),
        (None, Some(range)) => {
            let r = range.check(size)?;
            Ok(ReadPlan {
                content_range: Some(content_range(&r)),
                parts_count: None,
                range: r,
                part: None,
            })
        }
        (None, None) => Ok(ReadPlan {
            range: 0..size,
            content_range: None,
            parts_count: None,
            part: None,
        }),
    }
}

/// The `response-*` query parameters of GET and HEAD.
struct Overrides {
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<Timestamp>,
}

/// Everything a GET answers but the body.
fn describe(
    record: &ObjectRecord,
    plan: &ReadPlan,
    overrides: Overrides,
    checksum_mode: bool,
    region: &str,
) -> GetObjectOutput {
    let h = &record.details.headers;
    // S3 returns checksums only when asked, and only for the whole object.
    // S3 returns checksums only when asked: the object's for the whole object, a part's for
    // a `partNumber` read of a multipart object, none for a byte range.
    let whole = checksum_mode && plan.content_range.is_none();
    let part_sum = plan
        .part
        .filter(|_| checksum_mode && !record.details.part_sizes.is_empty())
        .and_then(|n| crate::object_attributes::part_checksum(record, n as usize));
    let sums = if whole {
        ChecksumFields::of(&record.details.checksums)
    } else if let Some(part) = &part_sum {
        ChecksumFields::of(std::slice::from_ref(part))
    } else {
        ChecksumFields::default()
    };
    let lock = lock_fields(&record.details.lock);
    let sse = sse::fields(record.details.encryption.as_ref(), region);
    GetObjectOutput {
        server_side_encryption: sse.server_side_encryption,
        sse_customer_algorithm: sse.customer_algorithm,
        sse_customer_key_md5: sse.customer_key_md5,
        ssekms_key_id: sse.kms_key_id,
        bucket_key_enabled: sse.bucket_key_enabled,
        version_id: record.summary.version_id.clone(),
        object_lock_mode: lock.mode,
        object_lock_retain_until_date: lock.until,
        object_lock_legal_hold_status: lock.legal_hold,
        accept_ranges: Some("bytes".to_owned()),
        content_length: Some((plan.range.end - plan.range.start) as i64),
        content_range: plan.content_range.clone(),
        e_tag: Some(etag(&record.summary.etag)),
        last_modified: Some(timestamp(record.summary.last_modified_ms)),
        metadata: metadata_map(&record.details.user_metadata),
        content_type: overrides.content_type.or_else(|| h.content_type.clone()),
        content_encoding: overrides
            .content_encoding
            .or_else(|| h.content_encoding.clone()),
        content_disposition: overrides
            .content_disposition
            .or_else(|| h.content_disposition.clone()),
        content_language: overrides
            .content_language
            .or_else(|| h.content_language.clone()),
        cache_control: overrides.cache_control.or_else(|| h.cache_control.clone()),
        expires: overrides.expires.or_else(|| h.expires_ms.map(timestamp)),
        parts_count: plan.parts_count,
        tag_count: (!record.details.tags.is_empty()).then_some(record.details.tags.len() as i32),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        checksum_type: if part_sum.is_some() {
            Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT))
        } else {
            whole
                .then(|| checksum_type_of(&record.details.checksums))
                .flatten()
        },
        ..Default::default()
    }
}

fn partial_if_ranged<T>(mut resp: S3Response<T>, plan: &ReadPlan) -> S3Response<T> {
    if plan.content_range.is_some() {
        resp.status = Some(StatusCode::PARTIAL_CONTENT);
    }
    resp
}

impl BasaltS3 {
    pub(super) async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        sse::refuse_encryption_request_on_read(&req.headers)?;
        let input = req.input;
        let (record, plan, mut output, opened) = prepare_read!(self, input);
        let stream = self
            .store
            .read(
                (&input.bucket, &input.key),
                &record,
                plan.range.clone(),
                opened.as_ref(),
            )
            .await
            .or_s3()?;
        output.body = Some(StreamingBlob::wrap(sync_wrapper::SyncStream::new(
            stream.map_err(|e| std::io::Error::other(e.to_string())),
        )));
        Ok(partial_if_ranged(S3Response::new(output), &plan))
    }

    /// GET without the body: the same conditions, range checks and headers.
    pub(super) async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        sse::refuse_encryption_request_on_read(&req.headers)?;
        let input = req.input;
        let (_, plan, g, _) = prepare_read!(self, input);
        let output = HeadObjectOutput {
            accept_ranges: g.accept_ranges,
            content_length: g.content_length,
            content_range: g.content_range,
            e_tag: g.e_tag,
            last_modified: g.last_modified,
            metadata: g.metadata,
            content_type: g.content_type,
            content_encoding: g.content_encoding,
            content_disposition: g.content_disposition,
            content_language: g.content_language,
            cache_control: g.cache_control,
            expires: g.expires,
            parts_count: g.parts_count,
            checksum_crc32: g.checksum_crc32,
            checksum_crc32c: g.checksum_crc32c,
            checksum_crc64nvme: g.checksum_crc64nvme,
            checksum_sha1: g.checksum_sha1,
            checksum_sha256: g.checksum_sha256,
            checksum_type: g.checksum_type,
            expiration: g.expiration,
            version_id: g.version_id,
            object_lock_mode: g.object_lock_mode,
            object_lock_retain_until_date: g.object_lock_retain_until_date,
            object_lock_legal_hold_status: g.object_lock_legal_hold_status,
            server_side_encryption: g.server_side_encryption,
            sse_customer_algorithm: g.sse_customer_algorithm,
            sse_customer_key_md5: g.sse_customer_key_md5,
            ssekms_key_id: g.ssekms_key_id,
            bucket_key_enabled: g.bucket_key_enabled,
            ..Default::default()
        };
        let mut resp = partial_if_ranged(S3Response::new(output), &plan);
        // S3 sends the tag count on HEAD too, though its model lists it for GET only.
        if let Some(count) = g.tag_count {
            resp.headers
                .insert("x-amz-tagging-count", http::HeaderValue::from(count));
        }
        Ok(resp)
    }
}
