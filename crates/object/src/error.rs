use basalt_data::DataError;
use basalt_meta::MetaError;
use thiserror::Error;

/// Errors of the object layer; the S3 front maps each to one S3 error code.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ObjectError {
    #[error("the specified bucket does not exist")]
    NoSuchBucket,
    #[error("the bucket already exists and is owned by you")]
    BucketAlreadyExists,
    #[error("the bucket you tried to delete is not empty")]
    BucketNotEmpty,
    #[error("the specified key does not exist")]
    NoSuchKey,
    #[error("the specified multipart upload does not exist")]
    NoSuchUpload,
    #[error("at least one of the preconditions you specified did not hold")]
    PreconditionFailed,
    #[error("part {0} could not be found or its ETag does not match")]
    InvalidPart(u32),
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    #[error("part {part} is {size} bytes; every part but the last must be at least {min} bytes")]
    EntityTooSmall { part: u32, size: u64, min: u64 },
    #[error("the request body ended before its declared length ({received} of {expected} bytes)")]
    IncompleteBody { received: u64, expected: u64 },
    #[error("the request body could not be read: {0}")]
    Body(String),
    #[error("stored data failed verification: {0}")]
    Corrupt(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the store is refusing writes after a storage failure; restart the node")]
    Unavailable,
    /// The cluster cannot commit or confirm now (no quorum, an election): retry.
    #[error("{0}")]
    ClusterUnavailable(String),
    #[error("{0}")]
    InsufficientDrives(String),
    #[error("{0}")]
    Busy(String),
    #[error("the drives are full: free space (delete objects) or add drives")]
    StorageFull,
    #[error("invalid tag: {0}")]
    InvalidTag(String),
    #[error("there is no tag set on this bucket")]
    NoSuchTagSet,
    #[error("the CORS configuration does not exist")]
    NoSuchCorsConfiguration,
    #[error("the specified version does not exist")]
    NoSuchVersion,
    /// The version addressed (or the current version of the key) is a delete marker.
    #[error("the specified version is a delete marker")]
    DeleteMarker {
        version_id: String,
        /// Addressed by its version id (405 on AWS) rather than as the current version (404).
        addressed: bool,
        last_modified_ms: i64,
    },
    #[error("{0}")]
    InvalidBucketState(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// A checksum the client sent does not match what the store computed.
    #[error("{0}")]
    BadDigest(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("the bucket has no object lock configuration")]
    NoObjectLockConfiguration,
    #[error("the object has no retention")]
    NoSuchObjectLockConfiguration,
    #[error("the lifecycle configuration does not exist")]
    NoSuchLifecycleConfiguration,
    #[error("the server side encryption configuration was not found")]
    NoBucketEncryption,
    /// The KMS key named does not exist.
    #[error("Invalid keyId '{0}'")]
    KmsNotFound(String),
    #[error("The KMS key {0} is disabled")]
    KmsDisabled(String),
    #[error("an alias named {0} exists")]
    AliasExists(String),
    /// Refused by the Iceberg catalog: the catalog's routes answer it in their own terms.
    #[error("{0}")]
    Catalog(basalt_meta::CatalogError),
}

impl From<MetaError> for ObjectError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::NoSuchBucket => Self::NoSuchBucket,
            MetaError::BucketAlreadyExists => Self::BucketAlreadyExists,
            MetaError::BucketNotEmpty => Self::BucketNotEmpty,
            MetaError::NoSuchKey => Self::NoSuchKey,
            MetaError::NoSuchUpload => Self::NoSuchUpload,
            MetaError::PreconditionFailed => Self::PreconditionFailed,
            MetaError::InvalidPart(n) => Self::InvalidPart(n),
            MetaError::InvalidPartOrder => Self::InvalidPartOrder,
            MetaError::EntityTooSmall { part, size } => Self::EntityTooSmall { part, size, min: 0 },
            MetaError::Poisoned => Self::Unavailable,
            MetaError::Unavailable(m) => Self::ClusterUnavailable(m),
            e @ MetaError::Indeterminate(_) => Self::ClusterUnavailable(e.to_string()),
            MetaError::NoSuchVersion => Self::NoSuchVersion,
            MetaError::InvalidBucketState(m) => Self::InvalidBucketState(m),
            MetaError::InvalidRequest(m) => Self::InvalidRequest(m),
            MetaError::Catalog(e) => Self::Catalog(e),
            MetaError::Locked(m) => Self::AccessDenied(m),
            MetaError::DeleteMarker => Self::DeleteMarker {
                version_id: String::new(),
                addressed: true,
                last_modified_ms: 0,
            },
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<DataError> for ObjectError {
    fn from(e: DataError) -> Self {
        match e {
            DataError::Corrupt { .. } | DataError::NotFound(_) | DataError::TooFewShards { .. } => {
                Self::Corrupt(e.to_string())
            }
            DataError::WriteQuorum { .. } => Self::InsufficientDrives(e.to_string()),
            DataError::ShardsUnreachable { .. } => Self::ClusterUnavailable(e.to_string()),
            DataError::DriveFull => Self::StorageFull,
            DataError::Poisoned => Self::Unavailable,
            other => Self::Internal(other.to_string()),
        }
    }
}
