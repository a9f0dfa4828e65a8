//! TLS for the S3 listener (rustls, ring provider): a certificate and key from PEM files,
//! reloaded on SIGHUP without dropping connections, or a self-signed pair for local
//! experiments. HTTP/2 and HTTP/1.1 are offered through ALPN.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, bail};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Where the certificate and key come from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The acceptor in use; SIGHUP swaps in a new one built from the files.
#[derive(Clone)]
pub struct Tls {
    files: TlsFiles,
    current: Arc<RwLock<TlsAcceptor>>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load(files: &TlsFiles) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", files.cert.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading the private key {}", files.key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and the key do not form a usable pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Tls {
    pub fn load(files: TlsFiles) -> anyhow::Result<Self> {
        let acceptor = load(&files)?;
        Ok(Self {
            files,
            current: Arc::new(RwLock::new(acceptor)),
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the files; on failure the old certificate stays in use.
    pub fn reload(&self) {
        match load(&self.files) {
            Ok(acceptor) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = acceptor;
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "TLS reload failed; the previous certificate stays in use")
            }
        }
    }

    /// Reloads on every SIGHUP, for as long as the server runs.
    pub fn reload_on_sighup(&self) {
        let this = self.clone();
        on_sighup(move || this.reload());
    }
}

/// Runs `action` on every SIGHUP, for as long as the process runs.
pub fn on_sighup(action: impl Fn() + Send + 'static) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let kind = tokio::signal::unix::SignalKind::hangup();
        let mut hangups = match tokio::signal::unix::signal(kind) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; TLS reload disabled");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            action();
        }
    });
}

/// A self-signed certificate for `localhost`, `127.0.0.1`, `::1` and `extra_names`, written to
/// `dir/cert.pem` and `dir/key.pem` (0600) unless a pair is already there: clients trust it
/// by pointing at `cert.pem`.
pub fn self_signed(dir: &Path, extra_names: &[String]) -> anyhow::Result<TlsFiles> {
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(extra_names.iter().cloned());
    names.dedup();
    let certified =
        rcgen::generate_simple_self_signed(names).context("generating a certificate")?;
    crate::server::write_private(&files.key, &certified.key_pair.serialize_pem())?;
    std::fs::write(&files.cert, certified.cert.pem())
        .with_context(|| format!("writing {}", files.cert.display()))?;
    tracing::info!(cert = %files.cert.display(), "generated a self-signed TLS certificate; clients must trust this file");
    Ok(files)
}
