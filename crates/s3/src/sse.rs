//! Server-side encryption on the wire: `x-amz-server-side-encryption` (SSE-S3) and the
//! `x-amz-server-side-encryption-customer-*` headers (SSE-C), and what responses echo back.

use basalt_object::{CustomerKey, Encryption, Sse};
use md5::{Digest, Md5};
use s3s::dto::ServerSideEncryption;
use s3s::{S3Result, s3_error};

/// The customer key of SSE-C headers (algorithm, key, key MD5), all three or none.
pub(crate) fn customer_key(
    algorithm: Option<&str>,
    key: Option<&str>,
    key_md5: Option<&str>,
) -> S3Result<Option<CustomerKey>> {
    let (algorithm, key, key_md5) = match (algorithm, key, key_md5) {
        (None, None, None) => return Ok(None),
        (Some(a), Some(k), Some(m)) => (a, k, m),
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "Requests specifying Server Side Encryption with Customer provided keys must provide the algorithm, the key and its MD5."
            ));
        }
    };
    if algorithm != "AES256" {
        return Err(s3_error!(
            InvalidArgument,
            "The requested encryption algorithm is not valid, must be AES256."
        ));
    }
    let key: [u8; 32] = base64_simd::STANDARD
        .decode_to_vec(key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The secret key was invalid for the specified algorithm."
            )
        })?;
    let computed = base64_simd::STANDARD.encode_to_string(Md5::digest(key));
    if computed != key_md5 {
        return Err(s3_error!(
            InvalidArgument,
            "The calculated MD5 hash of the key did not match the hash that was provided."
        ));
    }
    Ok(Some(CustomerKey {
        key,
        key_md5: computed,
    }))
}

/// What a write asks for: SSE-S3, SSE-C, or the bucket's default.
pub(crate) fn requested(
    server_side_encryption: Option<&ServerSideEncryption>,
    customer: Option<CustomerKey>,
) -> S3Result<Sse> {
    match (
        server_side_encryption.map(ServerSideEncryption::as_str),
        customer,
    ) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
        )),
        (None, Some(key)) => Ok(Sse::Customer(key)),
        (None, None) => Ok(Sse::Default),
        (Some(ServerSideEncryption::AES256), None) => Ok(Sse::Managed),
        (Some(other), None) if other.starts_with("aws:kms") => Err(s3_error!(
            NotImplemented,
            "SSE-KMS is not supported: use AES256 (SSE-S3) or customer-provided keys"
        )),
        (Some(other), None) => Err(s3_error!(
            InvalidArgument,
            "The encryption method specified is not supported: {other}"
        )),
    }
}

/// The encryption headers a response carries for an object.
#[derive(Default)]
pub(crate) struct SseFields {
    pub server_side_encryption: Option<ServerSideEncryption>,
    pub customer_algorithm: Option<String>,
    pub customer_key_md5: Option<String>,
}

pub(crate) fn fields(encryption: Option<&Encryption>) -> SseFields {
    match encryption {
        None => SseFields::default(),
        Some(Encryption::Managed { .. }) => SseFields {
            server_side_encryption: Some(ServerSideEncryption::from_static(
                ServerSideEncryption::AES256,
            )),
            ..Default::default()
        },
        Some(Encryption::Customer { key_md5, .. }) => SseFields {
            customer_algorithm: Some("AES256".to_owned()),
            customer_key_md5: Some(key_md5.clone()),
            ..Default::default()
        },
    }
}
