//! An order as stored and shown.

use chrono::{DateTime, Utc};
use common::messaging::events::ShippingAddress;
use common::money::Money;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::OrderStatus;

/// One line of an order, with name and price as they were at order time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderLine {
    /// The product.
    pub product_id: Uuid,
    /// Its name when ordered.
    pub name: String,
    /// Its price when ordered.
    #[schema(value_type = f64, example = 19.99)]
    pub unit_price: Money,
    /// Units.
    pub quantity: i32,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Order {
    /// Order id.
    pub id: Uuid,
    /// Who placed it.
    pub user_id: Uuid,
    /// Saga state.
    pub status: OrderStatus,
    /// Why it was rejected or cancelled.
    pub reason: Option<String>,
    /// Lines, in the order given.
    pub items: Vec<OrderLine>,
    /// Sum of unit price times quantity.
    #[schema(value_type = f64, example = 39.98)]
    pub total: Money,
    /// Where it goes, if given.
    pub shipping_address: Option<ShippingAddress>,
    /// When a PENDING order is given up on.
    pub deadline: DateTime<Utc>,
    /// Bumped by every change (transition or address); also the `ETag`.
    pub version: i64,
    /// Placement time.
    pub created_at: DateTime<Utc>,
    /// Last transition.
    pub updated_at: DateTime<Utc>,
}
