//! RFC 9457 `application/problem+json` responses.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem details object. Build one with [`Problem::new`] and the `with_*`
/// methods; it is itself an actix error, so handlers may return it directly.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, human-readable summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Explanation specific to this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Validation messages per request field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
    /// Extension members (for example `current_version` on a conflict).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem with `type: about:blank` and the status's reason as title.
    pub fn new(status: StatusCode) -> Self {
        Self {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: None,
            errors: None,
            extensions: serde_json::Map::new(),
            headers: Vec::new(),
        }
    }

    /// Names the kind of problem: `urn:shop:problem:<slug>`, with its title.
    pub fn with_type(mut self, slug: &str, title: &str) -> Self {
        self.kind = format!("urn:shop:problem:{slug}");
        self.title = title.into();
        self
    }

    /// Adds the occurrence-specific explanation.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds an extension member.
    pub fn with_extension(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(key.into(), value.into());
        self
    }

    /// Adds a response header (e.g. `WWW-Authenticate`, `Retry-After`).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds per-field messages.
    pub fn with_errors(mut self, errors: FieldErrors) -> Self {
        self.errors = Some(errors.0);
        self
    }

    /// 400 with one message list per invalid field.
    pub fn validation(errors: FieldErrors) -> Self {
        Self::new(StatusCode::BAD_REQUEST)
            .with_type("validation", "Invalid request")
            .with_detail("one or more fields are invalid")
            .with_errors(errors)
    }

    /// 500 that says nothing about the cause; log the cause where it is known.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR).with_detail("an unexpected error occurred")
    }

    /// 503 with `Retry-After`, for a dependency that is down.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u32) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE)
            .with_detail(detail)
            .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs))
    }

    /// The status as an actix value.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Renders the problem as a response.
    pub fn to_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status_code());
        builder.content_type(PROBLEM_JSON);
        for (name, value) in &self.headers {
            builder.insert_header((name.clone(), value.clone()));
        }
        builder.json(self)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.title)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        Problem::status_code(self)
    }

    fn error_response(&self) -> HttpResponse {
        self.to_response()
    }
}

/// Validation messages collected per field, so a client sees every problem
/// with its input at once rather than one per round trip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a message against a field.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(message.into());
    }

    /// Records the error of a parse attempt and returns its success value.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        result.map_err(|e| self.add(field, e.to_string())).ok()
    }

    /// True when no field has an error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The messages recorded for a field.
    pub fn get(&self, field: &str) -> Option<&[String]> {
        self.0.get(field).map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problem_lists_fields() {
        let mut errors = FieldErrors::new();
        errors.add("email", "is not a valid email address");
        errors.add("email", "is too long");
        let body = serde_json::to_value(Problem::validation(errors)).expect("json");
        assert_eq!(body["status"], 400);
        assert_eq!(body["errors"]["email"].as_array().map(Vec::len), Some(2));
        assert_eq!(body["type"], "urn:shop:problem:validation");
    }

    #[test]
    fn internal_problem_has_no_cause() {
        let body = serde_json::to_value(Problem::internal()).expect("json");
        assert_eq!(body["status"], 500);
        assert_eq!(body["detail"], "an unexpected error occurred");
        assert!(body.get("errors").is_none());
    }
}
