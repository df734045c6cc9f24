//! `/healthz` (the process answers), `/readyz` (its dependencies answer) and
//! `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use futures_util::future::{BoxFuture, join_all};
use serde_json::json;

use super::Problem;
use super::metrics::metrics;

/// One dependency check: resolves to `Err(reason)` when the dependency is
/// not usable. The reason is operational (e.g. "timed out"), never a secret.
pub type ReadinessCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The named checks `/readyz` runs, concurrently, each under a timeout;
/// the few that say the process itself is wedged also fail `/healthz`.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, ReadinessCheck)>,
    liveness: Vec<(&'static str, ReadinessCheck)>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Readiness {
    /// No checks yet: ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a named check.
    pub fn with_check(mut self, name: &'static str, check: ReadinessCheck) -> Self {
        self.checks.push((name, check));
        self
    }

    /// Adds a named check of the process itself (never of a dependency,
    /// whose outage must not get pods restarted): it fails `/readyz` and
    /// `/healthz`, so the orchestrator restarts a replica that cannot
    /// recover by itself.
    pub fn with_liveness_check(mut self, name: &'static str, check: ReadinessCheck) -> Self {
        self.checks.push((name, check.clone()));
        self.liveness.push((name, check));
        self
    }

    /// Runs every check; the map holds "ok" or the reason per check.
    pub async fn run(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        run_checks(&self.checks).await
    }

    /// Runs the liveness checks only.
    pub async fn run_liveness(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        run_checks(&self.liveness).await
    }
}

async fn run_checks(
    checks: &[(&'static str, ReadinessCheck)],
) -> (bool, serde_json::Map<String, serde_json::Value>) {
    let results = join_all(checks.iter().map(|(name, check)| async move {
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(reason),
            Err(_) => Err("timed out".to_string()),
        };
        (*name, outcome)
    }))
    .await;
    let ready = results.iter().all(|(_, r)| r.is_ok());
    let report = results
        .into_iter()
        .map(|(name, r)| {
            (
                name.to_string(),
                json!(r.err().unwrap_or_else(|| "ok".into())),
            )
        })
        .collect();
    (ready, report)
}

/// Liveness: the process answers and is not wedged (no consumer delivery
/// stuck in flight). Checks no dependency, so a database outage never gets
/// pods restarted.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "Alive"),
        (status = 503, description = "Wedged: deliveries stuck in flight", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn healthz(readiness: web::Data<Readiness>) -> HttpResponse {
    let (live, checks) = readiness.run_liveness().await;
    if live {
        HttpResponse::Ok().json(json!({ "status": "ok" }))
    } else {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE)
            .with_detail("the process is wedged")
            .with_extension("checks", checks)
            .to_response()
    }
}

/// Readiness: every dependency answers; 503 with the failing checks otherwise.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready"),
        (status = 503, description = "A dependency is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let (ready, checks) = readiness.run().await;
    if ready {
        HttpResponse::Ok().json(json!({ "status": "ready", "checks": checks }))
    } else {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE)
            .with_detail("a dependency is not reachable")
            .with_extension("checks", checks)
            .to_response()
    }
}

/// Mounts `/healthz`, `/readyz` and `/metrics`. Expects `web::Data<Readiness>`
/// and `web::Data<HttpMetrics>` in the app data.
pub fn health_routes(cfg: &mut web::ServiceConfig) {
    // Resources, so that another method is a 405 with `Allow`.
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/readyz").get(readyz))
        .service(web::resource("/metrics").get(metrics));
}
