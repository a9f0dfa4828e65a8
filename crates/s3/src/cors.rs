//! Cross-origin resource sharing as S3 does it: a bucket's rules (PutBucketCors), the OPTIONS
//! preflight a browser sends before a cross-origin request, and the `Access-Control-*` headers
//! on the real request, so a page can upload straight to Basalt.

use basalt_object::CorsRule;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use s3s::dto;
use s3s::{Body, S3Result, s3_error};

const MAX_RULES: usize = 100;
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

/// Converts and checks the rules of a PutBucketCors request.
pub(crate) fn rules_of(config: dto::CORSConfiguration) -> S3Result<Vec<CorsRule>> {
    let rules = config.cors_rules;
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(s3_error!(
            MalformedXML,
            "a CORS configuration holds 1 to {MAX_RULES} rules"
        ));
    }
    rules
        .into_iter()
        .map(|r| {
            for method in &r.allowed_methods {
                if !METHODS.contains(&method.as_str()) {
                    return Err(s3_error!(
                        InvalidRequest,
                        "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
                    ));
                }
            }
            let wildcards = |v: &[String], what: &str| match v.iter().find(|s| s.matches('*').count() > 1) {
                Some(bad) => Err(s3_error!(
                    InvalidRequest,
                    "{what} \"{bad}\" can not have more than one wildcard."
                )),
                None => Ok(()),
            };
            wildcards(&r.allowed_origins, "AllowedOrigin")?;
            let allowed_headers = r.allowed_headers.unwrap_or_default();
            wildcards(&allowed_headers, "AllowedHeader")?;
            if r.allowed_methods.is_empty() || r.allowed_origins.is_empty() {
                return Err(s3_error!(
                    MalformedXML,
                    "every CORS rule needs an AllowedMethod and an AllowedOrigin"
                ));
            }
            Ok(CorsRule {
                id: r.id,
                allowed_origins: r.allowed_origins,
                allowed_methods: r.allowed_methods,
                allowed_headers,
                expose_headers: r.expose_headers.unwrap_or_default(),
                max_age_seconds: r.max_age_seconds,
            })
        })
        .collect()
}

pub(crate) fn dto_of(rules: &[CorsRule]) -> Vec<dto::CORSRule> {
    rules
        .iter()
        .map(|r| dto::CORSRule {
            id: r.id.clone(),
            allowed_origins: r.allowed_origins.clone(),
            allowed_methods: r.allowed_methods.clone(),
            allowed_headers: (!r.allowed_headers.is_empty()).then(|| r.allowed_headers.clone()),
            expose_headers: (!r.expose_headers.is_empty()).then(|| r.expose_headers.clone()),
            max_age_seconds: r.max_age_seconds,
        })
        .collect()
}

/// `pattern` with at most one `*` matching any run of characters.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.starts_with(head)
                && value.ends_with(tail)
        }
    }
}

/// The first rule that lets `origin` make a `method` request sending `headers`.
fn matching_rule<'r>(
    rules: &'r [CorsRule],
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<&'r CorsRule> {
    rules.iter().find(|r| {
        r.allowed_origins.iter().any(|o| wildcard_match(o, origin))
            && r.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                r.allowed_headers
                    .iter()
                    .any(|a| wildcard_match(&a.to_ascii_lowercase(), h))
            })
    })
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// The `Access-Control-*` headers a matching rule grants.
fn grant(headers: &mut HeaderMap, rule: &CorsRule, origin: &str) {
    if rule.allowed_origins.iter().any(|o| o == "*") {
        set(headers, "access-control-allow-origin", "*");
    } else {
        set(headers, "access-control-allow-origin", origin);
        set(headers, "access-control-allow-credentials", "true");
    }
    set(
        headers,
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if !rule.expose_headers.is_empty() {
        set(
            headers,
            "access-control-expose-headers",
            &rule.expose_headers.join(", "),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        set(headers, "access-control-max-age", &age.to_string());
    }
    headers.append(http::header::VARY, HeaderValue::from_static("Origin"));
}

fn forbidden(message: &str) -> Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessForbidden</Code><Message>{message}</Message></Error>"
    );
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    resp
}

/// Answers an OPTIONS preflight for a bucket whose rules are `rules` (`None`: no CORS
/// configuration, or no such bucket).
pub(crate) fn preflight(headers: &HeaderMap, rules: Option<&[CorsRule]>) -> Response<Body> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(origin), Some(method)) = (header("origin"), header("access-control-request-method"))
    else {
        let mut resp = forbidden(
            "Insufficient information. Origin request header and Access-Control-Request-Method are needed.",
        );
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    };
    let Some(rules) = rules else {
        return forbidden("CORSResponse: CORS is not enabled for this bucket.");
    };
    let requested: Vec<String> = header("access-control-request-headers")
        .unwrap_or("")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    match matching_rule(rules, origin, method, &requested) {
        Some(rule) => {
            let mut resp = Response::new(Body::empty());
            grant(resp.headers_mut(), rule, origin);
            if !requested.is_empty() {
                set(
                    resp.headers_mut(),
                    "access-control-allow-headers",
                    &requested.join(", "),
                );
            }
            resp
        }
        None => forbidden(
            "CORSResponse: This CORS request is not allowed. This is usually because the evaluation of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        ),
    }
}

/// Adds the headers a matching rule grants to the response of a real cross-origin request.
pub(crate) fn decorate(
    resp: &mut Response<Body>,
    origin: &str,
    method: &Method,
    rules: &[CorsRule],
) {
    if let Some(rule) = matching_rule(rules, origin, method.as_str(), &[]) {
        grant(resp.headers_mut(), rule, origin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        CorsRule {
            allowed_origins: own(origins),
            allowed_methods: own(methods),
            allowed_headers: own(headers),
            ..CorsRule::default()
        }
    }

    #[test]
    fn origins_methods_and_headers_match_with_one_wildcard() {
        let rules = [
            rule(&["https://*.example.com"], &["PUT"], &["content-*"]),
            rule(&["*"], &["GET"], &[]),
        ];
        let h = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(
            matching_rule(
                &rules,
                "https://app.example.com",
                "PUT",
                &h(&["content-type"])
            )
            .is_some()
        );
        assert!(
            matching_rule(&rules, "https://app.example.com", "PUT", &h(&["x-amz-acl"])).is_none()
        );
        assert!(matching_rule(&rules, "https://example.org", "PUT", &[]).is_none());
        assert!(matching_rule(&rules, "https://anything", "GET", &[]).is_some());
        assert!(matching_rule(&rules, "https://anything", "DELETE", &[]).is_none());
        assert!(!wildcard_match("a*a", "a"));
    }
}
