//! W3C trace context (`traceparent`) on node-to-node calls, so one request's spans on every
//! node it touches form one trace.
//!
//! This crate does not know the tracer: the binary installs two hooks when trace export is
//! on (`--otlp-endpoint`) — one that renders the current span's context, one that makes a
//! span the child of a received context. Without them both do nothing, at the cost of a load.

use std::sync::OnceLock;

use http::HeaderMap;

/// The W3C trace-context header.
pub const TRACEPARENT: &str = "traceparent";

/// How the tracer reads and sets span contexts.
pub struct TraceHooks {
    /// The current span's context as a `traceparent` value, if it has one.
    pub current: fn() -> Option<String>,
    /// Makes `span` a child of the context in a `traceparent` value.
    pub adopt: fn(&tracing::Span, &str),
}

static HOOKS: OnceLock<TraceHooks> = OnceLock::new();

/// Installs the hooks (once; later calls change nothing).
pub fn install(hooks: TraceHooks) {
    let _ = HOOKS.set(hooks);
}

/// The `traceparent` of the current span, when trace export is on.
pub fn current_traceparent() -> Option<String> {
    HOOKS.get().and_then(|h| (h.current)())
}

/// Makes `span` a child of the caller's span named in `headers`, when there is one.
pub fn adopt_parent(span: &tracing::Span, headers: &HeaderMap) {
    let (Some(hooks), Some(parent)) = (
        HOOKS.get(),
        headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()),
    ) else {
        return;
    };
    (hooks.adopt)(span, parent);
}
