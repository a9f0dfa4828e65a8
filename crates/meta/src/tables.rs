//! The tables of the metadata database and the names of the settings they hold: one place for
//! the on-disk layout, shared by the engine's reads and the state machine's writes.

use redb::TableDefinition;

pub(crate) const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
/// The current version of each key (possibly a delete marker): `bucket 0x00 key`.
pub(crate) const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
/// Noncurrent versions, newest first within a key: see [`keys::version_key`]. Every key with
/// a noncurrent version has a current one in [`OBJECTS`].
pub(crate) const VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("versions");
pub(crate) const UPLOADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("uploads");
pub(crate) const PARTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("parts");
/// Per-bucket settings (tagging, and later CORS, versioning…): `bucket 0x00 name`.
pub(crate) const BUCKET_SETTINGS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("bucket_settings");
pub(crate) const TAGGING_SETTING: &str = "tagging";
/// Node-wide facts: the id of the drive set this metadata describes.
pub(crate) const SYSTEM: TableDefinition<&str, &[u8]> = TableDefinition::new("system");
pub(crate) const DRIVE_SET_KEY: &str = "drive-set";
pub(crate) const CORS_SETTING: &str = "cors";
pub(crate) const VERSIONING_SETTING: &str = "versioning";
pub(crate) const OBJECT_LOCK_SETTING: &str = "object-lock";
pub(crate) const LIFECYCLE_SETTING: &str = "lifecycle";
pub(crate) const ENCRYPTION_SETTING: &str = "encryption";
pub(crate) const POLICY_SETTING: &str = "policy";
/// A bucket's owner, ACL and object ownership ([`BucketAccess`]); none: the root user's, ACLs
/// disabled.
///
/// [`BucketAccess`]: crate::BucketAccess
pub(crate) const ACCESS_SETTING: &str = "access";
pub(crate) const PUBLIC_ACCESS_BLOCK_SETTING: &str = "public-access-block";
pub(crate) const LOGGING_SETTING: &str = "logging";
/// Stripes no record references any more, kept until the collector deletes their files after
/// a grace period (reads that started before the overwrite or delete finish meanwhile): a
/// sequence number, big-endian so the oldest come first, to a [`GarbageRecord`].
///
/// [`GarbageRecord`]: crate::record::GarbageRecord
pub(crate) const GARBAGE: TableDefinition<u64, &[u8]> = TableDefinition::new("garbage");
/// Stripes published with shards missing, owed a heal: stripe id to a [`MissedShards`]. The
/// command that publishes such a stripe adds it, a heal or the stripe becoming garbage
/// removes it.
///
/// [`MissedShards`]: crate::record::MissedShards
pub(crate) const MISSED_SHARDS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("missed_shards");
/// In [`SYSTEM`]: the next garbage sequence number.
pub(crate) const GARBAGE_NEXT_KEY: &str = "garbage-next";
/// In [`SYSTEM`]: written by a clean shutdown (nothing in flight), removed at start. Missing
/// at start, the last run ended without one (a crash, or a version before this mark): writes
/// it cut off may have left shard files no table knows of.
pub(crate) const CLEAN_STOP_KEY: &str = "clean-stop";
/// The Iceberg catalog's namespaces and tables: see [`crate::catalog`].
pub(crate) const CATALOG: TableDefinition<&[u8], &[u8]> = TableDefinition::new("catalog");
/// Users and access keys, opaque to the metadata layer.
pub(crate) const IDENTITIES: TableDefinition<&str, &[u8]> = TableDefinition::new("identities");
/// In [`SYSTEM`]: cluster-wide values (`Command::SetClusterValue`), under this prefix.
pub(crate) const CLUSTER_VALUE_PREFIX: &str = "cluster/";
/// In [`SYSTEM`]: the replicated log position the state reflects (opaque to this crate).
pub(crate) const APPLIED_KEY: &str = "raft-applied";
