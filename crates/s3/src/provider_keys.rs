//! The signing keys of a role's OpenID Connect provider: from a JWKS file, a JWKS URL, or the
//! issuer's discovery document (`{issuer}/.well-known/openid-configuration`, its `jwks_uri`).
//!
//! Keys are fetched over HTTPS (rustls, verified against the system's roots and the role's
//! `ca_file`), or plain HTTP only from a literal loopback IP address. They are cached: kept
//! for [`REFRESH`], then fetched again (providers rotate keys). A token naming a key the cache
//! does not hold triggers a fetch, but at most one per `jwks_refetch_seconds` (a flood of
//! random key ids is not a flood of fetches). A provider that does not answer is served from
//! the cache for up to [`MAX_STALE`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::jwt::Jwks;
use crate::sts::RoleConfig;

/// Keys older than this are fetched again before use.
const REFRESH: Duration = Duration::from_secs(15 * 60);
/// Cached keys serve while the provider cannot be reached, up to this age.
const MAX_STALE: Duration = Duration::from_secs(24 * 3600);
/// Least time between two fetches, unless the role says otherwise.
const DEFAULT_REFETCH: Duration = Duration::from_secs(60);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A JWKS or discovery document larger than this is not one.
const MAX_DOCUMENT: usize = 1 << 20;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

enum Source {
    File(PathBuf),
    Url(String),
    Discovery { issuer: String },
}

#[derive(Default)]
struct Cached {
    keys: Option<Arc<Jwks>>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
}

pub(crate) struct ProviderKeys {
    source: Source,
    client: HttpsClient,
    refetch_after: Duration,
    /// Held across a fetch: requests that need keys at the same moment share one fetch.
    cached: tokio::sync::Mutex<Cached>,
}

impl ProviderKeys {
    /// Checks what `role` would fetch from (its URLs, its CA file) without loading the
    /// system's certificates or building a client: how a roles file is validated.
    pub(crate) fn check(role: &RoleConfig) -> Result<(), String> {
        Self::source(role)?;
        role_ca_certs(role).map(drop)
    }

    fn source(role: &RoleConfig) -> Result<Option<Source>, String> {
        let source = match (&role.jwks_file, &role.jwks_url, &role.issuer) {
            (Some(path), _, _) => Source::File(path.clone()),
            (None, Some(url), _) => {
                check_url(url)?;
                Source::Url(url.clone())
            }
            (None, None, Some(issuer)) => {
                check_url(issuer)?;
                Source::Discovery {
                    issuer: issuer.clone(),
                }
            }
            (None, None, None) => return Ok(None),
        };
        Ok(Some(source))
    }

    /// The key source of `role` (`None` for a role without a web identity provider).
    pub(crate) fn of(role: &RoleConfig) -> Result<Option<Self>, String> {
        let Some(source) = Self::source(role)? else {
            return Ok(None);
        };
        // A file's keys are never fetched: no certificates to load.
        let fetched = !matches!(source, Source::File(_));
        let mut roots = if fetched {
            system_roots().clone()
        } else {
            rustls::RootCertStore::empty()
        };
        if fetched {
            for cert in role_ca_certs(role)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("role {}: CA file: {e}", role.name))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Some(Self {
            source,
            client: Client::builder(TokioExecutor::new()).build(connector),
            refetch_after: role
                .jwks_refetch_seconds
                .map_or(DEFAULT_REFETCH, Duration::from_secs),
            cached: tokio::sync::Mutex::default(),
        }))
    }

    /// The keys to verify a token naming key `kid` with.
    pub(crate) async fn keys(&self, kid: Option<&str>) -> Result<Arc<Jwks>, String> {
        if let Source::File(path) = &self.source {
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            return Jwks::parse(&text).map(Arc::new);
        }
        let mut cached = self.cached.lock().await;
        let now = Instant::now();
        let age = |c: &Cached| c.fetched.map(|t| now.duration_since(t));
        let fresh = age(&cached).is_some_and(|a| a < REFRESH);
        let knows = cached
            .keys
            .as_ref()
            .is_some_and(|k| kid.is_none_or(|kid| k.has_key(kid)));
        if fresh
            && knows
            && let Some(keys) = &cached.keys
        {
            return Ok(keys.clone());
        }
        let throttled = cached
            .attempted
            .is_some_and(|t| now.duration_since(t) < self.refetch_after);
        let mut failure = None;
        if !throttled {
            cached.attempted = Some(now);
            match self.fetch().await {
                Ok(keys) => {
                    cached.keys = Some(Arc::new(keys));
                    cached.fetched = Some(Instant::now());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the OIDC provider's keys could not be fetched; using the cached ones if any");
                    failure = Some(e);
                }
            }
        }
        match &cached.keys {
            Some(keys) if age(&cached).is_some_and(|a| a < MAX_STALE) => Ok(keys.clone()),
            _ => Err(failure.unwrap_or_else(|| "the provider's keys are not available".into())),
        }
    }

    async fn fetch(&self) -> Result<Jwks, String> {
        let url = match &self.source {
            Source::File(path) => {
                return Err(format!("{}: a file is read, not fetched", path.display()));
            }
            Source::Url(url) => url.clone(),
            Source::Discovery { issuer } => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let doc: serde_json::Value = serde_json::from_slice(&self.get(&discovery).await?)
                    .map_err(|e| format!("{discovery}: not JSON: {e}"))?;
                // The document must be the issuer's own (OpenID Connect Discovery 1.0, 4.3).
                if doc.get("issuer").and_then(serde_json::Value::as_str) != Some(issuer) {
                    return Err(format!("{discovery}: names another issuer"));
                }
                let uri = doc
                    .get("jwks_uri")
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| format!("{discovery}: no jwks_uri"))?;
                check_url(uri)?;
                uri.to_owned()
            }
        };
        let body = self.get(&url).await?;
        let text = String::from_utf8(body.to_vec()).map_err(|_| format!("{url}: not UTF-8"))?;
        Jwks::parse(&text).map_err(|e| format!("{url}: {e}"))
    }

    async fn get(&self, url: &str) -> Result<Bytes, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let request = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| format!("{url}: {e}"))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if response.status() != http::StatusCode::OK {
                return Err(format!("{url}: {}", response.status()));
            }
            Limited::new(response.into_body(), MAX_DOCUMENT)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| format!("{url}: {e}"))
        };
        tokio::time::timeout(FETCH_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{url}: no answer within {FETCH_TIMEOUT:?}"))?
    }
}

/// The system's trusted certificates, read once per process however many roles fetch keys.
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: std::sync::OnceLock<rustls::RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A certificate rustls cannot use is skipped, as browsers skip it.
            let _ = roots.add(cert);
        }
        roots
    })
}

/// The certificates of the role's `ca_file`, if it names one.
fn role_ca_certs(
    role: &RoleConfig,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let Some(path) = &role.ca_file else {
        return Ok(Vec::new());
    };
    let failed = |e: &dyn std::fmt::Display| format!("role {}: {}: {e}", role.name, path.display());
    rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(&e))
}

/// An `https://` URL, or `http://` to a literal loopback IP address (keys fetched in the
/// clear could be swapped on the way).
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let host = uri.host().ok_or_else(|| format!("{url}: no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let address: IpAddr = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| format!("{url}: plain http only to a loopback IP address"))?;
            if address.is_loopback() {
                Ok(())
            } else {
                Err(format!("{url}: plain http only to a loopback IP address"))
            }
        }
        _ => Err(format!("{url}: expected an https:// URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_addresses() {
        assert!(check_url("https://idp.example.com/keys").is_ok());
        assert!(check_url("http://127.0.0.1:8080/keys").is_ok());
        assert!(check_url("http://[::1]:8080/keys").is_ok());
        for refused in [
            "http://127.evil.example/keys",
            "http://localhost/keys",
            "http://10.0.0.1/keys",
            "ftp://idp.example.com/keys",
            "idp.example.com/keys",
        ] {
            assert!(check_url(refused).is_err(), "{refused}");
        }
    }
}
