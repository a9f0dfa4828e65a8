//! Basalt's object semantics: buckets, objects, multipart uploads and conditional writes, over
//! the metadata state machine (`basalt-meta`) and the chunk data path (`basalt-data`).
//!
//! It knows nothing of HTTP. A write is two steps: [`ObjectStore::stage`] streams a body into
//! durable chunks (or keeps a small one for inline storage) while hashing it, and a commit makes
//! it visible with one metadata command. Between them the caller checks the digests the client
//! promised (Content-MD5, flexible checksums, trailers); a stage that is dropped uncommitted
//! deletes its chunks.

mod access;
mod bucket_logging;
mod catalog;
mod crypto;
mod digest;
mod error;
mod garbage;
mod identity;
mod kms;
mod lifecycle;
mod maintenance;
mod missed_shards;
mod secret;
mod stage;
mod store;
mod supervisor;
mod tags;
mod versions;

pub use basalt_data::Redundancy;
pub use basalt_data::trace_context;
pub use basalt_meta::read_fence;
pub use basalt_meta::{
    Acl, AclGrant, BucketAccess, BucketLogging, CatalogCommand, CatalogError, Checksum,
    ChecksumAlgorithm, CompletePart, CorsRule, DefaultEncryption, DefaultRetention, Encryption,
    Grantee, LifecycleRule, ListEntry, ListPage, NULL_VERSION, ObjectLock, ObjectLockConfig,
    ObjectOwnership, ObjectRecord, ObjectSummary, Owner, PartListing, Permission, Precondition,
    PublicAccessBlock, Retention, RetentionMode, StandardHeaders, Tags, UploadListing, UploadPage,
    UploadRecord, VersionEntry, VersionPage, VersioningState,
};
pub use basalt_meta::{
    Namespace, NamespaceRecord, TableRecord, TableRequirement, TableState, check_catalog_name,
    namespace_name,
};
pub use crypto::{CustomerKey, DataKey, MasterKeys, SEAL_OVERHEAD};
pub use digest::Digests;
pub use error::ObjectError;
pub use garbage::GarbageReport;
pub use identity::{AccessKeyInfo, IssuedSession, Session, User, sha256_hex};
pub use kms::{
    BuiltinKms, DEFAULT_KEY_ALIAS, KeyManager, KmsKey, WrappedDataKey, encryption_context,
};
pub use lifecycle::{DAY, LifecycleReport, LifecycleSchedule, LifecycleStatus};
pub use maintenance::{
    DriveStatus, FsckReport, HealerStats, MaintenanceStatus, ScrubSchedule, SweepMode, SweepReport,
};
pub use missed_shards::{MissedShardsPass, MissedShardsStatus};
pub use secret::Secret;
pub use stage::Staged;
pub use store::{
    ByteStream, DeleteRequest, Deleted, KmsRequest, ObjectConfig, ObjectStore, ObjectWrite, Sse,
    is_valid_version_id, new_uuid, new_version_id, now_ms,
};
pub use tags::{MAX_BUCKET_TAGS, MAX_OBJECT_TAGS, validate_tags};
pub use versions::MAX_LIFECYCLE_RULES;
