//! Logging: `tracing` with JSON lines on stdout.
//!
//! `RUST_LOG` sets the filter (default `info`); `LOG_FORMAT=pretty` switches
//! to human-readable lines for local work.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let pretty = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("pretty"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE);
    let result = if pretty {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    };
    if result.is_ok() {
        tracing::info!(
            service,
            version = env!("CARGO_PKG_VERSION"),
            "telemetry initialised"
        );
    }
}

/// Subscriber for tests: silent unless `TEST_LOG` is set, safe to call from
/// every test.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "debug".into()))
            .with_test_writer()
            .try_init();
    }
}

/// Renders an error with its whole `source()` chain, `outer: inner: root`,
/// for the log (never for a response body).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut rendered = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        rendered.push_str(": ");
        rendered.push_str(&cause.to_string());
        source = cause.source();
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chain_lists_every_cause() {
        let err = Outer(std::io::Error::other("root cause"));
        assert_eq!(error_chain(&err), "outer: root cause");
    }
}

/// W3C trace context carried across HTTP (`traceparent` header) and AMQP
/// (`traceparent` message header), so one trace id follows an order from the
/// request through every event it causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: String,
}

tokio::task_local! {
    static TRACE: TraceContext;
}

impl TraceContext {
    /// Continues the trace of a `traceparent` value, or starts a new one
    /// when it is absent or malformed.
    pub fn from_traceparent(value: Option<&str>) -> Self {
        let parsed = value.and_then(|v| {
            let parts: Vec<&str> = v.trim().split('-').collect();
            let hex =
                |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
            (parts.len() == 4
                && hex(parts[0], 2)
                && hex(parts[1], 32)
                && hex(parts[2], 16)
                && hex(parts[3], 2)
                && parts[1] != "00000000000000000000000000000000")
                .then(|| parts[1].to_ascii_lowercase())
        });
        Self {
            trace_id: parsed.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
        }
    }

    /// The trace id (32 hex digits).
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// A `traceparent` for an outgoing call or message: this trace, a new span.
    pub fn child_traceparent(&self) -> String {
        let span_id: u64 = rand::random::<u64>() | 1;
        format!("00-{}-{span_id:016x}-01", self.trace_id)
    }

    /// Runs `future` with this as the current trace context.
    pub async fn scope<F: std::future::Future>(self, future: F) -> F::Output {
        TRACE.scope(self, future).await
    }
}

/// A `traceparent` continuing the current trace, if one is in scope.
pub fn current_traceparent() -> Option<String> {
    TRACE.try_with(TraceContext::child_traceparent).ok()
}

#[cfg(test)]
mod trace_tests {
    use super::*;

    #[test]
    fn traceparents_continue_or_start_traces() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::from_traceparent(Some(parent));
        assert_eq!(ctx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = ctx.child_traceparent();
        assert!(
            child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && child.len() == 55,
            "{child}"
        );
        assert_eq!(
            TraceContext::from_traceparent(Some("garbage"))
                .trace_id()
                .len(),
            32
        );
        assert_ne!(
            TraceContext::from_traceparent(None),
            TraceContext::from_traceparent(None)
        );
    }

    #[tokio::test]
    async fn the_context_is_visible_inside_its_scope_only() {
        assert_eq!(current_traceparent(), None);
        let ctx = TraceContext::from_traceparent(None);
        let id = ctx.trace_id().to_string();
        let inside = ctx
            .scope(async { current_traceparent() })
            .await
            .expect("in scope");
        assert!(inside.contains(&id));
    }
}
