//! Extractor configuration so that malformed input becomes a problem+json
//! 4xx, never a plain-text error or a 5xx.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{MAX_BODY_BYTES, PROBLEM_JSON, Problem};

/// Registers JSON, path and query extractor settings on a scope or app.
pub fn configure_extractors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_BODY_BYTES)
            .error_handler(json_error),
    )
    .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
    // A path segment that does not parse (an id that is not a UUID) names no
    // resource: 404, as DESIGN.md §3 asks.
    .app_data(
        web::PathConfig::default().error_handler(|_: PathError, _| not_found_problem().into()),
    )
    .app_data(web::QueryConfig::default().error_handler(query_error));
}

/// A JSON number that is a whole number: `3`, and also `3.0` (JSON Schema's
/// `integer` admits both). Anything else, or beyond `i64` (for floats:
/// beyond 2^53), is `None`.
pub fn whole_number(value: &serde_json::Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            // Up to 2^53, where every whole number is a float exactly.
            .filter(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0)
            .map(|f| f as i64)
    })
}

fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let problem = match &err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE).with_detail(format!(
                "request body is larger than {MAX_BODY_BYTES} bytes"
            ))
        }
        JsonPayloadError::ContentType => Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .with_detail("expected Content-Type: application/json"),
        JsonPayloadError::Deserialize(e) if e.is_data() => Problem::new(StatusCode::BAD_REQUEST)
            .with_type("malformed-body", "Malformed request body")
            .with_detail(e.to_string()),
        _ => Problem::new(StatusCode::BAD_REQUEST)
            .with_type("malformed-body", "Malformed request body")
            .with_detail("request body is not valid JSON"),
    };
    problem.into()
}

fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    Problem::new(StatusCode::BAD_REQUEST)
        .with_type("malformed-query", "Malformed query string")
        .with_detail(err.to_string())
        .into()
}

fn not_found_problem() -> Problem {
    Problem::new(StatusCode::NOT_FOUND).with_detail("no such resource")
}

/// Default service: every unrouted path is a problem+json 404.
pub async fn not_found() -> HttpResponse {
    not_found_problem().to_response()
}

/// For `ErrorHandlers::default_handler`: replaces any error response that is
/// not already problem+json (405 from the router, errors raised inside actix)
/// with one, keeping headers such as `Allow` and `WWW-Authenticate`.
pub fn problem_for_error_status<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let kept: HeaderMap = res.headers().clone();
    let problem = if status.is_server_error() {
        Problem::internal()
    } else {
        Problem::new(status)
    };
    let mut replacement = problem.to_response();
    for (name, value) in kept.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replacement
                .headers_mut()
                .insert(name.clone(), value.clone());
        }
    }
    let (req, _) = res.into_parts();
    let res: ServiceResponse<EitherBody<B, BoxBody>> =
        ServiceResponse::new(req, replacement).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn whole_numbers_may_be_written_as_floats_up_to_two_to_the_53() {
        assert_eq!(whole_number(&json!(3)), Some(3));
        assert_eq!(whole_number(&json!(3.0)), Some(3));
        assert_eq!(
            whole_number(&json!(9_007_199_254_740_990.0)),
            Some(9_007_199_254_740_990)
        );
        let parsed: serde_json::Value = serde_json::from_str("4015944139420678.0").expect("json");
        assert_eq!(whole_number(&parsed), Some(4_015_944_139_420_678));
        assert_eq!(whole_number(&json!(3.5)), None);
        assert_eq!(whole_number(&json!(1.0e300)), None);
        assert_eq!(whole_number(&json!("3")), None);
    }
}
