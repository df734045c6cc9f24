//! Prometheus metrics: one registry per application instance (so that
//! several instances in one test process do not share counters), HTTP
//! request count and latency by route and status, and the `/metrics` route.

use actix_web::{HttpResponse, web};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The registry of one service and its HTTP metrics.
#[derive(Clone)]
pub struct HttpMetrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl HttpMetrics {
    /// Creates a registry whose metrics carry the `service` label.
    pub fn new(service: &str) -> Self {
        let labels = [("service".to_string(), service.to_string())]
            .into_iter()
            .collect();
        let registry = Registry::new_custom(None, Some(labels)).expect("valid registry labels");
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by method, route and status",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by method, route and status",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("fresh registry");
        registry
            .register(Box::new(latency.clone()))
            .expect("fresh registry");
        Self {
            registry,
            requests,
            latency,
        }
    }

    /// The registry, for services to register their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one finished request. `route` is the matched pattern (bounded
    /// cardinality), never the raw path.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }

    /// Text exposition of every metric in the registry.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// Prometheus text exposition of the service's metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(metrics: web::Data<HttpMetrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render())
}
