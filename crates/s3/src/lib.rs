//! Basalt's S3 front: the `s3s` trait implemented over the object layer. `s3s` parses requests,
//! checks SigV4 (header, presigned, streaming) and writes S3 XML; this crate supplies the
//! semantics, the one mapping from object-layer errors to S3 error codes, and the HTTP service
//! around it (health endpoints, request ids).

mod access;
mod access_log;
mod acl;
mod admin;
mod audit;
mod body_limits;
mod condition_keys;
mod console;
mod convert;
mod cors;
mod error;
mod handlers;
mod iceberg;
mod in_flight;
mod jwt;
mod lifecycle;
mod lock;
mod metrics;
mod object_attributes;
mod policy;
mod post_form;
mod provider_keys;
mod request_body;
mod service;
mod signed_request;
mod sse;
mod sts;

pub use admin::ADMIN_BUCKET;
pub use handlers::BasaltS3;
pub use in_flight::ConnectionActivity;
pub use metrics::install as install_metrics;
pub use service::{ClusterStatusSource, FrontConfig, FrontLimits, HttpService, build_service};
pub use sts::{RoleConfig, RolesFile};
