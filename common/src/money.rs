//! Exact money: integer cents, never a float.
//!
//! On the wire an amount is a decimal with at most two places, accepted as a
//! JSON number (`19.99`) or string (`"19.99"`). It is read from the raw JSON
//! text, so `19.99` never passes through binary floating point, and written
//! back as a number literal with two places (`19.99`, `5.00`).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A non-negative amount of money in cents (of the shop's one currency).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// Why a value is not an amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not a decimal number.
    #[error("must be a decimal number such as 19.99")]
    NotANumber,
    /// Below zero.
    #[error("must not be negative")]
    Negative,
    /// Fractions of a cent.
    #[error("must have at most 2 decimal places")]
    TooPrecise,
    /// Above [`Money::MAX`].
    #[error("must be at most 999999999.99")]
    TooLarge,
}

/// The strings [`Money::parse_decimal`] accepts, for the API documents.
pub const PRICE_PATTERN: &str = r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?$";

/// The schema of a price in a request: a string matching [`PRICE_PATTERN`]
/// or a JSON number from 0 to 999999999.99 in whole cents.
pub fn price_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, SchemaType, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .pattern(Some(PRICE_PATTERN))
                .examples(["19.99"]),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Number))
                .minimum(Some(0))
                .maximum(Some(999_999_999.99))
                .multiple_of(Some(0.01)),
        )
        .description(Some(
            "A decimal with at most 2 places, 0 to 999999999.99, as a string or a JSON number",
        ))
        .build()
        .into()
}

impl Money {
    /// The largest amount accepted: 999,999,999.99.
    pub const MAX: Money = Money(99_999_999_999);
    /// Nothing.
    pub const ZERO: Money = Money(0);

    /// From a number of cents.
    pub fn from_cents(cents: i64) -> Result<Self, MoneyError> {
        match cents {
            c if c < 0 => Err(MoneyError::Negative),
            c if c > Self::MAX.0 => Err(MoneyError::TooLarge),
            c => Ok(Money(c)),
        }
    }

    /// The amount in cents.
    pub fn cents(self) -> i64 {
        self.0
    }

    /// Parses a plain decimal: digits without leading zeros, optionally `.`
    /// and one or two digits; exactly the strings [`PRICE_PATTERN`] matches.
    /// Refusals say why (negative, too precise, too large).
    pub fn parse_decimal(text: &str) -> Result<Self, MoneyError> {
        if let Some(rest) = text.strip_prefix('-') {
            return match Self::parse_decimal(rest) {
                Ok(_) => Err(MoneyError::Negative),
                Err(e) => Err(e),
            };
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !digits(whole)
            || !digits(fraction)
            || (text.contains('.') && fraction.is_empty())
        {
            return Err(MoneyError::NotANumber);
        }
        if whole.len() > 1 && whole.starts_with('0') {
            return Err(MoneyError::NotANumber);
        }
        if fraction.len() > 2 {
            return Err(MoneyError::TooPrecise);
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > 9 {
            return Err(MoneyError::TooLarge);
        }
        let units: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| MoneyError::NotANumber)?
        };
        let cents: i64 = format!("{fraction:0<2}")
            .parse()
            .map_err(|_| MoneyError::NotANumber)?;
        Self::from_cents(units * 100 + cents)
    }

    /// Parses the raw JSON text of a value: a number literal or a string.
    pub fn from_json(raw: &RawValue) -> Result<Self, MoneyError> {
        let text = raw.get().trim();
        if text.starts_with('"') {
            let inner: String = serde_json::from_str(text).map_err(|_| MoneyError::NotANumber)?;
            Self::parse_decimal(&inner)
        } else if let Some(magnitude) = text.strip_prefix('-') {
            // A JSON number may be negative zero (`-0.0`), which is zero.
            match Self::parse_decimal(magnitude) {
                Ok(Money(0)) => Ok(Money(0)),
                Ok(_) => Err(MoneyError::Negative),
                Err(e) => Err(e),
            }
        } else if text.starts_with(|c: char| c.is_ascii_digit()) {
            Self::parse_decimal(text)
        } else {
            Err(MoneyError::NotANumber)
        }
    }

    /// `self * quantity`, or `None` past [`Money::MAX`].
    pub fn checked_mul(self, quantity: u32) -> Option<Money> {
        self.0
            .checked_mul(i64::from(quantity))
            .and_then(|c| Money::from_cents(c).ok())
    }

    /// `self + other`, or `None` past [`Money::MAX`].
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0
            .checked_add(other.0)
            .and_then(|c| Money::from_cents(c).ok())
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl std::str::FromStr for Money {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_decimal(s)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Money::from_json(&raw).map_err(D::Error::custom)
    }
}

impl schemars::JsonSchema for Money {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An exact amount with two decimal places, written as a JSON number (19.99); read it as a decimal, not a float",
            "type": "number",
            "minimum": 0,
            "maximum": 999_999_999.99,
            "multipleOf": 0.01
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).expect("valid JSON")
    }

    #[test]
    fn decimals_parse_exactly() {
        for (text, cents) in [
            ("19.99", 1999),
            ("19.9", 1990),
            ("19", 1900),
            ("0.01", 1),
            ("0", 0),
            ("0.5", 50),
        ] {
            assert_eq!(Money::parse_decimal(text), Ok(Money(cents)), "{text}");
        }
        assert_eq!(Money::parse_decimal("999999999.99"), Ok(Money::MAX));
    }

    #[test]
    fn bad_amounts_say_why() {
        assert_eq!(Money::parse_decimal("-1"), Err(MoneyError::Negative));
        assert_eq!(Money::parse_decimal("1.999"), Err(MoneyError::TooPrecise));
        assert_eq!(
            Money::parse_decimal("1000000000"),
            Err(MoneyError::TooLarge)
        );
        for bad in [
            "", "abc", "1,00", "1.", ".5", "+1", "1e2", "NaN", "1.2.3", "１", "007.50", "00", " 1",
            "1 ",
        ] {
            assert_eq!(
                Money::parse_decimal(bad),
                Err(MoneyError::NotANumber),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn json_numbers_and_strings_round_trip_without_floats() {
        assert_eq!(Money::from_json(&raw("19.99")), Ok(Money(1999)));
        assert_eq!(Money::from_json(&raw(r#""19.99""#)), Ok(Money(1999)));
        assert_eq!(Money::from_json(&raw("0.1")), Ok(Money(10)));
        assert_eq!(Money::from_json(&raw("-0.0")), Ok(Money(0)));
        assert_eq!(Money::from_json(&raw("-1")), Err(MoneyError::Negative));
        assert_eq!(
            Money::from_json(&raw(r#""-0""#)),
            Err(MoneyError::Negative),
            "a string is exactly the pattern"
        );
        assert_eq!(Money::from_json(&raw("1e2")), Err(MoneyError::NotANumber));
        assert_eq!(Money::from_json(&raw("true")), Err(MoneyError::NotANumber));
        assert_eq!(Money::from_json(&raw("null")), Err(MoneyError::NotANumber));
        assert_eq!(serde_json::to_string(&Money(1999)).expect("json"), "19.99");
        assert_eq!(serde_json::to_string(&Money(500)).expect("json"), "5.00");
        let back: Money = serde_json::from_str("19.99").expect("parse");
        assert_eq!(back, Money(1999));
    }

    #[test]
    fn arithmetic_is_exact_and_bounded() {
        let price = Money(1999);
        assert_eq!(price.checked_mul(3), Some(Money(5997)));
        assert_eq!(Money(10).checked_add(Money(20)), Some(Money(30)));
        assert_eq!(Money::MAX.checked_add(Money(1)), None);
        assert_eq!(Money::MAX.checked_mul(2), None);
    }
}
