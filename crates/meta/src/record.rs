//! On-disk record types. Every record is stored as one format-version byte followed by the
//! postcard encoding of the type (varints, little-endian, field order as declared). A change of
//! any type here bumps [`FORMAT_VERSION`] and keeps a decoder for the old version.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::MetaError;

/// Version 2 added [`Payload::Stripes`] (erasure-coded and replicated chunks across drives);
/// the change only appends an enum variant, so version-1 records decode with the same types.
/// Version 3 added `tags` to [`ObjectDetails`] and [`UploadRecord`]; older object and upload
/// records decode through their version-2 layout in [`legacy`].
pub const FORMAT_VERSION: u8 = 3;
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

fn body(bytes: &[u8]) -> Result<&[u8], MetaError> {
    split(bytes).map(|(_, body)| body)
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
    postcard::take_from_bytes(body(bytes)?)
        .map(|(summary, _rest)| summary)
        .map_err(|e| MetaError::Corrupt(e.to_string()))
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

/// What a listing shows of an object; encoded first in [`ObjectRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectSummary {
    pub size: u64,
    /// The ETag without quotes.
    pub etag: String,
    pub last_modified_ms: i64,
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

impl Record for BucketRecord {}
impl Record for PartRecord {}
impl Record for Tags {}
impl Record for Vec<CorsRule> {}

impl Record for ObjectRecord {
    fn decode_older(_version: u8, body: &[u8]) -> Result<Self, MetaError> {
        let old: legacy::ObjectRecordV2 = from_postcard(body)?;
        Ok(Self {
            summary: old.summary,
            details: ObjectDetails {
                headers: old.details.headers,
                user_metadata: old.details.user_metadata,
                checksums: old.details.checksums,
                part_sizes: old.details.part_sizes,
                payload: old.details.payload,
                tags: Vec::new(),
            },
        })
    }
}

impl Record for UploadRecord {
    fn decode_older(_version: u8, body: &[u8]) -> Result<Self, MetaError> {
        let old: legacy::UploadRecordV2 = from_postcard(body)?;
        Ok(Self {
            initiated_ms: old.initiated_ms,
            headers: old.headers,
            user_metadata: old.user_metadata,
            checksum_algorithm: old.checksum_algorithm,
            tags: Vec::new(),
        })
    }
}

/// Layouts of format versions 1 and 2 that version 3 changed.
mod legacy {
    use super::*;

    #[derive(Deserialize)]
    pub(super) struct ObjectRecordV2 {
        pub summary: ObjectSummary,
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
                last_modified_ms: 1_700_000_000_000
            }
        );
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
