//! The `reservations` and `reservation_items` tables: what each order holds.

use common::db::{Cached as _, DbError, GenericClient};
use common::messaging::events::ItemQuantity;
use uuid::Uuid;

/// What an order holds, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Stock is reserved.
    Held,
    /// Could not be reserved.
    Rejected,
    /// Given back.
    Released,
    /// Cancelled before it was reserved (tombstone).
    Cancelled,
    /// Shipped: the units are gone for good, never released.
    Fulfilled,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Held => "held",
            State::Rejected => "rejected",
            State::Released => "released",
            State::Cancelled => "cancelled",
            State::Fulfilled => "fulfilled",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "held" => State::Held,
            "rejected" => State::Rejected,
            "released" => State::Released,
            "cancelled" => State::Cancelled,
            "fulfilled" => State::Fulfilled,
            _ => return None,
        })
    }
}

/// Creates the order's row in `state` unless it exists. True when created:
/// the caller then owns the order's fate until commit (a concurrent handler
/// of the same order waits on the row).
pub async fn create(
    client: &impl GenericClient,
    order_id: Uuid,
    state: State,
) -> Result<bool, DbError> {
    let created = client
        .execute_cached(
            "INSERT INTO reservations (order_id, state) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING",
            &[&order_id, &state.as_str()],
        )
        .await?;
    Ok(created == 1)
}

/// The order's state, locking its row for the rest of the transaction.
pub async fn lock(client: &impl GenericClient, order_id: Uuid) -> Result<Option<State>, DbError> {
    let row = client
        .query_opt_cached(
            "SELECT state FROM reservations WHERE order_id = $1 FOR UPDATE",
            &[&order_id],
        )
        .await?;
    Ok(row.and_then(|r| State::parse(r.get::<_, &str>(0))))
}

/// Moves the order to `state`.
pub async fn set_state(
    client: &impl GenericClient,
    order_id: Uuid,
    state: State,
) -> Result<(), DbError> {
    client
        .execute_cached(
            "UPDATE reservations SET state = $2, updated_at = now() WHERE order_id = $1",
            &[&order_id, &state.as_str()],
        )
        .await?;
    Ok(())
}

/// Records what the order holds (one statement for all lines).
pub async fn insert_items(
    client: &impl GenericClient,
    order_id: Uuid,
    items: &[ItemQuantity],
) -> Result<(), DbError> {
    let products: Vec<Uuid> = items.iter().map(|i| i.product_id).collect();
    let quantities: Vec<i32> = items.iter().map(|i| i.quantity).collect();
    client
        .execute_cached(
            "INSERT INTO reservation_items (order_id, product_id, quantity) \
             SELECT $1, * FROM unnest($2::uuid[], $3::int4[])",
            &[&order_id, &products, &quantities],
        )
        .await?;
    Ok(())
}

/// What the order holds, in product-id order.
pub async fn items(
    client: &impl GenericClient,
    order_id: Uuid,
) -> Result<Vec<ItemQuantity>, DbError> {
    let rows = client
        .query_cached(
            "SELECT product_id, quantity FROM reservation_items WHERE order_id = $1 ORDER BY product_id",
            &[&order_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ItemQuantity {
                product_id: r.try_get(0)?,
                quantity: r.try_get(1)?,
            })
        })
        .collect()
}
