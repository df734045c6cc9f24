//! `POST /orders`: the body and the `Idempotency-Key`.

use std::collections::HashSet;

use common::web::{FieldErrors, whole_number};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Most lines an order may have.
pub const MAX_ITEMS: usize = 50;
/// Most units of one product per order.
pub const MAX_QUANTITY: i64 = 1000;

/// `POST /orders` body; loosely typed so that each bad line is named.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OrderRequest {
    /// 1 to 50 lines, each product at most once.
    #[schema(schema_with = items_schema, required = true, example = json!([{"product_id": "0190c6f4-6d8e-7a52-9d4b-1a2b3c4d5e6f", "quantity": 2}]))]
    pub items: Option<Value>,
    /// Where the order goes (optional; may be set later with `PATCH`).
    #[schema(value_type = Option<ShippingAddressInput>)]
    pub shipping_address: Option<Value>,
}

/// A shipping address as a request gives it; every field is checked (see
/// the patterns), `line2` may be omitted or `null`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ShippingAddressInput {
    /// Recipient, 1-100 characters, no surrounding spaces.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\s\u0000-\u001F\u007F-\u009F]([^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F])?$",
        example = "Ada Lovelace"
    )]
    name: String,
    /// Street and number, 1-200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\s\u0000-\u001F\u007F-\u009F]([^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F])?$",
        example = "1 Main St"
    )]
    line1: String,
    /// More of the address, 1-200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\s\u0000-\u001F\u007F-\u009F]([^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F])?$"
    )]
    line2: Option<String>,
    /// City, 1-100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\s\u0000-\u001F\u007F-\u009F]([^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F])?$",
        example = "London"
    )]
    city: String,
    /// Postal code: letters, digits, spaces and `-`, up to 20.
    #[schema(
        min_length = 1,
        max_length = 20,
        pattern = r"^[A-Za-z0-9]([A-Za-z0-9 -]*[A-Za-z0-9])?$",
        example = "NW1 6XE"
    )]
    postal_code: String,
    /// ISO 3166-1 alpha-2 country code.
    #[schema(schema_with = country_schema, example = "GB")]
    country: String,
}

fn country_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::Type(
            utoipa::openapi::schema::Type::String,
        ))
        .enum_values(Some(super::COUNTRIES))
        .build()
}

/// `items`: 1 to [`MAX_ITEMS`] lines of `{product_id, quantity}`.
fn items_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{
        ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type,
    };
    let line = ObjectBuilder::new()
        .property(
            "product_id",
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                .description(Some("A product id; each product at most once per order")),
        )
        .required("product_id")
        .property(
            "quantity",
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Integer))
                .minimum(Some(1))
                .maximum(Some(MAX_QUANTITY as f64)),
        )
        .required("quantity");
    ArrayBuilder::new()
        .items(line)
        .min_items(Some(1))
        .max_items(Some(MAX_ITEMS))
        .unique_items(true)
        .build()
}

/// One requested line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedItem {
    /// The product.
    pub product_id: Uuid,
    /// Units, 1 to 1000.
    pub quantity: i32,
}

/// A valid list of requested lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedItems(Vec<RequestedItem>);

impl RequestedItems {
    /// Validates every line, naming bad ones as `items[i].field`.
    pub fn parse(req: &OrderRequest) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let Some(Value::Array(lines)) = &req.items else {
            errors.add("items", "is required: a list of {product_id, quantity}");
            return Err(errors);
        };
        if lines.is_empty() || lines.len() > MAX_ITEMS {
            errors.add("items", format!("must have 1 to {MAX_ITEMS} lines"));
            return Err(errors);
        }
        let mut items = Vec::with_capacity(lines.len());
        let mut seen = HashSet::new();
        for (i, line) in lines.iter().enumerate() {
            let product_id = line
                .get("product_id")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok());
            let quantity = line.get("quantity").and_then(whole_number);
            let field = |name: &str| format!("items[{i}].{name}");
            match product_id {
                None => errors.add(&field("product_id"), "must be a product id (UUID)"),
                Some(id) if !seen.insert(id) => {
                    errors.add(&field("product_id"), "appears more than once")
                }
                Some(_) => {}
            }
            match quantity {
                Some(q) if (1..=MAX_QUANTITY).contains(&q) => {}
                _ => errors.add(
                    &field("quantity"),
                    format!("must be a whole number from 1 to {MAX_QUANTITY}"),
                ),
            }
            if let (Some(product_id), Some(quantity)) =
                (product_id, quantity.and_then(|q| i32::try_from(q).ok()))
            {
                items.push(RequestedItem {
                    product_id,
                    quantity,
                });
            }
        }
        if errors.is_empty() {
            Ok(Self(items))
        } else {
            Err(errors)
        }
    }

    /// The lines, in request order.
    pub fn as_slice(&self) -> &[RequestedItem] {
        &self.0
    }

    /// Wraps already valid lines (an order read back from the database).
    pub fn from_stored(items: Vec<RequestedItem>) -> Self {
        Self(items)
    }

    /// Same products with the same quantities, in any order.
    pub fn same_as(&self, other: &RequestedItems) -> bool {
        let key = |items: &RequestedItems| {
            let mut v: Vec<(Uuid, i32)> =
                items.0.iter().map(|i| (i.product_id, i.quantity)).collect();
            v.sort();
            v
        };
        key(self) == key(other)
    }
}

/// A client-chosen key that makes `POST /orders` safe to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// 1 to 255 visible ASCII characters.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.len() > 255 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be 1 to 255 visible ASCII characters");
        }
        Ok(Self(raw.to_string()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(items: Value) -> Result<RequestedItems, FieldErrors> {
        RequestedItems::parse(&OrderRequest {
            items: Some(items),
            shipping_address: None,
        })
    }

    #[test]
    fn valid_lines_parse_in_order() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let items =
            parse(json!([{"product_id": a, "quantity": 2}, {"product_id": b, "quantity": 1}]))
                .expect("valid");
        assert_eq!(
            items.as_slice()[0],
            RequestedItem {
                product_id: a,
                quantity: 2
            }
        );
        let swapped =
            parse(json!([{"product_id": b, "quantity": 1}, {"product_id": a, "quantity": 2}]))
                .expect("valid");
        assert!(items.same_as(&swapped));
    }

    #[test]
    fn bad_lines_are_named() {
        let a = Uuid::now_v7();
        let errors = parse(json!([
            {"product_id": a, "quantity": 0},
            {"product_id": "nope", "quantity": 1},
            {"product_id": a, "quantity": 1001},
        ]))
        .expect_err("invalid");
        assert!(errors.get("items[0].quantity").is_some());
        assert!(errors.get("items[1].product_id").is_some());
        assert!(
            errors.get("items[2].product_id").is_some()
                && errors.get("items[2].quantity").is_some()
        );
        assert!(parse(json!([])).is_err());
        assert!(
            RequestedItems::parse(&OrderRequest {
                items: None,
                shipping_address: None
            })
            .is_err()
        );
        assert!(parse(json!("x")).is_err());
    }

    #[test]
    fn idempotency_keys_are_plain() {
        assert!(IdempotencyKey::parse("order-2026-11-22-1").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }
}
