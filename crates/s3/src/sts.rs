//! STS on the S3 endpoint: `AssumeRoleWithWebIdentity` exchanges an OpenID Connect ID token
//! for temporary credentials with a role's policies; `AssumeRole` does the same for a signed-in
//! user the role trusts. Requests are `POST /` with a form body, as AWS SDKs send them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use basalt_object::ObjectStore;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use serde::Deserialize;

use crate::jwt::{Expected, Jwks, verify};

/// The AWS minimum is 15 minutes; a role may allow less (to rehearse expiry).
const DEFAULT_DURATION_S: u64 = 3600;
const MAX_DURATION_S: u64 = 12 * 3600;
const MAX_FORM_BYTES: usize = 64 << 10;

/// One role, from the `--sts-roles` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    pub name: String,
    /// The OIDC provider whose tokens may assume the role (`iss`), and the audience (`aud`)
    /// they must be for.
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// The provider's keys: a JWKS file, or a JWKS URL (`https://`, or `http://` to a loopback
    /// IP address); without either, found through the issuer's discovery document.
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    /// CA certificates (PEM) the provider's HTTPS certificate may chain to, besides the
    /// system's.
    pub ca_file: Option<PathBuf>,
    /// Least seconds between two fetches of the keys (a token naming an unknown key asks for
    /// one) [default: 60].
    pub jwks_refetch_seconds: Option<u64>,
    /// Claims the token must carry with these values (a list claim must contain the value).
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// Users who may `AssumeRole` this role.
    #[serde(default)]
    pub users: Vec<String>,
    /// The role's rights: canned policy names or policy documents.
    pub policies: Vec<String>,
    pub max_duration_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesFile {
    pub roles: Vec<RoleConfig>,
}

impl RolesFile {
    /// Parses and checks a roles file (JSON): every role's policies must parse.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for role in &file.roles {
            for p in &role.policies {
                if crate::policy::canned(p).is_none() {
                    crate::policy::Policy::parse(p, false)
                        .map_err(|e| format!("role {}: {e}", role.name))?;
                }
            }
            if role.issuer.is_some() != role.audience.is_some() {
                return Err(format!(
                    "role {}: web identities need both issuer and audience",
                    role.name
                ));
            }
            // The URLs it would fetch from, and its CA file.
            if role.issuer.is_some() {
                crate::provider_keys::ProviderKeys::check(role)
                    .map_err(|e| format!("role {}: {e}", role.name))?;
            }
            if let Some(path) = &role.jwks_file {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("role {}: {}: {e}", role.name, path.display()))?;
                Jwks::parse(&text).map_err(|e| format!("role {}: {e}", role.name))?;
            }
        }
        Ok(file)
    }
}

pub(crate) struct StsRoute {
    pub(crate) store: ObjectStore,
    pub(crate) roles: Arc<Vec<RoleConfig>>,
    /// Each web-identity role's provider keys, by role name, cached across requests.
    pub(crate) keys: Arc<std::collections::HashMap<String, crate::provider_keys::ProviderKeys>>,
}

/// The provider keys of every role that trusts a web identity provider.
pub(crate) fn provider_keys(
    roles: &[RoleConfig],
) -> Result<std::collections::HashMap<String, crate::provider_keys::ProviderKeys>, String> {
    let mut out = std::collections::HashMap::new();
    for role in roles.iter().filter(|r| r.issuer.is_some()) {
        if let Some(keys) = crate::provider_keys::ProviderKeys::of(role)? {
            out.insert(role.name.clone(), keys);
        }
    }
    Ok(out)
}

/// An STS error as the query protocol answers it.
fn sts_error(status: StatusCode, code: &str, message: &str) -> S3Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>basalt</RequestId></ErrorResponse>",
        xml_escape(message)
    );
    let mut resp = S3Response::new(Body::from(body));
    resp.status = Some(status);
    resp.headers
        .insert("content-type", HeaderValue::from_static("text/xml"));
    resp
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                crate::access::decode_query_value(k),
                crate::access::decode_query_value(v),
            )
        })
        .collect()
}

fn credentials_xml(
    action: &str,
    issued: &basalt_object::IssuedSession,
    role: &str,
    session: &str,
    extra: &str,
) -> String {
    let expiration = crate::convert::timestamp(issued.expires_ms);
    let mut when = Vec::new();
    let _ = expiration.format(s3s::dto::TimestampFormat::DateTime, &mut when);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result>{extra}<AssumedRoleUser><Arn>arn:aws:sts::basalt:assumed-role/{role}/{session}</Arn><AssumedRoleId>{role}:{session}</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials></{action}Result><ResponseMetadata><RequestId>basalt</RequestId></ResponseMetadata></{action}Response>",
        issued.access_key,
        xml_escape(issued.secret_key.expose()),
        xml_escape(issued.session_token.expose()),
        String::from_utf8_lossy(&when),
        role = xml_escape(role),
        session = xml_escape(session),
    )
}

impl StsRoute {
    pub(crate) fn matches(
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> bool {
        method == http::Method::POST
            && uri.path() == "/"
            && headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
    }

    pub(crate) async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(
            &mut req.input,
            MAX_FORM_BYTES,
        ))
        .await
        .map_err(|e| s3_error!(InvalidRequest, "the form cannot be read: {e}"))?
        .to_bytes();
        let form = form(&body);
        let action = form.get("Action").map(String::as_str).unwrap_or_default();
        let role_name = form
            .get("RoleArn")
            .and_then(|arn| arn.rsplit_once(":role/").map(|(_, r)| r.to_owned()));
        let Some(role) = role_name
            .as_deref()
            .and_then(|name| self.roles.iter().find(|r| r.name == name))
        else {
            return Ok(sts_error(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                "RoleArn must name a configured role (arn:aws:iam::basalt:role/NAME)",
            ));
        };
        let session_name = form
            .get("RoleSessionName")
            .cloned()
            .unwrap_or_else(|| "session".to_owned());
        if session_name.is_empty()
            || session_name.len() > 64
            || !session_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b))
        {
            return Ok(sts_error(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                "RoleSessionName must be 1 to 64 of [\\w+=,.@-]",
            ));
        }
        let max = role.max_duration_seconds.unwrap_or(MAX_DURATION_S);
        let duration = match form.get("DurationSeconds").map(|d| d.parse::<u64>()) {
            None => DEFAULT_DURATION_S.min(max),
            Some(Ok(d)) if d <= max && (d >= 900 || d == max) => d,
            Some(_) => {
                return Ok(sts_error(
                    StatusCode::BAD_REQUEST,
                    "ValidationError",
                    &format!("DurationSeconds must be between 900 and {max}"),
                ));
            }
        };
        let extra = match action {
            "AssumeRoleWithWebIdentity" => {
                let token = form.get("WebIdentityToken").cloned().unwrap_or_default();
                match self.check_web_identity(role, &token).await {
                    Ok(extra) => extra,
                    Err(message) => {
                        tracing::info!(target: "basalt::audit", event = "sts-denied", role = role.name, reason = message);
                        return Ok(sts_error(
                            StatusCode::BAD_REQUEST,
                            "InvalidIdentityToken",
                            &message,
                        ));
                    }
                }
            }
            "AssumeRole" => {
                let Some(credentials) = &req.credentials else {
                    return Ok(sts_error(
                        StatusCode::FORBIDDEN,
                        "AccessDenied",
                        "AssumeRole must be signed by a user",
                    ));
                };
                let user = self
                    .store
                    .credentials_of(&credentials.access_key)
                    .await
                    .ok()
                    .flatten()
                    .map(|(u, _)| u.name);
                if !user.is_some_and(|u| {
                    role.users
                        .iter()
                        .any(|allowed| *allowed == u || allowed == "*")
                }) {
                    return Ok(sts_error(
                        StatusCode::FORBIDDEN,
                        "AccessDenied",
                        "the user may not assume this role",
                    ));
                }
                String::new()
            }
            _ => {
                return Ok(sts_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidAction",
                    "supported actions: AssumeRoleWithWebIdentity, AssumeRole",
                ));
            }
        };
        let issued = self
            .store
            .create_session(
                &format!("role/{}/{session_name}", role.name),
                role.policies.clone(),
                (duration * 1000) as i64,
            )
            .await
            .map_err(crate::error::to_s3)?;
        let xml = credentials_xml(action, &issued, &role.name, &session_name, &extra);
        let mut resp = S3Response::new(Body::from(Bytes::from(xml)));
        resp.headers
            .insert("content-type", HeaderValue::from_static("text/xml"));
        Ok(resp)
    }

    /// Verifies the token for `role`; the extra result elements on success.
    async fn check_web_identity(&self, role: &RoleConfig, token: &str) -> Result<String, String> {
        let (Some(issuer), Some(audience)) = (&role.issuer, &role.audience) else {
            return Err("the role does not trust a web identity provider".into());
        };
        let keys = self
            .keys
            .get(&role.name)
            .ok_or("the role has no provider keys")?;
        let jwks = keys.keys(crate::jwt::key_id(token).as_deref()).await?;
        let now_s = basalt_object::now_ms() / 1000;
        let claims = verify(
            token,
            &jwks,
            &Expected {
                issuer,
                audience,
                now_s,
            },
        )?;
        for (claim, wanted) in &role.claims {
            let ok = match claims.get(claim) {
                Some(serde_json::Value::String(s)) => s == wanted,
                Some(serde_json::Value::Array(list)) => {
                    list.iter().any(|v| v.as_str() == Some(wanted.as_str()))
                }
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "the token's {claim} claim does not allow this role"
                ));
            }
        }
        let subject = claims
            .get("sub")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        Ok(format!(
            "<SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken><Audience>{}</Audience><Provider>{}</Provider>",
            xml_escape(subject),
            xml_escape(audience),
            xml_escape(issuer)
        ))
    }
}
