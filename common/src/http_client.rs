//! Service-to-service HTTP: timeouts, bounded jittered retries (idempotent
//! requests only) and a circuit breaker per upstream.
//!
//! Retries come from `reqwest-retry` (exponential backoff with jitter, on
//! connection errors, timeouts and 5xx), the breaker from `failsafe`: after
//! consecutive failures it opens and calls fail fast until a jittered
//! back-off lets a trial call through. Only signs of a dead upstream count
//! (no connection, 500/502/504); a busy one (a slow answer, 503, 429) fails
//! the call that met it but never opens the breaker for every caller. Its state is exported as
//! `circuit_breaker_state{upstream}` (0 closed, 1 open, 2 half-open).

use std::time::Duration;

use failsafe::backoff::EqualJittered;
use failsafe::failure_policy::ConsecutiveFailures;
use failsafe::futures::CircuitBreaker as _;
use failsafe::{Config, StateMachine};
use prometheus::{IntGaugeVec, Opts, Registry};
use reqwest::StatusCode;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use serde::de::DeserializeOwned;

/// Why a call to another service produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The breaker is open: the upstream failed repeatedly just now.
    #[error("{0} is unavailable (circuit open)")]
    CircuitOpen(String),
    /// Unreachable, timed out or 5xx, after the retries.
    #[error("{upstream} is unavailable: {reason}")]
    Unavailable {
        /// The upstream's name.
        upstream: String,
        /// What went wrong.
        reason: String,
    },
    /// The upstream answered with an unexpected status or body.
    #[error("{upstream} answered unexpectedly: {reason}")]
    Unexpected {
        /// The upstream's name.
        upstream: String,
        /// What was unexpected.
        reason: String,
    },
}

/// Updates the breaker gauge on every state change.
#[derive(Clone)]
struct BreakerGauge {
    gauge: prometheus::IntGauge,
    upstream: String,
}

impl failsafe::Instrument for BreakerGauge {
    fn on_call_rejected(&self) {}

    fn on_open(&self) {
        tracing::warn!(upstream = %self.upstream, "circuit breaker opened");
        self.gauge.set(1);
    }

    fn on_half_open(&self) {
        self.gauge.set(2);
    }

    fn on_closed(&self) {
        tracing::info!(upstream = %self.upstream, "circuit breaker closed");
        self.gauge.set(0);
    }
}

type Breaker = StateMachine<ConsecutiveFailures<EqualJittered>, BreakerGauge>;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Consecutive failed calls that open the breaker.
    pub failures_to_open: u32,
    /// Shortest time the breaker stays open (jittered, growing to 30 s).
    pub open_for: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            max_retries: 2,
            failures_to_open: 5,
            open_for: Duration::from_secs(5),
        }
    }
}

/// A client for one upstream service.
#[derive(Clone)]
pub struct ServiceClient {
    upstream: String,
    base_url: String,
    http: ClientWithMiddleware,
    breaker: Breaker,
}

/// A failed attempt; `dead` decides whether it counts for the breaker.
struct Failure {
    reason: String,
    /// The upstream looks down (no connection, 500/502/504), not merely
    /// busy (a slow answer, 503, 429): only that opens the breaker, so a
    /// busy catalog-svc is not cut off from every caller at once.
    dead: bool,
}

/// No connection could be made (refused, unreachable, connect timeout).
fn is_connect(error: &reqwest_middleware::Error) -> bool {
    use std::io::ErrorKind;
    match error {
        reqwest_middleware::Error::Reqwest(e) => e.is_connect(),
        // The retry middleware wraps the last attempt's error in types of
        // its own; the socket's error is at the bottom of the chain.
        reqwest_middleware::Error::Middleware(e) => e.chain().any(|cause| {
            cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    ErrorKind::ConnectionRefused
                        | ErrorKind::HostUnreachable
                        | ErrorKind::NetworkUnreachable
                        | ErrorKind::AddrNotAvailable
                )
            }) || cause
                .downcast_ref::<reqwest::Error>()
                .is_some_and(reqwest::Error::is_connect)
        }),
    }
}

impl ServiceClient {
    /// A client for `upstream` at `base_url`; registers its breaker gauge
    /// (one client per registry).
    pub fn new(
        upstream: &str,
        base_url: &str,
        settings: ClientSettings,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let gauges = IntGaugeVec::new(
            Opts::new(
                "circuit_breaker_state",
                "Circuit breaker per upstream: 0 closed, 1 open, 2 half-open",
            ),
            &["upstream"],
        )?;
        registry.register(Box::new(gauges.clone()))?;
        let gauge = gauges.with_label_values(&[upstream]);
        gauge.set(0);
        let reqwest = reqwest::Client::builder()
            .connect_timeout(settings.timeout.min(Duration::from_secs(1)))
            .timeout(settings.timeout)
            .build()
            .expect("a client without TLS options always builds");
        let retry = ExponentialBackoff::builder()
            .retry_bounds(Duration::from_millis(50), Duration::from_millis(500))
            .build_with_max_retries(settings.max_retries);
        let http = ClientBuilder::new(reqwest)
            .with(RetryTransientMiddleware::new_with_policy(retry))
            .build();
        let open_for = settings.open_for.max(Duration::from_secs(1));
        let breaker = Config::new()
            .failure_policy(failsafe::failure_policy::consecutive_failures(
                settings.failures_to_open,
                failsafe::backoff::equal_jittered(open_for, Duration::from_secs(30).max(open_for)),
            ))
            .instrument(BreakerGauge {
                gauge,
                upstream: upstream.to_string(),
            })
            .build();
        Ok(Self {
            upstream: upstream.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            http,
            breaker,
        })
    }

    /// `GET {base_url}{path}` as JSON; `Ok(None)` on 404. Only GET exists
    /// here because only idempotent requests may be retried blindly.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, CallError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.get(&url);
        if let Some(traceparent) = crate::telemetry::current_traceparent() {
            request = request.header("traceparent", traceparent);
        }
        let attempt = async {
            match request.send().await {
                Ok(response)
                    if response.status().is_server_error()
                        || response.status() == StatusCode::TOO_MANY_REQUESTS =>
                {
                    let status = response.status();
                    Err(Failure {
                        reason: format!("status {status}"),
                        dead: !matches!(
                            status,
                            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
                        ),
                    })
                }
                Ok(response) => Ok(response),
                Err(e) => Err(Failure {
                    dead: is_connect(&e),
                    reason: e.to_string(),
                }),
            }
        };
        let counts = |failure: &Failure| failure.dead;
        let response = match self.breaker.call_with(counts, attempt).await {
            Ok(response) => response,
            Err(failsafe::Error::Rejected) => {
                return Err(CallError::CircuitOpen(self.upstream.clone()));
            }
            Err(failsafe::Error::Inner(Failure { reason, .. })) => {
                return Err(CallError::Unavailable {
                    upstream: self.upstream.clone(),
                    reason,
                });
            }
        };
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                response
                    .json::<T>()
                    .await
                    .map(Some)
                    .map_err(|e| CallError::Unexpected {
                        upstream: self.upstream.clone(),
                        reason: format!("unreadable body: {e}"),
                    })
            }
            status => Err(CallError::Unexpected {
                upstream: self.upstream.clone(),
                reason: format!("status {status}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, Ordering};

    use actix_web::{App, HttpResponse, HttpServer, web};

    use super::*;

    /// An upstream answering every request with the status the test sets.
    async fn upstream(status: Arc<AtomicU16>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            let status = status.clone();
            App::new().default_service(web::to(move || {
                let code = status.load(Ordering::SeqCst);
                async move {
                    HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(code).expect("status"),
                    )
                    .json(serde_json::json!({"ok": true}))
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        format!("http://127.0.0.1:{port}")
    }

    fn client(base_url: &str) -> (ServiceClient, Registry) {
        let registry = Registry::new();
        let settings = ClientSettings {
            max_retries: 0,
            failures_to_open: 3,
            ..ClientSettings::default()
        };
        let client = ServiceClient::new("up", base_url, settings, &registry).expect("client");
        (client, registry)
    }

    #[tokio::test]
    async fn a_busy_upstream_never_opens_the_breaker_and_a_dead_one_does() {
        let status = Arc::new(AtomicU16::new(503));
        let (busy, _) = client(&upstream(status.clone()).await);
        for _ in 0..10 {
            let call = busy.get_json::<serde_json::Value>("/x").await;
            assert!(
                matches!(call, Err(CallError::Unavailable { .. })),
                "{call:?}"
            );
        }
        status.store(200, Ordering::SeqCst);
        assert!(
            busy.get_json::<serde_json::Value>("/x").await.is_ok(),
            "still closed"
        );

        // Nothing listens on this port: connections are refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let (dead, _) = client(&format!("http://127.0.0.1:{port}"));
        for _ in 0..3 {
            let call = dead.get_json::<serde_json::Value>("/x").await;
            assert!(
                matches!(call, Err(CallError::Unavailable { .. })),
                "{call:?}"
            );
        }
        let call = dead.get_json::<serde_json::Value>("/x").await;
        assert!(matches!(call, Err(CallError::CircuitOpen(_))), "{call:?}");
    }
}
