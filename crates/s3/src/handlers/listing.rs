//! Listings: buckets, objects (V1 and V2) and versions.

use basalt_object::{ListEntry, VersionEntry};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::convert::{etag, timestamp, url_encode};
use crate::error::OrS3;

use super::acl::caller_of;
use super::{BasaltS3, version_arg};
use crate::acl::{owner_dto, root_owner};

const MAX_KEYS: i32 = 1000;

/// AWS's largest (and default) ListBuckets page.
const MAX_BUCKETS_LISTED: i32 = 10_000;

pub(super) fn max_of(requested: Option<i32>, name: &str) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "{name} must not be negative")),
        Some(n) => Ok(n.min(MAX_KEYS) as usize),
    }
}

struct Listing {
    contents: Vec<Object>,
    common_prefixes: Vec<CommonPrefix>,
    is_truncated: bool,
    last: Option<String>,
}

/// What ListObjects and ListObjectsV2 ask for, in the terms they share.
struct ListQuery<'a> {
    bucket: &'a str,
    prefix: &'a str,
    delimiter: Option<&'a str>,
    start_after: Option<&'a str>,
    max_keys: usize,
    /// `encoding-type=url`.
    url: bool,
    /// Shown as each object's owner (ListObjectsV2 only with `fetch-owner`).
    owner: Option<Owner>,
}

impl BasaltS3 {
    async fn list(&self, query: ListQuery<'_>) -> S3Result<Listing> {
        let ListQuery {
            bucket,
            prefix,
            delimiter,
            start_after,
            max_keys,
            url,
            owner,
        } = query;
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
                        owner: owner.clone(),
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

impl BasaltS3 {
    pub(super) async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let caller = caller_of(&req);
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
            owner: Some(owner_dto(&caller.owner.unwrap_or_else(root_owner))),
            continuation_token,
            prefix: (!prefix.is_empty()).then_some(prefix),
        }))
    }

    pub(super) async fn list_objects_v2(
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
        // Objects are listed with their bucket's owner, and only when asked (`fetch-owner`).
        let fetched_owner = match input.fetch_owner {
            Some(true) => Some(owner_dto(&self.bucket_owner(&input.bucket).await?)),
            _ => None,
        };
        let listing = self
            .list(ListQuery {
                bucket: &input.bucket,
                prefix: &prefix,
                delimiter: input.delimiter.as_deref(),
                start_after: resume.as_deref(),
                max_keys,
                url,
                owner: fetched_owner,
            })
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

    pub(super) async fn list_objects(
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
            .list(ListQuery {
                bucket: &input.bucket,
                prefix: &prefix,
                delimiter: input.delimiter.as_deref(),
                start_after: input.marker.as_deref(),
                max_keys,
                url,
                owner: Some(owner_dto(&self.bucket_owner(&input.bucket).await?)),
            })
            .await?;
        let next_marker = if listing.is_truncated {
            listing.last.clone()
        } else {
            None
        };
        let enc = |s: Option<String>| if url { s.map(|s| url_encode(&s)) } else { s };
        // Version 1 answers `Prefix` and `Marker` always, and `Prefix` as given even under
        // `encoding-type=url` (clients decode only the marker and delimiter of a V1 listing).
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(input.prefix.unwrap_or_default()),
            delimiter: enc(input.delimiter),
            marker: Some(enc(input.marker).unwrap_or_default()),
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

    pub(super) async fn list_object_versions(
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
        // An empty delimiter is no delimiter, and is not echoed, as for ListObjects.
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let page = if max_keys == 0 {
            // As S3 answers `max-keys=0`: nothing, and not truncated.
            self.store.bucket(&input.bucket).await.or_s3()?;
            basalt_object::VersionPage::default()
        } else {
            self.store
                .list_versions(
                    &input.bucket,
                    &prefix,
                    delimiter.as_deref(),
                    input.key_marker.as_deref(),
                    input.version_id_marker.as_deref(),
                    max_keys,
                )
                .await
                .or_s3()?
        };
        let encode = |s: &str| if url { url_encode(s) } else { s.to_owned() };
        let owner = Some(owner_dto(&self.bucket_owner(&input.bucket).await?));
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
                    owner: owner.clone(),
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
                    owner: owner.clone(),
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
            delimiter: delimiter.map(|d| encode(&d)),
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
}
