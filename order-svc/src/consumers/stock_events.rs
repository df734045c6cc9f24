//! `order.stock-events`: catalog-svc's replies drive the saga.

use common::messaging::consumer::{HandlerError, Held, Transaction};
use common::messaging::events::{StockRejected, StockReleased, StockReserved};
use common::messaging::{Envelope, Event, Handler};
use uuid::Uuid;

use crate::domain::{Order, OrderStatus, Transition};
use crate::outcomes::Outcomes;
use crate::repository::orders;
use crate::saga::{self, SagaError};

/// Confirms, rejects, or compensates orders on `stock.*`.
pub struct StockEventsHandler {
    outcomes: Outcomes,
}

impl StockEventsHandler {
    /// A handler that wakes this replica's waiters in `outcomes` as soon as
    /// it has settled an order (waiters elsewhere hear of it through the
    /// broker).
    pub fn new(outcomes: Outcomes) -> Self {
        Self { outcomes }
    }
}

#[derive(serde::Deserialize)]
struct AboutOrder {
    order_id: Uuid,
}

fn permanent(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Permanent(e.to_string().into())
}

impl From<SagaError> for HandlerError {
    fn from(e: SagaError) -> Self {
        match e {
            SagaError::Database(e) => e.into(),
            other => HandlerError::Transient(other.into()),
        }
    }
}

async fn locked(tx: &Transaction<'_>, order_id: Uuid) -> Result<Option<Order>, HandlerError> {
    let order = orders::lock(tx, order_id).await?;
    if order.is_none() {
        // Not ours (another deployment sharing the exchange?) or deleted.
        tracing::warn!(%order_id, "reply for an unknown order; ignoring it");
    }
    Ok(order)
}

impl StockEventsHandler {
    async fn reserved(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        event: StockReserved,
    ) -> Result<(), HandlerError> {
        let Some(order) = locked(tx, event.order_id).await? else {
            return Ok(());
        };
        match order.status {
            OrderStatus::Pending => {
                saga::apply(tx, &order, Transition::Confirm, None, Some(envelope.id)).await?;
            }
            // The order ended (deadline, user) before the stock was held:
            // give it back.
            OrderStatus::Cancelled | OrderStatus::Rejected => {
                saga::compensate(tx, order.id, Some(envelope.id)).await?
            }
            OrderStatus::Confirmed | OrderStatus::Shipped | OrderStatus::Delivered => {}
        }
        Ok(())
    }

    async fn rejected(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        event: StockRejected,
    ) -> Result<(), HandlerError> {
        let Some(order) = locked(tx, event.order_id).await? else {
            return Ok(());
        };
        if order.status == OrderStatus::Pending {
            saga::apply(
                tx,
                &order,
                Transition::Reject,
                Some(&event.reason),
                Some(envelope.id),
            )
            .await?;
        }
        Ok(())
    }
}

impl Handler for StockEventsHandler {
    fn committed(&self, envelope: &Envelope) {
        // After a reply is applied its order is final (decided now, or
        // earlier and compensated).
        if matches!(
            envelope.kind.as_str(),
            StockReserved::TYPE | StockRejected::TYPE
        ) && let Ok(about) = serde_json::from_str::<AboutOrder>(envelope.data.get())
        {
            self.outcomes.settled(about.order_id);
        }
    }

    async fn handle(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        _held: &Held,
    ) -> Result<(), HandlerError> {
        match envelope.kind.as_str() {
            StockReserved::TYPE => {
                self.reserved(tx, envelope, envelope.parse().map_err(permanent)?)
                    .await
            }
            StockRejected::TYPE => {
                self.rejected(tx, envelope, envelope.parse().map_err(permanent)?)
                    .await
            }
            // Informational: the order is final already.
            StockReleased::TYPE => Ok(()),
            other => {
                tracing::debug!(event_type = other, "ignoring event");
                Ok(())
            }
        }
    }
}
