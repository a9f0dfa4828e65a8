//! The commands of the metadata state machine. Each is applied atomically; a command that is
//! refused (its error is returned) changes nothing.

use crate::record::{
    BucketRecord, CorsRule, ObjectRecord, PartRecord, StripeRef, Tags, UploadRecord,
};
use crate::store::PayloadOwner;

/// A condition on the current object, checked inside the transaction that writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// `If-None-Match: *` — the key must not exist.
    IfNoneMatchAny,
    /// `If-Match: <etag>` — the key must exist with this ETag (unquoted; `*` means any).
    IfMatch(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletePart {
    pub part_number: u32,
    /// Unquoted ETag as the client sent it.
    pub etag: String,
}

#[derive(Debug, Clone)]
pub enum Command {
    CreateBucket {
        name: String,
        record: BucketRecord,
    },
    /// Refused with `BucketNotEmpty` while objects remain; pending uploads are aborted with it.
    DeleteBucket {
        name: String,
    },
    /// Replaces (or with `None` removes) a bucket's tag set.
    SetBucketTags {
        bucket: String,
        tags: Option<Tags>,
    },
    /// Replaces (or with `None` removes) a bucket's CORS rules.
    SetBucketCors {
        bucket: String,
        rules: Option<Vec<CorsRule>>,
    },
    /// Points shards of one stripe at the drives a heal rebuilt them on: `moves` are (shard,
    /// from drive, to drive). Applied only if the owner's record still holds the stripe with
    /// those shards on the `from` drives (`Outcome::existed` says whether it was).
    MoveShards {
        owner: PayloadOwner,
        stripe: [u8; 16],
        moves: Vec<(usize, u16, u16)>,
    },
    /// Replaces the tag set of an existing object.
    SetObjectTags {
        bucket: String,
        key: String,
        tags: Tags,
    },
    PutObject {
        bucket: String,
        key: String,
        record: ObjectRecord,
        precondition: Option<Precondition>,
    },
    DeleteObject {
        bucket: String,
        key: String,
    },
    CreateUpload {
        bucket: String,
        key: String,
        upload_id: String,
        record: UploadRecord,
    },
    PutPart {
        bucket: String,
        key: String,
        upload_id: String,
        part_number: u32,
        record: PartRecord,
    },
    /// Assembles the listed parts into the object; unlisted parts are dropped.
    CompleteUpload(CompleteUpload),
    AbortUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
}

#[derive(Debug, Clone)]
pub struct CompleteUpload {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub parts: Vec<CompletePart>,
    pub min_part_size: u64,
    pub last_modified_ms: i64,
    /// The multipart ETag, computed by the caller from the listed part ETags (which must
    /// equal the stored ones for the command to succeed).
    pub etag: String,
    pub precondition: Option<Precondition>,
}

/// What a command did. `garbage` lists chunks no record references any more: the caller
/// deletes their files once the command is durable.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub garbage: Vec<StripeRef>,
    /// For `CompleteUpload`: the object as written.
    pub object: Option<ObjectRecord>,
    /// For `DeleteObject`: whether an object was there.
    pub existed: bool,
}

impl Outcome {
    pub(crate) fn garbage_of(record: Option<&ObjectRecord>) -> Vec<StripeRef> {
        record
            .map(|r| r.details.payload.stripes())
            .unwrap_or_default()
    }

    pub(crate) fn garbage_of_part(record: Option<&PartRecord>) -> Vec<StripeRef> {
        record.map(|r| r.payload.stripes()).unwrap_or_default()
    }
}
