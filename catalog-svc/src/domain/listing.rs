//! `GET /products` query parameters.

use common::money::Money;
use common::pagination::{Cursor, parse_limit};
use common::text::{CONTROL_CHARACTERS, Lines, check_controls};
use common::web::FieldErrors;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

/// Raw query parameters; parsed into a [`ListQuery`].
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1-100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (empty: the first page).
    #[param(pattern = r"^([A-Za-z0-9_-]{21}[AQgw])?$")]
    pub cursor: Option<String>,
    /// Case-insensitive substring of the name: up to 100 characters, one
    /// line, no control characters.
    #[param(max_length = 100, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub q: Option<String>,
    /// Lowest price, inclusive: a decimal such as 9.99.
    #[param(pattern = r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?$")]
    pub min_price: Option<String>,
    /// Highest price, inclusive: a decimal such as 19.99 (below `min_price`:
    /// an empty page).
    #[param(pattern = r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?$")]
    pub max_price: Option<String>,
}

/// A valid listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Page size.
    pub limit: i64,
    /// Start after this product.
    pub after: Option<Uuid>,
    /// Name substring.
    pub name_contains: Option<String>,
    /// Price floor.
    pub min_price: Option<Money>,
    /// Price ceiling.
    pub max_price: Option<Money>,
}

impl ListQuery {
    /// Validates every parameter, reporting all problems at once.
    pub fn parse(params: ListParams) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let limit = errors.check("limit", parse_limit(params.limit.as_deref()));
        let after = errors.check("cursor", Cursor::parse_param(params.cursor.as_deref()));
        // Checked as sent (as documented), then trimmed.
        let name_contains = match params.q.as_deref() {
            None => Some(None),
            Some(q) if q.chars().count() > 100 => errors.check(
                "q",
                Err::<Option<String>, _>("must be at most 100 characters long"),
            ),
            Some(q) if check_controls(q, Lines::Single).is_err() => {
                errors.check("q", Err::<Option<String>, _>(CONTROL_CHARACTERS))
            }
            Some(q) if q.trim().is_empty() => Some(None),
            Some(q) => Some(Some(q.trim().to_string())),
        };
        let mut price = |field: &str, raw: Option<String>| match raw {
            None => Some(None),
            Some(raw) => errors.check(field, Money::parse_decimal(&raw)).map(Some),
        };
        let min_price = price("min_price", params.min_price);
        let max_price = price("max_price", params.max_price);
        match (limit, after, name_contains, min_price, max_price) {
            (Some(limit), Some(after), Some(name_contains), Some(min_price), Some(max_price))
                if errors.is_empty() =>
            {
                Ok(Self {
                    limit,
                    after,
                    name_contains,
                    min_price,
                    max_price,
                })
            }
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        let q = ListQuery::parse(ListParams::default()).expect("valid");
        assert_eq!(
            (q.limit, q.after, q.name_contains, q.min_price),
            (common::pagination::DEFAULT_LIMIT, None, None, None)
        );
        let params = ListParams {
            limit: Some("0".into()),
            cursor: Some("!!".into()),
            q: Some("x".repeat(101)),
            min_price: Some("5".into()),
            max_price: Some("1".into()),
        };
        let errors = ListQuery::parse(params).expect_err("invalid");
        assert!(errors.get("max_price").is_none(), "an empty range is valid");
        for field in ["limit", "cursor", "q"] {
            assert!(errors.get(field).is_some(), "{field}");
        }
    }
}
