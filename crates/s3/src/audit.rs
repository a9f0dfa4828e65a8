//! The audit log: every denied request and every admin call, with who (access key), what
//! (method, resource, outcome), when (the log line's time) and from where (client address),
//! on the `basalt::audit` log target. Signatures, secrets and session tokens never appear.

use std::net::SocketAddr;

use http::{Method, Request, Response, StatusCode};
use s3s::Body;

pub(crate) struct Entry<'a> {
    pub status: StatusCode,
    pub method: &'a Method,
    pub resource: &'a str,
    pub access_key: Option<&'a str>,
    pub peer: Option<SocketAddr>,
    pub request_id: &'a str,
    pub error_code: Option<&'a str>,
}

const ADMIN_PREFIX: &str = "/basalt-admin/";

/// Logs the request if it was denied or was an admin call.
pub(crate) fn record(e: &Entry<'_>) {
    let denied = matches!(e.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
    let admin = e.resource.starts_with(ADMIN_PREFIX);
    if !denied && !admin {
        return;
    }
    let peer = e.peer.map(|p| p.to_string());
    tracing::info!(
        target: "basalt::audit",
        event = if admin { "admin" } else { "denied" },
        status = e.status.as_u16(),
        code = e.error_code.unwrap_or(""),
        method = %e.method,
        resource = e.resource,
        access_key = e.access_key.unwrap_or("-"),
        peer = peer.as_deref().unwrap_or("-"),
        request_id = e.request_id,
    );
}

/// The access key a request claims (SigV4 header or presigned query): only the key id, never
/// the signature.
pub(crate) fn access_key_of<B>(req: &Request<B>) -> Option<String> {
    if let Some(auth) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        let credential = auth.split("Credential=").nth(1)?;
        return credential.split('/').next().map(str::to_owned);
    }
    let query = req.uri().query()?;
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("X-Amz-Credential=")?;
        let decoded = value.replace("%2F", "/").replace("%2f", "/");
        decoded.split('/').next().map(str::to_owned)
    })
}

/// The S3 error code of an error response whose body is in memory.
pub(crate) fn error_code(resp: &Response<Body>) -> Option<String> {
    if resp.status().is_success() {
        return None;
    }
    let bytes = resp.body().bytes()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (_, rest) = text.split_once("<Code>")?;
    rest.split_once("</Code>").map(|(code, _)| code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_key_is_read_without_the_signature() {
        let req = Request::builder()
            .uri("/b/k")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abcdef",
            )
            .body(())
            .unwrap();
        assert_eq!(access_key_of(&req).as_deref(), Some("AKIDEXAMPLE"));
        let presigned = Request::builder()
            .uri("/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDQ%2F20261125%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=ff")
            .body(())
            .unwrap();
        assert_eq!(access_key_of(&presigned).as_deref(), Some("AKIDQ"));
    }
}
