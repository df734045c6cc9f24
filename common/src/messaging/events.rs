//! The event envelope and the typed payloads of DESIGN.md §4.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::money::Money;

/// Every message on `shop.events`. Consumers read it with the payload kept
/// as raw JSON (the default `T`), then [`Envelope::parse`] it into the type
/// the `type` names; numbers (prices) never pass through a float.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Envelope<T = Box<RawValue>> {
    /// Unique id (UUID v7); also the AMQP `message_id` and the inbox key.
    pub id: Uuid,
    /// Event type, also the routing key (e.g. `order.created`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Version of the payload schema.
    pub version: u32,
    /// When the state change happened.
    pub occurred_at: DateTime<Utc>,
    /// Ties a flow together: the order id, or the request id.
    pub correlation_id: String,
    /// The event that caused this one, if any.
    pub causation_id: Option<Uuid>,
    /// The service that wrote it.
    pub producer: String,
    /// The payload.
    pub data: T,
}

/// A typed payload and its event type.
pub trait Event: Serialize + DeserializeOwned + schemars::JsonSchema {
    /// The event type and routing key.
    const TYPE: &'static str;
}

impl<T: Event> Envelope<T> {
    /// A new envelope around `data`.
    pub fn new(
        producer: &str,
        correlation_id: impl Into<String>,
        causation_id: Option<Uuid>,
        data: T,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: T::TYPE.to_string(),
            version: 1,
            occurred_at: Utc::now(),
            correlation_id: correlation_id.into(),
            causation_id,
            producer: producer.to_string(),
            data,
        }
    }
}

impl Envelope {
    /// The payload as a typed event.
    pub fn parse<T: Event>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data.get())
    }
}

/// One line of an order: which product, how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ItemQuantity {
    /// The product.
    pub product_id: Uuid,
    /// Units, at least 1.
    pub quantity: i32,
}

macro_rules! event {
    ($(#[$doc:meta])* $name:ident = $type:literal { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $ty,)*
        }
        impl Event for $name {
            const TYPE: &'static str = $type;
        }
    };
}

event!(
    /// auth-svc: a user registered.
    UserRegistered = "user.registered" {
        /// The new user.
        user_id: Uuid,
        /// Their username.
        username: String,
    }
);

/// A product as catalog-svc's `product.*` events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProductSnapshot {
    /// Product id.
    pub id: Uuid,
    /// Owner.
    pub owner_id: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Exact price.
    pub price: Money,
    /// Units in stock.
    pub stock: i32,
    /// Version after the change.
    pub version: i64,
}

event!(
    /// catalog-svc: a product was created.
    ProductCreated = "product.created" {
        /// The product.
        product: ProductSnapshot,
    }
);
event!(
    /// catalog-svc: a product was changed through the API.
    ProductUpdated = "product.updated" {
        /// The product after the change.
        product: ProductSnapshot,
    }
);
event!(
    /// catalog-svc: a product was deleted.
    ProductDeleted = "product.deleted" {
        /// The product as it was.
        product: ProductSnapshot,
    }
);
event!(
    /// order-svc: an order was placed and needs stock.
    OrderCreated = "order.created" {
        /// The order.
        order_id: Uuid,
        /// Who placed it.
        user_id: Uuid,
        /// What it needs.
        items: Vec<ItemQuantity>,
    }
);
event!(
    /// order-svc: an order was cancelled; whatever it holds must be released.
    OrderCancelled = "order.cancelled" {
        /// The order.
        order_id: Uuid,
        /// `user`, `admin`, `timeout`, or `late_reservation` (compensation
        /// re-sent).
        reason: String,
    }
);
/// Where an order goes (order-svc validates it; ISO 3166-1 alpha-2 country).
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct ShippingAddress {
    /// Recipient.
    pub name: String,
    /// Street and number.
    pub line1: String,
    /// More of the address, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, e.g. `DE`.
    pub country: String,
}

event!(
    /// order-svc: a CONFIRMED order left the warehouse; what it holds is
    /// gone for good (catalog-svc marks it fulfilled).
    OrderShipped = "order.shipped" {
        /// The order.
        order_id: Uuid,
    }
);
event!(
    /// order-svc: a SHIPPED order arrived. Final.
    OrderDelivered = "order.delivered" {
        /// The order.
        order_id: Uuid,
    }
);
event!(
    /// order-svc: an order's shipping address changed (set, changed or
    /// removed).
    OrderUpdated = "order.updated" {
        /// The order.
        order_id: Uuid,
        /// The address now.
        shipping_address: Option<ShippingAddress>,
    }
);
event!(
    /// order-svc: an order's stock is reserved; it is final.
    OrderConfirmed = "order.confirmed" {
        /// The order.
        order_id: Uuid,
    }
);
event!(
    /// order-svc: an order could not get its stock; it is final.
    OrderRejected = "order.rejected" {
        /// The order.
        order_id: Uuid,
        /// Why (from `stock.rejected`).
        reason: Option<String>,
    }
);
event!(
    /// catalog-svc: every item of an order is reserved.
    StockReserved = "stock.reserved" {
        /// The order.
        order_id: Uuid,
        /// What is held.
        items: Vec<ItemQuantity>,
    }
);
event!(
    /// catalog-svc: an order could not be reserved; nothing is held.
    StockRejected = "stock.rejected" {
        /// The order.
        order_id: Uuid,
        /// The first product that failed.
        product_id: Uuid,
        /// `insufficient_stock` or `unknown_product`.
        reason: String,
    }
);
event!(
    /// catalog-svc: what an order held is back in stock.
    StockReleased = "stock.released" {
        /// The order.
        order_id: Uuid,
        /// What was given back (empty when nothing was held).
        items: Vec<ItemQuantity>,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_serialise_as_the_contract_says() {
        let order_id = Uuid::now_v7();
        let envelope = Envelope::new(
            "order-svc",
            order_id.to_string(),
            None,
            OrderCreated {
                order_id,
                user_id: Uuid::nil(),
                items: vec![ItemQuantity {
                    product_id: Uuid::nil(),
                    quantity: 2,
                }],
            },
        );
        let text = serde_json::to_string(&envelope).expect("json");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        for key in [
            "id",
            "type",
            "version",
            "occurred_at",
            "correlation_id",
            "causation_id",
            "producer",
            "data",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(json["type"], "order.created");
        assert_eq!(json["data"]["items"][0]["quantity"], 2);

        let generic: Envelope = serde_json::from_str(&text).expect("generic envelope");
        assert_eq!(
            generic.parse::<OrderCreated>().expect("typed").order_id,
            order_id
        );
        assert!(generic.parse::<StockRejected>().is_err());
    }
}

/// Every event type Shop publishes: routing key, producer, what it means,
/// and the JSON Schema of its whole message (envelope and `data`),
/// generated from the types above so that the contract cannot drift.
pub fn catalogue() -> Vec<EventDoc> {
    fn doc<T: Event>(producer: &'static str, summary: &'static str) -> EventDoc {
        EventDoc {
            kind: T::TYPE,
            producer,
            summary,
            schema: {
                // Draft 07 is what AsyncAPI 3 names by default; every
                // subschema inline, so the schema stands alone wherever it
                // is embedded.
                let mut settings = schemars::generate::SchemaSettings::draft07();
                settings.inline_subschemas = true;
                settings
                    .into_generator()
                    .into_root_schema_for::<Envelope<T>>()
                    .to_value()
            },
        }
    }
    vec![
        doc::<UserRegistered>("auth-svc", "A user registered."),
        doc::<ProductCreated>("catalog-svc", "A product was created."),
        doc::<ProductUpdated>("catalog-svc", "A product was changed through the API."),
        doc::<ProductDeleted>("catalog-svc", "A product was deleted."),
        doc::<OrderCreated>("order-svc", "An order was placed and needs its stock."),
        doc::<OrderCancelled>(
            "order-svc",
            "An order was cancelled; what it holds is released.",
        ),
        doc::<OrderConfirmed>("order-svc", "An order's stock is reserved."),
        doc::<OrderRejected>("order-svc", "An order could not get its stock. Final."),
        doc::<OrderShipped>(
            "order-svc",
            "A confirmed order shipped; its units are gone for good.",
        ),
        doc::<OrderDelivered>("order-svc", "A shipped order arrived. Final."),
        doc::<OrderUpdated>("order-svc", "An order's shipping address changed."),
        doc::<StockReserved>("catalog-svc", "Every item of an order is reserved."),
        doc::<StockRejected>(
            "catalog-svc",
            "An order could not be reserved; nothing is held.",
        ),
        doc::<StockReleased>("catalog-svc", "What an order held is back in stock."),
    ]
}

/// One entry of [`catalogue`].
#[derive(Debug, Clone)]
pub struct EventDoc {
    /// Event type and routing key.
    pub kind: &'static str,
    /// Who publishes it.
    pub producer: &'static str,
    /// What it means.
    pub summary: &'static str,
    /// JSON Schema (draft 07, self-contained) of the whole message.
    pub schema: serde_json::Value,
}
