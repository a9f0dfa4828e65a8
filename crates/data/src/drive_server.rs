//! The other side of [`remote`](crate::remote): a node serving its drives to the node that
//! coordinates them. Only the drives it was started with are served, by name; every request
//! must carry a valid cluster signature. Transport (TCP, TLS) is the caller's.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use tracing::Instrument;

use crate::DataError;
use crate::chunk_file::{ChunkId, ChunkInfo};
use crate::drives::{self, Found};
use crate::remote::{
    ClusterAuth, ERROR_HEADER, NODE_API_PREFIX, NODE_HEALTH_PATH, error_kind, format_scan,
    valid_drive_name,
};
use crate::store::ChunkStore;

/// The largest request body: a shard (chunks are at most 64 MiB), with room to spare.
const MAX_BODY: usize = (64 << 20) + (1 << 20);

struct ServedDrive {
    path: PathBuf,
    store: ChunkStore,
}

/// The drives this node serves to its peers.
pub struct DriveServer {
    drives: HashMap<String, ServedDrive>,
    auth: ClusterAuth,
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp
}

fn failure(e: &DataError) -> Response<Full<Bytes>> {
    let status = match e {
        DataError::NotFound(_) => StatusCode::NOT_FOUND,
        DataError::DriveFull => StatusCode::INSUFFICIENT_STORAGE,
        DataError::Layout(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut resp = reply(status, e.to_string());
    resp.headers_mut()
        .insert(ERROR_HEADER, HeaderValue::from_static(error_kind(e)));
    resp
}

fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn chunk_info(id: &str, query: &str) -> Result<ChunkInfo, DataError> {
    let bad = || DataError::Layout("expected chunks/<id>?len=N&crc=N".into());
    Ok(ChunkInfo {
        id: ChunkId::from_hex(id).ok_or_else(bad)?,
        len: query_value(query, "len")
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?,
        crc32c: query_value(query, "crc")
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?,
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DataError> + Send + 'static,
) -> Result<T, DataError> {
    crate::io_lane::spawn(f)
        .await
        .await
        .map_err(|e| DataError::Io(std::io::Error::other(format!("blocking task failed: {e}"))))?
}

impl DriveServer {
    /// Serves `drives` (name, directory). Directories are not created or checked here: the
    /// coordinating node formats them, or finds them missing, as it would a local drive.
    pub fn new(drives: Vec<(String, PathBuf)>, auth: ClusterAuth) -> Result<Self, DataError> {
        let mut served = HashMap::new();
        for (name, path) in drives {
            if !valid_drive_name(&name) {
                return Err(DataError::Layout(format!(
                    "drive name {name:?}: use letters, digits, - and _"
                )));
            }
            let store = ChunkStore::new(&path);
            if served
                .insert(name.clone(), ServedDrive { path, store })
                .is_some()
            {
                return Err(DataError::Layout(format!("drive name {name} given twice")));
            }
        }
        Ok(Self {
            drives: served,
            auth,
        })
    }

    pub fn drive_names(&self) -> impl Iterator<Item = &str> {
        self.drives.keys().map(String::as_str)
    }

    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // A child of the calling node's span, when the call carries one.
        let span = tracing::debug_span!("drive.serve", path = %req.uri().path());
        crate::trace_context::adopt_parent(&span, req.headers());
        self.serve(req).instrument(span).await
    }

    async fn serve<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if !self.auth.verifies(&req) {
            return reply(StatusCode::FORBIDDEN, "invalid cluster signature");
        }
        let uri_path = req.uri().path().to_owned();
        if uri_path == NODE_HEALTH_PATH && req.method() == Method::GET {
            return reply(StatusCode::OK, "serving");
        }
        let Some(rest) = uri_path.strip_prefix(NODE_API_PREFIX) else {
            return reply(StatusCode::NOT_FOUND, "unknown node call");
        };
        let Some((name, op)) = rest.split_once('/') else {
            return reply(StatusCode::NOT_FOUND, "unknown node call");
        };
        let Some(drive) = self.drives.get(name) else {
            return reply(StatusCode::NOT_FOUND, format!("no drive {name} here"));
        };
        let query = req.uri().query().unwrap_or_default().to_owned();
        let (method, op) = (req.method().clone(), op.to_owned());
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return reply(StatusCode::BAD_REQUEST, format!("request body: {e}")),
        };
        let (path, store) = (drive.path.clone(), drive.store.clone());
        let result = match (&method, op.as_str()) {
            (&Method::GET, "identity") => {
                return match blocking(move || Ok(drives::inspect(&path))).await {
                    Ok(Found::Formatted(_)) | Ok(Found::Unusable(_)) => {
                        match tokio::fs::read(path_identity(&drive.path)).await {
                            Ok(bytes) => reply(StatusCode::OK, bytes),
                            Err(e) => failure(&DataError::Io(e)),
                        }
                    }
                    Ok(found) => {
                        let mut resp = reply(StatusCode::NOT_FOUND, "");
                        let kind = if matches!(found, Found::Missing) {
                            "missing"
                        } else {
                            "blank"
                        };
                        resp.headers_mut()
                            .insert(ERROR_HEADER, HeaderValue::from_static(kind));
                        resp
                    }
                    Err(e) => failure(&e),
                };
            }
            (&Method::PUT, "identity") => {
                let create = query_value(&query, "create") == Some("true");
                blocking(move || {
                    if create {
                        std::fs::create_dir_all(&path)?;
                    }
                    drives::write_identity_bytes(&path, &body)?;
                    Ok(Bytes::new())
                })
                .await
            }
            (&Method::POST, "prepare") => {
                blocking(move || store.prepare_blocking().map(|()| Bytes::new())).await
            }
            (&Method::GET, "space") => {
                blocking(move || {
                    let stats = rustix::fs::statvfs(&path).map_err(std::io::Error::from)?;
                    Ok(Bytes::from(format!(
                        "{} {}",
                        stats.f_blocks.saturating_mul(stats.f_frsize),
                        stats.f_bavail.saturating_mul(stats.f_frsize)
                    )))
                })
                .await
            }
            (&Method::GET | &Method::POST, "scan") => {
                // Only a POST may remove files.
                let remove = method == Method::POST
                    && query_value(&query, "remove_temporary") == Some("true");
                blocking(move || {
                    let (ids, temporary) = store.scan_files_blocking(remove)?;
                    Ok(Bytes::from(format_scan(&ids, temporary)))
                })
                .await
            }
            (_, op) if op.starts_with("sync/") => match op["sync/".len()..].parse::<u8>() {
                Ok(group) if method == Method::POST => {
                    blocking(move || store.sync_group_blocking(group).map(|()| Bytes::new())).await
                }
                _ => return reply(StatusCode::NOT_FOUND, "unknown node call"),
            },
            (_, op) if op.starts_with("chunks/") => {
                let id = &op["chunks/".len()..];
                match method {
                    Method::DELETE => match ChunkId::from_hex(id) {
                        Some(id) => {
                            blocking(move || store.delete_blocking(id).map(|()| Bytes::new())).await
                        }
                        None => Err(DataError::Layout("bad chunk id".into())),
                    },
                    Method::GET => match chunk_info(id, &query) {
                        Ok(info) => blocking(move || store.read_blocking(&info)).await,
                        Err(e) => Err(e),
                    },
                    Method::PUT => match chunk_info(id, &query) {
                        Ok(info) if crate::chunk_file::crc32c(&body) != info.crc32c => {
                            Err(DataError::Corrupt {
                                id: info.id,
                                reason: "damaged on the way here: checksum mismatch".into(),
                            })
                        }
                        Ok(info) => {
                            blocking(move || {
                                store
                                    .write_file_blocking(&info, &body)
                                    .map(|()| Bytes::new())
                            })
                            .await
                        }
                        Err(e) => Err(e),
                    },
                    _ => return reply(StatusCode::METHOD_NOT_ALLOWED, "unknown node call"),
                }
            }
            _ => return reply(StatusCode::NOT_FOUND, "unknown node call"),
        };
        match result {
            Ok(bytes) => reply(StatusCode::OK, bytes),
            Err(e) => {
                if !matches!(e, DataError::NotFound(_)) {
                    tracing::warn!(drive = name, op = %op, error = %e, "node call failed");
                }
                failure(&e)
            }
        }
    }
}

fn path_identity(drive: &std::path::Path) -> PathBuf {
    drive.join(drives::IDENTITY_FILE)
}
