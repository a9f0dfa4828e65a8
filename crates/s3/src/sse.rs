//! Server-side encryption on the wire: `x-amz-server-side-encryption` (SSE-S3) and the
//! `x-amz-server-side-encryption-customer-*` headers (SSE-C), and what responses echo back.

use std::collections::BTreeMap;

use basalt_object::{CustomerKey, Encryption, KmsRequest, Sse};
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

/// The encryption headers of a write.
pub(crate) struct SseHeaders<'a> {
    pub server_side_encryption: Option<&'a ServerSideEncryption>,
    pub customer: Option<CustomerKey>,
    /// `x-amz-server-side-encryption-aws-kms-key-id`.
    pub kms_key_id: Option<&'a str>,
    /// `x-amz-server-side-encryption-context`: base64 of a JSON object of strings.
    pub context: Option<&'a str>,
    /// `x-amz-server-side-encryption-bucket-key-enabled`.
    pub bucket_key: Option<bool>,
}

/// The encryption headers of an s3s write input.
macro_rules! sse_headers_of {
    ($input:expr) => {
        sse::SseHeaders {
            server_side_encryption: $input.server_side_encryption.as_ref(),
            customer: customer_key_of!($input)?,
            kms_key_id: $input.ssekms_key_id.as_deref(),
            context: $input.ssekms_encryption_context.as_deref(),
            bucket_key: $input.bucket_key_enabled,
        }
    };
}
pub(crate) use sse_headers_of;

fn kms_context(text: &str) -> S3Result<BTreeMap<String, String>> {
    base64_simd::STANDARD
        .decode_to_vec(text)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The header 'x-amz-server-side-encryption-context' shall be Base64-encoded UTF-8 string holding JSON which represents a string-string map"
            )
        })
}

/// What a write asks for: SSE-S3, SSE-C, SSE-KMS, or the bucket's default.
pub(crate) fn requested(headers: SseHeaders<'_>) -> S3Result<Sse> {
    let algorithm = headers
        .server_side_encryption
        .map(ServerSideEncryption::as_str);
    let kms = algorithm == Some(ServerSideEncryption::AWS_KMS);
    if !kms && (headers.kms_key_id.is_some() || headers.context.is_some()) {
        return Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms"
        ));
    }
    match (algorithm, headers.customer) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
        )),
        (None, Some(key)) => Ok(Sse::Customer(key)),
        (None, None) => Ok(Sse::Default),
        (Some(ServerSideEncryption::AES256), None) => Ok(Sse::Managed),
        (Some(ServerSideEncryption::AWS_KMS), None) => Ok(Sse::Kms(KmsRequest {
            key_id: headers
                .kms_key_id
                .filter(|k| !k.is_empty())
                .map(str::to_owned),
            context: headers
                .context
                .map(kms_context)
                .transpose()?
                .unwrap_or_default(),
            bucket_key: headers.bucket_key,
        })),
        (Some(ServerSideEncryption::AWS_KMS_DSSE), None) => Err(s3_error!(
            NotImplemented,
            "Dual-layer SSE-KMS (aws:kms:dsse) is not supported: use aws:kms"
        )),
        (Some(other), None) => Err(s3_error!(
            InvalidArgument,
            "The encryption method specified is not supported: {other}"
        )),
    }
}

/// The ARN of a key of Basalt's key store, as responses name it.
pub(crate) fn kms_key_arn(region: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:basalt:key/{key_id}")
}

/// The encryption headers a response carries for an object.
#[derive(Default)]
pub(crate) struct SseFields {
    pub server_side_encryption: Option<ServerSideEncryption>,
    pub customer_algorithm: Option<String>,
    pub customer_key_md5: Option<String>,
    /// The key's ARN (`x-amz-server-side-encryption-aws-kms-key-id`).
    pub kms_key_id: Option<String>,
    pub bucket_key_enabled: Option<bool>,
    /// Base64 of the encryption context, which writes echo.
    pub context: Option<String>,
}

pub(crate) fn fields(encryption: Option<&Encryption>, region: &str) -> SseFields {
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
        Some(Encryption::Kms {
            key_id,
            context,
            bucket_key,
            ..
        }) => SseFields {
            server_side_encryption: Some(ServerSideEncryption::from_static(
                ServerSideEncryption::AWS_KMS,
            )),
            kms_key_id: Some(kms_key_arn(region, key_id)),
            bucket_key_enabled: bucket_key.then_some(true),
            context: Some(base64_simd::STANDARD.encode_to_string(context)),
            ..Default::default()
        },
    }
}

/// A read names no encryption to apply: S3 refuses `x-amz-server-side-encryption` (and a KMS
/// key id) on GET and HEAD rather than ignore it. SSE-C's key headers are a read's own.
pub(crate) fn refuse_encryption_request_on_read(headers: &http::HeaderMap) -> S3Result<()> {
    for name in [
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-server-side-encryption-context",
    ] {
        if headers.contains_key(name) {
            return Err(s3_error!(
                InvalidArgument,
                "{name} header is not supported for this operation."
            ));
        }
    }
    Ok(())
}
