//! The saga's transitions, each with the event that announces it, written
//! in the caller's transaction. The user's cancel, the sweeper and the
//! stock-events consumer all go through here.

use common::db::{DbError, GenericClient};
use common::messaging::events::{
    Envelope, OrderCancelled, OrderConfirmed, OrderDelivered, OrderRejected, OrderShipped,
    OrderUpdated, ShippingAddress,
};
use common::messaging::{Event, enqueue};
use uuid::Uuid;

use crate::domain::{InvalidTransition, Order, OrderStatus, Transition};
use crate::repository::orders;

/// The producer name on order-svc's events.
pub const PRODUCER: &str = "order-svc";

/// A transition that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    /// The state machine does not allow it.
    #[error(transparent)]
    Invalid(#[from] InvalidTransition),
    /// The order changed between the read and the write. Callers lock the
    /// row first, so this means a bug or a lost lock.
    #[error("order {0} changed concurrently")]
    Concurrent(Uuid),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbError),
}

async fn announce<T: Event>(
    tx: &impl GenericClient,
    order_id: Uuid,
    causation: Option<Uuid>,
    data: T,
) -> Result<(), DbError> {
    enqueue(
        tx,
        &Envelope::new(PRODUCER, order_id.to_string(), causation, data),
    )
    .await
}

/// Applies `transition` to a locked order (guarded by the state machine,
/// version-checked in SQL) and writes its event. Returns the new status.
pub async fn apply(
    tx: &impl GenericClient,
    order: &Order,
    transition: Transition,
    reason: Option<&str>,
    causation: Option<Uuid>,
) -> Result<OrderStatus, SagaError> {
    let to = order.status.apply(transition)?;
    let id = order.id;
    let announced = async {
        match transition {
            Transition::Confirm => {
                announce(tx, id, causation, OrderConfirmed { order_id: id }).await
            }
            Transition::Reject => {
                let reason = reason.map(str::to_string);
                announce(
                    tx,
                    id,
                    causation,
                    OrderRejected {
                        order_id: id,
                        reason,
                    },
                )
                .await
            }
            Transition::Cancel => {
                let reason = reason.unwrap_or("user").to_string();
                announce(
                    tx,
                    id,
                    causation,
                    OrderCancelled {
                        order_id: id,
                        reason,
                    },
                )
                .await
            }
            Transition::Ship => announce(tx, id, causation, OrderShipped { order_id: id }).await,
            Transition::Deliver => {
                announce(tx, id, causation, OrderDelivered { order_id: id }).await
            }
        }
    };
    // The guarded update and its event go out together (pipelined); a
    // refused update fails the caller's transaction, event included.
    let (moved, announced) = tokio::join!(
        orders::transition(tx, id, order.version, order.status, to, reason),
        announced
    );
    if !moved? {
        return Err(SagaError::Concurrent(id));
    }
    announced?;
    tracing::info!(order_id = %id, status = to.as_str(), "order transitioned");
    Ok(to)
}

/// Asks catalog-svc again to give back whatever the order holds: for a
/// reservation that landed after the order was already final. Releasing is
/// idempotent there, so repeating it is safe.
pub async fn compensate(
    tx: &impl GenericClient,
    order_id: Uuid,
    causation: Option<Uuid>,
) -> Result<(), DbError> {
    tracing::info!(%order_id, "late reservation for a final order; compensating");
    announce(
        tx,
        order_id,
        causation,
        OrderCancelled {
            order_id,
            reason: "late_reservation".into(),
        },
    )
    .await
}

/// Announces an address change (`order.updated`), in the caller's
/// transaction.
pub async fn address_changed(
    tx: &impl GenericClient,
    order_id: Uuid,
    shipping_address: Option<ShippingAddress>,
) -> Result<(), DbError> {
    announce(
        tx,
        order_id,
        None,
        OrderUpdated {
            order_id,
            shipping_address,
        },
    )
    .await
}
