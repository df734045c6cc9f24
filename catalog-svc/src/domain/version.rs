//! The version a write expects to replace: from `If-Match` or the body.

use common::web::{FieldErrors, whole_number};
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
    /// `If-Match` and `version` name different versions: 409.
    Disagree,
}

fn invalid(field: &str, message: &str) -> PreconditionError {
    let mut errors = FieldErrors::new();
    errors.add(field, message);
    PreconditionError::Invalid(errors)
}

/// The message for a `version` that is not a valid version.
pub const INVALID_BODY_VERSION: &str = "must be a whole number from 1 to 9007199254740991";

/// A body `version`: a whole number from 1 to 2^53 - 1 (the integers every
/// JSON reader holds exactly).
pub fn body_version(value: &Value) -> Result<i64, &'static str> {
    whole_number(value)
        .filter(|v| (1..=9_007_199_254_740_991).contains(v))
        .ok_or(INVALID_BODY_VERSION)
}

fn parse_body_version(value: &Value) -> Result<i64, PreconditionError> {
    body_version(value).map_err(|message| invalid("version", message))
}

impl ExpectedVersion {
    /// From the version `If-Match` named (read by [`common::web::if_match`])
    /// and/or the body's `version`. Both given must agree.
    pub fn from_request(
        from_header: Option<i64>,
        body: Option<&Value>,
    ) -> Result<Self, PreconditionError> {
        let body = body.filter(|v| !v.is_null());
        let from_body = body.map(parse_body_version).transpose()?;
        match (from_header, from_body) {
            // At most one of them can be current: the write cannot apply.
            (Some(h), Some(b)) if h != b => Err(PreconditionError::Disagree),
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
    use common::web::NO_VERSION;

    use common::web::if_match_version;
    use serde_json::json;

    use super::*;

    /// As the route reads a request: the header through the shared parser.
    fn from(
        header: Option<&str>,
        body: Option<&Value>,
    ) -> Result<ExpectedVersion, PreconditionError> {
        let version = header
            .map(if_match_version)
            .transpose()
            .map_err(PreconditionError::Invalid)?;
        ExpectedVersion::from_request(version, body)
    }

    #[test]
    fn if_match_wins_and_must_be_a_strong_version() {
        let v = from(Some("\"3\""), None).expect("valid");
        assert_eq!(
            v,
            ExpectedVersion {
                version: 3,
                source: VersionSource::IfMatch
            }
        );
        let v = from(None, Some(&json!(4))).expect("valid");
        assert_eq!(
            v,
            ExpectedVersion {
                version: 4,
                source: VersionSource::Body
            }
        );
        assert_eq!(from(None, None), Err(PreconditionError::Missing));
        assert_eq!(
            from(None, Some(&Value::Null)),
            Err(PreconditionError::Missing)
        );
        assert!(matches!(
            from(Some("*"), None),
            Err(PreconditionError::Invalid(_))
        ));
        for unmatchable in ["3", "W/\"3\"", "\"x\"", "\"0\"", "\"1\", \"2\"", "\"-1\""] {
            assert_eq!(
                from(Some(unmatchable), None),
                Ok(ExpectedVersion {
                    version: NO_VERSION,
                    source: VersionSource::IfMatch
                }),
                "{unmatchable}"
            );
        }
        assert!(from(None, Some(&json!("3"))).is_err());
        assert!(from(Some("\"3\""), Some(&json!(2))).is_err());
        assert!(from(Some("\"3\""), Some(&json!(3))).is_ok());
    }
}
