//! STS AssumeRoleWithWebIdentity against a local OpenID provider (a JWKS file made by the
//! test, tokens signed with ES256): valid tokens get temporary credentials with the role's
//! rights; tampered, misaddressed, expired, unsigned and HMAC-confused tokens are refused; a
//! session's credentials need their token and stop at its expiry.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use base64_simd::URL_SAFE_NO_PAD as B64URL;
use common::{Server, config_for, error_code};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

const ISSUER: &str = "https://idp.example.test";

struct Provider {
    key: EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl Provider {
    fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self { key, rng }
    }

    fn public_point(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    fn jwks(&self) -> String {
        self.jwks_as("k1")
    }

    /// Its public key as a JWKS naming it `kid`.
    fn jwks_as(&self, kid: &str) -> String {
        let point = self.public_point();
        format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"{kid}","use":"sig","x":"{}","y":"{}"}}]}}"#,
            B64URL.encode_to_string(&point[1..33]),
            B64URL.encode_to_string(&point[33..65])
        )
    }

    fn sign(&self, header: &str, claims: &str) -> String {
        let signed = format!(
            "{}.{}",
            B64URL.encode_to_string(header),
            B64URL.encode_to_string(claims)
        );
        let sig = self.key.sign(&self.rng, signed.as_bytes()).unwrap();
        format!("{signed}.{}", B64URL.encode_to_string(sig.as_ref()))
    }

    fn token(&self, claims: &str) -> String {
        self.token_as("k1", claims)
    }

    /// A token whose header names key `kid`.
    fn token_as(&self, kid: &str, claims: &str) -> String {
        self.sign(
            &format!(r#"{{"alg":"ES256","kid":"{kid}","typ":"JWT"}}"#),
            claims,
        )
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(iss: &str, aud: &str, exp: i64, groups: &str) -> String {
    format!(
        r#"{{"iss":"{iss}","aud":"{aud}","sub":"user-42","exp":{exp},"nbf":{},"groups":["{groups}"]}}"#,
        now_s() - 10
    )
}

/// (status, body) of AssumeRoleWithWebIdentity.
async fn assume(server: &Server, role: &str, token: &str) -> (u16, String) {
    let body = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3Abasalt%3Arole%2F{role}&RoleSessionName=test&WebIdentityToken={token}"
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/", server.endpoint()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn element<'a>(xml: &'a str, name: &str) -> &'a str {
    let start = xml.find(&format!("<{name}>")).unwrap() + name.len() + 2;
    let end = xml[start..].find(&format!("</{name}>")).unwrap() + start;
    &xml[start..end]
}

fn session_client(server: &Server, xml: &str, with_token: bool) -> aws_sdk_s3::Client {
    let token = with_token.then(|| element(xml, "SessionToken").to_owned());
    let creds = Credentials::new(
        element(xml, "AccessKeyId"),
        element(xml, "SecretAccessKey"),
        token,
        None,
        "sts",
    );
    let config = config_for(&server.endpoint(), "unused", "unused")
        .credentials_provider(creds)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[tokio::test]
async fn web_identity_tokens_are_verified_and_sessions_expire() {
    let provider = Provider::new();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, provider.jwks()).unwrap();
    // The provider also serves its keys over HTTP, for a role that fetches them by URL.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let served = provider.jwks();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{served}",
                served.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    let roles = dir.path().join("roles.json");
    std::fs::write(
        &roles,
        format!(
            r#"{{"roles":[{{"name":"analyst","issuer":"{ISSUER}","audience":"basalt","jwks_file":{:?},"claims":{{"groups":"data"}},"policies":["readonly"],"max_duration_seconds":3}},{{"name":"viewer","issuer":"{ISSUER}","audience":"basalt","jwks_url":"{jwks_url}","policies":["readonly"]}}]}}"#,
            jwks.display().to_string()
        ),
    )
    .unwrap();
    let server = Server::start_with(&["--sts-roles", roles.to_str().unwrap()]);
    let root = server.client();
    root.create_bucket().bucket("lake").send().await.unwrap();
    root.put_object()
        .bucket("lake")
        .key("t.parquet")
        .body(ByteStream::from_static(b"PAR1"))
        .send()
        .await
        .unwrap();

    let exp = now_s() + 600;
    let (status, xml) = assume(
        &server,
        "analyst",
        &provider.token(&claims(ISSUER, "basalt", exp, "data")),
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(element(&xml, "SubjectFromWebIdentityToken"), "user-42");
    let session = session_client(&server, &xml, true);
    let got = session
        .get_object()
        .bucket("lake")
        .key("t.parquet")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().to_vec(), b"PAR1");
    let err = session
        .put_object()
        .bucket("lake")
        .key("x")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessDenied", "the role is read-only");
    let err = session_client(&server, &xml, false)
        .get_object()
        .bucket("lake")
        .key("t.parquet")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        error_code(&err),
        "InvalidToken",
        "a session key needs its token"
    );

    // Tokens that must be refused.
    let good = provider.token(&claims(ISSUER, "basalt", exp, "data"));
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged_claims = B64URL.encode_to_string(claims(ISSUER, "basalt", exp + 9999, "data"));
    parts[1] = &forged_claims;
    let tampered = parts.join(".");
    let unsigned = format!(
        "{}.{}.",
        B64URL.encode_to_string(r#"{"alg":"none"}"#),
        B64URL.encode_to_string(claims(ISSUER, "basalt", exp, "data"))
    );
    let hmac_confused = {
        let signed = format!(
            "{}.{}",
            B64URL.encode_to_string(r#"{"alg":"HS256","kid":"k1"}"#),
            B64URL.encode_to_string(claims(ISSUER, "basalt", exp, "data"))
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, provider.public_point());
        let tag = ring::hmac::sign(&key, signed.as_bytes());
        format!("{signed}.{}", B64URL.encode_to_string(tag.as_ref()))
    };
    let other = Provider::new().token(&claims(ISSUER, "basalt", exp, "data"));
    for (what, token) in [
        ("tampered payload", tampered),
        (
            "wrong audience",
            provider.token(&claims(ISSUER, "someone-else", exp, "data")),
        ),
        (
            "wrong issuer",
            provider.token(&claims("https://evil.test", "basalt", exp, "data")),
        ),
        (
            "expired",
            provider.token(&claims(ISSUER, "basalt", now_s() - 5, "data")),
        ),
        ("alg none", unsigned),
        ("HS256 with the public key", hmac_confused),
        ("another provider's key", other),
        (
            "missing group",
            provider.token(&claims(ISSUER, "basalt", exp, "sales")),
        ),
        ("garbage", "not.a.jwt".to_owned()),
    ] {
        let (status, body) = assume(&server, "analyst", &token).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert!(
            body.contains("<Code>InvalidIdentityToken</Code>"),
            "{what}: {body}"
        );
    }
    let (status, body) = assume(&server, "nobody", &good).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = assume(&server, "viewer", &good).await;
    assert_eq!(status, 200, "keys fetched from the provider's URL: {body}");

    // The role allows three-second sessions: after that, the token is refused.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let err = session
        .get_object()
        .bucket("lake")
        .key("t.parquet")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "ExpiredToken");
}

/// An OpenID provider over HTTPS (a certificate from a CA the test makes): discovery at
/// `/.well-known/openid-configuration`, its keys at `/jwks` (replaceable, to rotate them),
/// and a count of key fetches.
struct HttpsProvider {
    issuer: String,
    jwks: std::sync::Arc<std::sync::Mutex<String>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: tokio::task::JoinHandle<()>,
}

impl HttpsProvider {
    async fn start(pki: &common::Pki, jwks: String) -> Self {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(&pki.cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&pki.key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("https://{}", listener.local_addr().unwrap());
        let jwks = std::sync::Arc::new(std::sync::Mutex::new(jwks));
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (served, counted, named) = (jwks.clone(), fetches.clone(), issuer.clone());
        let stop = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let (served, counted, named) = (served.clone(), counted.clone(), named.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let body = match req.uri().path() {
                                "/.well-known/openid-configuration" => {
                                    format!(r#"{{"issuer":"{named}","jwks_uri":"{named}/jwks"}}"#)
                                }
                                "/jwks" => {
                                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                    served.lock().unwrap().clone()
                                }
                                _ => String::new(),
                            };
                            async move {
                                Ok::<_, std::convert::Infallible>(http::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::from(body)),
                                ))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            issuer,
            jwks,
            fetches,
            stop,
        }
    }

    fn key_fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_come_over_https_by_discovery_rotate_and_are_not_refetched_per_token() {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::make_pki(dir.path(), "idp", &["127.0.0.1"]);
    let (first, second) = (Provider::new(), Provider::new());
    let idp = HttpsProvider::start(&pki, first.jwks_as("first")).await;
    let issuer = idp.issuer.clone();
    // No jwks_file nor jwks_url: the keys are found through the issuer's discovery document,
    // over HTTPS verified against the role's CA file.
    let roles = dir.path().join("roles.json");
    std::fs::write(
        &roles,
        format!(
            r#"{{"roles":[{{"name":"federated","issuer":"{issuer}","audience":"basalt","ca_file":{:?},"jwks_refetch_seconds":1,"policies":["readonly"]}}]}}"#,
            pki.ca.display().to_string()
        ),
    )
    .unwrap();
    let server = Server::start_with(&["--sts-roles", roles.to_str().unwrap()]);
    let exp = now_s() + 600;
    let claims = claims(&issuer, "basalt", exp, "data");

    let (status, xml) = assume(&server, "federated", &first.token_as("first", &claims)).await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(idp.key_fetches(), 1);
    // Cached: more tokens, no more fetches.
    for _ in 0..5 {
        let (status, _) = assume(&server, "federated", &first.token_as("first", &claims)).await;
        assert_eq!(status, 200);
    }
    assert_eq!(idp.key_fetches(), 1, "keys are cached");

    // Tokens naming keys nobody has: refused, with at most one fetch a second.
    let flood_started = std::time::Instant::now();
    let before = idp.key_fetches();
    for i in 0..40 {
        let (status, _) = assume(
            &server,
            "federated",
            &first.token_as(&format!("random-{i}"), &claims),
        )
        .await;
        assert_ne!(status, 200);
    }
    let allowed = flood_started.elapsed().as_secs() + 1;
    assert!(
        idp.key_fetches() - before <= allowed,
        "{} fetches for 40 unknown keys in {:?}",
        idp.key_fetches() - before,
        flood_started.elapsed()
    );

    // The provider rotates: the new key is fetched when a token names it, the old is gone.
    *idp.jwks.lock().unwrap() = second.jwks_as("second");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, xml) = assume(&server, "federated", &second.token_as("second", &claims)).await;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated key was not fetched: {xml}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, xml) = assume(&server, "federated", &first.token_as("first", &claims)).await;
    assert_ne!(
        status, 200,
        "a token signed by a removed key is refused: {xml}"
    );
    assert!(xml.contains("InvalidIdentityToken"), "{xml}");

    // The provider goes away: the cached keys keep serving.
    idp.stop.abort();
    let (status, xml) = assume(&server, "federated", &second.token_as("second", &claims)).await;
    assert_eq!(status, 200, "served from the cache: {xml}");
}

#[test]
fn a_plain_http_provider_must_be_a_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    for (url, refused) in [
        ("http://127.evil.example/jwks", true),
        ("http://localhost:9999/jwks", true),
        ("http://10.1.2.3/jwks", true),
        ("http://127.0.0.1:9/jwks", false),
    ] {
        let roles = dir.path().join("roles.json");
        std::fs::write(
            &roles,
            format!(
                r#"{{"roles":[{{"name":"r","issuer":"{ISSUER}","audience":"basalt","jwks_url":"{url}","policies":["readonly"]}}]}}"#
            ),
        )
        .unwrap();
        let port = common::free_port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_basalt"))
            .args(["server", "--sts-roles", roles.to_str().unwrap()])
            .args(["--address", &format!("127.0.0.1:{port}")])
            .arg("--data")
            .arg(dir.path().join("data"))
            .arg("--meta-dir")
            .arg(dir.path().join("meta"))
            .env("BASALT_ROOT_USER", "root")
            .env("BASALT_ROOT_PASSWORD", "rootpassword")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if refused {
            let out = child.wait_with_output().unwrap();
            assert!(!out.status.success(), "{url} accepted");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("loopback IP address"), "{url}: {stderr}");
            continue;
        }
        // Accepted: the server comes up.
        let ready = "GET /health/ready HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";
        common::wait_for(
            &format!("the server with {url}"),
            Duration::from_secs(30),
            || {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "{url} refused at start"
                );
                common::exchange_at("127.0.0.1", port, ready.as_bytes(), false)
                    .is_ok_and(|a| a.starts_with("HTTP/1.1 200"))
            },
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[tokio::test]
async fn expired_sessions_are_removed_after_their_retention() {
    let provider = Provider::new();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, provider.jwks()).unwrap();
    let roles = dir.path().join("roles.json");
    std::fs::write(
        &roles,
        format!(
            r#"{{"roles":[{{"name":"brief","issuer":"{ISSUER}","audience":"basalt","jwks_file":{:?},"policies":["readonly"],"max_duration_seconds":1}}]}}"#,
            jwks.display().to_string()
        ),
    )
    .unwrap();
    let server = Server::start_with(&[
        "--sts-roles",
        roles.to_str().unwrap(),
        "--session-retention",
        "2s",
    ]);
    let root = server.client();
    root.create_bucket().bucket("lake").send().await.unwrap();
    let (status, xml) = assume(
        &server,
        "brief",
        &provider.token(&claims(ISSUER, "basalt", now_s() + 600, "data")),
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    let session = session_client(&server, &xml, true);
    // Expired, then (its record kept for the retention) refused as expired, then forgotten:
    // the key is unknown.
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let code = match session.list_objects_v2().bucket("lake").send().await {
            Ok(_) => "ok".to_owned(),
            Err(e) => error_code(&e).to_owned(),
        };
        if seen.last() != Some(&code) {
            seen.push(code.clone());
        }
        if code == "InvalidAccessKeyId" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the expired session was not removed: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen.contains(&"ExpiredToken".to_owned()),
        "refused as expired before it went: {seen:?}"
    );
}
