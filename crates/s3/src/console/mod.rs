//! The web console, under `/_console/` on the S3 port: one page, its script and its style,
//! embedded in the binary. The page signs every call itself (SigV4, in the browser) and makes
//! ordinary S3 and admin requests, so it adds no way in: the server keeps no console sessions
//! and the console can do exactly what the signed-in key may do.
//!
//! The bucket name `_console` cannot exist (S3 names have no underscore), so the prefix never
//! hides a bucket. `/console` sends a browser there (a page request: `Accept: text/html`,
//! unsigned, no query), which leaves a bucket named `console` to every S3 client.

pub(crate) mod history;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use s3s::Body;

pub(crate) const PREFIX: &str = "/_console/";

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// Nothing from elsewhere: no inline script, no frames, calls only to this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

/// The console's answer to `req`, or `None` when `req` is not for the console. `bucket_host`:
/// the request's host names a bucket (virtual-hosted style), so its path is an object key.
pub(crate) fn respond<B>(
    req: &Request<B>,
    region: &str,
    bucket_host: bool,
) -> Option<Response<Body>> {
    if bucket_host || !(req.method() == Method::GET || req.method() == Method::HEAD) {
        return None;
    }
    let path = req.uri().path();
    if path == "/_console" || (path == "/console" && is_page_request(req)) {
        return Some(redirect_to_console());
    }
    let asset = path.strip_prefix(PREFIX)?;
    let (content_type, text) = match asset {
        "" | "index.html" => ("text/html; charset=utf-8", page(region)),
        "console.js" => ("text/javascript; charset=utf-8", SCRIPT.to_owned()),
        "console.css" => ("text/css; charset=utf-8", STYLE.to_owned()),
        _ => {
            return Some(with_headers(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "no such console page".to_owned(),
            ));
        }
    };
    Some(with_headers(StatusCode::OK, content_type, text))
}

/// A browser asking for a page: unsigned, no query, HTML accepted.
fn is_page_request<B>(req: &Request<B>) -> bool {
    req.uri().query().is_none()
        && !req.headers().contains_key(header::AUTHORIZATION)
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// The page, told the region it signs for. A region is a plain name; anything else (it comes
/// from the operator's configuration, but it lands in HTML) falls back to the default.
fn page(region: &str) -> String {
    let plain = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    INDEX.replace("{{REGION}}", if plain { region } else { "us-east-1" })
}

fn redirect_to_console() -> Response<Body> {
    let mut resp = with_headers(
        StatusCode::FOUND,
        "text/plain; charset=utf-8",
        "the console is at /_console/".to_owned(),
    );
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(PREFIX));
    resp
}

fn with_headers(status: StatusCode, content_type: &'static str, text: String) -> Response<Body> {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, accept: Option<&str>) -> Request<()> {
        let mut builder = Request::get(path);
        if let Some(accept) = accept {
            builder = builder.header(header::ACCEPT, accept);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn the_page_names_its_region_and_nothing_else() {
        let resp = respond(&get("/_console/", None), "eu-west-3", false).unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(page("eu-west-3").contains(r#"content="eu-west-3""#));
        assert!(page("x\"><script>").contains(r#"content="us-east-1""#));
    }

    #[test]
    fn only_a_browser_page_request_for_console_is_redirected() {
        let browser = respond(&get("/console", Some("text/html,*/*")), "us-east-1", false).unwrap();
        assert_eq!(browser.status(), StatusCode::FOUND);
        assert!(respond(&get("/console", None), "us-east-1", false).is_none());
        assert!(
            respond(
                &get("/console?list-type=2", Some("text/html")),
                "us-east-1",
                false
            )
            .is_none()
        );
        assert!(respond(&get("/_console/", None), "us-east-1", true).is_none());
        assert_eq!(
            respond(&get("/_console/nope.js", None), "us-east-1", false)
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
    }
}
