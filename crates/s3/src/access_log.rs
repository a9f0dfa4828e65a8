//! Server access logs (PutBucketLogging): each request to a bucket with logging on becomes one
//! line in AWS's log format, buffered per bucket on the node that served it and delivered as
//! an object into the target bucket every [`FLUSH_INTERVAL`], when a buffer passes
//! [`BATCH_MAX_BYTES`], on `POST /basalt-admin/v1/access-logs/flush` and at shutdown. As on
//! AWS, delivery is best effort: lines buffered when a node dies are lost.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use basalt_object::{BucketLogging, ObjectStore};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, Version};

/// How long a bucket's logging configuration is trusted before it is read again: a change
/// (on any node of a cluster) takes effect within this.
const CONFIG_TTL: Duration = Duration::from_secs(5);
const CONFIG_CACHE_MAX: usize = 4096;
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(60);
/// A buffer this large is delivered at once: memory stays bounded by the buckets logged.
const BATCH_MAX_BYTES: usize = 4 << 20;

/// A key as logs show it: URL-encoded, its slashes and unreserved characters kept.
pub(crate) const KEY_ENCODING: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// What the access check learned of a request, for the metrics and the access log.
#[derive(Clone, Default)]
pub(crate) struct RequestFacts(Arc<Mutex<Facts>>);

#[derive(Clone, Default)]
pub(crate) struct Facts {
    pub operation: Option<String>,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// The canonical id of who signed the request; `None`: anonymous.
    pub requester: Option<String>,
    /// The S3 error code of an error response.
    pub error_code: Option<String>,
}

impl RequestFacts {
    pub(crate) fn update(&self, f: impl FnOnce(&mut Facts)) {
        if let Ok(mut facts) = self.0.lock() {
            f(&mut facts);
        }
    }

    pub(crate) fn take(&self) -> Facts {
        self.0
            .lock()
            .map(|mut facts| std::mem::take(&mut *facts))
            .unwrap_or_default()
    }
}

/// The request side of a log line, taken before the request is handled.
pub(crate) struct RequestLine {
    method: Method,
    uri: Uri,
    version: Version,
    started: SystemTime,
    user_agent: String,
    referer: String,
    host: String,
    signature: (&'static str, &'static str),
    received: u64,
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

/// The signature version and authentication type, as the log's fields 20 and 22 name them.
fn signature_of(headers: &HeaderMap, uri: &Uri) -> (&'static str, &'static str) {
    let auth = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let query = uri.query().unwrap_or_default();
    if auth.starts_with("AWS4-HMAC-SHA256") {
        ("SigV4", "AuthHeader")
    } else if auth.starts_with("AWS ") {
        ("SigV2", "AuthHeader")
    } else if query.contains("X-Amz-Signature=") {
        ("SigV4", "QueryString")
    } else if query.contains("Signature=") {
        ("SigV2", "QueryString")
    } else {
        ("-", "-")
    }
}

impl RequestLine {
    pub(crate) fn of<B>(req: &http::Request<B>, received: u64) -> Self {
        let headers = req.headers();
        Self {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            started: SystemTime::now(),
            user_agent: header(headers, "user-agent"),
            referer: header(headers, "referer"),
            host: header(headers, "host"),
            signature: signature_of(headers, req.uri()),
            received,
        }
    }
}

/// The response side of a log line.
pub(crate) struct Outcome<'a> {
    pub status: StatusCode,
    pub request_id: &'a str,
    pub sent: u64,
    pub elapsed: Duration,
    pub remote_ip: Option<std::net::IpAddr>,
    pub tls: bool,
}

/// AWS's operation names: `REST.<METHOD>.<resource>`.
fn operation_name(method: &Method, operation: &str) -> String {
    let resource = match operation {
        "GetObject" | "HeadObject" | "PutObject" | "DeleteObject" | "PostObject" => "OBJECT",
        "CopyObject" => "COPY.OBJECT",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" | "CreateBucket" | "DeleteBucket" => {
            "BUCKET"
        }
        "ListObjectVersions" => "BUCKETVERSIONS",
        "DeleteObjects" => "MULTI_OBJECT_DELETE",
        "CreateMultipartUpload" | "ListMultipartUploads" => "UPLOADS",
        "CompleteMultipartUpload" | "AbortMultipartUpload" | "ListParts" => "UPLOAD",
        "UploadPart" => "PART",
        "UploadPartCopy" => "COPY.PART",
        other => {
            // GetBucketVersioning → VERSIONING, PutObjectTagging → OBJECT_TAGGING.
            let rest = ["Get", "Put", "Delete", "Head", "List", "Post"]
                .iter()
                .find_map(|verb| other.strip_prefix(verb))
                .unwrap_or(other);
            let rest = rest.strip_prefix("Bucket").unwrap_or(rest);
            let mut words = String::new();
            for (i, c) in rest.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    words.push('_');
                }
                words.push(c.to_ascii_uppercase());
            }
            return format!("REST.{method}.{words}");
        }
    };
    let method = if resource.starts_with("COPY.") {
        String::new()
    } else {
        format!("{method}.")
    };
    format!("REST.{method}{resource}")
}

fn quoted_or_dash(v: &str) -> String {
    if v == "-" {
        "\"-\"".to_owned()
    } else {
        format!("\"{}\"", v.replace('"', "\\\""))
    }
}

/// One line in AWS's server access log format (its 26 fields, space-separated).
fn format_line(
    owner: &str,
    bucket: &str,
    facts: &Facts,
    req: &RequestLine,
    out: &Outcome,
) -> String {
    let time = time::OffsetDateTime::from(req.started)
        .format(time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        ))
        .unwrap_or_default();
    let key = facts
        .key
        .as_deref()
        .map(|k| percent_encoding::utf8_percent_encode(k, KEY_ENCODING).to_string())
        .unwrap_or_else(|| "-".to_owned());
    let version_id = req
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|p| p.strip_prefix("versionId="))
        .unwrap_or("-");
    let request_uri = format!(
        "{} {} {:?}",
        req.method,
        req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        req.version
    );
    let object_size = match req.method {
        Method::PUT | Method::POST if req.received > 0 => req.received.to_string(),
        Method::GET if out.status.is_success() => out.sent.to_string(),
        _ => "-".to_owned(),
    };
    let mut line = String::with_capacity(256);
    let _ = write!(
        line,
        "{owner} {bucket} [{time}] {ip} {requester} {id} {op} {key} {uri} {status} {code} {sent} {size} {total} - {referer} {agent} {version_id} - {sig} {cipher} {auth} {host} {tls} - -",
        ip = out
            .remote_ip
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "-".to_owned()),
        requester = facts.requester.as_deref().unwrap_or("-"),
        id = out.request_id,
        op = operation_name(&req.method, facts.operation.as_deref().unwrap_or("Other")),
        uri = quoted_or_dash(&request_uri),
        status = out.status.as_u16(),
        code = facts.error_code.as_deref().unwrap_or("-"),
        sent = if out.sent > 0 {
            out.sent.to_string()
        } else {
            "-".to_owned()
        },
        size = object_size,
        total = out.elapsed.as_millis(),
        referer = quoted_or_dash(&req.referer),
        agent = quoted_or_dash(&req.user_agent),
        sig = req.signature.0,
        cipher = if out.tls {
            "TLS_AES_256_GCM_SHA384"
        } else {
            "-"
        },
        auth = req.signature.1,
        host = req.host,
        tls = if out.tls { "TLSv1.3" } else { "-" },
    );
    line.push('\n');
    line
}

#[derive(Clone)]
struct Target {
    config: BucketLogging,
    /// The source bucket owner's canonical id (field 1).
    owner: String,
}

struct Batch {
    target: Target,
    lines: String,
    /// When its first line's request started (a partitioned key's event time).
    first_event: SystemTime,
}

/// The node's access-log buffers.
pub(crate) struct AccessLogs {
    store: ObjectStore,
    region: String,
    configs: Mutex<HashMap<String, (Instant, Option<Target>)>>,
    pending: Mutex<HashMap<String, Batch>>,
    delivering: tokio::sync::Mutex<()>,
}

impl AccessLogs {
    pub(crate) fn new(store: ObjectStore, region: String) -> Arc<Self> {
        Arc::new(Self {
            store,
            region,
            configs: Mutex::default(),
            pending: Mutex::default(),
            delivering: tokio::sync::Mutex::new(()),
        })
    }

    /// Delivers every buffer each [`FLUSH_INTERVAL`], for as long as the node runs.
    pub(crate) fn spawn_flusher(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let logs = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(logs) = logs.upgrade() else { return };
                logs.flush().await;
            }
        });
    }

    async fn target(&self, bucket: &str) -> Option<Target> {
        if let Ok(configs) = self.configs.lock()
            && let Some((fetched, target)) = configs.get(bucket)
            && fetched.elapsed() < CONFIG_TTL
        {
            return target.clone();
        }
        let target = match self.store.bucket_logging(bucket).await {
            Ok(Some(config)) => {
                let owner = match self.store.bucket_access(bucket).await {
                    Ok(Some(access)) => access.acl.owner.id,
                    _ => crate::acl::root_owner().id,
                };
                Some(Target { config, owner })
            }
            _ => None,
        };
        if let Ok(mut configs) = self.configs.lock() {
            // Buckets deleted long ago do not stay cached forever.
            if configs.len() >= CONFIG_CACHE_MAX {
                configs.retain(|_, (fetched, _)| fetched.elapsed() < CONFIG_TTL);
            }
            configs.insert(bucket.to_owned(), (Instant::now(), target.clone()));
        }
        target
    }

    /// Buffers the line of a request to `facts.bucket`, if that bucket logs.
    pub(crate) async fn record(self: &Arc<Self>, facts: Facts, req: RequestLine, out: Outcome<'_>) {
        let Some(bucket) = facts.bucket.clone() else {
            return;
        };
        // This node's own change of the configuration counts at once (other nodes' within
        // CONFIG_TTL).
        if facts.operation.as_deref() == Some("PutBucketLogging")
            && let Ok(mut configs) = self.configs.lock()
        {
            configs.remove(&bucket);
        }
        let Some(target) = self.target(&bucket).await else {
            return;
        };
        let line = format_line(&target.owner, &bucket, &facts, &req, &out);
        let full = {
            let Ok(mut pending) = self.pending.lock() else {
                return;
            };
            let batch = pending.entry(bucket).or_insert_with(|| Batch {
                target: target.clone(),
                lines: String::new(),
                first_event: req.started,
            });
            batch.target = target;
            batch.lines.push_str(&line);
            batch.lines.len() >= BATCH_MAX_BYTES
        };
        if full {
            let logs = self.clone();
            tokio::spawn(async move { logs.flush().await });
        }
    }

    /// Delivers every buffered batch now; a batch that cannot be delivered (its target
    /// bucket is gone) is dropped with a warning.
    pub(crate) async fn flush(&self) {
        let _one_at_a_time = self.delivering.lock().await;
        let batches: Vec<(String, Batch)> = match self.pending.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => return,
        };
        for (source, batch) in batches {
            let key = self.object_key(&source, &batch);
            let target = &batch.target.config.target_bucket;
            let lines = Bytes::from(batch.lines);
            if let Err(e) = self.store.deliver_log(target, &key, lines).await {
                tracing::warn!(error = %e, source, target, "access log delivery failed");
            }
        }
    }

    /// `TargetPrefix` + the key AWS's SimplePrefix or PartitionedPrefix format names.
    fn object_key(&self, source: &str, batch: &Batch) -> String {
        let now = SystemTime::now();
        let unique =
            hex_simd::encode_to_string(rand::random::<[u8; 8]>(), hex_simd::AsciiCase::Upper);
        let stamp = |at: SystemTime| {
            time::OffsetDateTime::from(at)
                .format(time::macros::format_description!(
                    "[year]-[month]-[day]-[hour]-[minute]-[second]"
                ))
                .unwrap_or_default()
        };
        let config = &batch.target.config;
        match config.partitioned_by_event_time {
            None => format!("{}{}-{unique}", config.target_prefix, stamp(now)),
            Some(event_time) => {
                let at = if event_time { batch.first_event } else { now };
                let day = time::OffsetDateTime::from(at)
                    .format(time::macros::format_description!("[year]/[month]/[day]"))
                    .unwrap_or_default();
                format!(
                    "{}{}/{}/{source}/{day}/{}-{unique}",
                    config.target_prefix,
                    batch.target.owner,
                    self.region,
                    stamp(at)
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_as_aws_logs_name_them() {
        for (method, operation, named) in [
            (Method::GET, "GetObject", "REST.GET.OBJECT"),
            (Method::GET, "ListObjectsV2", "REST.GET.BUCKET"),
            (Method::PUT, "CopyObject", "REST.COPY.OBJECT"),
            (Method::GET, "GetBucketVersioning", "REST.GET.VERSIONING"),
            (Method::PUT, "PutObjectTagging", "REST.PUT.OBJECT_TAGGING"),
            (
                Method::POST,
                "DeleteObjects",
                "REST.POST.MULTI_OBJECT_DELETE",
            ),
        ] {
            assert_eq!(operation_name(&method, operation), named);
        }
    }

    #[test]
    fn a_line_has_the_26_fields_of_aws_format() {
        let req = http::Request::builder()
            .method(Method::GET)
            .uri("/logs-src/a%20b?versionId=v1")
            .header("user-agent", "aws-cli/2")
            .header("host", "127.0.0.1:9000")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=K/20261201/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
            )
            .body(())
            .unwrap();
        let facts = Facts {
            operation: Some("GetObject".into()),
            bucket: Some("logs-src".into()),
            key: Some("a b".into()),
            requester: Some("c0ffee".into()),
            error_code: None,
        };
        let line = format_line(
            "owner1",
            "logs-src",
            &facts,
            &RequestLine::of(&req, 0),
            &Outcome {
                status: StatusCode::OK,
                request_id: "RID",
                sent: 11,
                elapsed: Duration::from_millis(7),
                remote_ip: Some(std::net::IpAddr::from([127, 0, 0, 1])),
                tls: false,
            },
        );
        let fields: Vec<&str> = line.trim_end().split(' ').collect();
        assert_eq!(fields[0], "owner1");
        assert_eq!(fields[1], "logs-src");
        assert!(
            fields[2].starts_with('[') && fields[3].ends_with(']'),
            "{line}"
        );
        assert_eq!(
            &fields[4..8],
            ["127.0.0.1", "c0ffee", "RID", "REST.GET.OBJECT"]
        );
        assert_eq!(fields[8], "a%20b");
        assert_eq!(fields[9], "\"GET");
        assert_eq!(fields[11], "HTTP/1.1\"");
        assert_eq!(&fields[12..17], ["200", "-", "11", "11", "7"]);
        assert_eq!(fields[19], "\"aws-cli/2\"");
        assert_eq!(fields[20], "v1");
        assert_eq!(fields[22], "SigV4");
        assert_eq!(fields[24], "AuthHeader");
        // The time takes two space-separated tokens and the request URI three: 26 + 3.
        assert_eq!(fields.len(), 29, "{line}");
    }
}
