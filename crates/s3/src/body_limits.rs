//! How large a request body each kind of operation accepts, checked from the head before any
//! byte is read, with AWS's error codes.
//!
//! Object data (PutObject, UploadPart) streams and has its own limits in the object layer.
//! Every other body is read whole and parsed: configuration XML, a DeleteObjects or
//! CompleteMultipartUpload list, a bucket policy. Those get a declared length (Content-Length,
//! or `x-amz-decoded-content-length` for aws-chunked bodies) no larger than their limit.

use http::{HeaderMap, Method, Request, StatusCode};
use s3s::{S3Error, S3ErrorCode};

/// The largest XML body: a CompleteMultipartUpload of 10,000 parts with checksums, or a
/// DeleteObjects of 1,000 keys of 1,024 bytes, fits well within it.
pub(crate) const XML_MAX_BYTES: u64 = 4 << 20;

/// AWS's limit on a bucket policy.
pub(crate) const BUCKET_POLICY_MAX_BYTES: u64 = 20 << 10;

/// Sub-resources whose PUT carries object data rather than a document.
const DATA_QUERY_KEYS: &[&str] = &["partNumber", "uploadId", "x-id", "versionId"];

/// What a request's body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    /// Object data, streamed: limits are the object layer's.
    ObjectData,
    /// Handled elsewhere with limits of its own (browser POST form, STS form, admin API).
    OwnLimits,
    /// A bucket policy document.
    Policy,
    /// A document read whole.
    Document,
}

fn kind_of<B>(req: &Request<B>, admin_prefix: &str) -> BodyKind {
    // Other methods carry no body S3 reads.
    if !matches!(*req.method(), Method::PUT | Method::POST) {
        return BodyKind::OwnLimits;
    }
    let path = req.uri().path();
    if path.starts_with(admin_prefix)
        || crate::sts::StsRoute::matches(req.method(), req.uri(), req.headers())
    {
        return BodyKind::OwnLimits;
    }
    let query_keys: Vec<String> = req
        .uri()
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, _)| k.into_owned())
                .filter(|k| !k.starts_with("X-Amz-"))
                .collect()
        })
        .unwrap_or_default();
    let is_object = path.trim_start_matches('/').contains('/');
    match *req.method() {
        Method::PUT if query_keys.iter().any(|k| k == "policy") => BodyKind::Policy,
        Method::PUT
            if is_object
                && query_keys
                    .iter()
                    .all(|k| DATA_QUERY_KEYS.contains(&k.as_str())) =>
        {
            BodyKind::ObjectData
        }
        Method::POST if is_form_upload(req.headers()) => BodyKind::OwnLimits,
        _ => BodyKind::Document,
    }
}

fn is_form_upload(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// The body length the client declares: the decoded length of an aws-chunked body, else
/// Content-Length.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    number("x-amz-decoded-content-length").or_else(|| number("content-length"))
}

/// Refuses, from the head, a document body larger than its operation accepts, or of unknown
/// length.
pub(crate) fn check<B>(req: &Request<B>, admin_prefix: &str) -> Result<(), S3Error> {
    let kind = kind_of(req, admin_prefix);
    let limit = match kind {
        BodyKind::ObjectData | BodyKind::OwnLimits => return Ok(()),
        BodyKind::Policy => BUCKET_POLICY_MAX_BYTES,
        BodyKind::Document => XML_MAX_BYTES,
    };
    let chunked = req.headers().get(http::header::TRANSFER_ENCODING).is_some();
    match declared_length(req.headers()) {
        Some(len) if len > limit => Err(too_large(kind, limit)),
        Some(_) => Ok(()),
        None if chunked => {
            let mut e = S3Error::with_message(
                S3ErrorCode::MissingContentLength,
                "You must provide the Content-Length HTTP header.",
            );
            e.set_status_code(StatusCode::LENGTH_REQUIRED);
            Err(e)
        }
        None => Ok(()),
    }
}

fn too_large(kind: BodyKind, limit: u64) -> S3Error {
    let mut e = if kind == BodyKind::Policy {
        S3Error::with_message(
            S3ErrorCode::Custom("PolicyTooLarge".into()),
            format!("Policies must be less than {} KB", limit >> 10),
        )
    } else {
        S3Error::with_message(
            S3ErrorCode::MaxMessageLengthExceeded,
            format!("Your request was too big: at most {limit} bytes are accepted."),
        )
    };
    e.set_status_code(StatusCode::BAD_REQUEST);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut r = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(()).unwrap()
    }

    fn code(r: Result<(), S3Error>) -> String {
        r.unwrap_err().code().as_str().to_owned()
    }

    #[test]
    fn documents_over_their_limit_are_refused_before_reading() {
        let big = (XML_MAX_BYTES + 1).to_string();
        let r = req(Method::POST, "/b?delete", &[("content-length", &big)]);
        assert_eq!(code(check(&r, "/admin/")), "MaxMessageLengthExceeded");
        let r = req(Method::PUT, "/b/k?tagging", &[("content-length", &big)]);
        assert_eq!(code(check(&r, "/admin/")), "MaxMessageLengthExceeded");
        let policy = (BUCKET_POLICY_MAX_BYTES + 1).to_string();
        let r = req(Method::PUT, "/b?policy", &[("content-length", &policy)]);
        assert_eq!(code(check(&r, "/admin/")), "PolicyTooLarge");
        let r = req(
            Method::POST,
            "/b?delete",
            &[("transfer-encoding", "chunked")],
        );
        assert_eq!(code(check(&r, "/admin/")), "MissingContentLength");
        let r = req(Method::POST, "/b?delete", &[("content-length", "100")]);
        assert!(check(&r, "/admin/").is_ok());
    }

    #[test]
    fn object_data_and_other_routes_keep_their_own_limits() {
        let huge = (5u64 << 30).to_string();
        for (method, uri) in [
            (Method::PUT, "/b/k"),
            (Method::PUT, "/b/k?partNumber=1&uploadId=u"),
            (Method::PUT, "/b/k?X-Amz-Signature=00&X-Amz-Expires=60"),
            (Method::PUT, "/admin/v1/user"),
            (Method::GET, "/b/k"),
        ] {
            let r = req(method, uri, &[("content-length", &huge)]);
            assert!(check(&r, "/admin/").is_ok(), "{uri}");
        }
        let r = req(
            Method::POST,
            "/b",
            &[
                ("content-type", "multipart/form-data; boundary=x"),
                ("content-length", &huge),
            ],
        );
        assert!(check(&r, "/admin/").is_ok());
    }
}
