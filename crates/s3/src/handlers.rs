//! S3 operations over the object layer.

use basalt_object::{
    CompletePart, DeleteRequest, ListEntry, ObjectRecord, ObjectStore, ObjectWrite, Precondition,
    VersionEntry, VersioningState, is_valid_version_id,
};
use futures::TryStreamExt;
use http::StatusCode;
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::convert::{
    ChecksumFields, HeaderInput, algorithm_name, etag, metadata_map, metadata_vec, millis,
    requested_algorithms, tag_set, tags_of_header, tags_of_set, timestamp, url_encode,
    verify_digests,
};
use crate::error::{OrS3, custom, to_s3};
use crate::lock::{
    legal_hold_dto, legal_hold_of_body, lock_config_dto, lock_config_of, lock_fields,
    lock_of_headers, retention_dto, retention_of_body,
};
use crate::sse;

/// The SSE-C key of a request's `x-amz-server-side-encryption-customer-*` fields.
macro_rules! customer_key_of {
    ($input:expr) => {
        sse::customer_key(
            $input.sse_customer_algorithm.as_deref(),
            $input.sse_customer_key.as_deref(),
            $input.sse_customer_key_md5.as_deref(),
        )
    };
}

/// The SSE-C key of a copy's source (`x-amz-copy-source-server-side-encryption-customer-*`).
macro_rules! copy_source_customer_key_of {
    ($input:expr) => {
        sse::customer_key(
            $input.copy_source_sse_customer_algorithm.as_deref(),
            $input.copy_source_sse_customer_key.as_deref(),
            $input.copy_source_sse_customer_key_md5.as_deref(),
        )
    };
}

/// The object lock a write asks for (`x-amz-object-lock-*`).
macro_rules! lock_of {
    ($input:expr) => {
        lock_of_headers(
            $input.object_lock_mode.as_ref(),
            $input.object_lock_retain_until_date.as_ref(),
            $input.object_lock_legal_hold_status.as_ref(),
        )
    };
}

const MAX_KEYS: i32 = 1000;
const MAX_PART_NUMBER: i32 = 10_000;
const MAX_DELETE_OBJECTS: usize = 1000;
/// AWS's largest (and default) ListBuckets page.
const MAX_BUCKETS_LISTED: i32 = 10_000;
const OWNER_ID: &str = "basalt";

/// The S3 service: one object store, one region.
pub struct BasaltS3 {
    store: ObjectStore,
    region: String,
}

impl BasaltS3 {
    pub fn new(store: ObjectStore, region: impl Into<String>) -> Self {
        Self {
            store,
            region: region.into(),
        }
    }
}

fn owner() -> Owner {
    Owner {
        display_name: Some(OWNER_ID.to_owned()),
        id: Some(OWNER_ID.to_owned()),
    }
}

fn precondition_of(
    if_match: Option<IfMatch>,
    if_none_match: Option<IfNoneMatch>,
) -> S3Result<Option<Precondition>> {
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(s3_error!(
            NotImplemented,
            "If-Match and If-None-Match together are not supported"
        )),
        (Some(ETagCondition::Any), None) => Ok(Some(Precondition::IfMatch("*".to_owned()))),
        (Some(ETagCondition::ETag(e)), None) => {
            Ok(Some(Precondition::IfMatch(e.value().to_owned())))
        }
        (None, Some(ETagCondition::Any)) => Ok(Some(Precondition::IfNoneMatchAny)),
        (None, Some(ETagCondition::ETag(e))) => {
            Ok(Some(Precondition::IfNoneMatch(e.value().to_owned())))
        }
        (None, None) => Ok(None),
    }
}

/// The Content-Encoding to store: `aws-chunked` describes how the request body was sent, not
/// the object, so it is dropped (`gzip, aws-chunked` is stored as `gzip`).
fn stored_content_encoding(value: Option<String>) -> Option<String> {
    let value = value?;
    let kept: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// An answer with no body: `204 No Content`, as S3 gives for deletes.
fn no_content<T>(output: T) -> S3Result<S3Response<T>> {
    let mut resp = S3Response::new(output);
    resp.status = Some(StatusCode::NO_CONTENT);
    Ok(resp)
}

/// A `versionId` argument: `null` or a version id Basalt could have made.
pub(crate) fn version_arg(version_id: Option<&str>) -> S3Result<Option<&str>> {
    match version_id {
        Some(v) if !is_valid_version_id(v) => {
            Err(s3_error!(InvalidArgument, "Invalid version id specified"))
        }
        other => Ok(other),
    }
}

fn etag_matches(condition: &ETagCondition, current: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == current,
    }
}

fn not_modified() -> S3Error {
    let mut e = S3Error::new(S3ErrorCode::NotModified);
    e.set_status_code(StatusCode::NOT_MODIFIED);
    e
}

/// The read conditions of GET and HEAD, in the precedence RFC 9110 and S3 give them.
fn check_read_conditions(
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
        Some(c) if etag_matches(c, current) => return Err(not_modified()),
        None => {
            if let Some(t) = if_modified_since
                && modified_s <= millis(t) / 1000
            {
                return Err(not_modified());
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_copy_source_conditions(
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
fn copy_source_of(source: &CopySource) -> S3Result<(&str, &str, Option<&str>)> {
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
fn copy_source_error(e: basalt_object::ObjectError) -> S3Error {
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

fn max_of(requested: Option<i32>, name: &str) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "{name} must not be negative")),
        Some(n) => Ok(n.min(MAX_KEYS) as usize),
    }
}

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
        let output = describe(&record, &plan, overrides, $input.checksum_mode.is_some());
        (record, plan, output, opened)
    }};
}

/// Which bytes a GET or HEAD covers, and how the response describes them.
struct ReadPlan {
    range: std::ops::Range<u64>,
    content_range: Option<String>,
    parts_count: Option<i32>,
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
                    custom(
                        "InvalidPartNumber",
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        "the requested part number is not satisfiable",
                    )
                })?;
            Ok(ReadPlan {
                content_range: (size > 0).then(|| content_range(&r)),
                parts_count: Some(record.details.part_sizes.len().max(1) as i32),
                range: r,
            })
        }
        // A suffix range of an empty object is the whole (empty) object, as S3 answers it:
        // 200 without Content-Range, not a `bytes 0-0/0` that names a byte that is not there.
        (None, Some(Range::Suffix { .. })) if size == 0 => Ok(ReadPlan {
            range: 0..0,
            content_range: None,
            parts_count: None,
        }),
        (None, Some(range)) => {
            let r = range.check(size)?;
            Ok(ReadPlan {
                content_range: Some(content_range(&r)),
                parts_count: None,
                range: r,
            })
        }
        (None, None) => Ok(ReadPlan {
            range: 0..size,
            content_range: None,
            parts_count: None,
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
) -> GetObjectOutput {
    let h = &record.details.headers;
    // S3 returns checksums only when asked, and only for the whole object.
    let sums = if checksum_mode && plan.content_range.is_none() {
        ChecksumFields::of(&record.details.checksums)
    } else {
        ChecksumFields::default()
    };
    let lock = lock_fields(&record.details.lock);
    let sse = sse::fields(record.details.encryption.as_ref());
    GetObjectOutput {
        server_side_encryption: sse.server_side_encryption,
        sse_customer_algorithm: sse.customer_algorithm,
        sse_customer_key_md5: sse.customer_key_md5,
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
        ..Default::default()
    }
}

fn partial_if_ranged<T>(mut resp: S3Response<T>, plan: &ReadPlan) -> S3Response<T> {
    if plan.content_range.is_some() {
        resp.status = Some(StatusCode::PARTIAL_CONTENT);
    }
    resp
}

struct Listing {
    contents: Vec<Object>,
    common_prefixes: Vec<CommonPrefix>,
    is_truncated: bool,
    last: Option<String>,
}

impl BasaltS3 {
    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max_keys: usize,
        url: bool,
    ) -> S3Result<Listing> {
        if max_keys == 0 {
            // As S3 answers `max-keys=0`: nothing, and not truncated.
            self.store.bucket(bucket).await.or_s3()?;
            return Ok(Listing {
                contents: Vec::new(),
                common_prefixes: Vec::new(),
                is_truncated: false,
                last: None,
            });
        }
        let page = self
            .store
            .list_objects(bucket, prefix, delimiter, start_after, max_keys)
            .await
            .or_s3()?;
        let encode = |s: &str| if url { url_encode(s) } else { s.to_owned() };
        let mut listing = Listing {
            contents: Vec::new(),
            common_prefixes: Vec::new(),
            is_truncated: page.is_truncated,
            last: None,
        };
        for entry in page.entries {
            match entry {
                ListEntry::Object { key, summary } => {
                    listing.contents.push(Object {
                        key: Some(encode(&key)),
                        size: Some(summary.size as i64),
                        e_tag: Some(etag(&summary.etag)),
                        last_modified: Some(timestamp(summary.last_modified_ms)),
                        storage_class: Some(ObjectStorageClass::from_static(
                            ObjectStorageClass::STANDARD,
                        )),
                        owner: Some(owner()),
                        ..Default::default()
                    });
                    listing.last = Some(key);
                }
                ListEntry::CommonPrefix(p) => {
                    listing.common_prefixes.push(CommonPrefix {
                        prefix: Some(encode(&p)),
                    });
                    listing.last = Some(p);
                }
            }
        }
        Ok(listing)
    }

    /// Stages a request body, checks every digest the client promised, and returns it with
    /// the checksum algorithms it was hashed with.
    #[allow(clippy::too_many_arguments)]
    async fn stage_verified(
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

#[async_trait::async_trait]
impl S3 for BasaltS3 {
    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        crate::object_attributes::get_object_attributes(&self.store, req).await
    }

    async fn put_object_tagging(
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

    async fn get_object_tagging(
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

    async fn delete_object_tagging(
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

    async fn put_bucket_tagging(
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

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let tags = self.store.bucket_tags(&req.input.bucket).await.or_s3()?;
        Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: tag_set(&tags),
        }))
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.store
            .set_bucket_tags(&req.input.bucket, None)
            .await
            .or_s3()?;
        no_content(DeleteBucketTaggingOutput::default())
    }

    async fn put_bucket_cors(
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

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let rules = self.store.bucket_cors(&req.input.bucket).await.or_s3()?;
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(crate::cors::dto_of(&rules)),
        }))
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.store
            .set_bucket_cors(&req.input.bucket, None)
            .await
            .or_s3()?;
        no_content(DeleteBucketCorsOutput::default())
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let object_lock = req.input.object_lock_enabled_for_bucket.unwrap_or(false);
        let bucket = req.input.bucket;
        if bucket == crate::admin::ADMIN_BUCKET {
            return Err(s3_error!(
                InvalidBucketName,
                "the bucket name {bucket} is reserved for Basalt's admin API"
            ));
        }
        match self.store.create_bucket(&bucket, object_lock).await {
            Ok(()) => {}
            // us-east-1 answers a re-create by the owner with 200 and keeps the bucket as it
            // is (legacy behaviour tools rely on); every other region with 409.
            Err(basalt_object::ObjectError::BucketAlreadyExists) if self.region == "us-east-1" => {}
            Err(e) => return Err(to_s3(e)),
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.store.delete_bucket(&req.input.bucket).await.or_s3()?;
        no_content(DeleteBucketOutput {})
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.store.bucket(&req.input.bucket).await.or_s3()?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
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

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let input = req.input;
        let max = match input.max_buckets {
            None => MAX_BUCKETS_LISTED,
            Some(n @ 1..=MAX_BUCKETS_LISTED) => n,
            Some(_) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "max-buckets must be between 1 and {MAX_BUCKETS_LISTED}"
                ));
            }
        } as usize;
        // The token is the last bucket name of the page before, base64-encoded.
        let after = match input.continuation_token.as_deref() {
            None | Some("") => None,
            Some(token) => Some(
                base64_simd::STANDARD
                    .decode_to_vec(token)
                    .ok()
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "The continuation token provided is incorrect"
                        )
                    })?,
            ),
        };
        let prefix = input.prefix.unwrap_or_default();
        let other_region = input
            .bucket_region
            .as_deref()
            .is_some_and(|r| r != self.region.as_str());
        let mut matching = self
            .store
            .list_buckets()
            .await
            .or_s3()?
            .into_iter()
            .filter(|(name, _)| !other_region && name.starts_with(prefix.as_str()))
            .filter(|(name, _)| after.as_ref().is_none_or(|a| name > a))
            .peekable();
        let mut buckets = Vec::new();
        while buckets.len() < max {
            let Some((name, record)) = matching.next() else {
                break;
            };
            buckets.push(Bucket {
                name: Some(name),
                creation_date: Some(timestamp(record.created_ms)),
                bucket_region: Some(self.region.clone()),
            });
        }
        let continuation_token = matching
            .peek()
            .is_some()
            .then(|| buckets.last().and_then(|b| b.name.as_deref()))
            .flatten()
            .map(|last| base64_simd::STANDARD.encode_to_string(last));
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner()),
            continuation_token,
            prefix: (!prefix.is_empty()).then_some(prefix),
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let mut input = req.input;
        let precondition = precondition_of(input.if_match, input.if_none_match)?;
        let lock = lock_of!(input)?;
        // Refused before the body is read (a browser POST's fields arrive here).
        let user_metadata = metadata_vec(input.metadata.take())?;
        let given = ChecksumFields {
            crc32: input.checksum_crc32,
            crc32c: input.checksum_crc32c,
            crc64nvme: input.checksum_crc64nvme,
            sha1: input.checksum_sha1,
            sha256: input.checksum_sha256,
        };
        let algorithms =
            requested_algorithms(&given, input.checksum_algorithm.as_ref(), &req.headers)?;
        let customer = customer_key_of!(input)?;
        let requested = sse::requested(input.server_side_encryption.as_ref(), customer)?;
        let (seal, encryption) = self
            .store
            .sealing(&input.bucket, requested)
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
        };
        let record = self
            .store
            .put_object(&input.bucket, &input.key, staged, write, precondition)
            .await
            .or_s3()?;
        let sums = ChecksumFields::of(&record.details.checksums);
        let sse = sse::fields(record.details.encryption.as_ref());
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&record.summary.etag)),
            server_side_encryption: sse.server_side_encryption,
            sse_customer_algorithm: sse.customer_algorithm,
            sse_customer_key_md5: sse.customer_key_md5,
            version_id: record.summary.version_id.clone(),
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            checksum_type: (!record.details.checksums.is_empty())
                .then(|| ChecksumType::from_static(ChecksumType::FULL_OBJECT)),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
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
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
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
            version_id: g.version_id,
            object_lock_mode: g.object_lock_mode,
            object_lock_retain_until_date: g.object_lock_retain_until_date,
            object_lock_legal_hold_status: g.object_lock_legal_hold_status,
            server_side_encryption: g.server_side_encryption,
            sse_customer_algorithm: g.sse_customer_algorithm,
            sse_customer_key_md5: g.sse_customer_key_md5,
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

    async fn delete_object(
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

    async fn delete_objects(
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
                g.allows("s3:DeleteObject", &resource)
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

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
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
            .or_s3()?;
        let target_customer = customer_key_of!(input)?;
        let requested = sse::requested(input.server_side_encryption.as_ref(), target_customer)?;
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
            .sealing(&input.bucket, requested)
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
            }
        } else {
            ObjectWrite {
                headers: source.details.headers.clone(),
                user_metadata: source.details.user_metadata.clone(),
                checksum_algorithms: algorithms,
                tags,
                lock,
                encryption,
            }
        };
        let record = self
            .store
            .put_object(&input.bucket, &input.key, staged, write, None)
            .await
            .or_s3()?;
        let sums = ChecksumFields::of(&record.details.checksums);
        let copied_sse = sse::fields(record.details.encryption.as_ref());
        Ok(S3Response::new(CopyObjectOutput {
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
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let max_keys = max_of(input.max_keys, "max-keys")?;
        let url = input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let prefix = input.prefix.clone().unwrap_or_default();
        // An empty delimiter is no delimiter, and AWS does not echo it.
        let mut input = input;
        input.delimiter = input.delimiter.filter(|d| !d.is_empty());
        let resume = match &input.continuation_token {
            Some(token) => Some(decode_token(token)?),
            None => input.start_after.clone(),
        };
        let listing = self
            .list(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                resume.as_deref(),
                max_keys,
                url,
            )
            .await?;
        let key_count = (listing.contents.len() + listing.common_prefixes.len()) as i32;
        let next = if listing.is_truncated {
            listing.last.as_deref().map(encode_token)
        } else {
            None
        };
        let enc = |s: Option<String>| if url { s.map(|s| url_encode(&s)) } else { s };
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: enc(input.prefix),
            delimiter: enc(input.delimiter),
            start_after: enc(input.start_after),
            max_keys: Some(max_keys as i32),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            is_truncated: Some(listing.is_truncated),
            contents: Some(listing.contents),
            common_prefixes: (!listing.common_prefixes.is_empty())
                .then_some(listing.common_prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let max_keys = max_of(input.max_keys, "max-keys")?;
        let url = input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut input = input;
        input.delimiter = input.delimiter.filter(|d| !d.is_empty());
        let listing = self
            .list(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                input.marker.as_deref(),
                max_keys,
                url,
            )
            .await?;
        let next_marker = if listing.is_truncated {
            listing.last.clone()
        } else {
            None
        };
        let enc = |s: Option<String>| if url { s.map(|s| url_encode(&s)) } else { s };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: enc(input.prefix),
            delimiter: enc(input.delimiter),
            marker: enc(input.marker),
            next_marker: enc(next_marker),
            max_keys: Some(max_keys as i32),
            is_truncated: Some(listing.is_truncated),
            contents: Some(listing.contents),
            common_prefixes: (!listing.common_prefixes.is_empty())
                .then_some(listing.common_prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        let algorithm = input
            .checksum_algorithm
            .as_ref()
            .map(crate::convert::algorithm_of)
            .transpose()?;
        let customer = customer_key_of!(input)?;
        let requested = sse::requested(input.server_side_encryption.as_ref(), customer)?;
        // The parts are sealed with the upload's data key, recovered from this record.
        let encryption = self
            .store
            .sealing(&input.bucket, requested)
            .await
            .or_s3()?
            .map(|(_, record)| record);
        let sse = sse::fields(encryption.as_ref());
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
        };
        let upload_id = self
            .store
            .create_upload(&input.bucket, &input.key, write)
            .await
            .or_s3()?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            server_side_encryption: sse.server_side_encryption,
            sse_customer_algorithm: sse.customer_algorithm,
            sse_customer_key_md5: sse.customer_key_md5,
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_algorithm: input.checksum_algorithm,
            ..Default::default()
        }))
    }

    async fn upload_part(
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
        let given = ChecksumFields {
            crc32: input.checksum_crc32,
            crc32c: input.checksum_crc32c,
            crc64nvme: input.checksum_crc64nvme,
            sha1: input.checksum_sha1,
            sha256: input.checksum_sha256,
        };
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
        let sse = sse::fields(upload.encryption.as_ref());
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(etag(&part.etag)),
            server_side_encryption: sse.server_side_encryption,
            sse_customer_algorithm: sse.customer_algorithm,
            sse_customer_key_md5: sse.customer_key_md5,
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
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
            .or_s3()?;
        let customer = customer_key_of!(input)?;
        let seal = self
            .store
            .opening(upload.encryption.as_ref(), customer.as_ref())
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
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
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
            parts.push(CompletePart {
                part_number,
                etag: etag.value().trim_matches('"').to_owned(),
            });
        }
        let record = self
            .store
            .complete_upload(
                &input.bucket,
                &input.key,
                &input.upload_id,
                parts,
                precondition,
            )
            .await
            .or_s3()?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&record.summary.etag)),
            version_id: record.summary.version_id.clone(),
            server_side_encryption: sse::fields(record.details.encryption.as_ref())
                .server_side_encryption,
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
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

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let max_parts = max_of(input.max_parts, "max-parts")?;
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
            owner: Some(owner()),
            initiator: Some(Initiator {
                display_name: Some(OWNER_ID.to_owned()),
                id: Some(OWNER_ID.to_owned()),
            }),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm: upload
                .checksum_algorithm
                .map(|a| ChecksumAlgorithm::from(algorithm_name(a).to_owned())),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let max_uploads = max_of(input.max_uploads, "max-uploads")?;
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
                owner: Some(owner()),
                initiator: Some(Initiator {
                    display_name: Some(OWNER_ID.to_owned()),
                    id: Some(OWNER_ID.to_owned()),
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

    async fn put_bucket_versioning(
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

    async fn get_bucket_versioning(
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

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let max_keys = max_of(input.max_keys, "max-keys")?;
        let url = input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        if input.version_id_marker.is_some() && input.key_marker.is_none() {
            return Err(s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ));
        }
        version_arg(input.version_id_marker.as_deref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let page = self
            .store
            .list_versions(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                input.key_marker.as_deref(),
                input.version_id_marker.as_deref(),
                max_keys,
            )
            .await
            .or_s3()?;
        let encode = |s: &str| if url { url_encode(s) } else { s.to_owned() };
        let (mut versions, mut markers, mut prefixes) = (Vec::new(), Vec::new(), Vec::new());
        for entry in page.entries {
            match entry {
                VersionEntry::Version {
                    key,
                    summary,
                    is_latest,
                } if summary.delete_marker => markers.push(DeleteMarkerEntry {
                    is_latest: Some(is_latest),
                    key: Some(encode(&key)),
                    last_modified: Some(timestamp(summary.last_modified_ms)),
                    owner: Some(owner()),
                    version_id: Some(summary.version_name().to_owned()),
                }),
                VersionEntry::Version {
                    key,
                    summary,
                    is_latest,
                } => versions.push(ObjectVersion {
                    e_tag: Some(etag(&summary.etag)),
                    is_latest: Some(is_latest),
                    key: Some(encode(&key)),
                    last_modified: Some(timestamp(summary.last_modified_ms)),
                    owner: Some(owner()),
                    size: Some(summary.size as i64),
                    storage_class: Some(ObjectVersionStorageClass::from_static(
                        ObjectVersionStorageClass::STANDARD,
                    )),
                    version_id: Some(summary.version_name().to_owned()),
                    ..Default::default()
                }),
                VersionEntry::CommonPrefix(p) => prefixes.push(CommonPrefix {
                    prefix: Some(encode(&p)),
                }),
            }
        }
        let (next_key_marker, next_version_id_marker) = match page.next_marker {
            Some((key, version)) if page.is_truncated => (Some(encode(&key)), version),
            _ => (None, None),
        };
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(encode(&prefix)),
            delimiter: input.delimiter.map(|d| encode(&d)),
            key_marker: Some(input.key_marker.map(|k| encode(&k)).unwrap_or_default()),
            version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
            max_keys: Some(max_keys as i32),
            is_truncated: Some(page.is_truncated),
            next_key_marker,
            next_version_id_marker,
            versions: (!versions.is_empty()).then_some(versions),
            delete_markers: (!markers.is_empty()).then_some(markers),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn put_object_lock_configuration(
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

    async fn get_object_lock_configuration(
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

    async fn put_object_retention(
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

    async fn get_object_retention(
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

    async fn put_object_legal_hold(
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

    async fn get_object_legal_hold(
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

    async fn put_bucket_lifecycle_configuration(
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

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let rules = self.store.lifecycle(&req.input.bucket).await.or_s3()?;
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(crate::lifecycle::rules_dto(&rules)),
            ..Default::default()
        }))
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.store
            .set_lifecycle(&req.input.bucket, None)
            .await
            .or_s3()?;
        no_content(DeleteBucketLifecycleOutput::default())
    }

    async fn put_bucket_encryption(
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
        let algorithm = rule
            .apply_server_side_encryption_by_default
            .as_ref()
            .map(|d| d.sse_algorithm.as_str());
        match algorithm {
            Some(ServerSideEncryption::AES256) => {}
            Some(other) if other.starts_with("aws:kms") => {
                return Err(s3_error!(
                    NotImplemented,
                    "SSE-KMS is not supported: use AES256"
                ));
            }
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "the rule needs ApplyServerSideEncryptionByDefault with SSEAlgorithm AES256"
                ));
            }
        }
        let config = basalt_object::DefaultEncryption {
            bucket_key_enabled: rule.bucket_key_enabled.unwrap_or(false),
        };
        self.store
            .set_bucket_encryption(&input.bucket, Some(config))
            .await
            .or_s3()?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    async fn get_bucket_encryption(
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
                            ServerSideEncryption::AES256,
                        ),
                        kms_master_key_id: None,
                    }),
                    bucket_key_enabled: Some(config.bucket_key_enabled),
                }],
            }),
        }))
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.store
            .set_bucket_encryption(&req.input.bucket, None)
            .await
            .or_s3()?;
        no_content(DeleteBucketEncryptionOutput::default())
    }

    async fn put_bucket_policy(
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
        crate::policy::Policy::parse(&input.policy, true)
            .map_err(|e| s3_error!(MalformedPolicy, "{e}"))?;
        self.store
            .set_bucket_policy(&input.bucket, Some(input.policy))
            .await
            .or_s3()?;
        no_content(PutBucketPolicyOutput::default())
    }

    async fn get_bucket_policy(
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

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.store
            .set_bucket_policy(&req.input.bucket, None)
            .await
            .or_s3()?;
        no_content(DeleteBucketPolicyOutput::default())
    }
}

/// Continuation tokens are opaque to clients: base64 of the key (or common prefix) to resume
/// after.
fn encode_token(last: &str) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(last.as_bytes())
}

fn decode_token(token: &str) -> S3Result<String> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(token.as_bytes())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "the continuation token is not valid"))
}
