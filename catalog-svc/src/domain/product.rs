//! A product and the input that creates or replaces one.

use chrono::{DateTime, Utc};
use common::money::Money;
use common::text::{Lines, check_controls};
use common::web::{FieldErrors, whole_number};

use super::version::body_version;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::ToSchema;
use uuid::Uuid;

/// A stored product, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    /// Product id.
    pub id: Uuid,
    /// The user who created it; only they (or an admin) may change it.
    pub owner_id: Uuid,
    /// Display name.
    #[schema(example = "Blue mug")]
    pub name: String,
    /// Free text.
    pub description: String,
    /// Exact price, two decimal places.
    #[schema(value_type = f64, example = 19.99)]
    pub price: Money,
    /// Units available (never negative).
    pub stock: i32,
    /// Optimistic-lock version; every write increments it. Also the `ETag`.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last write.
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /products` and `PUT /products/{id}`. Fields are loosely
/// typed here so that each wrong one gets its own message; read-only fields
/// (`id`, `owner_id`, timestamps) are ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProductRequest {
    /// 1-200 characters (surrounding spaces are trimmed), one line, no
    /// control characters.
    #[schema(value_type = String, required = true, example = "Blue mug", min_length = 1, max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$")]
    pub name: Option<Value>,
    /// Up to 5000 characters; line breaks and tabs allowed, other control
    /// characters not; empty when absent.
    #[schema(value_type = Option<String>, example = "Holds 330 ml.", max_length = 5000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    pub description: Option<Value>,
    /// A decimal with at most 2 places, 0 to 999999999.99, as a string
    /// (`"19.99"`) or a JSON number.
    #[schema(schema_with = common::money::price_schema, required = true)]
    pub price: Option<Box<RawValue>>,
    /// A whole number of units, 0 to 1,000,000,000.
    #[schema(value_type = i32, required = true, example = 10, minimum = 0, maximum = 1_000_000_000)]
    pub stock: Option<Value>,
    /// `PUT` only: the version being replaced (alternative to `If-Match`).
    #[schema(value_type = Option<i64>, example = 1, minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    pub version: Option<Value>,
}

/// Validated product fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductInput {
    name: String,
    description: String,
    price: Money,
    stock: i32,
}

const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 5000;
const MAX_STOCK: i64 = 1_000_000_000;

fn text(value: &Value, max: usize, allow_empty: bool, lines: Lines) -> Result<String, String> {
    let Value::String(raw) = value else {
        return Err("must be a string".into());
    };
    // Length and characters are checked on what was sent, as the API
    // documents them; only then are surrounding spaces trimmed off.
    check_controls(raw, lines)?;
    if raw.chars().count() > max {
        return Err(format!("must be at most {max} characters long"));
    }
    let s = raw.trim();
    if !allow_empty && s.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(s.to_string())
}

fn stock(value: &Value) -> Result<i32, String> {
    match whole_number(value) {
        Some(n) if n < 0 => Err("must not be negative".into()),
        Some(n) if n > MAX_STOCK => Err(format!("must be at most {MAX_STOCK}")),
        Some(n) => i32::try_from(n).map_err(|_| "is out of range".into()),
        None => Err("must be a whole number".into()),
    }
}

impl ProductInput {
    /// Validates every field, reporting all problems at once.
    pub fn parse(req: &ProductRequest) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = match &req.name {
            Some(v) => errors.check("name", text(v, MAX_NAME, false, Lines::Single)),
            None => errors.check("name", Err::<String, _>("is required")),
        };
        let description = match &req.description {
            None | Some(Value::Null) => Some(String::new()),
            Some(v) => errors.check("description", text(v, MAX_DESCRIPTION, true, Lines::Multi)),
        };
        let price = match &req.price {
            Some(raw) => errors.check("price", Money::from_json(raw)),
            None => errors.check("price", Err::<Money, _>("is required")),
        };
        let stock = match &req.stock {
            Some(v) => errors.check("stock", stock(v)),
            None => errors.check("stock", Err::<i32, _>("is required")),
        };
        // Checked on every write, so a bad one is never silently ignored
        // (a POST has no use for it).
        if let Some(version) = req.version.as_ref().filter(|v| !v.is_null()) {
            errors.check("version", body_version(version));
        }
        match (name, description, price, stock) {
            (Some(name), Some(description), Some(price), Some(stock)) if errors.is_empty() => {
                Ok(Self {
                    name,
                    description,
                    price,
                    stock,
                })
            }
            _ => Err(errors),
        }
    }

    /// Name, trimmed.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Description, trimmed (may be empty).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Price.
    pub fn price(&self) -> Money {
        self.price
    }

    /// Stock.
    pub fn stock(&self) -> i32 {
        self.stock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> ProductRequest {
        serde_json::from_str(json).expect("valid JSON")
    }

    #[test]
    fn a_valid_product_parses_with_exact_price() {
        let input = ProductInput::parse(&request(r#"{"name":" Mug ","price":19.99,"stock":3}"#))
            .expect("valid");
        assert_eq!(
            (
                input.name(),
                input.description(),
                input.price().cents(),
                input.stock()
            ),
            ("Mug", "", 1999, 3)
        );
        let input = ProductInput::parse(&request(
            r#"{"name":"Mug","price":"0.10","stock":0,"description":null}"#,
        ))
        .expect("valid");
        assert_eq!(input.price().cents(), 10);
    }

    #[test]
    fn every_bad_field_is_reported() {
        let errors = ProductInput::parse(&request(
            r#"{"name":"","price":-1,"stock":-5,"description":7}"#,
        ))
        .expect_err("invalid");
        for field in ["name", "price", "stock", "description"] {
            assert!(errors.get(field).is_some(), "{field}");
        }
        let errors =
            ProductInput::parse(&request(r#"{"price":"abc","stock":1.5}"#)).expect_err("invalid");
        assert_eq!(errors.get("name"), Some(&["is required".to_string()][..]));
        assert!(errors.get("price").is_some() && errors.get("stock").is_some());
        let errors = ProductInput::parse(&request(r#"{"name":"x","price":1.999,"stock":1}"#))
            .expect_err("invalid");
        assert_eq!(
            errors.get("price"),
            Some(&["must have at most 2 decimal places".to_string()][..])
        );
        let long = format!(r#"{{"name":"{}","price":1,"stock":1}}"#, "n".repeat(201));
        assert!(
            ProductInput::parse(&request(&long))
                .expect_err("invalid")
                .get("name")
                .is_some()
        );
    }
}
