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
        let point = self.public_point();
        format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","x":"{}","y":"{}"}}]}}"#,
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
        self.sign(r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#, claims)
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
