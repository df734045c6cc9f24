//! The version a write expects to replace: from `If-Match` or the body.

use common::web::FieldErrors;
use serde_json::Value;

/// Where the expected version came from; it decides the status of a stale
/// write (412 for `If-Match`, 409 for the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSource {
    /// `If-Match: "<version>"`.
    IfMatch,
    /// `"version": <n>` in the body.
    Body,
}

/// The version a conditional write applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedVersion {
    /// The version the client last saw.
    pub version: i64,
    /// Where it came from.
    pub source: VersionSource,
}

/// Why no usable version was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreconditionError {
    /// Neither `If-Match` nor `version`: 428.
    Missing,
    /// Present but unusable: 400.
    Invalid(FieldErrors),
}

/// The strong `ETag` of a version: `"3"`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

fn invalid(field: &str, message: &str) -> PreconditionError {
    let mut errors = FieldErrors::new();
    errors.add(field, message);
    PreconditionError::Invalid(errors)
}

fn parse_if_match(header: &str) -> Result<i64, PreconditionError> {
    let header = header.trim();
    if header == "*" {
        // `*` would mean "whatever the current version is": a blind write.
        return Err(invalid(
            "If-Match",
            "must name a version such as \"3\", not *",
        ));
    }
    header
        .strip_prefix('"')
        .and_then(|h| h.strip_suffix('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v >= 1)
        .ok_or_else(|| invalid("If-Match", "must be one strong ETag such as \"3\""))
}

fn parse_body_version(value: &Value) -> Result<i64, PreconditionError> {
    value
        .as_i64()
        .filter(|v| *v >= 1)
        .ok_or_else(|| invalid("version", "must be a whole number of at least 1"))
}

impl ExpectedVersion {
    /// From the `If-Match` header and/or the body's `version`. Both given
    /// must agree.
    pub fn from_request(
        if_match: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Self, PreconditionError> {
        let body = body.filter(|v| !v.is_null());
        let from_header = if_match.map(parse_if_match).transpose()?;
        let from_body = body.map(parse_body_version).transpose()?;
        match (from_header, from_body) {
            (Some(h), Some(b)) if h != b => Err(invalid("version", "disagrees with If-Match")),
            (Some(version), _) => Ok(Self {
                version,
                source: VersionSource::IfMatch,
            }),
            (None, Some(version)) => Ok(Self {
                version,
                source: VersionSource::Body,
            }),
            (None, None) => Err(PreconditionError::Missing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn if_match_wins_and_must_be_a_strong_version() {
        let v = ExpectedVersion::from_request(Some("\"3\""), None).expect("valid");
        assert_eq!(
            v,
            ExpectedVersion {
                version: 3,
                source: VersionSource::IfMatch
            }
        );
        let v = ExpectedVersion::from_request(None, Some(&json!(4))).expect("valid");
        assert_eq!(
            v,
            ExpectedVersion {
                version: 4,
                source: VersionSource::Body
            }
        );
        assert_eq!(
            ExpectedVersion::from_request(None, None),
            Err(PreconditionError::Missing)
        );
        assert_eq!(
            ExpectedVersion::from_request(None, Some(&Value::Null)),
            Err(PreconditionError::Missing)
        );
        for bad in ["*", "3", "W/\"3\"", "\"x\"", "\"0\"", "\"1\", \"2\""] {
            assert!(
                matches!(
                    ExpectedVersion::from_request(Some(bad), None),
                    Err(PreconditionError::Invalid(_))
                ),
                "{bad}"
            );
        }
        assert!(ExpectedVersion::from_request(None, Some(&json!("3"))).is_err());
        assert!(ExpectedVersion::from_request(Some("\"3\""), Some(&json!(2))).is_err());
        assert!(ExpectedVersion::from_request(Some("\"3\""), Some(&json!(3))).is_ok());
    }

    #[test]
    fn etags_are_quoted_versions() {
        assert_eq!(etag(7), "\"7\"");
    }
}
