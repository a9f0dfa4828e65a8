//! The HTTP service in front of `s3s`: health endpoints for orchestrators, and an
//! `x-amz-request-id` on every response (also inside error XML bodies).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use basalt_object::ObjectStore;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use s3s::auth::SecretKey;
use s3s::host::{S3Host, VirtualHost};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{Body, HttpError};
use tracing::Instrument;

use crate::BasaltS3;
use crate::in_flight::TicketedBody;

/// What the S3 front needs to know beyond the store.
#[derive(Debug, Clone)]
pub struct FrontConfig {
    pub region: String,
    /// Base domains for virtual-hosted-style requests (`bucket.<domain>`); path-style always works.
    pub domains: Vec<String>,
    pub access_key: String,
    pub secret_key: basalt_object::Secret,
    /// Accept SSE-C keys on plain-HTTP connections (AWS refuses them).
    pub sse_c_over_http: bool,
    /// The ownership of a bucket created without `x-amz-object-ownership`
    /// (`BucketOwnerEnforced`, `BucketOwnerPreferred` or `ObjectWriter`).
    pub object_ownership_default: String,
    /// Roles STS may hand out credentials for.
    pub roles: Vec<crate::RoleConfig>,
    /// Limits on what clients can make the node hold.
    pub limits: FrontLimits,
    /// On a cluster node: what `GET /basalt-admin/v1/cluster/status` answers.
    pub cluster_status: Option<ClusterStatusSource>,
    /// `GET /metrics` with `Authorization: Bearer <token>` answers the metrics on the S3 port
    /// (`--metrics-token`); without a token it is an ordinary S3 request.
    pub metrics_token: Option<basalt_object::Secret>,
}

/// Produces the cluster's status (JSON) for the admin API; the front knows nothing else of the
/// cluster.
#[derive(Clone)]
pub struct ClusterStatusSource(
    pub  Arc<
        dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = serde_json::Value> + Send>> + Send + Sync,
    >,
);

impl std::fmt::Debug for ClusterStatusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterStatusSource")
    }
}

/// What clients, authenticated or not, can make the node hold.
#[derive(Debug, Clone, Copy)]
pub struct FrontLimits {
    /// Most requests in flight on the node; beyond it, 503 SlowDown. `None`: no cap.
    pub max_requests: Option<usize>,
    /// A request body that sends nothing for this long is cut off (400 RequestTimeout).
    pub body_read_timeout: std::time::Duration,
    /// Most body bytes held, over all connections, for requests not yet authorized.
    pub pre_auth_bytes: usize,
}

impl Default for FrontLimits {
    fn default() -> Self {
        Self {
            max_requests: None,
            body_read_timeout: std::time::Duration::from_secs(30),
            pre_auth_bytes: 64 << 20,
        }
    }
}

/// Virtual-hosted-style addressing for `bucket.<domain>` hosts (any port); every other host,
/// an IP address included, is path-style.
struct DomainHost {
    domains: Vec<String>,
}

impl DomainHost {
    fn new(domains: &[String]) -> Result<Self, String> {
        let domains: Vec<String> = domains
            .iter()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        if let Some(bad) = domains
            .iter()
            .find(|d| d.is_empty() || d.contains('/') || d.contains(':'))
        {
            return Err(format!(
                "invalid virtual-host domain {bad:?}: give a bare domain name"
            ));
        }
        Ok(Self { domains })
    }
}

impl S3Host for DomainHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<VirtualHost<'a>> {
        let name = host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        });
        for domain in &self.domains {
            if let Some(bucket) = name
                .strip_suffix(domain.as_str())
                .and_then(|b| b.strip_suffix('.'))
                && !bucket.is_empty()
            {
                return Ok(VirtualHost::new(domain.as_str()).with_bucket(bucket));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

#[derive(Clone)]
pub struct HttpService {
    s3: S3Service,
    /// The store's secrets, for the signatures the service checks itself (browser POST forms).
    auth: Arc<crate::access::Auth>,
    ready: Arc<AtomicBool>,
    /// For CORS, which needs the bucket's rules before and after `s3s` runs.
    store: ObjectStore,
    host: Option<Arc<DomainHost>>,
    /// The client's address, set per connection (for the audit log and policies).
    peer: Option<std::net::SocketAddr>,
    /// Whether the connection is TLS (`aws:SecureTransport`).
    tls: bool,
    /// What this connection has in flight, for the listener's idle timeout.
    activity: Option<Arc<crate::in_flight::ConnectionActivity>>,
    /// A connection over `--max-connections`: every request is answered 503 SlowDown and the
    /// connection closed.
    over_connection_cap: bool,
    region: Arc<str>,
    requests: crate::in_flight::RequestLimit,
    pre_auth: crate::request_body::PreAuthBudget,
    body_read_timeout: std::time::Duration,
    metrics_token: Option<basalt_object::Secret>,
    cluster_status: Option<ClusterStatusSource>,
    access_logs: Arc<crate::access_log::AccessLogs>,
    catalog: crate::iceberg::Catalog,
}

fn declared_length(headers: &http::HeaderMap) -> u64 {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A `multipart/form-data` body: a browser POST form.
fn is_multipart_form(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .get(..19)
                .is_some_and(|t| t.eq_ignore_ascii_case("multipart/form-data"))
        })
}

pub fn build_service(store: ObjectStore, config: &FrontConfig) -> Result<HttpService, String> {
    let access_logs = crate::access_log::AccessLogs::new(store.clone(), config.region.clone());
    access_logs.spawn_flusher();
    let history = crate::console::history::MetricsHistory::new(store.clone());
    history.spawn_sampler();
    let ownership = crate::acl::ownership_of(&config.object_ownership_default).map_err(|_| {
        format!(
            "unknown object ownership {}",
            config.object_ownership_default
        )
    })?;
    let mut builder = S3ServiceBuilder::new(
        BasaltS3::new(store.clone(), config.region.clone()).with_default_ownership(ownership),
    );
    // Browser POST forms are taken by `post_form` and streamed; s3s's own POST path, which
    // holds the file in memory, is never reached. Should it be, it holds nothing.
    let mut s3s_config = s3s::config::S3Config::default();
    s3s_config.post_object_max_file_size = 0;
    // Documents are read whole, after the access check; `body_limits` refuses larger ones
    // from the head, with AWS's codes.
    s3s_config.xml_max_body_size = crate::body_limits::XML_MAX_BYTES as usize;
    // A browser POST's fields are read before its signature (inside them) can be checked.
    s3s_config.form_max_field_size = FORM_FIELD_MAX_BYTES;
    s3s_config.form_max_fields_size = FORM_FIELDS_MAX_BYTES;
    s3s_config.form_max_parts = FORM_MAX_PARTS;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        s3s_config,
    ))));
    builder.set_route(crate::admin::AdminRoute {
        store: store.clone(),
        access: crate::access::Access {
            store: store.clone(),
            root_access_key: config.access_key.clone(),
            sse_c_over_http: config.sse_c_over_http,
        },
        sts: crate::sts::StsRoute {
            store: store.clone(),
            roles: Arc::new(config.roles.clone()),
            keys: Arc::new(crate::sts::provider_keys(&config.roles)?),
        },
        cluster_status: config.cluster_status.clone(),
        region: config.region.clone(),
        access_logs: access_logs.clone(),
        history,
    });
    builder.set_auth(crate::access::Auth {
        store: store.clone(),
        root_access_key: config.access_key.clone(),
        root_secret_key: SecretKey::from(config.secret_key.expose().to_owned()),
    });
    builder.set_access(crate::access::Access {
        store: store.clone(),
        root_access_key: config.access_key.clone(),
        sse_c_over_http: config.sse_c_over_http,
    });
    let host = if config.domains.is_empty() {
        None
    } else {
        builder.set_host(DomainHost::new(&config.domains)?);
        Some(Arc::new(DomainHost::new(&config.domains)?))
    };
    let auth = Arc::new(crate::access::Auth {
        store: store.clone(),
        root_access_key: config.access_key.clone(),
        root_secret_key: SecretKey::from(config.secret_key.expose().to_owned()),
    });
    let catalog = crate::iceberg::Catalog {
        store: store.clone(),
        auth: auth.clone(),
        access: Arc::new(crate::access::Access {
            store: store.clone(),
            root_access_key: config.access_key.clone(),
            sse_c_over_http: config.sse_c_over_http,
        }),
        region: config.region.clone(),
    };
    Ok(HttpService {
        s3: builder.build(),
        auth,
        ready: Arc::new(AtomicBool::new(false)),
        store,
        host,
        peer: None,
        tls: false,
        activity: None,
        over_connection_cap: false,
        region: Arc::from(config.region.as_str()),
        requests: crate::in_flight::RequestLimit::new(config.limits.max_requests),
        pre_auth: crate::request_body::PreAuthBudget::new(config.limits.pre_auth_bytes),
        body_read_timeout: config.limits.body_read_timeout,
        metrics_token: config.metrics_token.clone(),
        cluster_status: config.cluster_status.clone(),
        access_logs,
        catalog,
    })
}

impl HttpService {
    /// Delivers the access logs buffered so far (at shutdown: nothing is left behind).
    pub async fn flush_access_logs(&self) {
        self.access_logs.flush().await;
    }

    /// The metrics, as `--metrics-address` and a scrape with the bearer token see them.
    pub async fn render_metrics(&self) -> String {
        crate::metrics::render(&self.store, self.cluster_status.as_ref()).await
    }

    /// `GET /metrics` with a bearer token: the metrics if it is the configured token, else 401.
    fn is_metrics_scrape<B>(&self, req: &Request<B>) -> bool {
        self.metrics_token.is_some()
            && req.method() == Method::GET
            && req.uri().path() == "/metrics"
            && req
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Bearer "))
    }

    async fn metrics_response<B>(&self, req: &Request<B>) -> Response<Body> {
        let given = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let expected = self
            .metrics_token
            .as_ref()
            .map(|t| basalt_object::sha256_hex(t.expose().as_bytes()));
        // Digests compared, so the comparison's time says nothing about the token.
        if expected != Some(basalt_object::sha256_hex(given.as_bytes())) {
            return plain(StatusCode::UNAUTHORIZED, "wrong metrics token");
        }
        let mut resp = Response::new(Body::from(self.render_metrics().await));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        resp
    }

    /// `/health/ready` answers 200 from now on.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// This service for one connection from `peer`.
    pub fn for_peer(&self, peer: std::net::SocketAddr) -> Self {
        self.for_connection(peer, false)
    }

    /// This service for one connection from `peer`, over TLS or not.
    pub fn for_connection(&self, peer: std::net::SocketAddr, tls: bool) -> Self {
        Self {
            peer: Some(peer),
            tls,
            ..self.clone()
        }
    }

    /// This service for a connection beyond the node's cap: it answers 503 SlowDown.
    pub fn over_connection_cap(self) -> Self {
        Self {
            over_connection_cap: true,
            ..self
        }
    }

    /// This service for one connection whose requests in flight `activity` counts.
    pub fn with_activity(self, activity: Arc<crate::in_flight::ConnectionActivity>) -> Self {
        Self {
            activity: Some(activity),
            ..self
        }
    }

    pub async fn handle(&self, req: Request<Body>) -> Result<Response<Body>, HttpError> {
        if self.is_metrics_scrape(&req) {
            return Ok(self.metrics_response(&req).await);
        }
        if req.method() == Method::GET || req.method() == Method::HEAD {
            match req.uri().path() {
                "/health/live" => return Ok(plain(StatusCode::OK, "live")),
                "/health/ready" => {
                    return Ok(if self.ready.load(Ordering::Acquire) {
                        plain(StatusCode::OK, "ready")
                    } else {
                        plain(StatusCode::SERVICE_UNAVAILABLE, "starting")
                    });
                }
                _ => {}
            }
            if let Some(resp) =
                crate::console::respond(&req, &self.region, self.host_names_bucket(&req))
            {
                return Ok(resp);
            }
        }
        let request_id = ChunkIdLike::new();
        // Every line logged while the request is handled names it (`request{id=…}:`), and the
        // id is the `x-amz-request-id` the client sees.
        let span = tracing::info_span!("request", id = %request_id);
        // A client that traces its calls (a `traceparent` header) sees basalt's spans in its
        // trace.
        basalt_object::trace_context::adopt_parent(&span, req.headers());
        self.handle_identified(req, request_id)
            .instrument(span)
            .await
    }

    async fn handle_identified(
        &self,
        req: Request<Body>,
        request_id: String,
    ) -> Result<Response<Body>, HttpError> {
        if self.over_connection_cap {
            let mut resp = error_response(slow_down(), &request_id, req.uri().path());
            resp.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            return Ok(resp);
        }
        let Some(ticket) = self.requests.admit(self.activity.clone()) else {
            tracing::warn!(request_id, "request refused: --max-requests in flight");
            return Ok(error_response(slow_down(), &request_id, req.uri().path()));
        };
        let resource = req.uri().path().to_owned();
        let origin = req
            .headers()
            .get("origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Only CORS needs the bucket: a preflight, or a request from a browser page.
        let bucket = (origin.is_some() || req.method() == Method::OPTIONS)
            .then(|| self.bucket_of(&req))
            .flatten();
        if req.method() == Method::OPTIONS {
            let rules = self.cors_rules(bucket.as_deref()).await;
            let mut resp = crate::cors::preflight(req.headers(), rules.as_deref());
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                resp.headers_mut().insert("x-amz-request-id", v);
            }
            return Ok(resp);
        }
        let method = req.method().clone();
        // A refusal of an `Expect: 100-continue` request goes out with its body unread; the
        // client may send the body anyway or not, so the connection cannot carry another
        // request after it (HTTP/1: closed; HTTP/2 frames each stream on its own).
        let expects_continue = req.headers().contains_key(http::header::EXPECT)
            && req.version() < http::Version::HTTP_2;
        let mut who = crate::audit::access_key_of(&req);
        let charge = self.pre_auth.charge();
        let timeout = self.body_read_timeout;
        // A request without a body (most GETs, HEADs, DELETEs) has nothing to guard.
        let req = if !hyper::body::Body::is_end_stream(req.body()) {
            req.map(|body| {
                Body::http_body(crate::request_body::GuardedBody::new(
                    body,
                    charge.clone(),
                    timeout,
                ))
            })
        } else {
            req
        };
        let mut req = match buffer_small_body(req).await {
            Ok(req) => req,
            Err(resp) => {
                let resp = guard_refusal(&charge, &request_id).unwrap_or(resp);
                return Ok(TicketedBody::wrap_response(resp, ticket));
            }
        };
        req.extensions_mut().insert(crate::access::Connection {
            peer: self.peer,
            tls: self.tls,
        });
        req.extensions_mut().insert(charge.clone());
        let facts = req
            .extensions()
            .get::<crate::access_log::RequestFacts>()
            .cloned();
        let mut resp = if self.is_catalog_request(&req) {
            if let Some(facts) = &facts {
                facts.update(|f| f.operation = Some("IcebergCatalog".to_owned()));
            }
            self.catalog.handle(req).await
        } else if let Some((bucket, virtual_host)) = self.form_bucket(&req) {
            let (resp, signer) = self.post_form(req, &bucket, virtual_host).await?;
            who = signer.or(who);
            resp
        } else {
            crate::signed_request::sigv2_bucket_resource(&mut req);
            let refused = crate::signed_request::check(&req, &self.region)
                .and_then(|()| crate::body_limits::check(&req, crate::admin::PREFIX))
                .and_then(|()| crate::convert::check_metadata_headers(req.headers()));
            match refused {
                Ok(()) => self.s3.call(req).await?,
                Err(e) => s3_error_response(e),
            }
        };
        if let Some(refusal) = guard_refusal(&charge, &request_id) {
            resp = refusal;
        }
        let error_code = crate::audit::error_code(&resp);
        crate::audit::record(&crate::audit::Entry {
            status: resp.status(),
            method: &method,
            resource: &resource,
            access_key: who.as_deref(),
            peer: self.peer,
            request_id: &request_id,
            error_code: error_code.as_deref(),
        });
        if let Some(facts) = facts {
            facts.update(|f| f.error_code = error_code);
        }
        if let Some(origin) = origin
            && let Some(rules) = self.cors_rules(bucket.as_deref()).await
        {
            crate::cors::decorate(&mut resp, &origin, &method, &rules);
        }
        if resp.status().is_client_error() || resp.status().is_server_error() {
            add_error_details(&mut resp, &request_id, &resource);
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-amz-request-id", v);
        }
        if expects_continue && (resp.status().is_client_error() || resp.status().is_server_error())
        {
            resp.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        Ok(TicketedBody::wrap_response(resp, ticket))
    }
}

/// An S3 error answered by the service itself, with the details `s3s` would add.
fn error_response(e: s3s::S3Error, request_id: &str, resource: &str) -> Response<Body> {
    let mut resp = s3_error_response(e);
    add_error_details(&mut resp, request_id, resource);
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    resp
}

impl HttpService {
    /// The bucket a request addresses: from the host name under a configured domain, else the
    /// first path segment.
    fn bucket_of<B>(&self, req: &Request<B>) -> Option<String> {
        if let (Some(host), Some(header)) = (
            &self.host,
            req.headers().get("host").and_then(|v| v.to_str().ok()),
        ) && let Ok(vh) = host.parse_host_header(header)
            && let Some(bucket) = vh.bucket()
        {
            return Some(bucket.to_owned());
        }
        let first = req.uri().path().trim_start_matches('/').split('/').next()?;
        (!first.is_empty()).then(|| first.to_owned())
    }

    /// The host names a bucket (virtual-hosted style): the whole path is then an object key,
    /// and `/_iceberg/…` or `/_console/…` are keys like any other.
    fn host_names_bucket<B>(&self, req: &Request<B>) -> bool {
        self.host.is_some() && self.bucket_of(req).is_some_and(|b| !b.starts_with('_'))
    }

    /// The bucket a browser POST form uploads to, and whether the host names it; none for
    /// any other request.
    fn form_bucket<B>(&self, req: &Request<B>) -> Option<(String, bool)> {
        if req.method() != Method::POST || !is_multipart_form(req.headers()) {
            return None;
        }
        let path = req.uri().path();
        if self.host_names_bucket(req) {
            return matches!(path, "" | "/")
                .then(|| self.bucket_of(req))
                .flatten()
                .map(|b| (b, true));
        }
        let name = path.trim_start_matches('/').trim_end_matches('/');
        (!name.is_empty() && !name.contains('/')).then(|| (name.to_owned(), false))
    }

    /// A browser POST upload: checked here, then written by the S3 service as the PutObject
    /// it asks for (see `post_form`). The answer, and who signed the form.
    async fn post_form(
        &self,
        req: Request<Body>,
        bucket: &str,
        virtual_host: bool,
    ) -> Result<(Response<Body>, Option<String>), s3s::HttpError> {
        let cx = crate::post_form::FormContext {
            bucket,
            virtual_host,
            tls: self.tls,
            region: &self.region,
            auth: &self.auth,
        };
        let upload = match crate::post_form::prepare(req, cx).await {
            Ok(upload) => upload,
            Err(e) => return Ok((s3_error_response(e), None)),
        };
        let put = upload.put;
        let signer = put
            .extensions()
            .get::<crate::post_form::FormSigner>()
            .map(|s| s.0.clone());
        let refused = crate::convert::check_metadata_headers(put.headers());
        let resp = match refused {
            Ok(()) => self.s3.call(put).await?,
            Err(e) => s3_error_response(e),
        };
        Ok((upload.reply.answer(resp), signer))
    }

    /// A request for the Iceberg catalog: its path, on a host that names no bucket.
    fn is_catalog_request<B>(&self, req: &Request<B>) -> bool {
        crate::iceberg::is_catalog_request(req.uri().path()) && !self.host_names_bucket(req)
    }

    async fn cors_rules(&self, bucket: Option<&str>) -> Option<Vec<basalt_object::CorsRule>> {
        self.store.bucket_cors(bucket?).await.ok()
    }
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for HttpService {
    type Response = Response<Body>;
    type Error = HttpError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: Request<hyper::body::Incoming>) -> Self::Future {
        let service = self.clone();
        // A request confirms its linearizable read point once, however many records it reads.
        Box::pin(basalt_object::read_fence::within_request(async move {
            let started = std::time::Instant::now();
            let _in_flight = crate::metrics::InFlight::start();
            let received = declared_length(req.headers());
            let facts = crate::access_log::RequestFacts::default();
            let line = crate::access_log::RequestLine::of(&req, received);
            let mut req = req.map(Body::from);
            req.extensions_mut().insert(facts.clone());
            let resp = service.handle(req).await;
            if let Ok(resp) = &resp {
                let facts = facts.take();
                let elapsed = started.elapsed();
                let sent = declared_length(resp.headers());
                crate::metrics::record_request(
                    facts
                        .operation
                        .clone()
                        .unwrap_or_else(|| "Other".to_owned()),
                    resp.status().as_u16(),
                    elapsed,
                    received,
                    sent,
                );
                if facts.bucket.is_some() {
                    let request_id = resp
                        .headers()
                        .get("x-amz-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    let outcome = crate::access_log::Outcome {
                        status: resp.status(),
                        request_id,
                        sent,
                        elapsed,
                        remote_ip: service.peer.map(|p| p.ip()),
                        tls: service.tls,
                    };
                    service.access_logs.record(facts, line, outcome).await;
                }
            }
            resp
        }))
    }
}

/// Bodies up to this size are read before the request is handled.
const BUFFERED_BODY_MAX: u64 = 64 << 10;
/// A browser POST upload's form fields, read before its signature is checked: one field (the
/// policy is the largest), all of them, and how many.
const FORM_FIELD_MAX_BYTES: usize = 64 << 10;
const FORM_FIELDS_MAX_BYTES: usize = 256 << 10;
const FORM_MAX_PARTS: usize = 100;

/// Reads a small request body in full first. A request refused before its body is read (a bad
/// header, a policy denial) would otherwise leave the body unread on the connection, and
/// closing it then can reset the connection before the client reads the error. Memory stays
/// bounded: 64 KiB per request in flight; larger bodies stream as before.
async fn buffer_small_body(req: Request<Body>) -> Result<Request<Body>, Response<Body>> {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(len @ 1..=BUFFERED_BODY_MAX) = declared else {
        return Ok(req);
    };
    // A client that asked `Expect: 100-continue` waits for the go-ahead: reading its body now
    // would give it before the request is judged. A refusal goes out first, body unread.
    if req.headers().contains_key(http::header::EXPECT) {
        return Ok(req);
    }
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, len as usize);
    match http_body_util::BodyExt::collect(limited).await {
        Ok(collected) => Ok(Request::from_parts(parts, Body::from(collected.to_bytes()))),
        Err(_) => Err(plain(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        )),
    }
}

/// The answer to a request whose body a guard stopped: the budget for bytes read before
/// authorization was spent, or the body stalled.
fn guard_refusal(
    charge: &crate::request_body::PreAuthCharge,
    request_id: &str,
) -> Option<Response<Body>> {
    if charge.spent() {
        tracing::warn!(
            request_id,
            "request refused: the pre-authorization byte budget is spent"
        );
        return Some(s3_error_response(slow_down()));
    }
    charge.timed_out().then(|| {
        s3_error_response(s3s::S3Error::with_message(
            s3s::S3ErrorCode::RequestTimeout,
            "Your socket connection to the server was not read from or written to within the timeout period.",
        ))
    })
}

fn slow_down() -> s3s::S3Error {
    s3s::S3Error::with_message(
        s3s::S3ErrorCode::SlowDown,
        "Please reduce your request rate.",
    )
}

/// An S3 error as `s3s` writes it (XML body, status, headers).
pub(crate) fn s3_error_response(e: s3s::S3Error) -> Response<Body> {
    match e.to_http_response() {
        Ok(resp) => resp,
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::from(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp
}

/// 16 random bytes in upper-case hex, the shape of AWS request ids.
struct ChunkIdLike;

impl ChunkIdLike {
    #[allow(clippy::new_ret_no_self)]
    fn new() -> String {
        let raw: [u8; 8] = rand::random();
        hex_simd::encode_to_string(raw, hex_simd::AsciiCase::Upper)
    }
}

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// AWS's wording for errors that `s3s` raises without a message.
fn default_message(code: &str) -> &'static str {
    match code {
        "AccessDenied" => "Access Denied",
        "InvalidBucketName" => "The specified bucket is not valid.",
        "KeyTooLongError" => "Your key is too long.",
        "InvalidAccessKeyId" => "The AWS access key ID you provided does not exist in our records.",
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided."
        }
        "MalformedXML" => {
            "The XML you provided was not well-formed or did not validate against our published schema."
        }
        "InvalidRange" => "The requested range is not satisfiable.",
        "NoSuchBucket" => "The specified bucket does not exist.",
        "NoSuchKey" => "The specified key does not exist.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "NotImplemented" => {
            "A header or query parameter you provided implies functionality that is not implemented."
        }
        _ => "The request could not be processed.",
    }
}

/// Adds `<Message>`, `<Resource>` and `<RequestId>` to an S3 XML error body that lacks them.
fn add_error_details(resp: &mut Response<Body>, request_id: &str, resource: &str) {
    let Some(bytes) = resp.body().bytes() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return;
    };
    let Some(end) = text.rfind("</Error>") else {
        return;
    };
    let mut extra = String::new();
    if !text.contains("<Message>") {
        let code = text
            .split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map_or("", |(code, _)| code);
        extra.push_str(&format!("<Message>{}</Message>", default_message(code)));
    }
    if !text.contains("<Resource>") {
        extra.push_str(&format!("<Resource>{}</Resource>", xml_escape(resource)));
    }
    if !text.contains("<RequestId>") {
        extra.push_str(&format!("<RequestId>{request_id}</RequestId>"));
    }
    if extra.is_empty() {
        return;
    }
    let body = format!("{}{}{}", &text[..end], extra, &text[end..]);
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    *resp.body_mut() = Body::from(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_under_a_domain_name_their_bucket_and_others_are_path_style() {
        let host = DomainHost::new(&["s3.example.test".to_owned()]).unwrap();
        let vh = host
            .parse_host_header("photos.s3.example.test:9000")
            .unwrap();
        assert_eq!(vh.bucket(), Some("photos"));
        for path_style in [
            "s3.example.test",
            "127.0.0.1:9000",
            "localhost",
            "other.example.test",
        ] {
            assert_eq!(
                host.parse_host_header(path_style).unwrap().bucket(),
                None,
                "{path_style}"
            );
        }
        assert!(DomainHost::new(&["http://x".to_owned()]).is_err());
    }

    #[test]
    fn error_bodies_gain_message_resource_and_request_id() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code></Error>";
        let mut resp = Response::new(Body::from(xml.to_owned()));
        add_error_details(&mut resp, "ABC", "/b/k&1");
        let body = resp.body().bytes().unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.ends_with(
            "<Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Resource>/b/k&amp;1</Resource><RequestId>ABC</RequestId></Error>"
        ));
    }
}
