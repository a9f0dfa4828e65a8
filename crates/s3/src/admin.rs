//! Basalt's admin API under `/basalt-admin/v1/`, signed with SigV4 like any S3 request (s3s
//! checks the signature before a route runs). The bucket name `basalt-admin` is reserved.
//!
//! - `GET  /basalt-admin/v1/status`: drives, policy, healer, running and last sweep (JSON).
//! - `POST /basalt-admin/v1/heal`: starts a full heal (202), or 409 if a sweep is running.
//! - Users and keys: `GET users`, `POST users?name=N`, `DELETE users?name=N`,
//!   `POST users/disable?name=N`, `POST users/enable?name=N`, `PUT users/policies?name=N` (a
//!   JSON list of canned policy names or policy documents), `POST keys?user=N` (answers the
//!   secret, once), `GET keys[?user=N]`, `DELETE keys?id=K`.
//! - SSE-KMS keys of the built-in key store: `GET kms/keys`, `POST kms/keys[?alias=A]
//!   [&description=D][&id=I]`, `POST kms/keys/rotate?key=K`, `POST kms/keys/disable?key=K`,
//!   `POST kms/keys/enable?key=K` (K: an id, `alias/NAME` or an ARN).
//! - `GET /basalt-admin/v1/metrics/history`: the node's request totals and capacity, sampled
//!   every 10 s for the last hour, and one sample taken now (the console charts them).
//! - `POST /basalt-admin/v1/access-logs/flush`: delivers this node's buffered server access
//!   logs now (200).
//! - `POST /basalt-admin/v1/lifecycle[?at_ms=N]`: runs the lifecycle rules now, or as if the
//!   clock read `N` (milliseconds since the epoch), and answers the run's report (200), or 409
//!   if a run is going on. Object lock is still checked against the real clock.

use basalt_object::ObjectStore;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};

pub const ADMIN_BUCKET: &str = "basalt-admin";
pub(crate) const PREFIX: &str = "/basalt-admin/v1/";
/// The largest admin request body (a user's list of policies).
const ADMIN_BODY_MAX_BYTES: usize = 1 << 20;

/// The admin API, and STS (`POST /` with a form body) beside it: s3s takes one router.
pub(crate) struct AdminRoute {
    pub(crate) store: ObjectStore,
    pub(crate) access: crate::access::Access,
    pub(crate) sts: crate::sts::StsRoute,
    pub(crate) cluster_status: Option<crate::service::ClusterStatusSource>,
    /// The region key ARNs name.
    pub(crate) region: String,
    pub(crate) access_logs: std::sync::Arc<crate::access_log::AccessLogs>,
    pub(crate) history: std::sync::Arc<crate::console::history::MetricsHistory>,
}

/// The IAM action of an admin call (`admin:*` in an identity policy grants them all), or
/// `None` for a call that does not exist.
fn admin_action(method: &Method, call: &str) -> Option<&'static str> {
    Some(match (method, call) {
        (&Method::GET, "users") => "admin:ListUsers",
        (&Method::POST, "users") => "admin:CreateUser",
        (&Method::DELETE, "users") => "admin:DeleteUser",
        (&Method::POST, "users/disable") => "admin:DisableUser",
        (&Method::POST, "users/enable") => "admin:EnableUser",
        (&Method::PUT, "users/policies") => "admin:AttachUserPolicy",
        (&Method::POST, "keys") => "admin:CreateAccessKey",
        (&Method::GET, "keys") => "admin:ListAccessKeys",
        (&Method::DELETE, "keys") => "admin:DeleteAccessKey",
        (&Method::GET, "kms/keys") => "admin:ListKeys",
        (&Method::POST, "kms/keys") => "admin:CreateKey",
        (&Method::POST, "kms/keys/rotate") => "admin:RotateKey",
        (&Method::POST, "kms/keys/disable") => "admin:DisableKey",
        (&Method::POST, "kms/keys/enable") => "admin:EnableKey",
        (&Method::GET, "status" | "cluster/status" | "metrics/history") => "admin:ServerInfo",
        (&Method::POST, "lifecycle") => "admin:RunLifecycle",
        (&Method::POST, "heal") => "admin:Heal",
        (&Method::POST, "access-logs/flush") => "admin:FlushAccessLogs",
        _ => return None,
    })
}

fn param(req: &S3Request<Body>, name: &str) -> S3Result<String> {
    req.uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .map(crate::access::decode_query_value)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| s3_error!(InvalidArgument, "the {name} parameter is required"))
}

fn identity_error(e: basalt_object::ObjectError) -> s3s::S3Error {
    crate::error::to_s3(e)
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> S3Result<S3Response<Body>> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| s3_error!(InternalError, "cannot encode the answer: {e}"))?;
    let mut resp = S3Response::new(Body::from(Bytes::from(text)));
    resp.status = Some(status);
    resp.headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    Ok(resp)
}

impl AdminRoute {
    /// A KMS key as the admin API shows it: with its ARN.
    fn shown_key(&self, key: &basalt_object::KmsKey) -> serde_json::Value {
        let mut shown = serde_json::to_value(key).unwrap_or_default();
        shown["arn"] = crate::sse::kms_key_arn(&self.region, &key.key_id).into();
        shown
    }
}

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        _extensions: &mut http::Extensions,
    ) -> bool {
        uri.path().starts_with(PREFIX) || crate::sts::StsRoute::matches(method, uri, headers)
    }

    /// The root user may make every admin call; a user, the calls its policies allow.
    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        let Some(call) = req.uri.path().strip_prefix(PREFIX) else {
            // STS: a web identity needs no signature; AssumeRole checks its caller itself.
            return Ok(());
        };
        let Some(credentials) = &req.credentials else {
            return Err(s3_error!(
                AccessDenied,
                "the admin API needs a signed request"
            ));
        };
        let Some(action) = admin_action(&req.method, call) else {
            return Err(s3_error!(
                MethodNotAllowed,
                "unknown admin call {} {}",
                req.method,
                req.uri.path()
            ));
        };
        let connection = req.extensions.get::<crate::access::Connection>().copied();
        self.access
            .check_admin(&credentials.access_key, action, connection)
            .await?;
        if let Some(charge) = req.extensions.get::<crate::request_body::PreAuthCharge>() {
            charge.authorize();
        }
        Ok(())
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        if !req.uri.path().starts_with(PREFIX) {
            return self.sts.call(req).await;
        }
        let action = req.uri.path().trim_start_matches(PREFIX).to_owned();
        let store = &self.store;
        match (&req.method, action.as_str()) {
            (&Method::GET, "users") => json(
                StatusCode::OK,
                &store.users().await.map_err(identity_error)?,
            ),
            (&Method::POST, "users") => {
                let user = store
                    .create_user(&param(&req, "name")?)
                    .await
                    .map_err(identity_error)?;
                json(StatusCode::OK, &user)
            }
            (&Method::DELETE, "users") => {
                store
                    .remove_user(&param(&req, "name")?)
                    .await
                    .map_err(identity_error)?;
                json(StatusCode::OK, &serde_json::json!({ "removed": true }))
            }
            (&Method::POST, "users/disable" | "users/enable") => {
                let user = store
                    .set_user_disabled(&param(&req, "name")?, action == "users/disable")
                    .await
                    .map_err(identity_error)?;
                json(StatusCode::OK, &user)
            }
            (&Method::PUT, "users/policies") => {
                let name = param(&req, "name")?;
                let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(
                    &mut req.input,
                    ADMIN_BODY_MAX_BYTES,
                ))
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        s3_error!(MaxMessageLengthExceeded, "{e}")
                    } else {
                        s3_error!(IncompleteBody, "{e}")
                    }
                })?
                .to_bytes();
                let policies: Vec<String> = serde_json::from_slice(&body).map_err(|e| {
                    s3_error!(
                        MalformedPolicy,
                        "the body must be a JSON list of policies: {e}"
                    )
                })?;
                for p in &policies {
                    if crate::policy::canned(p).is_none() {
                        crate::policy::Policy::parse(p, false)
                            .map_err(|e| s3_error!(MalformedPolicy, "{e}"))?;
                    }
                }
                let user = store
                    .set_user_policies(&name, policies)
                    .await
                    .map_err(identity_error)?;
                json(StatusCode::OK, &user)
            }
            (&Method::POST, "keys") => {
                let user = param(&req, "user")?;
                let (access_key, secret_key) = store
                    .create_access_key(&user)
                    .await
                    .map_err(identity_error)?;
                json(
                    StatusCode::OK,
                    &serde_json::json!({ "user": user, "access_key": access_key, "secret_key": secret_key }),
                )
            }
            (&Method::GET, "keys") => {
                let user = param(&req, "user").ok();
                let keys = store
                    .access_keys(user.as_deref())
                    .await
                    .map_err(identity_error)?;
                json(StatusCode::OK, &keys)
            }
            (&Method::DELETE, "keys") => {
                let revoked = store
                    .revoke_access_key(&param(&req, "id")?)
                    .await
                    .map_err(identity_error)?;
                json(StatusCode::OK, &serde_json::json!({ "revoked": revoked }))
            }
            (&Method::GET, "kms/keys") => {
                let keys = store.builtin_kms().keys().await.map_err(identity_error)?;
                let shown: Vec<_> = keys.iter().map(|k| self.shown_key(k)).collect();
                json(StatusCode::OK, &shown)
            }
            (&Method::POST, "kms/keys") => {
                let key = store
                    .builtin_kms()
                    .create_key(
                        param(&req, "id").ok().as_deref(),
                        param(&req, "alias").ok().as_deref(),
                        &param(&req, "description").unwrap_or_default(),
                    )
                    .await
                    .map_err(identity_error)?;
                json(StatusCode::OK, &self.shown_key(&key))
            }
            (&Method::POST, "kms/keys/rotate") => {
                let key = store
                    .builtin_kms()
                    .rotate(&param(&req, "key")?)
                    .await
                    .map_err(identity_error)?;
                json(StatusCode::OK, &self.shown_key(&key))
            }
            (&Method::POST, "kms/keys/disable" | "kms/keys/enable") => {
                let key = store
                    .builtin_kms()
                    .set_enabled(&param(&req, "key")?, action == "kms/keys/enable")
                    .await
                    .map_err(identity_error)?;
                json(StatusCode::OK, &self.shown_key(&key))
            }
            (&Method::GET, "status") => {
                json(StatusCode::OK, &self.store.maintenance_status().await)
            }
            (&Method::GET, "metrics/history") => {
                json(StatusCode::OK, &self.history.history().await)
            }
            (&Method::GET, "cluster/status") => match &self.cluster_status {
                Some(source) => json(StatusCode::OK, &(source.0)().await),
                None => json(
                    StatusCode::OK,
                    &serde_json::json!({ "mode": "single-node", "nodes": [] }),
                ),
            },
            (&Method::POST, "lifecycle") => {
                let at_ms = match req
                    .uri
                    .query()
                    .unwrap_or_default()
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("at_ms="))
                {
                    Some(text) => text.parse::<i64>().map_err(|_| {
                        s3_error!(
                            InvalidArgument,
                            "at_ms must be milliseconds since the epoch"
                        )
                    })?,
                    None => basalt_object::now_ms(),
                };
                match self.store.run_lifecycle(at_ms).await {
                    Ok(report) => json(StatusCode::OK, &report),
                    Err(basalt_object::ObjectError::Busy(m)) => {
                        json(StatusCode::CONFLICT, &serde_json::json!({ "error": m }))
                    }
                    Err(e) => Err(s3_error!(InternalError, "lifecycle run failed: {e}")),
                }
            }
            (&Method::POST, "access-logs/flush") => {
                self.access_logs.flush().await;
                json(StatusCode::OK, &serde_json::json!({ "flushed": true }))
            }
            (&Method::POST, "heal") => {
                let status = if self.store.start_heal() {
                    StatusCode::ACCEPTED
                } else {
                    StatusCode::CONFLICT
                };
                json(status, &self.store.maintenance_status().await)
            }
            _ => Err(s3_error!(
                MethodNotAllowed,
                "unknown admin call {} {}",
                req.method,
                req.uri.path()
            )),
        }
    }
}
