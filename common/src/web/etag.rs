//! Versions as strong entity tags: `ETag: "3"` out, `If-Match: "3"` in.
//!
//! Both services with optimistic locking (products, orders) read `If-Match`
//! the same way: one strong tag naming a version. `*` (a blind write) is
//! refused as malformed. Anything else that names no version of the
//! resource (a weak tag, a list, an unquoted or unknown value) matches
//! nothing, so the write is refused as stale (412, with the current
//! version), as HTTP has it for a tag that does not match.

use actix_web::http::header::{self, HeaderMap};

use super::FieldErrors;

/// The strong `ETag` of a version: `"3"`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The version an `If-Match` that matches nothing stands for: versions
/// start at 1, so a write expecting this one is always stale.
pub const NO_VERSION: i64 = 0;

/// The version named by an `If-Match` value (trimmed); [`NO_VERSION`] when
/// it names none; a 400 for `*`.
pub fn if_match_version(value: &str) -> Result<i64, FieldErrors> {
    let value = value.trim();
    if value == "*" {
        let mut errors = FieldErrors::new();
        errors.add("If-Match", "must name a version such as \"3\", not *");
        return Err(errors);
    }
    Ok(value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v >= 1)
        .unwrap_or(NO_VERSION))
}

/// The `If-Match` header of a request, as a version; `None` when absent.
/// A value that is not visible ASCII matches nothing.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, FieldErrors> {
    headers
        .get(header::IF_MATCH)
        .map(|v| v.to_str().map_or(Ok(NO_VERSION), if_match_version))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_strong_tag_names_a_version_and_anything_else_matches_nothing() {
        assert_eq!(if_match_version("\"3\"").ok(), Some(3));
        assert_eq!(if_match_version(" \"42\" ").ok(), Some(42));
        for unmatchable in ["3", "W/\"3\"", "\"x\"", "\"0\"", "\"1\", \"2\"", "\"-1\""] {
            assert_eq!(
                if_match_version(unmatchable).ok(),
                Some(NO_VERSION),
                "{unmatchable}"
            );
        }
        assert!(if_match_version("*").is_err());
        assert_eq!(etag(7), "\"7\"");
    }
}
