//! The Iceberg REST catalog (apache/iceberg `open-api/rest-catalog-open-api.yaml`), served on
//! the S3 port under `/_iceberg` (bucket names cannot start with `_`, so no path-style S3
//! request is ever taken for it). One warehouse per bucket: `GET /_iceberg/v1/config?
//! warehouse=<bucket>` answers the bucket as the `prefix` of every other route.
//!
//! Requests are signed with SigV4 (any service name; the same users, keys, role sessions and
//! policies as S3) or carry a bearer token from `POST /_iceberg/v1/oauth/tokens` (the OAuth2
//! client-credentials flow, an access key as the client) or of any STS session
//! (`<access key id>:<session token>`). Each call is an `s3tables:` action authorized by the
//! same policy engine as S3 (see [`crate::policy::TABLES_ARN_PREFIX`] for the resources).
//!
//! Table metadata files and data files are ordinary objects of the bucket; the catalog's state
//! (namespaces, and each table's current metadata file) lives in the metadata state machine,
//! whose commit swaps the file only if the commit's requirements hold (see
//! `basalt_meta::CatalogCommand`).

mod metadata;
mod namespaces;
mod sigv4;
mod tables;

use basalt_object::{CatalogError, ObjectError, ObjectStore};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use s3s::Body;
use s3s::auth::S3Auth;
use serde_json::{Value, json};

use crate::access::{Access, Auth, Connection, Grant};

/// Where the catalog's routes start.
pub const PATH_PREFIX: &str = "/_iceberg/";
const API_PREFIX: &str = "/_iceberg/v1/";
/// The largest request body the catalog reads (a commit with its schemas and snapshots).
const MAX_REQUEST_BYTES: usize = 8 << 20;
/// The largest metadata file the catalog reads whole.
const MAX_METADATA_BYTES: u64 = 64 << 20;
/// How long a token from `/v1/oauth/tokens` is valid.
const TOKEN_LIFETIME_S: i64 = 3600;

/// Whether a request is the catalog's (and not an S3 request).
pub(crate) fn is_catalog_request(path: &str) -> bool {
    path.starts_with(PATH_PREFIX)
}

/// A refusal, as the spec's `ErrorModel`: `{"error": {"message", "type", "code"}}`.
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequestException", message)
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "NotAuthorizedException", message)
    }

    fn into_response(self) -> Response<Body> {
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind,
            "code": self.status.as_u16(),
        }});
        json_response(self.status, &body)
    }
}

impl From<metadata::Invalid> for Failure {
    fn from(e: metadata::Invalid) -> Self {
        Self::bad_request(e.0)
    }
}

impl From<ObjectError> for Failure {
    fn from(e: ObjectError) -> Self {
        let message = e.to_string();
        match e {
            ObjectError::Catalog(c) => {
                let (status, kind) = match c {
                    CatalogError::NoSuchNamespace(_) => {
                        (StatusCode::NOT_FOUND, "NoSuchNamespaceException")
                    }
                    CatalogError::NoSuchTable(_) => (StatusCode::NOT_FOUND, "NoSuchTableException"),
                    CatalogError::NamespaceExists(_) | CatalogError::TableExists(_) => {
                        (StatusCode::CONFLICT, "AlreadyExistsException")
                    }
                    CatalogError::NamespaceNotEmpty(_) => {
                        (StatusCode::CONFLICT, "NamespaceNotEmptyException")
                    }
                    CatalogError::CommitFailed(_) | CatalogError::CommitBaseMoved => {
                        (StatusCode::CONFLICT, "CommitFailedException")
                    }
                    CatalogError::InvalidName(_) => {
                        (StatusCode::BAD_REQUEST, "BadRequestException")
                    }
                };
                Self::new(status, kind, message)
            }
            ObjectError::NoSuchBucket => Self::new(
                StatusCode::NOT_FOUND,
                "NoSuchWarehouseException",
                "The warehouse (bucket) does not exist",
            ),
            ObjectError::Unavailable
            | ObjectError::ClusterUnavailable(_)
            | ObjectError::InsufficientDrives(_)
            | ObjectError::Busy(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                message,
            ),
            ObjectError::InvalidRequest(_) | ObjectError::InvalidArgument(_) => {
                Self::bad_request(message)
            }
            ObjectError::NoSuchKey => Self::new(
                StatusCode::NOT_FOUND,
                "NotFoundException",
                "The metadata file does not exist",
            ),
            ObjectError::AccessDenied(_) => {
                Self::new(StatusCode::FORBIDDEN, "ForbiddenException", message)
            }
            other => {
                tracing::error!(error = %other, "an Iceberg catalog call failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    other.to_string(),
                )
            }
        }
    }
}

type Answer = Result<Response<Body>, Failure>;

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Body::from(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn ok_json(value: &Value) -> Answer {
    Ok(json_response(StatusCode::OK, value))
}

fn no_content() -> Answer {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

/// The JSON object of a request body.
fn body_json(body: &[u8]) -> Result<serde_json::Map<String, Value>, Failure> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(Failure::bad_request(
            "the request body must be a JSON object",
        )),
        Err(e) => Err(Failure::bad_request(format!(
            "Malformed request: the body is not valid JSON: {e}"
        ))),
    }
}

fn decode_segment(raw: &str) -> Result<String, Failure> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Failure::bad_request("a path segment is not UTF-8"))
}

/// A namespace of a path: its levels joined by 0x1f (`%1F`), the spec's separator.
fn namespace_of_segment(raw: &str) -> Result<Vec<String>, Failure> {
    let text = decode_segment(raw)?;
    let levels: Vec<String> = text.split('\u{1f}').map(str::to_owned).collect();
    for level in &levels {
        basalt_object::check_catalog_name(level, "namespace")
            .map_err(|e| Failure::bad_request(e.to_string()))?;
    }
    Ok(levels)
}

/// A namespace given in a body: a list of levels.
fn namespace_of_json(value: Option<&Value>) -> Result<Vec<String>, Failure> {
    let levels: Vec<String> = value
        .and_then(Value::as_array)
        .ok_or_else(|| Failure::bad_request("namespace must be a list of strings"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| Failure::bad_request("namespace must be a list of strings"))
        })
        .collect::<Result<_, _>>()?;
    if levels.is_empty() {
        return Err(Failure::bad_request(
            "namespace must have at least one level",
        ));
    }
    for level in &levels {
        basalt_object::check_catalog_name(level, "namespace")
            .map_err(|e| Failure::bad_request(e.to_string()))?;
    }
    Ok(levels)
}

/// The query parameter `name`, decoded.
fn query_param(req: &http::request::Parts, name: &str) -> Option<String> {
    form_urlencoded::parse(req.uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The bucket a `warehouse` names: its name, `s3://name` or `arn:aws:s3:::name`.
fn warehouse_bucket(warehouse: &str) -> String {
    warehouse
        .strip_prefix("s3://")
        .or_else(|| warehouse.strip_prefix("arn:aws:s3:::"))
        .unwrap_or(warehouse)
        .trim_end_matches('/')
        .to_owned()
}

/// The resource of a catalog action on a warehouse (and its namespaces) or on a table.
fn warehouse_arn(bucket: &str) -> String {
    format!("{}bucket/{bucket}", crate::policy::TABLES_ARN_PREFIX)
}

fn table_arn(bucket: &str, namespace: &[String], table: &str) -> String {
    format!(
        "{}/table/{}/{table}",
        warehouse_arn(bucket),
        basalt_object::namespace_name(namespace)
    )
}

/// The catalog's routes.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Config,
    Token,
    Namespaces,
    Namespace(Vec<String>),
    NamespaceProperties(Vec<String>),
    Tables(Vec<String>),
    Table(Vec<String>, String),
    Register(Vec<String>),
    Rename,
}

impl Route {
    /// The route of a path under `/_iceberg/v1/`, and the warehouse (bucket) it names.
    fn of(path: &str) -> Result<(Option<String>, Route), Failure> {
        let unknown = || {
            Failure::new(
                StatusCode::NOT_FOUND,
                "NoSuchEndpointException",
                format!("no catalog endpoint at {path}"),
            )
        };
        let rest = path.strip_prefix(API_PREFIX).ok_or_else(unknown)?;
        let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        Ok(match segments.as_slice() {
            ["config"] => (None, Route::Config),
            ["oauth", "tokens"] => (None, Route::Token),
            [prefix, rest @ ..] => {
                let bucket = decode_segment(prefix)?;
                let route = match rest {
                    ["namespaces"] => Route::Namespaces,
                    ["namespaces", ns] => Route::Namespace(namespace_of_segment(ns)?),
                    ["namespaces", ns, "properties"] => {
                        Route::NamespaceProperties(namespace_of_segment(ns)?)
                    }
                    ["namespaces", ns, "tables"] => Route::Tables(namespace_of_segment(ns)?),
                    ["namespaces", ns, "tables", table] => {
                        Route::Table(namespace_of_segment(ns)?, decode_segment(table)?)
                    }
                    ["namespaces", ns, "register"] => Route::Register(namespace_of_segment(ns)?),
                    ["tables", "rename"] => Route::Rename,
                    _ => return Err(unknown()),
                };
                (Some(bucket), route)
            }
            _ => return Err(unknown()),
        })
    }
}

/// The catalog, with what it needs of the S3 front.
#[derive(Clone)]
pub(crate) struct Catalog {
    pub(crate) store: ObjectStore,
    pub(crate) auth: std::sync::Arc<Auth>,
    pub(crate) access: std::sync::Arc<Access>,
    pub(crate) region: String,
}

/// One authenticated call: who makes it, and on which warehouse.
pub(crate) struct Call {
    grant: Grant,
    parts: http::request::Parts,
    body: Bytes,
}

impl Call {
    /// Refuses the call unless the caller may make `action` on `resource`.
    fn require(&self, action: &str, resource: &str) -> Result<(), Failure> {
        if self.grant.allows(action, resource) {
            Ok(())
        } else {
            Err(Failure::new(
                StatusCode::FORBIDDEN,
                "ForbiddenException",
                format!("Forbidden: {action} is not allowed on {resource}"),
            ))
        }
    }
}

impl Catalog {
    pub(crate) async fn handle(&self, req: Request<Body>) -> Response<Body> {
        match self.answer(req).await {
            Ok(resp) => resp,
            Err(failure) => failure.into_response(),
        }
    }

    async fn answer(&self, req: Request<Body>) -> Answer {
        let (parts, body) = req.into_parts();
        let (mut bucket, route) = Route::of(parts.uri.path())?;
        if route == Route::Config {
            bucket = query_param(&parts, "warehouse").map(|w| warehouse_bucket(&w));
        }
        let body = read_body(body).await?;
        if route == Route::Token {
            return self.token(&parts, &body).await;
        }
        let grant = self.authenticate(&parts, &body, bucket.as_deref()).await?;
        if let Some(charge) = parts.extensions.get::<crate::request_body::PreAuthCharge>() {
            charge.authorize();
        }
        let call = Call { grant, parts, body };
        let method = call.parts.method.clone();
        if route == Route::Config {
            return self.config(&call).await;
        }
        let bucket = bucket.unwrap_or_default();
        // A warehouse that does not exist is one answer for every route under it.
        self.store.bucket(&bucket).await?;
        match (method, route) {
            (Method::GET, Route::Namespaces) => self.list_namespaces(&call, &bucket).await,
            (Method::POST, Route::Namespaces) => self.create_namespace(&call, &bucket).await,
            (Method::GET, Route::Namespace(ns)) => self.load_namespace(&call, &bucket, &ns).await,
            (Method::HEAD, Route::Namespace(ns)) => {
                self.namespace_exists(&call, &bucket, &ns).await
            }
            (Method::DELETE, Route::Namespace(ns)) => {
                self.drop_namespace(&call, &bucket, &ns).await
            }
            (Method::POST, Route::NamespaceProperties(ns)) => {
                self.update_namespace(&call, &bucket, &ns).await
            }
            (Method::GET, Route::Tables(ns)) => self.list_tables(&call, &bucket, &ns).await,
            (Method::POST, Route::Tables(ns)) => self.create_table(&call, &bucket, &ns).await,
            (Method::GET, Route::Table(ns, t)) => self.load_table(&call, &bucket, &ns, &t).await,
            (Method::HEAD, Route::Table(ns, t)) => self.table_exists(&call, &bucket, &ns, &t).await,
            (Method::POST, Route::Table(ns, t)) => self.commit_table(&call, &bucket, &ns, &t).await,
            (Method::DELETE, Route::Table(ns, t)) => self.drop_table(&call, &bucket, &ns, &t).await,
            (Method::POST, Route::Register(ns)) => self.register_table(&call, &bucket, &ns).await,
            (Method::POST, Route::Rename) => self.rename_table(&call, &bucket).await,
            (method, _) => Err(Failure::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "BadRequestException",
                format!("{method} is not a method of this endpoint"),
            )),
        }
    }

    /// Who signed the request (SigV4) or whose token it carries (bearer), and what they may
    /// do; 401 for neither, or for a signature or token that does not hold.
    async fn authenticate(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        bucket: Option<&str>,
    ) -> Result<Grant, Failure> {
        let connection = parts.extensions.get::<Connection>().copied();
        let (access_key, session_token) = if let Some(claims) = sigv4::Claims::of(&parts.headers) {
            let claims = claims.map_err(|e| Failure::unauthorized(format!("{e:?}")))?;
            let secret = self
                .auth
                .get_secret_key(&claims.access_key)
                .await
                .map_err(|e| Failure::unauthorized(e.message().unwrap_or("unknown access key")))?;
            claims
                .verify(
                    parts,
                    body,
                    secret.expose(),
                    time::OffsetDateTime::now_utc(),
                )
                .map_err(|e| match e {
                    sigv4::SignatureError::Mismatch => Failure::unauthorized(
                        "The request signature we calculated does not match the signature you provided.",
                    ),
                    sigv4::SignatureError::Stale => Failure::unauthorized(
                        "The difference between the request time and the current time is too large.",
                    ),
                    sigv4::SignatureError::Malformed(m) => Failure::unauthorized(m),
                })?;
            (claims.access_key.clone(), claims.session_token.clone())
        } else if let Some(token) = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            let (key, token) = token
                .trim()
                .split_once(':')
                .ok_or_else(|| Failure::unauthorized("The bearer token is malformed"))?;
            (key.to_owned(), Some(token.to_owned()))
        } else {
            return Err(Failure::unauthorized(
                "Credentials are required: sign the request with SigV4 or send a bearer token",
            ));
        };
        self.access
            .grant_of(&access_key, session_token.as_deref(), bucket, connection)
            .await
            .map_err(|e| Failure::unauthorized(e.message().unwrap_or("not authorized")))
    }

    /// `POST /v1/oauth/tokens`: the client-credentials grant, an access key and its secret as
    /// the client id and secret. The token is a session with the key's rights.
    async fn token(&self, parts: &http::request::Parts, body: &[u8]) -> Answer {
        let oauth_error = |status: StatusCode, error: &str, description: &str| {
            Ok(json_response(
                status,
                &json!({"error": error, "error_description": description}),
            ))
        };
        if parts.method != Method::POST {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "tokens are requested with POST",
            );
        }
        let form: std::collections::HashMap<String, String> = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only the client_credentials grant is supported",
            );
        }
        let (Some(id), Some(secret)) = (form.get("client_id"), form.get("client_secret")) else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "client_id and client_secret are required",
            );
        };
        let expected = match self.auth.get_secret_key(id).await {
            Ok(secret) => Some(secret.expose().to_owned()),
            Err(_) => None,
        };
        // Digests compared, so the comparison's time says nothing about the secret.
        let matches = expected.is_some_and(|e| {
            basalt_object::sha256_hex(e.as_bytes()) == basalt_object::sha256_hex(secret.as_bytes())
        });
        // A session's own key cannot mint further sessions.
        let identity = if !matches {
            None
        } else if *id == self.access.root_access_key {
            Some(("root".to_owned(), vec!["admin".to_owned()]))
        } else {
            self.store
                .credentials_of(id)
                .await
                .ok()
                .flatten()
                .map(|(user, _)| (user.name, user.policies))
        };
        let Some((principal, policies)) = identity else {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "the client id or secret is not valid",
            );
        };
        let issued = self
            .store
            .create_session(&principal, policies, TOKEN_LIFETIME_S * 1000)
            .await?;
        ok_json(&json!({
            "access_token": format!("{}:{}", issued.access_key, issued.session_token.expose()),
            "token_type": "bearer",
            "expires_in": TOKEN_LIFETIME_S,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        }))
    }

    /// `GET /v1/config?warehouse=<bucket>`: the bucket as the routes' prefix, and where its
    /// files are (this endpoint, path-style).
    async fn config(&self, call: &Call) -> Answer {
        let warehouse = query_param(&call.parts, "warehouse").ok_or_else(|| {
            Failure::bad_request("give the warehouse: the name of a bucket (warehouse=<bucket>)")
        })?;
        let bucket = warehouse_bucket(&warehouse);
        call.require("s3tables:GetTableBucket", &warehouse_arn(&bucket))?;
        self.store.bucket(&bucket).await?;
        let mut overrides = json!({
            "prefix": bucket,
            "warehouse": format!("s3://{bucket}"),
            "s3.region": self.region,
            "s3.path-style-access": "true",
        });
        if let Some(endpoint) = self.endpoint_of(&call.parts) {
            overrides["s3.endpoint"] = json!(endpoint);
        }
        ok_json(&json!({
            "defaults": {},
            "overrides": overrides,
            "endpoints": ENDPOINTS,
        }))
    }

    /// This node's S3 endpoint as the client reached it.
    fn endpoint_of(&self, parts: &http::request::Parts) -> Option<String> {
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))?;
        let tls = parts.extensions.get::<Connection>().is_some_and(|c| c.tls);
        Some(format!("{}://{host}", if tls { "https" } else { "http" }))
    }
}

/// The routes this catalog serves, as the config response lists them.
const ENDPOINTS: [&str; 16] = [
    "GET /v1/{prefix}/namespaces",
    "POST /v1/{prefix}/namespaces",
    "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}",
    "DELETE /v1/{prefix}/namespaces/{namespace}",
    "POST /v1/{prefix}/namespaces/{namespace}/properties",
    "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "POST /v1/{prefix}/namespaces/{namespace}/tables",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/register",
    "POST /v1/{prefix}/tables/rename",
    "GET /v1/config",
    "POST /v1/oauth/tokens",
];

async fn read_body(body: Body) -> Result<Bytes, Failure> {
    let limited = http_body_util::Limited::new(body, MAX_REQUEST_BYTES);
    match http_body_util::BodyExt::collect(limited).await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BadRequestException",
                format!("a catalog request body is at most {MAX_REQUEST_BYTES} bytes"),
            ))
        }
        Err(_) => Err(Failure::bad_request("the request body could not be read")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_with_their_namespaces() {
        let (bucket, route) = Route::of("/_iceberg/v1/w/namespaces/a%1Fb/tables/t").unwrap();
        assert_eq!(bucket.as_deref(), Some("w"));
        assert_eq!(
            route,
            Route::Table(vec!["a".into(), "b".into()], "t".into())
        );
        assert_eq!(Route::of("/_iceberg/v1/config").unwrap().1, Route::Config);
        assert_eq!(
            Route::of("/_iceberg/v1/w/tables/rename").unwrap().1,
            Route::Rename
        );
        assert!(Route::of("/_iceberg/v1/w/views").is_err());
        assert!(Route::of("/_iceberg/v1/w/namespaces/a%1F/tables").is_err());
    }
}
