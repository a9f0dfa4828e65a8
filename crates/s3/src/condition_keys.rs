//! The condition keys a request carries into policy evaluation: the global `aws:*` keys (where
//! it came from, how, when, who sent it) and the S3 keys its headers set (`s3:x-amz-acl`,
//! `s3:x-amz-copy-source`, `s3:RequestObjectTag/<key>`, …), as AWS names them.

use std::collections::HashMap;

use http::HeaderMap;

use crate::access::Connection;

/// The global condition keys of a request: where it came from, how, when, and who sent it.
pub(crate) fn global_keys(
    connection: Option<Connection>,
    principal: Option<&str>,
) -> HashMap<String, Vec<String>> {
    let mut keys: HashMap<String, Vec<String>> = HashMap::new();
    if let Some(peer) = connection.and_then(|c| c.peer) {
        // An IPv4 client of a dual-stack listener must match IPv4 ranges.
        keys.insert(
            "aws:SourceIp".into(),
            vec![peer.ip().to_canonical().to_string()],
        );
    }
    keys.insert(
        "aws:SecureTransport".into(),
        vec![connection.is_some_and(|c| c.tls).to_string()],
    );
    if let Ok(now) =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)
    {
        keys.insert("aws:CurrentTime".into(), vec![now]);
    }
    if let Some(name) = principal {
        keys.insert("aws:username".into(), vec![name.to_owned()]);
    }
    keys
}

/// The request headers S3 offers as `s3:<header>` condition keys.
const HEADER_KEYS: [&str; 16] = [
    "x-amz-acl",
    "x-amz-content-sha256",
    "x-amz-copy-source",
    "x-amz-grant-full-control",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write",
    "x-amz-grant-write-acp",
    "x-amz-metadata-directive",
    "x-amz-object-lock-legal-hold",
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-storage-class",
];

/// Adds the keys `headers` set: each of [`HEADER_KEYS`] present, the tags of `x-amz-tagging`
/// (`s3:RequestObjectTag/<key>` and `s3:RequestObjectTagKeys`), `aws:Referer` and
/// `aws:UserAgent`. A copy source is matched as `bucket/key`, decoded, as AWS's examples
/// write it.
pub(crate) fn add_header_keys(headers: &HeaderMap, keys: &mut HashMap<String, Vec<String>>) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    for name in HEADER_KEYS {
        if let Some(value) = header(name) {
            let value = if name == "x-amz-copy-source" {
                let source = value.trim_start_matches('/');
                let source = source.split_once("?versionId=").map_or(source, |(s, _)| s);
                percent_encoding::percent_decode_str(source)
                    .decode_utf8_lossy()
                    .into_owned()
            } else {
                value.trim().to_owned()
            };
            keys.insert(format!("s3:{name}"), vec![value]);
        }
    }
    if let Ok(tags) = crate::convert::tags_of_header(header("x-amz-tagging")) {
        if !tags.is_empty() {
            keys.insert(
                "s3:RequestObjectTagKeys".into(),
                tags.iter().map(|(k, _)| k.clone()).collect(),
            );
        }
        for (k, v) in tags {
            keys.insert(format!("s3:RequestObjectTag/{k}"), vec![v]);
        }
    }
    if let Some(referer) = header("referer") {
        keys.insert("aws:Referer".into(), vec![referer.to_owned()]);
    }
    if let Some(agent) = header("user-agent") {
        keys.insert("aws:UserAgent".into(), vec![agent.to_owned()]);
    }
}

/// Adds `s3:ExistingObjectTag/<key>` for each tag of the object a request addresses.
pub(crate) fn add_existing_tag_keys(
    tags: &[(String, String)],
    keys: &mut HashMap<String, Vec<String>>,
) {
    for (k, v) in tags {
        keys.insert(format!("s3:ExistingObjectTag/{k}"), vec![v.clone()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_become_s3_condition_keys() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-copy-source",
            "/src/public/a%20b.txt?versionId=3".parse().unwrap(),
        );
        headers.insert("x-amz-tagging", "team=data&tier=".parse().unwrap());
        headers.insert("x-amz-server-side-encryption", "AES256".parse().unwrap());
        headers.insert("referer", "http://www.example.com/".parse().unwrap());
        let mut keys = HashMap::new();
        add_header_keys(&headers, &mut keys);
        assert_eq!(keys["s3:x-amz-copy-source"], ["src/public/a b.txt"]);
        assert_eq!(keys["s3:x-amz-server-side-encryption"], ["AES256"]);
        assert_eq!(keys["s3:RequestObjectTag/team"], ["data"]);
        assert_eq!(keys["s3:RequestObjectTag/tier"], [""]);
        assert_eq!(keys["s3:RequestObjectTagKeys"], ["team", "tier"]);
        assert_eq!(keys["aws:Referer"], ["http://www.example.com/"]);
        assert!(!keys.contains_key("s3:x-amz-acl"));
    }
}
