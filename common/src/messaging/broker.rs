//! Connections to RabbitMQ that come back.
//!
//! Each long-running component (the outbox relay, each consumer) owns a
//! connection and runs inside [`Broker::supervise`]: when the connection
//! drops it reconnects with jittered exponential backoff and declares the
//! topology again before resuming. [`BrokerStatus`] tracks which components
//! are connected, for `/readyz`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use prometheus::{IntGaugeVec, Opts, Registry};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use super::Topology;
use crate::web::ReadinessCheck;

/// Whether each component is connected right now, also exported as
/// `broker_connection_up{component}` once [`Broker::register_metrics`] ran.
#[derive(Debug, Default)]
pub struct BrokerStatus {
    components: Mutex<BTreeMap<String, bool>>,
    gauge: OnceLock<IntGaugeVec>,
}

impl BrokerStatus {
    fn set(&self, component: &str, connected: bool) {
        let mut components = self.components.lock().unwrap_or_else(|e| e.into_inner());
        components.insert(component.to_string(), connected);
        if let Some(gauge) = self.gauge.get() {
            gauge
                .with_label_values(&[component])
                .set(i64::from(connected));
        }
    }

    /// Components that are not connected.
    pub fn disconnected(&self) -> Vec<String> {
        let components = self.components.lock().unwrap_or_else(|e| e.into_inner());
        components
            .iter()
            .filter(|(_, up)| !**up)
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// How to reach the broker, and the names to use there.
#[derive(Clone)]
pub struct Broker {
    url: SecretString,
    topology: Topology,
    service: String,
    status: Arc<BrokerStatus>,
}

impl Broker {
    /// A broker handle for `service`; nothing connects until a component runs.
    pub fn new(url: SecretString, topology: Topology, service: &str) -> Self {
        Self {
            url,
            topology,
            service: service.to_string(),
            status: Arc::default(),
        }
    }

    /// Exports the connection state of every component in `registry`.
    pub fn register_metrics(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "broker_connection_up",
                "1 while a component's RabbitMQ connection is up",
            ),
            &["component"],
        )?;
        registry.register(Box::new(gauge.clone()))?;
        let _ = self.status.gauge.set(gauge);
        Ok(())
    }

    /// The names in use.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// `/readyz` check: every component registered so far is connected.
    pub fn readiness_check(&self) -> ReadinessCheck {
        let status = self.status.clone();
        Arc::new(move || {
            let down = status.disconnected();
            Box::pin(async move {
                if down.is_empty() {
                    Ok(())
                } else {
                    Err(format!("not connected: {}", down.join(", ")))
                }
            })
        })
    }

    /// `<prefix><service>/<component>`: what the broker's management tools
    /// show for this connection.
    pub fn connection_name(&self, component: &str) -> String {
        format!("{}/{component}", self.topology.queue(&self.service))
    }

    /// Opens a connection named after the service and component, and
    /// declares the topology on it.
    pub async fn connect(&self, component: &str) -> Result<Connection, BoxError> {
        let properties = ConnectionProperties::default()
            .with_connection_name(self.connection_name(component).into());
        let connection = Connection::connect(self.url.expose_secret(), properties).await?;
        let channel = connection.create_channel().await?;
        self.topology.declare(&channel).await?;
        channel.close(200, "topology declared".into()).await?;
        Ok(connection)
    }

    /// Runs `run` until it returns `Ok` (a clean stop) or `shutdown` fires,
    /// restarting it with backoff whenever it fails. `run` gets a connected,
    /// topology-declared connection.
    pub async fn supervise<F, Fut>(&self, component: &str, shutdown: CancellationToken, mut run: F)
    where
        F: FnMut(Connection) -> Fut,
        Fut: Future<Output = RunResult>,
    {
        self.status.set(component, false);
        let mut failures: u32 = 0;
        while !shutdown.is_cancelled() {
            let outcome = match self.connect(component).await {
                Ok(connection) => {
                    self.status.set(component, true);
                    if failures > 0 {
                        tracing::info!(component, "broker connection re-established");
                    }
                    failures = 0;
                    let outcome = run(connection).await;
                    self.status.set(component, false);
                    outcome
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => return,
                Err(e) => {
                    failures += 1;
                    let delay = backoff(failures);
                    tracing::warn!(component, error = %e, retry_in_ms = delay.as_millis() as u64, "broker connection lost");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
}

/// Any error of a component's run.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a supervised run ended: `Ok` is a clean stop, an error means the
/// connection is gone and is re-established.
pub type RunResult = Result<(), BoxError>;

/// Exponential backoff from 100 ms, capped at 10 s, with full jitter so that
/// replicas do not reconnect in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let cap = 100u64.saturating_mul(1 << attempt.min(7)).min(10_000);
    Duration::from_millis(rand::random_range(cap / 2..=cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(200));
        assert!(backoff(30) <= Duration::from_secs(10));
        assert!(backoff(30) >= Duration::from_secs(5));
    }
}
