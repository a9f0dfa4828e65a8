//! Basalt's admin API under `/basalt-admin/v1/`, signed with SigV4 like any S3 request (s3s
//! checks the signature before a route runs). The bucket name `basalt-admin` is reserved.
//!
//! - `GET  /basalt-admin/v1/status`: drives, policy, healer, running and last sweep (JSON).
//! - `POST /basalt-admin/v1/heal`: starts a full heal (202), or 409 if a sweep is running.
//! - `POST /basalt-admin/v1/lifecycle[?at_ms=N]`: runs the lifecycle rules now, or as if the
//!   clock read `N` (milliseconds since the epoch), and answers the run's report (200), or 409
//!   if a run is going on. Object lock is still checked against the real clock.

use basalt_object::ObjectStore;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};

pub const ADMIN_BUCKET: &str = "basalt-admin";
const PREFIX: &str = "/basalt-admin/v1/";

pub(crate) struct AdminRoute {
    pub(crate) store: ObjectStore,
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

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(
        &self,
        _method: &Method,
        uri: &Uri,
        _headers: &HeaderMap,
        _extensions: &mut http::Extensions,
    ) -> bool {
        uri.path().starts_with(PREFIX)
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let action = req.uri.path().trim_start_matches(PREFIX);
        match (&req.method, action) {
            (&Method::GET, "status") => {
                json(StatusCode::OK, &self.store.maintenance_status().await)
            }
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
