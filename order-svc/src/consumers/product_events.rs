//! `order.product-events`: keeps order-svc's copy of product names and
//! prices current, so that placing an order needs no call to catalog-svc.

use common::messaging::consumer::{HandlerError, Held, Transaction};
use common::messaging::events::{ProductCreated, ProductDeleted, ProductSnapshot, ProductUpdated};
use common::messaging::{Envelope, Event, Handler};

use crate::repository::products;

/// Applies `product.*` events to the copy.
pub struct ProductEventsHandler;

fn permanent(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Permanent(e.to_string().into())
}

async fn apply(
    tx: &Transaction<'_>,
    product: &ProductSnapshot,
    deleted: bool,
) -> Result<(), HandlerError> {
    products::apply(
        tx,
        product.id,
        &product.name,
        product.price,
        product.version,
        deleted,
    )
    .await?;
    Ok(())
}

impl Handler for ProductEventsHandler {
    async fn handle(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope,
        _held: &Held,
    ) -> Result<(), HandlerError> {
        match envelope.kind.as_str() {
            ProductCreated::TYPE => {
                let event: ProductCreated = envelope.parse().map_err(permanent)?;
                apply(tx, &event.product, false).await
            }
            ProductUpdated::TYPE => {
                let event: ProductUpdated = envelope.parse().map_err(permanent)?;
                apply(tx, &event.product, false).await
            }
            ProductDeleted::TYPE => {
                let event: ProductDeleted = envelope.parse().map_err(permanent)?;
                apply(tx, &event.product, true).await
            }
            other => {
                tracing::debug!(event_type = other, "ignoring event");
                Ok(())
            }
        }
    }
}
