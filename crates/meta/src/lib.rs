//! Basalt's metadata: buckets, objects and multipart uploads in an ordered key-value store.
//!
//! The metadata is a deterministic state machine: every change is a [`Command`] applied inside
//! one transaction, and conditional writes (`If-None-Match: *`, `If-Match`) are checked there,
//! so they are atomic. On a single node the state machine runs on an embedded engine
//! ([`RedbStore`]) whose writer thread commits many commands with one fsync (group commit); in a
//! cluster the same commands are what a Raft log replicates.
//!
//! ```
//! # tokio_test_block(async {
//! use basalt_meta::{BucketRecord, Command, MetaStore, RedbStore};
//! let dir = tempfile::tempdir().unwrap();
//! let store = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
//! store.execute(Command::CreateBucket {
//!     name: "photos".into(),
//!     record: BucketRecord { created_ms: 0 },
//!     object_lock: false,
//!     access: None,
//! })
//!     .await
//!     .unwrap();
//! assert!(store.get_bucket("photos").await.unwrap().is_some());
//! # });
//! # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

mod acl;
mod catalog;
mod command;
mod error;
mod keys;
mod listing;
mod read_cache;
pub mod read_fence;
mod record;
mod redb_store;
mod replica;
mod state_machine;
mod store;
mod tables;

pub use acl::{
    Acl, AclGrant, BucketAccess, Grantee, ObjectOwnership, Owner, Permission, PublicAccessBlock,
};
pub use catalog::{
    CatalogCommand, CatalogError, Namespace, NamespaceRecord, TableRecord, TableRequirement,
    TableState, check_name as check_catalog_name, namespace_name,
};
pub use command::{Command, CompletePart, CompleteUpload, Outcome, Precondition};
pub use error::MetaError;
pub use record::{
    BucketLogging, BucketRecord, Checksum, ChecksumAlgorithm, ChunkRef, Codec, CorsRule,
    DefaultEncryption, DefaultRetention, Encryption, GarbageRecord, LifecycleRule, MissedShards,
    NULL_VERSION, ObjectDetails, ObjectLock, ObjectLockConfig, ObjectRecord, ObjectSummary,
    PartRecord, Payload, Retention, RetentionMode, ShardRef, StandardHeaders, StripeRef, Tags,
    UploadRecord, VersioningState,
};
pub use redb_store::{DEFAULT_CACHE_BYTES, META_READ_THREADS, RedbStore};
pub use replica::Replicated;
pub use store::{
    ListEntry, ListPage, MetaStore, PartListing, PayloadCursor, PayloadEntry, PayloadOwner,
    UploadListing, UploadPage, VersionEntry, VersionPage,
};
