//! TLS on the S3 listener: a self-signed certificate for local use, certificate files reloaded
//! on SIGHUP (a broken file keeps the old certificate), HTTP/2 offered through ALPN, and plain
//! HTTP refused on a TLS port.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::Server;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client_trusting(cert_pem: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// GET /health/ready over TLS, trusting `cert_pem`: the status line, or the handshake error.
async fn ready_over_tls(port: u16, cert_pem: &[u8], alpn: bool) -> Result<String, String> {
    let mut connector = client_trusting(cert_pem);
    if !alpn {
        let mut config = rustls::ClientConfig::clone(connector.config());
        config.alpn_protocols.clear();
        connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    }
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let protocol = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if alpn {
        assert_eq!(protocol.as_deref(), Some(&b"h2"[..]), "HTTP/2 is offered");
        return Ok("h2".into());
    }
    tls.write_all(b"GET /health/ready HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    Ok(answer.lines().next().unwrap_or_default().to_owned())
}

fn write_pair(dir: &Path, cert: &Path, key: &Path) -> Vec<u8> {
    std::fs::create_dir_all(dir).unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(cert, pair.cert.pem()).unwrap();
    std::fs::write(key, pair.key_pair.serialize_pem()).unwrap();
    pair.cert.pem().into_bytes()
}

#[tokio::test]
async fn a_self_signed_listener_speaks_tls_and_http2_only() {
    let server = Server::start_with(&["--tls-self-signed"]);
    let cert = std::fs::read(server.data.join("tls/cert.pem")).unwrap();
    assert_eq!(
        ready_over_tls(server.port, &cert, false).await.unwrap(),
        "HTTP/1.1 200 OK"
    );
    assert_eq!(
        ready_over_tls(server.port, &cert, true).await.unwrap(),
        "h2"
    );

    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let err = ready_over_tls(server.port, stranger.cert.pem().as_bytes(), false)
        .await
        .unwrap_err();
    assert!(err.contains("certificate"), "{err}");

    let plain = common::http_get(server.port, "/health/ready").unwrap();
    assert!(
        !plain.starts_with("HTTP/1.1 200"),
        "plain HTTP was served: {plain}"
    );
}

#[tokio::test]
async fn certificate_files_are_reloaded_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let first = write_pair(dir.path(), &cert, &key);
    let mut server = Server::start_with(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let port = server.port;
    assert!(ready_over_tls(port, &first, false).await.is_ok());

    let second = write_pair(dir.path(), &cert, &key);
    let hangup = || {
        std::process::Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap()
    };
    assert!(hangup().success());
    let mut reloaded = false;
    for _ in 0..50 {
        if ready_over_tls(port, &second, false).await.is_ok() {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "the new certificate was not picked up");
    assert!(ready_over_tls(port, &first, false).await.is_err());

    // A broken file on reload keeps the certificate in use.
    std::fs::write(&key, b"not a key").unwrap();
    assert!(hangup().success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(ready_over_tls(port, &second, false).await.is_ok());
    server.terminate();
}

/// `basalt admin` over HTTPS: trusting the node's certificate with `--ca-file`, and refusing
/// an endpoint it cannot verify. Lists print as tables, or as JSON with `--json`.
#[test]
fn admin_calls_over_https_verify_the_node_against_the_ca_file() {
    let server = Server::start_with(&["--tls-self-signed"]);
    let cert = server.data.join("tls/cert.pem");
    let endpoint = format!("https://127.0.0.1:{}", server.port);
    let admin = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_basalt"))
            .args(["admin", "--endpoint", &endpoint])
            .args(["--access-key", common::ACCESS_KEY])
            .args(["--secret-key", common::SECRET_KEY])
            .args(args)
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .unwrap()
    };
    let ca = cert.to_str().unwrap();
    // The port listens before the node serves: the first call waits for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let added = admin(&["--ca-file", ca, "user", "add", "over-tls"]);
        if added.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&added.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let table = admin(&["--ca-file", ca, "user", "list"]);
    let table = String::from_utf8(table.stdout).unwrap();
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("NAME "), "{table}");
    assert!(
        lines.any(|l| l.starts_with("over-tls ")),
        "a row per user: {table}"
    );
    let json = admin(&["--ca-file", ca, "--json", "user", "list"]);
    let users: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["name"] == "over-tls")
    );

    let untrusted = admin(&["user", "list"]);
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
}
