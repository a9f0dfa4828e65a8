//! Browser POST uploads (`POST /bucket` with a `multipart/form-data` body), streamed.
//!
//! A form is read up to its file part: the fields (charged to the pre-authorization budget,
//! at most 20 KiB as on AWS), then its policy and signature are checked here. The upload then
//! goes to the S3 service as a PutObject of the form's key, signed by whoever signed the form
//! (or anonymous), whose body is the file part as it arrives. The policy's
//! `content-length-range` is enforced as the bytes pass: a file outside it fails its write,
//! which then stores nothing. Memory stays bounded by the requests in flight, whatever the
//! size of the file, and a POST is judged by the same access checks as the PUT it is.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use s3s::auth::S3Auth;
use s3s::post_policy::{PostPolicy, PostPolicyCondition};
use s3s::{Body, S3Error, S3ErrorCode, S3Result, s3_error};

/// The fields before the file may total this much (AWS: "less than 20 KB").
const FIELDS_MAX_BYTES: usize = 20 << 10;

/// The largest file a form may carry, with or without a policy (AWS: 5 GB).
const POST_MAX_BYTES: u64 = 5 << 30;

/// Who signed a form whose signature checked out: the PutObject it becomes is made as them.
#[derive(Debug, Clone)]
pub(crate) struct FormSigner(pub(crate) String);

/// A form turned into the PutObject it asks for, and how to answer it.
pub(crate) struct FormUpload {
    pub(crate) put: Request<Body>,
    pub(crate) reply: Reply,
}

/// How the answer to a POST upload is made from the answer to its PutObject.
pub(crate) struct Reply {
    bucket: String,
    key: String,
    location: String,
    redirect: Option<String>,
    status: Option<String>,
    file_end: Arc<AtomicU8>,
}

/// How a file's body ended (`file_end`), when not well: outside the policy's length range,
/// or not a well-formed part.
const LENGTH_OK: u8 = 0;
const LENGTH_OVER: u8 = 1;
const LENGTH_UNDER: u8 = 2;
/// The form broke off or went wrong inside its file part.
const FILE_MALFORMED: u8 = 3;

/// Where the service reaches the store for a form's signer's secret.
pub(crate) struct FormContext<'a> {
    pub(crate) bucket: &'a str,
    /// The host names the bucket: the key is then the whole path.
    pub(crate) virtual_host: bool,
    pub(crate) tls: bool,
    /// The region a SigV4 form's credential must name.
    pub(crate) region: &'a str,
    pub(crate) auth: &'a crate::access::Auth,
}

/// Reads a form's fields and checks them; the upload it asks for, or why it is refused.
pub(crate) async fn prepare(req: Request<Body>, cx: FormContext<'_>) -> S3Result<FormUpload> {
    let boundary = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or_else(malformed)?;
    // The bucket is named by the raw path (s3s decodes it again): only a valid name, so
    // that nothing in it decodes into another bucket or a key.
    if !s3s::path::check_bucket_name(cx.bucket) {
        return Err(s3_error!(
            InvalidBucketName,
            "The specified bucket is not valid."
        ));
    }
    let (parts, body) = req.into_parts();
    let before_file = Arc::new(BeforeFile::default());
    let mut form = multer::Multipart::new(before_file.clone().count(body), boundary);
    let unreadable = |_| {
        if before_file.over() {
            fields_too_large()
        } else {
            malformed()
        }
    };
    let mut fields = BTreeMap::new();
    let mut fields_bytes = 0usize;
    let file = loop {
        let Some(mut field) = form.next_field().await.map_err(unreadable)? else {
            return Err(s3_error!(
                InvalidArgument,
                "POST requires exactly one file upload per request."
            ));
        };
        let name = field.name().unwrap_or_default().to_ascii_lowercase();
        if name == "file" {
            before_file.reached.store(true, Ordering::Release);
            break field;
        }
        fields_bytes = fields_bytes.saturating_add(name.len());
        let mut value = Vec::new();
        loop {
            if fields_bytes > FIELDS_MAX_BYTES {
                return Err(fields_too_large());
            }
            let Some(chunk) = field.chunk().await.map_err(unreadable)? else {
                break;
            };
            fields_bytes = fields_bytes.saturating_add(chunk.len());
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8(value)
            .map_err(|_| s3_error!(InvalidArgument, "form field {name} is not UTF-8"))?;
        fields.entry(name).or_insert(value);
    };
    let file_name = file.file_name().unwrap_or_default().to_owned();

    let signer = check_signature(&fields, cx.region, cx.auth).await?;
    let key = fields
        .get("key")
        .map(|k| k.replace("${filename}", &file_name))
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields."
            )
        })?;
    let range = match fields.get("policy") {
        Some(policy) => check_policy(policy, &fields, cx.bucket)?,
        None => None,
    };

    // The object's type is the form's Content-Type field, never the file part's (as on AWS).
    let mut headers = put_headers(&fields)?;
    for kept in ["host", "referer", "user-agent", "origin"] {
        if let Some(v) = parts.headers.get(kept) {
            headers.insert(HeaderName::from_static(kept), v.clone());
        }
    }
    let encoded = percent_encoding::utf8_percent_encode(&key, crate::access_log::KEY_ENCODING);
    let path = if cx.virtual_host {
        format!("/{encoded}")
    } else {
        format!("/{}/{encoded}", cx.bucket)
    };
    // HTTP/2 names the host in the request's authority, not in a Host header.
    let host = parts
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(http::uri::Authority::as_str))
        .unwrap_or("localhost");
    let scheme = if cx.tls { "https" } else { "http" };
    let location = format!("{scheme}://{host}{path}");
    let uri: http::Uri = path.parse().map_err(|_| {
        s3_error!(
            InvalidArgument,
            "the key of this form cannot name an object"
        )
    })?;

    let file_end = Arc::new(AtomicU8::new(LENGTH_OK));
    let body = FileBody {
        file: Box::pin(file),
        read: 0,
        range: range.unwrap_or((0, POST_MAX_BYTES)),
        file_end: file_end.clone(),
    };
    let mut put = Request::new(Body::http_body_unsync(body));
    *put.method_mut() = Method::PUT;
    *put.uri_mut() = uri;
    *put.version_mut() = parts.version;
    *put.headers_mut() = headers;
    *put.extensions_mut() = parts.extensions;
    if let Some(signer) = signer {
        put.extensions_mut().insert(FormSigner(signer));
    }
    let redirect = fields
        .get("success_action_redirect")
        .or_else(|| fields.get("redirect"))
        .cloned();
    Ok(FormUpload {
        put,
        reply: Reply {
            bucket: cx.bucket.to_owned(),
            key,
            location,
            redirect,
            status: fields.get("success_action_status").cloned(),
            file_end,
        },
    })
}

impl Reply {
    /// The POST's answer: the PutObject's error as it is (a file outside the policy's length
    /// range as AWS names it), or what the form asked for on success.
    pub(crate) fn answer(self, put: Response<Body>) -> Response<Body> {
        match self.file_end.load(Ordering::Acquire) {
            LENGTH_OVER => {
                return crate::service::s3_error_response(s3_error!(
                    EntityTooLarge,
                    "Your proposed upload exceeds the maximum allowed size"
                ));
            }
            LENGTH_UNDER => {
                return crate::service::s3_error_response(s3_error!(
                    EntityTooSmall,
                    "Your proposed upload is smaller than the minimum allowed size"
                ));
            }
            FILE_MALFORMED => return crate::service::s3_error_response(malformed()),
            _ => {}
        }
        if !put.status().is_success() {
            return put;
        }
        let etag = put
            .headers()
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut resp = Response::new(Body::empty());
        for (name, value) in put.headers() {
            let name_str = name.as_str();
            if name == http::header::ETAG || name_str.starts_with("x-amz-") {
                resp.headers_mut().insert(name.clone(), value.clone());
            }
        }
        if let Ok(v) = HeaderValue::from_str(&self.location) {
            resp.headers_mut().insert(http::header::LOCATION, v);
        }
        if let Some(target) = self
            .redirect
            .as_deref()
            .and_then(|r| redirect_target(r, &self.bucket, &self.key, &etag))
        {
            *resp.status_mut() = StatusCode::SEE_OTHER;
            resp.headers_mut().insert(http::header::LOCATION, target);
            return resp;
        }
        match self.status.as_deref() {
            Some("200") => *resp.status_mut() = StatusCode::OK,
            Some("201") => {
                let xml = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                    crate::service::xml_escape(&self.location),
                    crate::service::xml_escape(&self.bucket),
                    crate::service::xml_escape(&self.key),
                    crate::service::xml_escape(&etag),
                );
                *resp.status_mut() = StatusCode::CREATED;
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/xml"),
                );
                resp.headers_mut()
                    .insert(http::header::CONTENT_LENGTH, HeaderValue::from(xml.len()));
                *resp.body_mut() = Body::from(xml);
            }
            // AWS answers 204 for any other value, or none.
            _ => *resp.status_mut() = StatusCode::NO_CONTENT,
        }
        resp
    }
}

/// `success_action_redirect` with the object's bucket, key and ETag added to its query; none
/// when it is not an http(s) URL (AWS then answers as if it were absent).
fn redirect_target(url: &str, bucket: &str, key: &str, etag: &str) -> Option<HeaderValue> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://"))
        || url.chars().any(char::is_control)
    {
        return None;
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("bucket", bucket)
        .append_pair("key", key)
        .append_pair("etag", etag)
        .finish();
    let joiner = if url.contains('?') { '&' } else { '?' };
    HeaderValue::from_str(&format!("{url}{joiner}{query}")).ok()
}

fn fields_too_large() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("MaxPostPreDataLengthExceeded".into()),
        "Your POST request fields preceding the upload file were too large.",
    );
    e.set_status_code(StatusCode::BAD_REQUEST);
    e
}

fn malformed() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MalformedPOSTRequest,
        "The body of your POST request is not well-formed multipart/form-data.",
    )
}

/// Checks the form's signature (SigV4, or SigV2 as older tools send); the access key that
/// signed it, or none for an unsigned (anonymous) form.
async fn check_signature(
    fields: &BTreeMap<String, String>,
    our_region: &str,
    auth: &crate::access::Auth,
) -> S3Result<Option<String>> {
    let field = |name: &str| fields.get(name).map(String::as_str);
    let policy = field("policy");
    if let Some(signature) = field("x-amz-signature") {
        let (Some(policy), Some(algorithm), Some(credential), Some(date)) = (
            policy,
            field("x-amz-algorithm"),
            field("x-amz-credential"),
            field("x-amz-date"),
        ) else {
            return Err(s3_error!(
                InvalidArgument,
                "Bucket POST with x-amz-signature must contain the fields policy, x-amz-algorithm, x-amz-credential and x-amz-date."
            ));
        };
        if algorithm != "AWS4-HMAC-SHA256" {
            return Err(s3_error!(
                InvalidArgument,
                "Only AWS4-HMAC-SHA256 is supported for x-amz-algorithm."
            ));
        }
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key, day, region, service, "aws4_request"] = scope[..] else {
            return Err(s3_error!(
                InvalidArgument,
                "Invalid argument: x-amz-credential is not of the form <key>/<date>/<region>/<service>/aws4_request."
            ));
        };
        if region != our_region || service != "s3" {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                format!(
                    "Invalid argument: x-amz-credential names region '{region}' and service '{service}'; expecting '{our_region}' and 's3'."
                ),
            ));
        }
        if crate::signed_request::parse_amz_date(date).is_none() {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-date must be in the ISO8601 basic format yyyyMMddTHHmmssZ."
            ));
        }
        if !date.starts_with(day) {
            return Err(s3_error!(
                SignatureDoesNotMatch,
                "The date of x-amz-credential is not the date of x-amz-date."
            ));
        }
        let secret = auth.get_secret_key(access_key).await?;
        let key = crate::signed_request::sigv4_signing_key(secret.expose(), day, region, service);
        let given = hex_simd::decode_to_vec(signature).unwrap_or_default();
        if ring::hmac::verify(&key, policy.as_bytes(), &given).is_err() {
            return Err(signature_mismatch());
        }
        return Ok(Some(access_key.to_owned()));
    }
    if let Some(signature) = field("signature") {
        let (Some(policy), Some(access_key)) = (policy, field("awsaccesskeyid")) else {
            return Err(s3_error!(
                InvalidArgument,
                "Bucket POST with a signature must contain the fields policy and AWSAccessKeyId."
            ));
        };
        let secret = auth.get_secret_key(access_key).await?;
        let key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            secret.expose().as_bytes(),
        );
        let given = base64_simd::STANDARD
            .decode_to_vec(signature)
            .unwrap_or_default();
        if ring::hmac::verify(&key, policy.as_bytes(), &given).is_err() {
            return Err(signature_mismatch());
        }
        return Ok(Some(access_key.to_owned()));
    }
    if field("awsaccesskeyid").is_some() || field("x-amz-credential").is_some() {
        return Err(s3_error!(
            InvalidArgument,
            "Bucket POST must contain a field named 'Signature'.  If it is specified, please check the order of the fields."
        ));
    }
    if policy.is_some() {
        return Err(s3_error!(
            InvalidArgument,
            "Bucket POST must contain a field named 'AWSAccessKeyId'.  If it is specified, please check the order of the fields."
        ));
    }
    Ok(None)
}

fn signature_mismatch() -> S3Error {
    s3_error!(
        SignatureDoesNotMatch,
        "The request signature we calculated does not match the signature you provided. Check your key and signing method."
    )
}

/// Checks a form against its policy: not expired, every condition met, every field named by
/// a condition. The file's length range, if the policy sets one.
fn check_policy(
    encoded: &str,
    fields: &BTreeMap<String, String>,
    bucket: &str,
) -> S3Result<Option<(u64, u64)>> {
    let invalid = |e: &dyn std::fmt::Display| {
        S3Error::with_message(
            S3ErrorCode::InvalidPolicyDocument,
            format!("Invalid Policy: {e}"),
        )
    };
    let json = base64_simd::STANDARD
        .decode_to_vec(encoded)
        .map_err(|e| invalid(&e))?;
    let json = std::str::from_utf8(&json).map_err(|e| invalid(&e))?;
    let policy = PostPolicy::from_json(json).map_err(|e| invalid(&e))?;
    if !expiration_is_iso8601(json) {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidPolicyDocument,
            "Invalid Policy: Invalid 'expiration' value: it must be in ISO 8601 format, as 2025-01-01T12:00:00.000Z.",
        ));
    }
    let expiration: time::OffsetDateTime = policy.expiration.clone().into();
    if time::OffsetDateTime::now_utc() >= expiration {
        return Err(denied("Invalid according to Policy: Policy expired."));
    }
    let value_of = |name: &str| -> Option<&str> {
        if name == "bucket" {
            return Some(bucket);
        }
        fields.get(name).map(String::as_str)
    };
    if fields.get("bucket").is_some_and(|b| b != bucket) {
        return Err(denied(
            "Invalid according to Policy: the form's bucket field is not the bucket it was posted to.",
        ));
    }
    let mut range = None;
    for condition in &policy.conditions {
        match condition {
            PostPolicyCondition::Eq { field, value } => {
                if value_of(field) != Some(value.as_str()) {
                    return Err(denied(&format!(
                        "Invalid according to Policy: Policy Condition failed: [\"eq\", \"${field}\", \"{value}\"]"
                    )));
                }
            }
            PostPolicyCondition::StartsWith { field, prefix } => {
                let actual = value_of(field).unwrap_or_default();
                // Content-Type may list several types, each held to the prefix.
                let met = if field == "content-type" {
                    actual
                        .split(',')
                        .all(|t| t.trim_start().starts_with(prefix.as_str()))
                } else {
                    actual.starts_with(prefix.as_str())
                };
                if !met {
                    return Err(denied(&format!(
                        "Invalid according to Policy: Policy Condition failed: [\"starts-with\", \"${field}\", \"{prefix}\"]"
                    )));
                }
            }
            PostPolicyCondition::ContentLengthRange { min, max } => range = Some((*min, *max)),
        }
    }
    let named = |name: &str| {
        policy.conditions.iter().any(|c| match c {
            PostPolicyCondition::Eq { field, .. }
            | PostPolicyCondition::StartsWith { field, .. } => field == name,
            PostPolicyCondition::ContentLengthRange { .. } => false,
        })
    };
    for name in fields.keys() {
        if !exempt_from_policy(name) && !named(name) {
            return Err(denied(&format!(
                "Invalid according to Policy: Extra input fields: {name}"
            )));
        }
    }
    Ok(range)
}

/// The policy's `expiration` is written as AWS requires (`2025-01-01T12:00:00.000Z`): a
/// date, `T`, a time, `Z`. The parser of s3s also takes other RFC 3339 forms.
fn expiration_is_iso8601(json: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(json) else {
        return false;
    };
    doc.get("expiration")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|e| e.len() >= 20 && e.as_bytes()[10] == b'T' && e.ends_with('Z'))
}

/// Fields a policy need not name: the signature's own, `x-ignore-*`, and checksums, which
/// only hold the file to what was sent.
fn exempt_from_policy(name: &str) -> bool {
    matches!(
        name,
        "x-amz-signature" | "signature" | "awsaccesskeyid" | "file" | "policy" | "submit"
    ) || name.starts_with("x-ignore-")
        || name.starts_with("x-amz-checksum-")
}

/// The bytes of a form read before its file part. Fields are at most 20 KiB, but their part
/// headers, preamble and empty parts are not fields: the whole is capped so that a request
/// not yet authorized holds at most this much of the budget for such reads.
#[derive(Default)]
struct BeforeFile {
    read: std::sync::atomic::AtomicUsize,
    reached: std::sync::atomic::AtomicBool,
}

/// The most a form may send before its file part starts, counting what the parser reads
/// ahead into the file (a network read can be a few hundred KiB).
const BEFORE_FILE_MAX_BYTES: usize = 1 << 20;

impl BeforeFile {
    fn over(&self) -> bool {
        !self.reached.load(Ordering::Acquire)
            && self.read.load(Ordering::Acquire) > BEFORE_FILE_MAX_BYTES
    }

    /// The body, counted until the file part is reached; past the cap, it fails.
    fn count(
        self: Arc<Self>,
        body: Body,
    ) -> impl Stream<Item = Result<Bytes, s3s::StdError>> + Send + 'static {
        use futures::StreamExt;
        body.map(move |item| {
            let bytes = item?;
            if !self.reached.load(Ordering::Acquire) {
                self.read.fetch_add(bytes.len(), Ordering::AcqRel);
                if self.over() {
                    return Err(Box::new(FileError::FieldsTooLarge) as s3s::StdError);
                }
            }
            Ok(bytes)
        })
    }
}

fn denied(message: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::AccessDenied, message.to_owned())
}

/// The PutObject headers a form's fields ask for.
fn put_headers(fields: &BTreeMap<String, String>) -> S3Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    let mut set = |name: &str, value: &str| -> S3Result<()> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| s3_error!(InvalidArgument, "invalid form field name {name}"))?;
        let value = HeaderValue::from_bytes(value.as_bytes())
            .map_err(|_| s3_error!(InvalidArgument, "invalid value of form field {name}"))?;
        headers.insert(name, value);
        Ok(())
    };
    for (name, value) in fields {
        match name.as_str() {
            "acl" => set("x-amz-acl", value)?,
            "tagging" => set("x-amz-tagging", &tagging_header(value)?)?,
            "cache-control"
            | "content-type"
            | "content-disposition"
            | "content-encoding"
            | "content-language"
            | "content-md5"
            | "expires" => set(name, value)?,
            other if is_object_header(other) => set(other, value)?,
            // Anything else (the signature's own fields, `x-ignore-*`, headers that would make
            // the write another operation, such as `x-amz-copy-source`) sets nothing.
            _ => {}
        }
    }
    Ok(headers)
}

/// The `x-amz-*` fields a form may set on its object, as the same headers on a PutObject.
fn is_object_header(name: &str) -> bool {
    name.starts_with("x-amz-meta-")
        || name.starts_with("x-amz-grant-")
        || name.starts_with("x-amz-server-side-encryption")
        || name.starts_with("x-amz-object-lock-")
        || matches!(
            name,
            "x-amz-acl"
                | "x-amz-tagging"
                | "x-amz-storage-class"
                | "x-amz-website-redirect-location"
                | "x-amz-security-token"
                | "x-amz-expected-bucket-owner"
                | "x-amz-checksum-crc32"
                | "x-amz-checksum-crc32c"
                | "x-amz-checksum-crc64nvme"
                | "x-amz-checksum-sha1"
                | "x-amz-checksum-sha256"
        )
}

/// A form's `tagging` field (a `<Tagging>` document) as an `x-amz-tagging` header.
fn tagging_header(xml: &str) -> S3Result<String> {
    use s3s::xml::Deserialize;
    let mut de = s3s::xml::Deserializer::new(xml.as_bytes());
    let tagging = s3s::dto::Tagging::deserialize(&mut de).map_err(|_| {
        s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        )
    })?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    for tag in &tagging.tag_set {
        query.append_pair(
            tag.key.as_deref().unwrap_or_default(),
            tag.value.as_deref().unwrap_or_default(),
        );
    }
    Ok(query.finish())
}

/// The file part as the PutObject's body, held to the policy's length range.
struct FileBody {
    file: Pin<Box<multer::Field<'static>>>,
    read: u64,
    range: (u64, u64),
    file_end: Arc<AtomicU8>,
}

#[derive(Debug, thiserror::Error)]
enum FileError {
    #[error("the file is outside the policy's content-length-range")]
    OutOfRange,
    #[error("the form sent too much before its file")]
    FieldsTooLarge,
    #[error("the form could not be read: {0}")]
    Form(#[from] multer::Error),
}

impl HttpBody for FileBody {
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match this.file.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.read = this.read.saturating_add(bytes.len() as u64);
                if this.read > this.range.1 {
                    this.file_end.store(LENGTH_OVER, Ordering::Release);
                    return Poll::Ready(Some(Err(Box::new(FileError::OutOfRange))));
                }
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Poll::Ready(Some(Err(e))) => {
                // The connection's own failures (a stall, a spent budget) are the service's
                // to answer; anything else is the form's.
                if !matches!(e, multer::Error::StreamReadFailed(_)) {
                    this.file_end.store(FILE_MALFORMED, Ordering::Release);
                }
                Poll::Ready(Some(Err(Box::new(FileError::Form(e)))))
            }
            Poll::Ready(None) if this.read < this.range.0 => {
                this.file_end.store(LENGTH_UNDER, Ordering::Release);
                Poll::Ready(Some(Err(Box::new(FileError::OutOfRange))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn policy(conditions: &str) -> String {
        let json =
            format!(r#"{{"expiration":"2999-01-01T00:00:00Z","conditions":[{conditions}]}}"#);
        base64_simd::STANDARD.encode_to_string(json)
    }

    #[test]
    fn a_policy_holds_every_field_to_a_condition() {
        let p =
            policy(r#"{"bucket":"b"},["starts-with","$key","in/"],["content-length-range",1,9]"#);
        let ok = fields(&[("key", "in/a"), ("policy", &p), ("x-amz-signature", "s")]);
        assert_eq!(check_policy(&p, &ok, "b").unwrap(), Some((1, 9)));

        let wrong_prefix = fields(&[("key", "out/a")]);
        let e = check_policy(&p, &wrong_prefix, "b").unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::AccessDenied);

        let extra = fields(&[("key", "in/a"), ("x-amz-meta-x", "1")]);
        let e = check_policy(&p, &extra, "b").unwrap_err();
        assert!(e.message().unwrap().contains("x-amz-meta-x"), "{e:?}");

        assert!(check_policy(&p, &ok, "other").is_err(), "another bucket");
        let expired = base64_simd::STANDARD
            .encode_to_string(r#"{"expiration":"2001-01-01T00:00:00Z","conditions":[]}"#);
        let e = check_policy(&expired, &fields(&[]), "b").unwrap_err();
        assert!(e.message().unwrap().contains("expired"), "{e:?}");
        let spaced = base64_simd::STANDARD
            .encode_to_string(r#"{"expiration":"2999-01-01 00:00:00Z","conditions":[]}"#);
        let e = check_policy(&spaced, &fields(&[]), "b").unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::InvalidPolicyDocument);
        let e = check_policy("not base64!", &fields(&[]), "b").unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::InvalidPolicyDocument);
    }

    #[tokio::test]
    async fn a_form_is_cut_off_when_its_file_part_never_comes() {
        let junk = Bytes::from(vec![b'x'; 64 << 10]);
        let chunks: Vec<Result<Bytes, s3s::StdError>> = (0..40).map(|_| Ok(junk.clone())).collect();
        let body = Body::http_body_unsync(http_body_util::StreamBody::new(
            futures::stream::iter(chunks).map_ok(Frame::data),
        ));
        let before_file = Arc::new(BeforeFile::default());
        let mut form = multer::Multipart::new(before_file.clone().count(body), "b");
        assert!(form.next_field().await.is_err());
        assert!(before_file.over());
        let read = before_file.read.load(Ordering::Acquire);
        assert!(
            read <= BEFORE_FILE_MAX_BYTES + (64 << 10),
            "read {read} bytes"
        );
    }

    #[test]
    fn fields_become_put_headers() {
        let h = put_headers(&fields(&[
            ("acl", "public-read"),
            ("content-type", "text/plain"),
            ("x-amz-meta-colour", "blue"),
            ("x-amz-date", "20250101T000000Z"),
            (
                "tagging",
                "<Tagging><TagSet><Tag><Key>a b</Key><Value>1</Value></Tag></TagSet></Tagging>",
            ),
            ("success_action_status", "201"),
            ("x-amz-copy-source", "other/object"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ]))
        .unwrap();
        assert_eq!(h["x-amz-acl"], "public-read");
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["x-amz-meta-colour"], "blue");
        assert_eq!(h["x-amz-tagging"], "a+b=1");
        assert!(!h.contains_key("x-amz-date"));
        assert_eq!(h.len(), 4);
    }

    #[test]
    fn a_redirect_carries_the_object_and_must_be_a_url() {
        let v = redirect_target("https://example.com/done?x=1", "b", "k 1", "\"e\"").unwrap();
        assert_eq!(
            v.to_str().unwrap(),
            "https://example.com/done?x=1&bucket=b&key=k+1&etag=%22e%22"
        );
        assert!(redirect_target("javascript:alert(1)", "b", "k", "e").is_none());
    }
}
