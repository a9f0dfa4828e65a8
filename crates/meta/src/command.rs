//! The commands of the metadata state machine. Each is applied atomically; a command that is
//! refused (its error is returned) changes nothing.

use crate::MetaError;
use crate::acl::{Acl, BucketAccess, PublicAccessBlock};
use crate::catalog::CatalogCommand;
use crate::record::{
    BucketLogging, BucketRecord, Checksum, CorsRule, DefaultEncryption, LifecycleRule,
    ObjectLockConfig, ObjectRecord, PartRecord, Retention, StripeRef, Tags, UploadRecord,
    VersioningState,
};
use crate::store::PayloadOwner;
use serde::{Deserialize, Serialize};

/// A condition on the current object, checked inside the transaction that writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precondition {
    /// `If-None-Match: *` — the key must not exist.
    IfNoneMatchAny,
    /// `If-None-Match: <etag>` — the key must not exist with this ETag (unquoted).
    IfNoneMatch(String),
    /// `If-Match: <etag>` — the key must exist with this ETag (unquoted; `*` means any).
    IfMatch(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletePart {
    pub part_number: u32,
    /// Unquoted ETag as the client sent it.
    pub etag: String,
    /// The part's stored checksum the object's checksum was computed from: the command fails
    /// (`InvalidPart`) if the part no longer has it.
    pub checksum: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// With `object_lock`, the bucket starts with versioning enabled and object lock on.
    /// `access`: its owner, ACL and ownership setting (`None`: owned by the root user, ACLs
    /// disabled).
    CreateBucket {
        name: String,
        record: BucketRecord,
        object_lock: bool,
        access: Option<BucketAccess>,
    },
    /// Refused with `InvalidBucketState` when suspending a bucket with object lock.
    SetVersioning {
        bucket: String,
        state: VersioningState,
    },
    /// Turns object lock on (versioning must be enabled) and sets its default retention.
    SetObjectLockConfig {
        bucket: String,
        config: ObjectLockConfig,
    },
    /// Sets (or with `None` removes) a bucket's policy (JSON, validated by the caller).
    SetBucketPolicy {
        bucket: String,
        policy: Option<String>,
    },
    /// Stores (or with `None` removes) one identity record (a user or an access key): the
    /// metadata keeps them opaque, so they replicate with everything else.
    SetIdentity { key: String, value: Option<Vec<u8>> },
    /// Sets (or with `None` removes) a bucket's default encryption.
    SetBucketEncryption {
        bucket: String,
        config: Option<DefaultEncryption>,
    },
    /// Replaces (or with `None` removes) a bucket's lifecycle rules.
    SetLifecycle {
        bucket: String,
        rules: Option<Vec<LifecycleRule>>,
    },
    /// Refused with `BucketNotEmpty` while objects remain; pending uploads are aborted with it.
    DeleteBucket { name: String },
    /// Replaces (or with `None` removes) a bucket's tag set.
    SetBucketTags { bucket: String, tags: Option<Tags> },
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
    /// Replaces the tag set of an existing object version (`None`: the current one).
    SetObjectTags {
        bucket: String,
        key: String,
        version_id: Option<String>,
        tags: Tags,
    },
    /// Sets or removes a version's retention. Shortening or removing a governance retention
    /// needs `bypass_governance`; a compliance retention can only be extended.
    SetRetention {
        bucket: String,
        key: String,
        version_id: Option<String>,
        retention: Option<Retention>,
        bypass_governance: bool,
        now_ms: i64,
    },
    SetLegalHold {
        bucket: String,
        key: String,
        version_id: Option<String>,
        on: bool,
    },
    /// Makes `record` the current version. `record.summary.version_id` is the id to use if
    /// the bucket has versioning enabled; otherwise it becomes the null version, replacing
    /// the old one. `Outcome::version_id` says which.
    PutObject {
        bucket: String,
        key: String,
        record: ObjectRecord,
        precondition: Option<Precondition>,
    },
    /// Deletes `version_id` for good (`"null"` names the null version), or without one,
    /// removes the null version of an unversioned bucket or writes a delete marker (with id
    /// `marker_version_id` if versioning is enabled). Versions under object lock are refused.
    DeleteObject {
        bucket: String,
        key: String,
        version_id: Option<String>,
        marker_version_id: String,
        bypass_governance: bool,
        now_ms: i64,
        /// Applies only if the version addressed (or, without `version_id`, the current one)
        /// was last modified at this time: how lifecycle expiry avoids racing an overwrite.
        if_modified_ms: Option<i64>,
    },
    /// Removes the current version of a key if it is a delete marker with no other version
    /// left (lifecycle's `ExpiredObjectDeleteMarker`).
    RemoveExpiredDeleteMarker { bucket: String, key: String },
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
    /// Removes garbage entries whose files the collector deleted.
    ForgetGarbage { ids: Vec<u64> },
    /// Stores (or with `None` removes) one cluster-wide value that is not a bucket's (the
    /// SSE master keys): replicated with everything else. With `if_absent`, a value already
    /// there stays (the first of several nodes proposing one wins).
    SetClusterValue {
        key: String,
        value: Option<Vec<u8>>,
        if_absent: bool,
    },
    /// Replaces a bucket's ACL and ownership setting (Put/DeleteBucketOwnershipControls,
    /// PutBucketAcl).
    SetBucketAccess {
        bucket: String,
        access: BucketAccess,
    },
    /// Sets (or with `None` removes) a bucket's public access block.
    SetPublicAccessBlock {
        bucket: String,
        block: Option<PublicAccessBlock>,
    },
    /// Replaces the ACL of an existing object version (`None`: the current one).
    SetObjectAcl {
        bucket: String,
        key: String,
        version_id: Option<String>,
        acl: Acl,
    },
    /// Stores one identity record that must not exist yet (`PreconditionFailed` if it does):
    /// of several writers racing to create it, exactly one wins, the others read the winner's.
    CreateIdentity { key: String, value: Vec<u8> },
    /// Sets (or with `None` removes) where a bucket's access logs go.
    SetBucketLogging {
        bucket: String,
        config: Option<BucketLogging>,
    },
    /// Changes a bucket's Iceberg catalog.
    Catalog(CatalogCommand),
    /// Applies `command` (a `PutObject` or `PutPart`) and notes, in the same transaction,
    /// that these stripes it publishes were written with shards missing: the leader's healer
    /// rebuilds them once their drives answer (see the missed-shards table).
    WithMissedShards {
        command: Box<Command>,
        stripes: Vec<[u8; 16]>,
    },
    /// Removes entries of the missed-shards table: their stripes were healed or are gone.
    ForgetMissedShards { stripes: Vec<[u8; 16]> },
}

/// The one encoding of commands on the wire and in a replicated log: a format byte, then
/// postcard. A build refuses formats it does not know rather than misread them. Format 2
/// added ACLs to object and upload records and to `CreateBucket`; format-1 entries (logs of
/// clusters formed before it) are refused, not misread. Format 3 appended `kms_key_id` to
/// [`DefaultEncryption`], the last field of `SetBucketEncryption`, and the `Kms` variant of
/// `Encryption`: a format-2 entry decodes with one zero byte appended (postcard ignores what
/// follows a complete value, so only that command reads it, as `None`).
const COMMAND_FORMAT: u8 = 3;
const COMMAND_FORMAT_BEFORE_KMS: u8 = 2;

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![COMMAND_FORMAT];
        // Serializing plain data into a Vec cannot fail.
        out.extend(postcard::to_stdvec(self).unwrap_or_default());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, MetaError> {
        match bytes.split_first() {
            Some((&COMMAND_FORMAT, rest)) => {
                postcard::from_bytes(rest).map_err(|e| MetaError::Corrupt(format!("command: {e}")))
            }
            Some((&COMMAND_FORMAT_BEFORE_KMS, rest)) => {
                postcard::from_bytes(&crate::record::appended_zeros(rest, 1))
                    .map_err(|e| MetaError::Corrupt(format!("command: {e}")))
            }
            Some((&other, _)) => Err(MetaError::UnsupportedFormat(other)),
            None => Err(MetaError::Corrupt("empty command".into())),
        }
    }

    /// Gives the command's clock readings the time `at_ms`: a replicated command is stamped
    /// by the Raft leader when it is proposed, so every replica applies the same time.
    pub fn stamp(&mut self, at_ms: i64) {
        match self {
            Command::DeleteObject { now_ms, .. } | Command::SetRetention { now_ms, .. } => {
                *now_ms = at_ms;
            }
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// The version id to use if the bucket has versioning enabled.
    pub version_id: String,
    /// The object's checksum, computed by the caller from the parts' (see
    /// [`CompletePart::checksum`]).
    pub checksum: Option<Checksum>,
}

/// What a command did. `garbage` lists chunks no record references any more: the state
/// machine records them in its garbage table in the same transaction, and the collector
/// deletes their files once no read can need them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub garbage: Vec<StripeRef>,
    /// For `CompleteUpload`: the object as written.
    pub object: Option<ObjectRecord>,
    /// For `DeleteObject`: whether an object was there.
    pub existed: bool,
    /// For writes and deletes: the version written, deleted or created as a delete marker
    /// (`"null"` for the null version).
    pub version_id: Option<String>,
    /// For `DeleteObject`: a delete marker was created or deleted.
    pub delete_marker: bool,
}

impl Command {
    /// The stripes the record this command writes references (none for most commands).
    pub(crate) fn published_stripes(&self) -> Vec<StripeRef> {
        match self {
            Command::PutObject { record, .. } => record.details.payload.stripes(),
            Command::PutPart { record, .. } => record.payload.stripes(),
            Command::WithMissedShards { command, .. } => command.published_stripes(),
            _ => Vec::new(),
        }
    }
}

impl Outcome {
    pub(crate) fn garbage_of_part(record: Option<&PartRecord>) -> Vec<StripeRef> {
        record.map(|r| r.payload.stripes()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_2_bucket_encryption_command_reads_without_a_kms_key() {
        let command = Command::SetBucketEncryption {
            bucket: "b".into(),
            config: Some(DefaultEncryption {
                bucket_key_enabled: true,
                kms_key_id: None,
            }),
        };
        let mut bytes = command.encode();
        // Format 2 had no `kms_key_id`: the same bytes without its `None`.
        assert_eq!(bytes.pop(), Some(0));
        bytes[0] = COMMAND_FORMAT_BEFORE_KMS;
        match Command::decode(&bytes).unwrap() {
            Command::SetBucketEncryption { bucket, config } => {
                assert_eq!(bucket, "b");
                assert_eq!(
                    config,
                    Some(DefaultEncryption {
                        bucket_key_enabled: true,
                        kms_key_id: None
                    })
                );
            }
            other => panic!("{other:?}"),
        }
        let removal = Command::SetBucketEncryption {
            bucket: "b".into(),
            config: None,
        };
        let mut bytes = removal.encode();
        bytes[0] = COMMAND_FORMAT_BEFORE_KMS;
        assert!(matches!(
            Command::decode(&bytes).unwrap(),
            Command::SetBucketEncryption { config: None, .. }
        ));
        assert!(matches!(
            Command::decode(&[1, 0]),
            Err(MetaError::UnsupportedFormat(1))
        ));
    }
}
