//! Verification of OpenID Connect ID tokens (JWTs) against a provider's JSON Web Key Set:
//! RS256 and ES256 signatures only, so `alg: none` and HMAC algorithms (where a public key
//! could be misused as the shared secret) are refused; then issuer, audience, expiry and
//! not-before.

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed P-256 point: 0x04, x, y.
    P256(Vec<u8>),
}

struct Jwk {
    kid: Option<String>,
    material: KeyMaterial,
}

/// A provider's signing keys.
pub struct Jwks {
    keys: Vec<Jwk>,
}

fn b64url(s: &str) -> Result<Vec<u8>, String> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(s.trim_end_matches('='))
        .map_err(|_| "not base64url".to_owned())
}

impl Jwks {
    pub fn parse(text: &str) -> Result<Self, String> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("a JWKS has a keys list")?;
        let mut keys = Vec::new();
        for k in list {
            let field = |name: &str| k.get(name).and_then(Value::as_str);
            let material = match (field("kty"), field("crv")) {
                (Some("RSA"), _) => KeyMaterial::Rsa {
                    n: b64url(field("n").ok_or("RSA key without n")?)?,
                    e: b64url(field("e").ok_or("RSA key without e")?)?,
                },
                (Some("EC"), Some("P-256")) => {
                    let mut point = vec![4u8];
                    point.extend(b64url(field("x").ok_or("EC key without x")?)?);
                    point.extend(b64url(field("y").ok_or("EC key without y")?)?);
                    KeyMaterial::P256(point)
                }
                // Keys of other types (or for encryption) are not used to verify tokens.
                _ => continue,
            };
            if field("use").is_some_and(|u| u != "sig") {
                continue;
            }
            keys.push(Jwk {
                kid: field("kid").map(str::to_owned),
                material,
            });
        }
        if keys.is_empty() {
            return Err("the JWKS holds no RSA or P-256 signing key".into());
        }
        Ok(Self { keys })
    }
}

impl Jwks {
    /// Whether a key has id `kid`.
    pub fn has_key(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// The key id (`kid`) a token's header names, if it is readable and names one.
pub fn key_id(token: &str) -> Option<String> {
    let header = b64url(token.split('.').next()?).ok()?;
    let header: Value = serde_json::from_slice(&header).ok()?;
    header.get("kid")?.as_str().map(str::to_owned)
}

/// What a token must be to be accepted.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub now_s: i64,
}

/// Verifies `token` and returns its claims.
pub fn verify(
    token: &str,
    jwks: &Jwks,
    expected: &Expected<'_>,
) -> Result<Map<String, Value>, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("a JWT has three parts".into());
    };
    let header: Value =
        serde_json::from_slice(&b64url(h)?).map_err(|_| "the JWT header is not JSON")?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("none");
    let kid = header.get("kid").and_then(Value::as_str);
    let signature = b64url(s)?;
    let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
    let candidates = jwks
        .keys
        .iter()
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid);
    let mut verified = false;
    for key in candidates {
        verified = match (alg, &key.material) {
            ("RS256", KeyMaterial::Rsa { n, e }) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed, &signature)
                .is_ok(),
            ("ES256", KeyMaterial::P256(point)) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(signed, &signature)
                    .is_ok()
            }
            ("RS256" | "ES256", _) => false,
            (other, _) => return Err(format!("algorithm {other} is not accepted")),
        };
        if verified {
            break;
        }
    }
    if !verified {
        return Err("the token's signature does not verify".into());
    }
    let claims: Value =
        serde_json::from_slice(&b64url(p)?).map_err(|_| "the JWT payload is not JSON")?;
    let Value::Object(claims) = claims else {
        return Err("the JWT payload is not an object".into());
    };
    if claims.get("iss").and_then(Value::as_str) != Some(expected.issuer) {
        return Err("the token's issuer is not the role's".into());
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == expected.audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(expected.audience)),
        _ => false,
    };
    if !audience_ok {
        return Err("the token is not for this audience".into());
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or("the token has no expiry")?;
    if exp <= expected.now_s as f64 {
        return Err("the token has expired".into());
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().ok_or("the token's nbf is not a number")?;
        if nbf > expected.now_s as f64 {
            return Err("the token is not valid yet".into());
        }
    }
    Ok(claims)
}
