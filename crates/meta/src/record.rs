//! On-disk record types. Every record is stored as one format-version byte followed by the
//! postcard encoding of the type (varints, little-endian, field order as declared). A change of
//! any type here bumps [`FORMAT_VERSION`] and keeps a decoder for the old version.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::MetaError;
use crate::acl::Acl;

/// Version 2 added [`Payload::Stripes`] (erasure-coded and replicated chunks across drives);
/// the change only appends an enum variant, so version-1 records decode with the same types.
/// Version 3 added `tags` to [`ObjectDetails`] and [`UploadRecord`]; older object and upload
/// records decode through their version-2 layout in [`legacy`].
/// Version 4 added versioning, object lock and encryption at rest: `version_id` and
/// `delete_marker` to [`ObjectSummary`], `lock` and `encryption` to [`ObjectDetails`] and
/// [`UploadRecord`].
/// Version 5 appended `acl` and `part_checksums` to [`ObjectDetails`], and `acl` and
/// `full_object_checksum` to [`UploadRecord`]: they end both records, so a version-4 body is a
/// version-5 body without them, read as `None`, empty and `false`.
/// Version 6 added SSE-KMS: the [`Encryption::Kms`] variant (appended, so older object and
/// upload bodies decode unchanged) and `kms_key_id` at the end of [`DefaultEncryption`] (an
/// older body is read with it `None`).
pub const FORMAT_VERSION: u8 = 6;
const OLDEST_READABLE_VERSION: u8 = 1;

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    // Serializing plain data into a Vec cannot fail: postcard fails only on a full buffer or
    // on types it cannot represent (none here).
    let body = postcard::to_stdvec(value).expect("metadata records are postcard-serializable");
    out.extend_from_slice(&body);
    out
}

/// The format version of a record and its body.
fn split(bytes: &[u8]) -> Result<(u8, &[u8]), MetaError> {
    match bytes.split_first() {
        Some((&v, rest)) if (OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&v) => {
            Ok((v, rest))
        }
        Some((&v, _)) => Err(MetaError::UnsupportedFormat(v)),
        None => Err(MetaError::Corrupt("empty record".into())),
    }
}

fn from_postcard<T: DeserializeOwned>(body: &[u8]) -> Result<T, MetaError> {
    postcard::from_bytes(body).map_err(|e| MetaError::Corrupt(e.to_string()))
}

/// A stored record type: how to read each format version still readable.
pub(crate) trait Record: DeserializeOwned {
    /// Decodes the body of a record written with an older `version`; by default its layout
    /// did not change.
    fn decode_older(_version: u8, body: &[u8]) -> Result<Self, MetaError> {
        from_postcard(body)
    }
}

pub(crate) fn decode<T: Record>(bytes: &[u8]) -> Result<T, MetaError> {
    match split(bytes)? {
        (FORMAT_VERSION, body) => from_postcard(body),
        (version, body) => T::decode_older(version, body),
    }
}

/// Tags as S3 keeps them: (key, value) pairs in the order given.
pub type Tags = Vec<(String, String)>;

/// One rule of a bucket's CORS configuration, as S3 defines it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    pub id: Option<String>,
    /// Origins, each with at most one `*` wildcard.
    pub allowed_origins: Vec<String>,
    /// GET, PUT, POST, DELETE or HEAD.
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for, each with at most one `*` wildcard.
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<i32>,
}

/// Decodes only the leading [`ObjectSummary`] of an object record: listings never pay for the
/// rest (chunk lists, inline data).
pub(crate) fn decode_summary(bytes: &[u8]) -> Result<ObjectSummary, MetaError> {
    let (version, body) = split(bytes)?;
    let corrupt = |e: postcard::Error| MetaError::Corrupt(e.to_string());
    // Version 4 gave the summary its current layout.
    if version >= 4 {
        return postcard::take_from_bytes(body)
            .map(|(summary, _rest)| summary)
            .map_err(corrupt);
    }
    postcard::take_from_bytes::<legacy::ObjectSummaryV3>(body)
        .map(|(old, _rest)| old.into())
        .map_err(corrupt)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub created_ms: i64,
}

/// A chunk file on the node's only drive (format version 1); read as shard 0 of a stripe
/// with [`Codec::None`] on drive 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: [u8; 16],
    pub len: u32,
    pub crc32c: u32,
}

/// How a stripe's shards were made from its chunk. Recorded per stripe, so a change of the
/// node's policy never affects data already written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    /// One shard: the chunk.
    None,
    /// Identical copies.
    Replica { copies: u8 },
    /// Reed–Solomon over GF(2^16) in the Leopard-RS construction, as `reed-solomon-simd` 3
    /// computes it: `data` shards (the chunk cut in equal, even-length pieces, the last
    /// zero-padded) then `parity` recovery shards.
    ReedSolomonLeopard { data: u8, parity: u8 },
}

/// Where one shard of a stripe was written and its CRC32C.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRef {
    /// Index of the drive in the node's drive set.
    pub drive: u16,
    pub crc32c: u32,
}

/// One chunk of an object, stored as a stripe of shards on distinct drives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeRef {
    /// Shard `i`'s file id is this id with its last byte XORed with `i`.
    pub id: [u8; 16],
    /// Bytes of the chunk.
    pub len: u32,
    pub codec: Codec,
    /// In shard order: data shards, then parity.
    pub shards: Vec<ShardRef>,
}

impl From<&ChunkRef> for StripeRef {
    fn from(c: &ChunkRef) -> Self {
        Self {
            id: c.id,
            len: c.len,
            codec: Codec::None,
            shards: vec![ShardRef {
                drive: 0,
                crc32c: c.crc32c,
            }],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Small objects live in their record: one metadata commit, no chunk file. Encoded as a
    /// byte string (the same bytes postcard gives a sequence of `u8`, without a per-byte call).
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Chunk files on one drive (format version 1).
    Chunks(Vec<ChunkRef>),
    /// Chunks as stripes across drives (format version 2).
    Stripes(Vec<StripeRef>),
}

impl Payload {
    /// The payload's chunks as stripes, in object order (version-1 chunks converted).
    pub fn stripes(&self) -> Vec<StripeRef> {
        match self {
            Payload::Inline(_) => Vec::new(),
            Payload::Chunks(c) => c.iter().map(StripeRef::from).collect(),
            Payload::Stripes(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

/// A flexible checksum as S3 returns it: base64 of the digest, with `-N` for composite
/// multipart checksums.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandardHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub expires_ms: Option<i64>,
}

/// What a listing shows of an object version; encoded first in [`ObjectRecord`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectSummary {
    pub size: u64,
    /// The ETag without quotes.
    pub etag: String,
    pub last_modified_ms: i64,
    /// `None` is the null version: the only one of an unversioned bucket.
    pub version_id: Option<String>,
    /// A delete marker: no data; the key reads as deleted while it is the current version.
    pub delete_marker: bool,
}

impl ObjectSummary {
    /// The version id as S3 shows it: `null` for the null version.
    pub fn version_name(&self) -> &str {
        self.version_id.as_deref().unwrap_or(NULL_VERSION)
    }
}

/// How S3 names the version of an object written while versioning was off or suspended.
pub const NULL_VERSION: &str = "null";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionMode {
    /// Removable or shortened only with `x-amz-bypass-governance-retention`.
    Governance,
    /// Nobody can shorten or remove it, root included, until it passes.
    Compliance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: RetentionMode,
    /// Milliseconds since the Unix epoch.
    pub until_ms: i64,
}

/// How an object's chunks are encrypted at rest (AES-256-GCM, a data key per object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encryption {
    /// SSE-S3: the data key, sealed by the node's master key `key_id`.
    Managed {
        key_id: String,
        #[serde(with = "serde_bytes")]
        wrapped_key: Vec<u8>,
    },
    /// SSE-C: the data key is derived from the customer's key and `salt`; the key itself is
    /// never stored, only a check value that tells a wrong key from damaged data.
    Customer {
        salt: [u8; 16],
        key_check: [u8; 32],
        /// Base64 of the key's MD5, as S3 echoes it back.
        key_md5: String,
    },
    /// SSE-KMS: the data key, wrapped by version `key_version` of the key manager's key
    /// `key_id` and bound to `context` (the encryption context as canonical JSON, which the
    /// key manager needs again to unwrap it).
    Kms {
        key_id: String,
        key_version: u32,
        #[serde(with = "serde_bytes")]
        wrapped_key: Vec<u8>,
        context: String,
        /// Written with an S3 Bucket Key (`x-amz-server-side-encryption-bucket-key-enabled`):
        /// the context names the bucket, not the object.
        bucket_key: bool,
    },
}

/// A bucket's default encryption (PutBucketEncryption): SSE-S3, or SSE-KMS under
/// `kms_key_id`, for every new object that asks for none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultEncryption {
    pub bucket_key_enabled: bool,
    /// SSE-KMS with this key (an id, ARN or alias as configured); `None`: SSE-S3.
    pub kms_key_id: Option<String>,
}

/// Where a bucket's server access logs go (PutBucketLogging).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketLogging {
    pub target_bucket: String,
    pub target_prefix: String,
    /// `TargetObjectKeyFormat`: `None` for SimplePrefix; for PartitionedPrefix, whether the
    /// date in the key is the event's (`true`) or the delivery's.
    pub partitioned_by_event_time: Option<bool>,
}

/// The object-lock state of one version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLock {
    pub retention: Option<Retention>,
    pub legal_hold: bool,
}

impl ObjectLock {
    /// Whether the version is protected at `now_ms` against a delete with (or without) the
    /// governance bypass.
    pub fn protects(&self, now_ms: i64, bypass_governance: bool) -> bool {
        self.legal_hold
            || self.retention.is_some_and(|r| {
                r.until_ms > now_ms && !(r.mode == RetentionMode::Governance && bypass_governance)
            })
    }
}

/// A bucket's versioning state; a bucket that never had one is unversioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersioningState {
    Enabled,
    Suspended,
}

/// A bucket default retention: applied to every new version that names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    pub mode: RetentionMode,
    /// As configured: exactly one of the two.
    pub days: Option<u32>,
    pub years: Option<u32>,
}

impl DefaultRetention {
    pub fn period_ms(&self) -> i64 {
        const DAY_MS: i64 = 86_400_000;
        i64::from(self.days.unwrap_or(0)) * DAY_MS
            + i64::from(self.years.unwrap_or(0)) * 365 * DAY_MS
    }
}

/// The object-lock configuration of a bucket that has object lock enabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLockConfig {
    pub default_retention: Option<DefaultRetention>,
}

/// One lifecycle rule, in the parts Basalt applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    pub id: Option<String>,
    pub enabled: bool,
    /// The filter: keys with this prefix carrying every one of these tags.
    pub prefix: String,
    pub tags: Tags,
    /// Whether the filter was given as `<Filter>` (otherwise the legacy `<Prefix>`).
    pub has_filter: bool,
    pub expiration_days: Option<u32>,
    /// Milliseconds since the Unix epoch (a midnight UTC).
    pub expiration_date_ms: Option<i64>,
    pub expired_object_delete_marker: bool,
    pub noncurrent_days: Option<u32>,
    pub newer_noncurrent_versions: Option<u32>,
    pub abort_incomplete_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDetails {
    pub headers: StandardHeaders,
    pub user_metadata: Vec<(String, String)>,
    pub checksums: Vec<Checksum>,
    /// Sizes of the parts of a multipart object, in order; empty for a single PUT.
    pub part_sizes: Vec<u64>,
    pub payload: Payload,
    pub tags: Tags,
    pub lock: ObjectLock,
    pub encryption: Option<Encryption>,
    /// The version's own ACL, where the bucket's ownership setting lets ACLs count; `None`:
    /// owned by the bucket's owner, `private`.
    pub acl: Option<Acl>,
    /// The checksums of a multipart object's parts, in order, where its upload had a checksum
    /// algorithm (the object's own is in `checksums`); empty otherwise.
    pub part_checksums: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub summary: ObjectSummary,
    pub details: ObjectDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub initiated_ms: i64,
    pub headers: StandardHeaders,
    pub user_metadata: Vec<(String, String)>,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    /// Given at creation (`x-amz-tagging`), applied to the completed object.
    pub tags: Tags,
    /// Given at creation (`x-amz-object-lock-*`), applied to the completed object.
    pub lock: ObjectLock,
    /// How the parts (and so the completed object) are encrypted.
    pub encryption: Option<Encryption>,
    /// The version's own ACL, where the bucket's ownership setting lets ACLs count; `None`:
    /// owned by the bucket's owner, `private`.
    pub acl: Option<Acl>,
    /// The upload's checksum is of the whole object (`ChecksumType` FULL_OBJECT), not a
    /// checksum of its parts' checksums (COMPOSITE).
    pub full_object_checksum: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub size: u64,
    /// The part's ETag (MD5 hex) without quotes.
    pub etag: String,
    pub last_modified_ms: i64,
    pub checksum: Option<Checksum>,
    pub payload: Payload,
}

/// Stripes freed together by one command, and when (the time the command was stamped with).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarbageRecord {
    pub freed_ms: i64,
    pub stripes: Vec<StripeRef>,
}

/// A stripe published with shards missing (their node or drive did not take them): owed a
/// heal. The owner is the record that holds the stripe, kept current by the state machine as
/// parts become an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissedShards {
    pub owner: crate::store::PayloadOwner,
    /// When the command that published the stripe was stamped.
    pub noted_ms: i64,
}

impl Record for GarbageRecord {}
impl Record for MissedShards {}
impl Record for BucketRecord {}
impl Record for PartRecord {}
impl Record for Tags {}
impl Record for Vec<CorsRule> {}
impl Record for VersioningState {}
impl Record for ObjectLockConfig {}
impl Record for Vec<LifecycleRule> {}
impl Record for DefaultEncryption {
    fn decode_older(_version: u8, body: &[u8]) -> Result<Self, MetaError> {
        // Before version 6 the struct ended before `kms_key_id`: one zero byte reads as `None`.
        from_postcard(&appended_zeros(body, 1))
    }
}
impl Record for String {}
impl Record for BucketLogging {}

/// An older body with the fields a later version appended at its end, each encoded as one
/// zero byte (`None`, `false` or an empty sequence).
pub(crate) fn appended_zeros(body: &[u8], appended_fields: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(body.len() + appended_fields);
    bytes.extend_from_slice(body);
    bytes.resize(body.len() + appended_fields, 0);
    bytes
}

impl Record for ObjectRecord {
    fn decode_older(version: u8, body: &[u8]) -> Result<Self, MetaError> {
        match version {
            5 => return from_postcard(body),
            4 => return from_postcard(&appended_zeros(body, 2)),
            _ => {}
        }
        let old = if version == 3 {
            from_postcard::<legacy::ObjectRecordV3>(body)?
        } else {
            let v2: legacy::ObjectRecordV2 = from_postcard(body)?;
            legacy::ObjectRecordV3 {
                summary: v2.summary,
                details: legacy::ObjectDetailsV3 {
                    headers: v2.details.headers,
                    user_metadata: v2.details.user_metadata,
                    checksums: v2.details.checksums,
                    part_sizes: v2.details.part_sizes,
                    payload: v2.details.payload,
                    tags: Vec::new(),
                },
            }
        };
        Ok(Self {
            summary: old.summary.into(),
            details: ObjectDetails {
                headers: old.details.headers,
                user_metadata: old.details.user_metadata,
                checksums: old.details.checksums,
                part_sizes: old.details.part_sizes,
                payload: old.details.payload,
                tags: old.details.tags,
                lock: ObjectLock::default(),
                encryption: None,
                acl: None,
                part_checksums: Vec::new(),
            },
        })
    }
}

impl Record for UploadRecord {
    fn decode_older(version: u8, body: &[u8]) -> Result<Self, MetaError> {
        match version {
            5 => return from_postcard(body),
            4 => return from_postcard(&appended_zeros(body, 2)),
            _ => {}
        }
        let old = if version == 3 {
            from_postcard::<legacy::UploadRecordV3>(body)?
        } else {
            let v2: legacy::UploadRecordV2 = from_postcard(body)?;
            legacy::UploadRecordV3 {
                initiated_ms: v2.initiated_ms,
                headers: v2.headers,
                user_metadata: v2.user_metadata,
                checksum_algorithm: v2.checksum_algorithm,
                tags: Vec::new(),
            }
        };
        Ok(Self {
            initiated_ms: old.initiated_ms,
            headers: old.headers,
            user_metadata: old.user_metadata,
            checksum_algorithm: old.checksum_algorithm,
            tags: old.tags,
            lock: ObjectLock::default(),
            encryption: None,
            acl: None,
            full_object_checksum: false,
        })
    }
}

/// Layouts of older format versions that later versions changed.
mod legacy {
    use super::*;

    /// The summary of format versions 1 to 3: no versions.
    #[derive(Deserialize)]
    pub(super) struct ObjectSummaryV3 {
        pub size: u64,
        pub etag: String,
        pub last_modified_ms: i64,
    }

    impl From<ObjectSummaryV3> for ObjectSummary {
        fn from(old: ObjectSummaryV3) -> Self {
            Self {
                size: old.size,
                etag: old.etag,
                last_modified_ms: old.last_modified_ms,
                version_id: None,
                delete_marker: false,
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct ObjectRecordV3 {
        pub summary: ObjectSummaryV3,
        pub details: ObjectDetailsV3,
    }

    #[derive(Deserialize)]
    pub(super) struct ObjectDetailsV3 {
        pub headers: StandardHeaders,
        pub user_metadata: Vec<(String, String)>,
        pub checksums: Vec<Checksum>,
        pub part_sizes: Vec<u64>,
        pub payload: Payload,
        pub tags: Tags,
    }

    #[derive(Deserialize)]
    pub(super) struct UploadRecordV3 {
        pub initiated_ms: i64,
        pub headers: StandardHeaders,
        pub user_metadata: Vec<(String, String)>,
        pub checksum_algorithm: Option<ChecksumAlgorithm>,
        pub tags: Tags,
    }

    #[derive(Deserialize)]
    pub(super) struct ObjectRecordV2 {
        pub summary: ObjectSummaryV3,
        pub details: ObjectDetailsV2,
    }

    #[derive(Deserialize)]
    pub(super) struct ObjectDetailsV2 {
        pub headers: StandardHeaders,
        pub user_metadata: Vec<(String, String)>,
        pub checksums: Vec<Checksum>,
        pub part_sizes: Vec<u64>,
        pub payload: Payload,
    }

    #[derive(Deserialize)]
    pub(super) struct UploadRecordV2 {
        pub initiated_ms: i64,
        pub headers: StandardHeaders,
        pub user_metadata: Vec<(String, String)>,
        pub checksum_algorithm: Option<ChecksumAlgorithm>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ObjectRecord {
        ObjectRecord {
            summary: ObjectSummary {
                size: 5,
                etag: "abc".into(),
                last_modified_ms: 1_700_000_000_000,
                version_id: Some("v1".into()),
                delete_marker: false,
            },
            details: ObjectDetails {
                headers: StandardHeaders {
                    content_type: Some("text/plain".into()),
                    ..Default::default()
                },
                user_metadata: vec![("k".into(), "v".into())],
                checksums: vec![Checksum {
                    algorithm: ChecksumAlgorithm::Crc32,
                    value: "AAAAAA==".into(),
                }],
                part_sizes: vec![],
                payload: Payload::Inline(b"hello".to_vec()),
                tags: vec![("team".into(), "ml".into())],
                lock: ObjectLock {
                    retention: Some(Retention {
                        mode: RetentionMode::Compliance,
                        until_ms: 5,
                    }),
                    legal_hold: true,
                },
                encryption: Some(Encryption::Managed {
                    key_id: "k1".into(),
                    wrapped_key: vec![1, 2, 3],
                }),
                acl: Some(Acl::private(crate::acl::Owner {
                    id: "c0ffee".into(),
                    display_name: "ana".into(),
                })),
                part_checksums: vec!["AAAAAA==".into()],
            },
        }
    }

    #[test]
    fn object_record_round_trips_and_summary_decodes_alone() {
        let bytes = encode(&sample());
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<ObjectRecord>(&bytes).unwrap(), sample());
        assert_eq!(decode_summary(&bytes).unwrap(), sample().summary);
    }

    #[test]
    fn unknown_format_version_is_refused() {
        let mut bytes = encode(&sample());
        bytes[0] = 99;
        assert!(matches!(
            decode::<ObjectRecord>(&bytes),
            Err(MetaError::UnsupportedFormat(99))
        ));
        assert!(matches!(
            decode::<ObjectRecord>(&[]),
            Err(MetaError::Corrupt(_))
        ));
    }

    #[test]
    fn inline_bytes_keep_the_wire_format_of_a_u8_sequence() {
        #[derive(Serialize)]
        enum AsSequence {
            #[allow(dead_code)]
            Inline(Vec<u8>),
        }
        let bytes = vec![0u8, 1, 200, 255];
        let fast = postcard::to_stdvec(&Payload::Inline(bytes.clone())).unwrap();
        let plain = postcard::to_stdvec(&AsSequence::Inline(bytes)).unwrap();
        assert_eq!(fast, plain);
    }

    /// A record written by format version 4 (before ACLs): read with no ACL of its own.
    #[test]
    fn format_v4_fixture_still_decodes() {
        let mut expected = sample();
        expected.details.acl = None;
        expected.details.part_checksums = Vec::new();
        let fixture: &[u8] = &[
            4, 5, 3, 97, 98, 99, 128, 160, 171, 254, 249, 98, 1, 2, 118, 49, 0, 1, 10, 116, 101,
            120, 116, 47, 112, 108, 97, 105, 110, 0, 0, 0, 0, 0, 1, 1, 107, 1, 118, 1, 0, 8, 65,
            65, 65, 65, 65, 65, 61, 61, 0, 0, 5, 104, 101, 108, 108, 111, 1, 4, 116, 101, 97, 109,
            2, 109, 108, 1, 1, 10, 1, 1, 0, 2, 107, 49, 3, 1, 2, 3,
        ];
        assert_eq!(decode::<ObjectRecord>(fixture).unwrap(), expected);
        assert_eq!(decode_summary(fixture).unwrap(), expected.summary);
    }

    /// Version 6 changed neither record layout: a version-5 body is the same bytes.
    #[test]
    fn format_v5_records_still_decode() {
        let mut bytes = encode(&sample());
        bytes[0] = 5;
        assert_eq!(decode::<ObjectRecord>(&bytes).unwrap(), sample());
        // A version-5 default encryption (SSE-S3 with a bucket key) had no KMS key.
        assert_eq!(
            decode::<DefaultEncryption>(&[5, 1]).unwrap(),
            DefaultEncryption {
                bucket_key_enabled: true,
                kms_key_id: None
            }
        );
    }

    /// A record written by format version 1: every later version must still read it.
    #[test]
    fn format_v1_fixture_still_decodes() {
        let fixture: &[u8] = &[
            1, 5, 3, 97, 98, 99, 128, 160, 171, 254, 249, 98, 1, 10, 116, 101, 120, 116, 47, 112,
            108, 97, 105, 110, 0, 0, 0, 0, 0, 1, 1, 107, 1, 118, 0, 2, 3, 2, 1, 1, 7, 7, 7, 7, 7,
            7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 5, 239, 253, 182, 245, 13,
        ];
        let record: ObjectRecord = decode(fixture).unwrap();
        assert_eq!(
            record.summary,
            ObjectSummary {
                size: 5,
                etag: "abc".into(),
                last_modified_ms: 1_700_000_000_000,
                version_id: None,
                delete_marker: false,
            }
        );
        assert_eq!(decode_summary(fixture).unwrap(), record.summary);
        assert_eq!(
            record.details.headers.content_type.as_deref(),
            Some("text/plain")
        );
        assert_eq!(
            record.details.user_metadata,
            vec![("k".to_owned(), "v".to_owned())]
        );
        assert_eq!(record.details.part_sizes, vec![3, 2]);
        assert!(record.details.tags.is_empty(), "v1 records have no tags");
        assert_eq!(
            record.details.payload,
            Payload::Chunks(vec![ChunkRef {
                id: [7; 16],
                len: 5,
                crc32c: 0xdead_beef
            }])
        );
    }
}
