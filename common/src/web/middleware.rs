//! The request context middleware: request id, a span per request, an
//! access log line and the HTTP metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use tracing::Instrument;

use super::HttpMetrics;
use crate::telemetry::TraceContext;

/// Header that carries the request id in and out.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request, in the request extensions (for handlers
/// that pass it on, e.g. into an event's correlation id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Accepts a caller's id when it is short and plain; anything else could
/// pollute logs, so a fresh one replaces it.
fn accepted_request_id(value: &HeaderValue) -> Option<String> {
    let id = value.to_str().ok()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    (!id.is_empty() && id.len() <= 128 && id.chars().all(plain)).then(|| id.to_string())
}

/// The `method` label: a standard method's name, or `OTHER`. A client may
/// send any token as a method; each new one must not become new series.
fn metric_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

/// Wrap with `actix_web::middleware::from_fn(request_context)`, outermost.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(accepted_request_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = metric_method(req.method());
    let metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
    req.extensions_mut().insert(RequestId(request_id.clone()));

    let trace = TraceContext::from_traceparent(
        req.headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok()),
    );
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        %route,
        path = %req.path(),
        %request_id,
        trace_id = %trace.trace_id(),
    );
    let mut res = trace.scope(next.call(req).instrument(span.clone())).await?;

    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        metrics.observe(method, &route, status, elapsed.as_secs_f64());
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_millis() as u64,
            "request finished"
        );
    });
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_accepted_only_when_plain() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(accepted_request_id(&ok).as_deref(), Some("abc-123_x.y:z"));
        assert_eq!(accepted_request_id(&HeaderValue::from_static("a b")), None);
        assert_eq!(accepted_request_id(&HeaderValue::from_static("")), None);
        let long = HeaderValue::from_str(&"a".repeat(129)).expect("header");
        assert_eq!(accepted_request_id(&long), None);
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(metric_method(&Method::PATCH), "PATCH");
        for token in ["WEIRD1", "get", "PROPFIND"] {
            let method = Method::from_bytes(token.as_bytes()).expect("a method token");
            assert_eq!(metric_method(&method), "OTHER");
        }
    }
}
