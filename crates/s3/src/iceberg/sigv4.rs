//! SigV4 for the catalog's requests, which `s3s` never sees: the signature of a service other
//! than S3 (`s3tables`, `glue`, `execute-api`: whatever name the client signs for), over the
//! body it sent. Unlike S3, such services URI-encode the path a second time and normalize it.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use ring::hmac;

/// How far a request's `x-amz-date` may be from the node's clock, as on AWS.
const MAX_SKEW: time::Duration = time::Duration::minutes(15);

/// Characters SigV4 leaves unencoded: RFC 3986's unreserved ones.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// A signed request's claims, parsed from its headers; check them with [`Claims::verify`].
#[derive(Debug)]
pub(crate) struct Claims {
    pub(crate) access_key: String,
    pub(crate) session_token: Option<String>,
    date: String,
    amz_date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: Vec<u8>,
}

/// Why a signature was refused (answered 401/403 by the catalog).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SignatureError {
    Malformed(String),
    Stale,
    Mismatch,
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Claims {
    /// The claims of an `Authorization: AWS4-HMAC-SHA256 …` request; `None` if it is not one.
    pub(crate) fn of(headers: &http::HeaderMap) -> Option<Result<Self, SignatureError>> {
        let value = header(headers, "authorization")?;
        let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
        Some(Self::parse(rest, headers))
    }

    fn parse(fields: &str, headers: &http::HeaderMap) -> Result<Self, SignatureError> {
        let malformed = |what: &str| SignatureError::Malformed(what.to_owned());
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for field in fields.split(',') {
            match field.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => return Err(malformed("the Authorization header has an unknown field")),
            }
        }
        let credential = credential.ok_or_else(|| malformed("no Credential"))?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key, date, region, service, "aws4_request"] = scope.as_slice() else {
            return Err(malformed(
                "the Credential is not KEY/DATE/REGION/SERVICE/aws4_request",
            ));
        };
        let signed_headers: Vec<String> = signed
            .ok_or_else(|| malformed("no SignedHeaders"))?
            .split(';')
            .map(str::to_ascii_lowercase)
            .collect();
        if !signed_headers.iter().any(|h| h == "host") {
            return Err(malformed("the host header must be signed"));
        }
        let signature =
            hex_simd::decode_to_vec(signature.ok_or_else(|| malformed("no Signature"))?)
                .map_err(|_| malformed("the Signature is not hex"))?;
        let amz_date = header(headers, "x-amz-date")
            .ok_or_else(|| malformed("no x-amz-date header"))?
            .to_owned();
        if !amz_date.starts_with(date) {
            return Err(malformed("the credential's date is not the x-amz-date's"));
        }
        Ok(Self {
            access_key: (*access_key).to_owned(),
            session_token: header(headers, "x-amz-security-token").map(str::to_owned),
            date: (*date).to_owned(),
            amz_date,
            region: (*region).to_owned(),
            service: (*service).to_owned(),
            signed_headers,
            signature,
        })
    }

    /// Checks the signature of the request (`parts`, `body`) with `secret`, at time `now`.
    pub(crate) fn verify(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        secret: &str,
        now: time::OffsetDateTime,
    ) -> Result<(), SignatureError> {
        let signed_at = crate::signed_request::parse_amz_date(&self.amz_date).ok_or_else(|| {
            SignatureError::Malformed("x-amz-date is not YYYYMMDDTHHMMSSZ".into())
        })?;
        if (now - signed_at).abs() > MAX_SKEW {
            return Err(SignatureError::Stale);
        }
        let payload = basalt_object::sha256_hex(body);
        if let Some(claimed) = header(&parts.headers, "x-amz-content-sha256")
            && claimed != payload
        {
            return Err(SignatureError::Mismatch);
        }
        let canonical = canonical_request(parts, &self.signed_headers, &payload)?;
        let scope = format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
            self.amz_date,
            basalt_object::sha256_hex(canonical.as_bytes())
        );
        let key = crate::signed_request::sigv4_signing_key(
            secret,
            &self.date,
            &self.region,
            &self.service,
        );
        hmac::verify(&key, string_to_sign.as_bytes(), &self.signature)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// RFC 3986's dot-segment removal, with empty segments dropped too, as AWS normalizes paths.
fn normalize_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut normalized = String::from("/");
    normalized.push_str(&out.join("/"));
    if path.ends_with('/') && !out.is_empty() {
        normalized.push('/');
    }
    normalized
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| {
            (
                utf8_percent_encode(&k, UNRESERVED).to_string(),
                utf8_percent_encode(&v, UNRESERVED).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_request(
    parts: &http::request::Parts,
    signed_headers: &[String],
    payload: &str,
) -> Result<String, SignatureError> {
    // The path as sent (already percent-encoded), encoded once more.
    let path =
        utf8_percent_encode(&normalize_path(parts.uri.path()), UNRESERVED_AND_SLASH).to_string();
    let mut sorted = signed_headers.to_vec();
    sorted.sort();
    let mut headers = String::new();
    for name in &sorted {
        let values: Vec<String> =
            if name == "host" && !parts.headers.contains_key(http::header::HOST) {
                // HTTP/2 carries the host as the authority.
                parts
                    .uri
                    .authority()
                    .map(|a| vec![a.as_str().to_owned()])
                    .unwrap_or_default()
            } else {
                parts
                    .headers
                    .get_all(name.as_str())
                    .iter()
                    .map(|v| {
                        v.to_str()
                            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                            .map_err(|_| SignatureError::Malformed(format!("header {name}")))
                    })
                    .collect::<Result<_, _>>()?
            };
        if values.is_empty() {
            return Err(SignatureError::Malformed(format!(
                "the signed header {name} is missing"
            )));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Ok(format!(
        "{}\n{path}\n{}\n{headers}\n{}\n{payload}",
        parts.method,
        canonical_query(parts.uri.query().unwrap_or_default()),
        sorted.join(";")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_and_encoded_twice() {
        assert_eq!(normalize_path("/a//b/./c/../d/"), "/a/b/d/");
        assert_eq!(normalize_path(""), "/");
        assert_eq!(
            utf8_percent_encode(
                &normalize_path("/_iceberg/v1/w/namespaces/a%1Fb"),
                UNRESERVED_AND_SLASH
            )
            .to_string(),
            "/_iceberg/v1/w/namespaces/a%251Fb"
        );
    }

    #[test]
    fn query_pairs_are_decoded_encoded_and_sorted() {
        assert_eq!(
            canonical_query("warehouse=s3%3A%2F%2Fb&a=x+y"),
            "a=x%20y&warehouse=s3%3A%2F%2Fb"
        );
    }

    /// The example of AWS's SigV4 documentation ("GET /?Param2=value2&Param1=value1" of
    /// service "service"), from the aws-sig-v4 test suite.
    #[test]
    fn the_aws_test_suite_example_verifies() {
        let req = http::Request::builder()
            .method("GET")
            .uri("/?Param2=value2&Param1=value1")
            .header("host", "example.amazonaws.com")
            .header("x-amz-date", "20150830T123600Z")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            )
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let claims = Claims::of(&parts.headers).unwrap().unwrap();
        assert_eq!(claims.access_key, "AKIDEXAMPLE");
        let at = time::macros::datetime!(2015-08-30 12:36:00 UTC);
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        assert_eq!(claims.verify(&parts, b"", secret, at), Ok(()));
        assert_eq!(
            claims.verify(&parts, b"", "another secret", at),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            claims.verify(&parts, b"", secret, at + time::Duration::hours(1)),
            Err(SignatureError::Stale)
        );
    }
}
