//! A shipping address, validated per field; and JSON merge patch (RFC 7396)
//! of one.

use common::messaging::events::ShippingAddress;
use common::text::{Lines, check_controls};
use common::web::FieldErrors;
use serde_json::{Map, Value};

/// ISO 3166-1 alpha-2: the officially assigned codes.
pub const COUNTRIES: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

fn line(value: Option<&Value>, max: usize) -> Result<String, String> {
    let Some(Value::String(s)) = value else {
        return Err(match value {
            None | Some(Value::Null) => "is required".into(),
            Some(_) => "must be a string".into(),
        });
    };
    check_controls(s, Lines::Single).map_err(str::to_string)?;
    if s.is_empty() || s.trim() != s {
        return Err("must not be empty or start or end with spaces".into());
    }
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters long"));
    }
    Ok(s.clone())
}

/// Validates an address object; messages are named `shipping_address.<field>`.
pub fn parse_address(value: &Value) -> Result<ShippingAddress, FieldErrors> {
    let mut errors = FieldErrors::new();
    let Value::Object(fields) = value else {
        errors.add("shipping_address", "must be an object");
        return Err(errors);
    };
    let field = |name: &str| format!("shipping_address.{name}");
    let name = errors.check(&field("name"), line(fields.get("name"), 100));
    let line1 = errors.check(&field("line1"), line(fields.get("line1"), 200));
    let line2 = match fields.get("line2") {
        None | Some(Value::Null) => Some(None),
        Some(v) => errors.check(&field("line2"), line(Some(v), 200)).map(Some),
    };
    let city = errors.check(&field("city"), line(fields.get("city"), 100));
    let postal_code = errors.check(
        &field("postal_code"),
        line(fields.get("postal_code"), 20).and_then(|p| {
            let valid = p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
                && p.starts_with(|c: char| c.is_ascii_alphanumeric())
                && p.ends_with(|c: char| c.is_ascii_alphanumeric());
            if valid {
                Ok(p)
            } else {
                Err("may contain only letters, digits, spaces and '-'".into())
            }
        }),
    );
    let country = errors.check(
        &field("country"),
        line(fields.get("country"), 2).and_then(|c| {
            if COUNTRIES.contains(&c.as_str()) {
                Ok(c)
            } else {
                Err("must be an ISO 3166-1 alpha-2 code such as DE".into())
            }
        }),
    );
    match (name, line1, line2, city, postal_code, country) {
        (Some(name), Some(line1), Some(line2), Some(city), Some(postal_code), Some(country))
            if errors.is_empty() =>
        {
            Ok(ShippingAddress {
                name,
                line1,
                line2,
                city,
                postal_code,
                country,
            })
        }
        _ => Err(errors),
    }
}

/// An optional address in a request: absent or `null` is none.
pub fn parse_optional(value: Option<&Value>) -> Result<Option<ShippingAddress>, FieldErrors> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_address(v).map(Some),
    }
}

/// JSON merge patch (RFC 7396) of `patch` onto `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn valid() -> Value {
        json!({"name": "Ada Lovelace", "line1": "1 Main St", "city": "London", "postal_code": "NW1 6XE", "country": "GB"})
    }

    #[test]
    fn addresses_are_checked_field_by_field() {
        let address = parse_address(&valid()).expect("valid");
        assert_eq!((address.country.as_str(), address.line2), ("GB", None));
        let bad = json!({"name": " x", "line1": "", "line2": "a\u{0}b", "city": 3, "postal_code": "??", "country": "XX"});
        let errors = parse_address(&bad).expect_err("invalid");
        for field in ["name", "line1", "line2", "city", "postal_code", "country"] {
            assert!(
                errors.get(&format!("shipping_address.{field}")).is_some(),
                "{field}"
            );
        }
        assert!(parse_address(&json!("a string")).is_err());
        assert_eq!(COUNTRIES.len(), 249);
    }

    #[test]
    fn merge_patch_replaces_fields_and_null_removes_them() {
        let mut address = valid();
        merge_patch(&mut address, &json!({"line2": "Flat 2", "city": "Leeds"}));
        assert_eq!(address["city"], "Leeds");
        assert_eq!(address["line2"], "Flat 2");
        merge_patch(&mut address, &json!({"line2": null}));
        assert!(address.get("line2").is_none());
        let mut none = Value::Null;
        merge_patch(&mut none, &json!({"city": "Paris"}));
        assert_eq!(none, json!({"city": "Paris"}));
    }
}
