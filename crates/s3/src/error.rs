//! The one place where an object-layer error becomes an S3 error code and HTTP status.

use basalt_object::ObjectError;
use http::StatusCode;
use s3s::{S3Error, S3ErrorCode, s3_error};

pub(crate) fn custom(
    code: &'static str,
    status: StatusCode,
    message: impl Into<String>,
) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), message.into());
    e.set_status_code(status);
    e
}

pub(crate) fn to_s3(e: ObjectError) -> S3Error {
    let message = e.to_string();
    match e {
        ObjectError::NoSuchBucket => s3_error!(NoSuchBucket, "{message}"),
        ObjectError::BucketAlreadyExists => s3_error!(BucketAlreadyOwnedByYou, "{message}"),
        ObjectError::BucketNotEmpty => s3_error!(BucketNotEmpty, "{message}"),
        ObjectError::NoSuchKey => s3_error!(NoSuchKey, "{message}"),
        ObjectError::NoSuchUpload => s3_error!(NoSuchUpload, "{message}"),
        ObjectError::PreconditionFailed => s3_error!(PreconditionFailed, "{message}"),
        ObjectError::InvalidPart(_) => s3_error!(InvalidPart, "{message}"),
        ObjectError::InvalidPartOrder => s3_error!(InvalidPartOrder, "{message}"),
        ObjectError::EntityTooSmall { .. } => s3_error!(EntityTooSmall, "{message}"),
        ObjectError::IncompleteBody { .. } => s3_error!(IncompleteBody, "{message}"),
        ObjectError::Body(ref detail) if detail.contains("SignatureMismatch") => {
            s3_error!(
                SignatureDoesNotMatch,
                "a chunk signature of the streaming payload does not match"
            )
        }
        ObjectError::Body(_) => s3_error!(IncompleteBody, "{message}"),
        ObjectError::Unavailable | ObjectError::ClusterUnavailable(_) => {
            s3_error!(ServiceUnavailable, "{message}")
        }
        ObjectError::InsufficientDrives(_) => {
            tracing::warn!(error = %message, "write refused");
            s3_error!(SlowDown, "{message}")
        }
        ObjectError::Busy(_) => s3_error!(OperationAborted, "{message}"),
        ObjectError::StorageFull => {
            tracing::warn!("write refused: drives full");
            custom(
                "InsufficientStorage",
                StatusCode::INSUFFICIENT_STORAGE,
                message,
            )
        }
        ObjectError::InvalidTag(_) => s3_error!(InvalidTag, "{message}"),
        ObjectError::NoSuchTagSet => s3_error!(NoSuchTagSet, "{message}"),
        ObjectError::NoSuchCorsConfiguration => s3_error!(NoSuchCORSConfiguration, "{message}"),
        ObjectError::NoSuchVersion => {
            s3_error!(NoSuchVersion, "The specified version does not exist.")
        }
        ObjectError::DeleteMarker {
            ref version_id,
            addressed,
            last_modified_ms,
        } => {
            let mut e = if addressed {
                s3_error!(
                    MethodNotAllowed,
                    "The specified method is not allowed against this resource."
                )
            } else {
                s3_error!(NoSuchKey, "The specified key does not exist.")
            };
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "x-amz-delete-marker",
                http::HeaderValue::from_static("true"),
            );
            if let Ok(v) = http::HeaderValue::from_str(version_id) {
                headers.insert("x-amz-version-id", v);
            }
            let mut date = Vec::new();
            if crate::convert::timestamp(last_modified_ms)
                .format(s3s::dto::TimestampFormat::HttpDate, &mut date)
                .is_ok()
                && let Ok(v) = http::HeaderValue::from_bytes(&date)
            {
                headers.insert("last-modified", v);
            }
            e.set_headers(headers);
            e
        }
        ObjectError::InvalidBucketState(_) => s3_error!(InvalidBucketState, "{message}"),
        ObjectError::InvalidRequest(_) => s3_error!(InvalidRequest, "{message}"),
        ObjectError::BadDigest(_) => s3_error!(BadDigest, "{message}"),
        ObjectError::InvalidArgument(_) => s3_error!(InvalidArgument, "{message}"),
        ObjectError::AccessDenied(_) => s3_error!(AccessDenied, "Access Denied because {message}"),
        ObjectError::NoObjectLockConfiguration => s3_error!(
            ObjectLockConfigurationNotFoundError,
            "Object Lock configuration does not exist for this bucket"
        ),
        ObjectError::NoSuchObjectLockConfiguration => s3_error!(
            NoSuchObjectLockConfiguration,
            "The specified object does not have a ObjectLock configuration"
        ),
        ObjectError::NoSuchLifecycleConfiguration => s3_error!(
            NoSuchLifecycleConfiguration,
            "The lifecycle configuration does not exist"
        ),
        ObjectError::KmsNotFound(_) => {
            custom("KMS.NotFoundException", StatusCode::BAD_REQUEST, message)
        }
        ObjectError::KmsDisabled(_) => {
            custom("KMS.DisabledException", StatusCode::BAD_REQUEST, message)
        }
        ObjectError::AliasExists(_) => s3_error!(InvalidArgument, "{message}"),
        ObjectError::NoBucketEncryption => s3_error!(
            ServerSideEncryptionConfigurationNotFoundError,
            "The server side encryption configuration was not found"
        ),
        ObjectError::Corrupt(_) => {
            tracing::error!(error = %message, "corrupt data refused");
            s3_error!(
                InternalError,
                "stored data failed its checksum; the object cannot be served"
            )
        }
        _ => {
            tracing::error!(error = %message, "internal error");
            s3_error!(InternalError, "{message}")
        }
    }
}

pub(crate) trait OrS3<T> {
    fn or_s3(self) -> Result<T, S3Error>;
}

impl<T> OrS3<T> for Result<T, ObjectError> {
    fn or_s3(self) -> Result<T, S3Error> {
        self.map_err(to_s3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_errors_map_to_s3_codes_and_statuses() {
        let cases = [
            (ObjectError::NoSuchBucket, "NoSuchBucket", 404),
            (ObjectError::NoSuchKey, "NoSuchKey", 404),
            (ObjectError::BucketNotEmpty, "BucketNotEmpty", 409),
            (ObjectError::PreconditionFailed, "PreconditionFailed", 412),
            (ObjectError::InvalidPart(3), "InvalidPart", 400),
            (
                ObjectError::Body("AwsChunkedStreamError: SignatureMismatch".into()),
                "SignatureDoesNotMatch",
                403,
            ),
            (ObjectError::Corrupt("x".into()), "InternalError", 500),
            (ObjectError::Unavailable, "ServiceUnavailable", 503),
            (ObjectError::InsufficientDrives("x".into()), "SlowDown", 503),
            (ObjectError::StorageFull, "InsufficientStorage", 507),
            (ObjectError::NoSuchVersion, "NoSuchVersion", 404),
            (ObjectError::AccessDenied("x".into()), "AccessDenied", 403),
            (
                ObjectError::InvalidBucketState("x".into()),
                "InvalidBucketState",
                409,
            ),
            (
                ObjectError::DeleteMarker {
                    version_id: "null".into(),
                    addressed: true,
                    last_modified_ms: 0,
                },
                "MethodNotAllowed",
                405,
            ),
            (
                ObjectError::DeleteMarker {
                    version_id: "null".into(),
                    addressed: false,
                    last_modified_ms: 0,
                },
                "NoSuchKey",
                404,
            ),
        ];
        for (err, code, status) in cases {
            let e = to_s3(err);
            assert_eq!(e.code().as_str(), code);
            assert_eq!(e.status_code().map(|s| s.as_u16()), Some(status), "{code}");
        }
    }
}
