use thiserror::Error;

/// Errors of the metadata layer. Logical errors (a missing bucket, a failed precondition) leave
/// the store unchanged; `Storage` and `Poisoned` mean the engine itself failed.
#[derive(Debug, Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum MetaError {
    #[error("bucket does not exist")]
    NoSuchBucket,
    #[error("bucket already exists")]
    BucketAlreadyExists,
    #[error("bucket is not empty")]
    BucketNotEmpty,
    #[error("object does not exist")]
    NoSuchKey,
    #[error("multipart upload does not exist")]
    NoSuchUpload,
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("part {0} was not uploaded or its ETag does not match")]
    InvalidPart(u32),
    #[error("parts are not in ascending order")]
    InvalidPartOrder,
    #[error("part {part} is {size} bytes, smaller than the minimum allowed part size")]
    EntityTooSmall { part: u32, size: u64 },
    #[error("the version is a delete marker")]
    DeleteMarker,
    #[error("the version does not exist")]
    NoSuchVersion,
    #[error("{0}")]
    InvalidBucketState(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// Refused by object lock (retention or legal hold).
    #[error("{0}")]
    Locked(String),
    #[error("record format version {0} is not supported by this build")]
    UnsupportedFormat(u8),
    #[error("corrupt metadata record: {0}")]
    Corrupt(String),
    #[error("metadata storage failed: {0}")]
    Storage(String),
    #[error("metadata store is poisoned by an earlier commit failure; restart the node")]
    Poisoned,
    /// The cluster cannot commit or confirm right now (no quorum, no leader): try again.
    #[error("metadata unavailable: {0}")]
    Unavailable(String),
    /// A write was proposed and its outcome is unknown: it may yet be committed, or not. What
    /// it would publish must stay until that is settled.
    #[error("metadata unavailable, the write may or may not be applied: {0}")]
    Indeterminate(String),
    /// Refused by the Iceberg catalog (a missing namespace, a failed commit requirement, …).
    #[error("{0}")]
    Catalog(crate::catalog::CatalogError),
}

impl From<redb::Error> for MetaError {
    fn from(e: redb::Error) -> Self {
        MetaError::Storage(e.to_string())
    }
}

macro_rules! storage_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for MetaError {
            fn from(e: $t) -> Self {
                MetaError::from(redb::Error::from(e))
            }
        }
    )*};
}

storage_error_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
