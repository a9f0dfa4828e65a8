//! Verification of OpenID Connect ID tokens (JWTs) against a provider's JSON Web Key Set, with
//! the `jsonwebtoken` crate: RS256 and ES256 signatures only, so `alg: none` and HMAC
//! algorithms (where a public key could be misused as the shared secret) are refused; then
//! issuer, audience, expiry and not-before, against the caller's clock.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

struct SigningKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// A provider's signing keys.
pub struct Jwks {
    keys: Vec<SigningKey>,
}

impl Jwks {
    pub fn parse(text: &str) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct KeySet {
            keys: Vec<Value>,
        }
        let set: KeySet = serde_json::from_str(text)
            .map_err(|e| format!("JWKS is not JSON with a keys list: {e}"))?;
        let mut keys = Vec::new();
        // One key at a time: a provider may publish key types this crate does not know, and
        // those are skipped rather than failing the whole set.
        for value in set.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            if jwk
                .common
                .public_key_use
                .as_ref()
                .is_some_and(|u| *u != PublicKeyUse::Signature)
            {
                continue;
            }
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                // Symmetric and other keys never verify a provider's token.
                _ => continue,
            };
            let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("a JWKS key: {e}"))?;
            keys.push(SigningKey {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key,
            });
        }
        if keys.is_empty() {
            return Err("the JWKS holds no RSA or P-256 signing key".into());
        }
        Ok(Self { keys })
    }

    /// Whether a key has id `kid`.
    pub fn has_key(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// The key id (`kid`) a token's header names, if it is readable and names one.
pub fn key_id(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
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
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| format!("the JWT is malformed: {e}"))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err(format!("algorithm {:?} is not accepted", header.alg));
    }
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[expected.issuer]);
    validation.set_audience(&[expected.audience]);
    validation.set_required_spec_claims(&["iss", "aud", "exp"]);
    // Time is judged below against the caller's clock (the node's, or a test's).
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let candidates = jwks
        .keys
        .iter()
        .filter(|k| k.algorithm == header.alg && (header.kid.is_none() || k.kid == header.kid));
    let mut claims = None;
    for key in candidates {
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
            Ok(data) => {
                claims = Some(data.claims);
                break;
            }
            Err(e) => match e.into_kind() {
                // Another key may be the one: without a `kid`, every key of the algorithm is.
                ErrorKind::InvalidSignature => continue,
                // The signature held (it is checked first): the claims are what failed.
                ErrorKind::InvalidIssuer => {
                    return Err("the token's issuer is not the role's".into());
                }
                ErrorKind::InvalidAudience => {
                    return Err("the token is not for this audience".into());
                }
                ErrorKind::MissingRequiredClaim(claim) => {
                    return Err(format!("the token has no {claim} claim"));
                }
                other => return Err(format!("the token is refused: {other:?}")),
            },
        }
    }
    let claims = claims.ok_or("the token's signature does not verify")?;
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
