//! The S3 requests the load generator (and `basalt admin`) makes, over one pooled HTTP/1.1
//! client, plain or TLS.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::sigv4::{Signer, encode_path, encode_query};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    #[error("invalid endpoint {0:?}: expected http://host:port or https://host:port")]
    Endpoint(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("{op} answered {status}: {body}")]
    Status {
        op: &'static str,
        status: StatusCode,
        body: String,
    },
    #[error("{0}")]
    Other(String),
}

pub struct S3Client {
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    host: String,
    signer: Signer,
}

struct Response {
    status: StatusCode,
    headers: http::HeaderMap,
    body_len: u64,
    body: Option<Bytes>,
}

/// An error and its causes: hyper's client error says only "client error (Connect)" and
/// keeps the reason (refused, a certificate not trusted…) in its sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The certificates of `ca_file`, or the system's trusted ones.
fn trusted_roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, BenchError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| BenchError::Tls(format!("{}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert.map_err(|e| BenchError::Tls(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| BenchError::Tls(format!("{}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(BenchError::Tls(format!(
                    "{}: no certificate in the file",
                    path.display()
                )));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(roots)
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

impl S3Client {
    pub fn new(
        endpoint: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
    ) -> Result<Self, BenchError> {
        Self::trusting(endpoint, access_key, secret_key, region, None)
    }

    /// A client of `endpoint`; an `https://` one is verified against the certificates of
    /// `ca_file` (PEM), or else the system's.
    pub fn trusting(
        endpoint: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
        ca_file: Option<&Path>,
    ) -> Result<Self, BenchError> {
        let base = endpoint.trim_end_matches('/').to_owned();
        let (tls, host) = match (base.strip_prefix("http://"), base.strip_prefix("https://")) {
            (Some(host), _) => (false, host),
            (_, Some(host)) => (true, host),
            _ => return Err(BenchError::Endpoint(endpoint.to_owned())),
        };
        if host.is_empty() || host.contains('/') {
            return Err(BenchError::Endpoint(endpoint.to_owned()));
        }
        let host = host.to_owned();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let roots = if tls {
            trusted_roots(ca_file)?
        } else {
            rustls::RootCertStore::empty()
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| BenchError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build(connector);
        Ok(Self {
            http,
            base,
            host,
            signer: Signer::new(access_key, secret_key, region),
        })
    }

    /// One signed request. `query` must be canonical: sorted, encoded. The body of the answer
    /// is drained (counted) unless `keep_body`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Bytes,
        extra: &[(&str, String)],
        keep_body: bool,
    ) -> Result<Response, BenchError> {
        let now = time::OffsetDateTime::now_utc();
        let signed = self
            .signer
            .sign(method.as_str(), &self.host, path, query, now);
        let uri = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{query}", self.base)
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", &self.host);
        for (k, v) in signed.iter() {
            builder = builder.header(k.as_str(), v.as_str());
        }
        for (k, v) in extra {
            builder = builder.header(*k, v.as_str());
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| BenchError::Http(e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| BenchError::Http(error_chain(&e)))?;
        let (parts, mut incoming) = response.into_parts();
        let mut body_len = 0u64;
        let mut kept = Vec::new();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| BenchError::Http(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                body_len += data.len() as u64;
                if keep_body || !parts.status.is_success() {
                    kept.extend_from_slice(data);
                }
            }
        }
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body_len,
            body: Some(Bytes::from(kept)),
        })
    }

    /// A signed request to any path of the endpoint (an admin API, say): its status and body.
    pub async fn signed_request(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), BenchError> {
        let r = self.send(method, path, query, body, &[], true).await?;
        Ok((r.status, r.body.unwrap_or_default()))
    }

    fn check(op: &'static str, r: Response) -> Result<Response, BenchError> {
        if r.status.is_success() {
            Ok(r)
        } else {
            let body = r
                .body
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            Err(BenchError::Status {
                op,
                status: r.status,
                body,
            })
        }
    }

    fn object_path(bucket: &str, key: &str) -> String {
        encode_path(&format!("/{bucket}/{key}"))
    }

    pub async fn ensure_bucket(&self, bucket: &str) -> Result<(), BenchError> {
        let r = self
            .send(
                Method::PUT,
                &encode_path(&format!("/{bucket}")),
                "",
                Bytes::new(),
                &[],
                true,
            )
            .await?;
        let text = r
            .body
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        if r.status.is_success() || text.contains("BucketAlreadyOwnedByYou") {
            Ok(())
        } else {
            Err(BenchError::Status {
                op: "create-bucket",
                status: r.status,
                body: text,
            })
        }
    }

    pub async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<String, BenchError> {
        let r = self
            .send(
                Method::PUT,
                &Self::object_path(bucket, key),
                "",
                body,
                &[],
                false,
            )
            .await?;
        let r = Self::check("put", r)?;
        Ok(r.headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned())
    }

    /// Returns the bytes received. `range` is inclusive.
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<u64, BenchError> {
        let extra: Vec<(&str, String)> = range
            .map(|(a, b)| ("range", format!("bytes={a}-{b}")))
            .into_iter()
            .collect();
        let r = self
            .send(
                Method::GET,
                &Self::object_path(bucket, key),
                "",
                Bytes::new(),
                &extra,
                false,
            )
            .await?;
        Ok(Self::check("get", r)?.body_len)
    }

    /// One ListObjectsV2 page of up to 1000 keys; returns the keys listed and the next token.
    pub async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        token: Option<&str>,
    ) -> Result<(u64, Option<String>), BenchError> {
        let mut query = String::new();
        if let Some(t) = token {
            query.push_str(&format!("continuation-token={}&", encode_query(t)));
        }
        query.push_str(&format!(
            "list-type=2&max-keys=1000&prefix={}",
            encode_query(prefix)
        ));
        let r = self
            .send(
                Method::GET,
                &encode_path(&format!("/{bucket}")),
                &query,
                Bytes::new(),
                &[],
                true,
            )
            .await?;
        let r = Self::check("list", r)?;
        let text = r
            .body
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let count = between(&text, "<KeyCount>", "</KeyCount>")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let next = between(&text, "<NextContinuationToken>", "</NextContinuationToken>")
            .map(str::to_owned);
        Ok((count, next))
    }

    pub async fn multipart_put(
        &self,
        bucket: &str,
        key: &str,
        data: &Bytes,
        part_size: u64,
    ) -> Result<(), BenchError> {
        let path = Self::object_path(bucket, key);
        let r = Self::check(
            "create-multipart",
            self.send(Method::POST, &path, "uploads=", Bytes::new(), &[], true)
                .await?,
        )?;
        let text = r
            .body
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let upload_id = between(&text, "<UploadId>", "</UploadId>")
            .ok_or_else(|| BenchError::Other("CreateMultipartUpload returned no UploadId".into()))?
            .to_owned();
        let part_size = part_size.max(1) as usize;
        let mut completion = String::from("<CompleteMultipartUpload>");
        for (i, start) in (0..data.len().max(1)).step_by(part_size).enumerate() {
            let n = i + 1;
            let part = data.slice(start..(start + part_size).min(data.len()));
            let query = format!("partNumber={n}&uploadId={}", encode_query(&upload_id));
            let r = Self::check(
                "upload-part",
                self.send(Method::PUT, &path, &query, part, &[], false)
                    .await?,
            )?;
            let etag = r
                .headers
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            completion.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            ));
        }
        completion.push_str("</CompleteMultipartUpload>");
        let query = format!("uploadId={}", encode_query(&upload_id));
        Self::check(
            "complete-multipart",
            self.send(
                Method::POST,
                &path,
                &query,
                Bytes::from(completion),
                &[],
                true,
            )
            .await?,
        )?;
        Ok(())
    }
}
