//! Conversions between S3 wire types and the object layer's types.

use basalt_object::{Checksum, ChecksumAlgorithm, Digests, StandardHeaders};
use http::HeaderMap;
use s3s::dto::{self, ETag, Timestamp};
use s3s::{S3Result, s3_error};

/// An HTTP date (IMF-fixdate, RFC 9110), as `Date`, SigV2 and `x-amz-expiration` write it.
pub(crate) const HTTP_DATE: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

pub(crate) fn timestamp(ms: i64) -> Timestamp {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .into()
}

pub(crate) fn millis(ts: &Timestamp) -> i64 {
    let t: time::OffsetDateTime = ts.clone().into();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

/// AWS's limit on an object's user metadata: the UTF-8 bytes of every key and value.
pub(crate) const USER_METADATA_MAX_BYTES: usize = 2 << 10;

/// An object's user metadata, sorted; refused with `MetadataTooLarge` over AWS's limit.
pub(crate) fn metadata_vec(metadata: Option<dto::Metadata>) -> S3Result<Vec<(String, String)>> {
    let mut v: Vec<(String, String)> = metadata.unwrap_or_default().into_iter().collect();
    check_metadata_size(v.iter().map(|(k, val)| k.len() + val.len()).sum())?;
    v.sort();
    Ok(v)
}

/// The same limit, from the `x-amz-meta-*` headers of a request head (before its body).
pub(crate) fn check_metadata_headers(headers: &HeaderMap) -> S3Result<()> {
    check_metadata_size(
        headers
            .iter()
            .filter_map(|(name, value)| {
                let key = name.as_str().strip_prefix("x-amz-meta-")?;
                Some(key.len() + value.len())
            })
            .sum(),
    )
}

fn check_metadata_size(bytes: usize) -> S3Result<()> {
    if bytes > USER_METADATA_MAX_BYTES {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size of {USER_METADATA_MAX_BYTES} bytes."
        ));
    }
    Ok(())
}

pub(crate) fn metadata_map(v: &[(String, String)]) -> Option<dto::Metadata> {
    (!v.is_empty()).then(|| v.iter().cloned().collect())
}

pub(crate) struct HeaderInput {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<Timestamp>,
}

impl From<HeaderInput> for StandardHeaders {
    fn from(h: HeaderInput) -> Self {
        StandardHeaders {
            content_type: h.content_type,
            content_encoding: h.content_encoding,
            content_disposition: h.content_disposition,
            content_language: h.content_language,
            cache_control: h.cache_control,
            expires_ms: h.expires.as_ref().map(millis),
        }
    }
}

pub(crate) fn algorithm_of(a: &dto::ChecksumAlgorithm) -> S3Result<ChecksumAlgorithm> {
    Ok(match a.as_str().to_ascii_uppercase().as_str() {
        "CRC32" => ChecksumAlgorithm::Crc32,
        "CRC32C" => ChecksumAlgorithm::Crc32c,
        "CRC64NVME" => ChecksumAlgorithm::Crc64Nvme,
        "SHA1" => ChecksumAlgorithm::Sha1,
        "SHA256" => ChecksumAlgorithm::Sha256,
        other => {
            return Err(s3_error!(
                InvalidArgument,
                "unsupported checksum algorithm {other}"
            ));
        }
    })
}

/// S3's `ChecksumType` of an object checksum: a multipart object's checksum of its parts'
/// checksums ends in `-N` (COMPOSITE); any other is of the whole object (FULL_OBJECT).
pub(crate) fn checksum_type_of(checksums: &[Checksum]) -> Option<dto::ChecksumType> {
    let first = checksums.first()?;
    let composite = first.value.rsplit_once('-').is_some();
    Some(dto::ChecksumType::from_static(if composite {
        dto::ChecksumType::COMPOSITE
    } else {
        dto::ChecksumType::FULL_OBJECT
    }))
}

pub(crate) fn algorithm_name(a: ChecksumAlgorithm) -> &'static str {
    match a {
        ChecksumAlgorithm::Crc32 => "CRC32",
        ChecksumAlgorithm::Crc32c => "CRC32C",
        ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
        ChecksumAlgorithm::Sha1 => "SHA1",
        ChecksumAlgorithm::Sha256 => "SHA256",
    }
}

fn algorithm_of_header(name: &str) -> Option<ChecksumAlgorithm> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "x-amz-checksum-crc32" => ChecksumAlgorithm::Crc32,
        "x-amz-checksum-crc32c" => ChecksumAlgorithm::Crc32c,
        "x-amz-checksum-crc64nvme" => ChecksumAlgorithm::Crc64Nvme,
        "x-amz-checksum-sha1" => ChecksumAlgorithm::Sha1,
        "x-amz-checksum-sha256" => ChecksumAlgorithm::Sha256,
        _ => return None,
    })
}

/// The flexible checksums a request carries, as S3's five optional fields.
#[derive(Default, Clone)]
pub(crate) struct ChecksumFields {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

impl ChecksumFields {
    pub(crate) fn of(checksums: &[Checksum]) -> Self {
        let mut f = Self::default();
        for c in checksums {
            *f.slot(c.algorithm) = Some(c.value.clone());
        }
        f
    }

    fn slot(&mut self, a: ChecksumAlgorithm) -> &mut Option<String> {
        match a {
            ChecksumAlgorithm::Crc32 => &mut self.crc32,
            ChecksumAlgorithm::Crc32c => &mut self.crc32c,
            ChecksumAlgorithm::Crc64Nvme => &mut self.crc64nvme,
            ChecksumAlgorithm::Sha1 => &mut self.sha1,
            ChecksumAlgorithm::Sha256 => &mut self.sha256,
        }
    }

    /// The one checksum given (a multipart completion names at most one); `InvalidRequest`
    /// for several.
    pub(crate) fn single(&self) -> S3Result<Option<Checksum>> {
        self.check_format(true)?;
        let mut given = self.expected();
        if given.len() > 1 {
            return Err(s3_error!(
                InvalidRequest,
                "Expecting a single x-amz-checksum- header"
            ));
        }
        Ok(given.pop())
    }

    /// Each value given is base64 of its algorithm's digest (a multipart completion's may end
    /// in `-N`, the parts it combines): else `InvalidRequest`, before any body is read. A
    /// well-formed value that does not match is `BadDigest`, later.
    pub(crate) fn check_format(&self, composite: bool) -> S3Result<()> {
        for c in self.expected() {
            let value = match c.value.rsplit_once('-') {
                Some((v, parts)) if composite && parts.parse::<u32>().is_ok() => v,
                _ => c.value.as_str(),
            };
            let decoded = base64_simd::STANDARD.decode_to_vec(value.trim());
            if decoded.map_or(true, |d| d.len() != digest_len(c.algorithm)) {
                return Err(s3_error!(
                    InvalidRequest,
                    "Value for x-amz-checksum-{} header is invalid.",
                    algorithm_name(c.algorithm).to_ascii_lowercase()
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn expected(&self) -> Vec<Checksum> {
        let all = [
            (ChecksumAlgorithm::Crc32, &self.crc32),
            (ChecksumAlgorithm::Crc32c, &self.crc32c),
            (ChecksumAlgorithm::Crc64Nvme, &self.crc64nvme),
            (ChecksumAlgorithm::Sha1, &self.sha1),
            (ChecksumAlgorithm::Sha256, &self.sha256),
        ];
        all.into_iter()
            .filter_map(|(algorithm, v)| {
                v.as_ref().map(|value| Checksum {
                    algorithm,
                    value: value.clone(),
                })
            })
            .collect()
    }
}

/// The bytes of an algorithm's digest.
fn digest_len(a: ChecksumAlgorithm) -> usize {
    match a {
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
        ChecksumAlgorithm::Crc64Nvme => 8,
        ChecksumAlgorithm::Sha1 => 20,
        ChecksumAlgorithm::Sha256 => 32,
    }
}

/// Which checksums to compute for a body: those given as headers, the declared algorithm,
/// and the one announced in `x-amz-trailer`.
pub(crate) fn requested_algorithms(
    given: &ChecksumFields,
    declared: Option<&dto::ChecksumAlgorithm>,
    headers: &HeaderMap,
) -> S3Result<Vec<ChecksumAlgorithm>> {
    given.check_format(false)?;
    let mut algorithms: Vec<ChecksumAlgorithm> =
        given.expected().iter().map(|c| c.algorithm).collect();
    if let Some(a) = declared {
        algorithms.push(algorithm_of(a)?);
    }
    if let Some(trailer) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
        algorithms.extend(trailer.split(',').filter_map(algorithm_of_header));
    }
    algorithms.sort_by_key(|a| *a as u8);
    algorithms.dedup();
    Ok(algorithms)
}

/// Checks what arrived against every digest the client promised: Content-MD5, checksum
/// headers, and checksums sent as trailers after an aws-chunked body.
pub(crate) fn verify_digests(
    digests: &Digests,
    content_md5: Option<&str>,
    given: &ChecksumFields,
    trailers: Option<HeaderMap>,
) -> S3Result<()> {
    if let Some(md5) = content_md5 {
        let raw = base64_simd::STANDARD
            .decode_to_vec(md5.trim())
            .map_err(|_| {
                s3_error!(
                    InvalidDigest,
                    "the Content-MD5 you specified is not valid base64"
                )
            })?;
        if raw.len() != 16 {
            return Err(s3_error!(
                InvalidDigest,
                "the Content-MD5 you specified is not an MD5 digest"
            ));
        }
        if raw != digests.md5 {
            return Err(s3_error!(
                BadDigest,
                "the Content-MD5 you specified did not match what was received"
            ));
        }
    }
    let mut expected = given.expected();
    for (name, value) in trailers.iter().flat_map(|t| t.iter()) {
        if let (Some(algorithm), Ok(value)) = (algorithm_of_header(name.as_str()), value.to_str()) {
            expected.push(Checksum {
                algorithm,
                value: value.trim().to_owned(),
            });
        }
    }
    for c in expected {
        match digests.checksum(c.algorithm) {
            Some(actual) if actual == c.value => {}
            _ => {
                return Err(s3_error!(
                    BadDigest,
                    "the {} checksum you specified did not match what was received",
                    algorithm_name(c.algorithm)
                ));
            }
        }
    }
    Ok(())
}

/// Percent-encodes a key for `encoding-type=url` listings (everything but unreserved
/// characters and `/`).
/// Parses an `x-amz-tagging` header: a URL-encoded query string, `k1=v1&k2=v2`.
pub(crate) fn tags_of_header(header: Option<&str>) -> S3Result<Vec<(String, String)>> {
    let Some(header) = header.filter(|h| !h.is_empty()) else {
        return Ok(Vec::new());
    };
    header
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((form_decode(k)?, form_decode(v)?))
        })
        .collect()
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
fn form_decode(s: &str) -> S3Result<String> {
    let bad = || {
        s3_error!(
            InvalidTag,
            "the tagging header is not a valid URL-encoded query"
        )
    };
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes
                    .next()
                    .and_then(|c| (c as char).to_digit(16))
                    .ok_or_else(bad)?;
                let lo = bytes
                    .next()
                    .and_then(|c| (c as char).to_digit(16))
                    .ok_or_else(bad)?;
                out.push((hi * 16 + lo) as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Tags as the S3 XML carries them (`TagSet`); a tag without a key is refused.
pub(crate) fn tags_of_set(set: Vec<dto::Tag>) -> S3Result<Vec<(String, String)>> {
    set.into_iter()
        .map(|t| match t.key {
            Some(k) => Ok((k, t.value.unwrap_or_default())),
            None => Err(s3_error!(InvalidTag, "a tag has no key")),
        })
        .collect()
}

pub(crate) fn tag_set(tags: &[(String, String)]) -> Vec<dto::Tag> {
    tags.iter()
        .map(|(k, v)| dto::Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slashes_and_escapes_the_rest() {
        assert_eq!(url_encode("a b/ü+c"), "a%20b/%C3%BC%2Bc");
    }

    #[test]
    fn tagging_headers_parse_like_query_strings() {
        assert_eq!(
            tags_of_header(Some("team=ml&note=a%20b+c&empty=")).unwrap(),
            vec![
                ("team".to_owned(), "ml".to_owned()),
                ("note".to_owned(), "a b c".to_owned()),
                ("empty".to_owned(), String::new())
            ]
        );
        assert!(tags_of_header(None).unwrap().is_empty());
        assert!(tags_of_header(Some("bad=%zz")).is_err());
    }

    #[test]
    fn timestamps_round_trip_in_milliseconds() {
        assert_eq!(millis(&timestamp(1_700_000_000_123)), 1_700_000_000_123);
    }
}
