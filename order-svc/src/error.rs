//! The one error type of order-svc and its HTTP mapping.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use common::db::DbError;
use common::telemetry::error_chain;
use common::web::{FieldErrors, Problem};
use uuid::Uuid;

use crate::domain::OrderStatus;
use crate::saga::SagaError;

/// Everything a request to order-svc can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input that does not parse.
    #[error("invalid input")]
    Validation(FieldErrors),
    /// No such order for this user.
    #[error("order not found")]
    NotFound,
    /// Products catalog-svc does not know.
    #[error("unknown products: {0:?}")]
    UnknownProducts(Vec<(usize, Uuid)>),
    /// The total exceeds what an order may cost.
    #[error("the order total is too large")]
    TotalTooLarge,
    /// An `Idempotency-Key` reused for a different order.
    #[error("this Idempotency-Key was used for a different order")]
    IdempotencyKeyReused,
    /// A change the order's current status does not allow.
    #[error("the order is {}", .0.as_str())]
    AlreadyFinal(OrderStatus),
    /// A body in a media type the endpoint does not take.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Only admins may do this.
    #[error("only an admin may do this")]
    Forbidden,
    /// `If-Match` named a version that is no longer current.
    #[error("the order changed; its current version is {current}")]
    StaleVersion {
        /// The version now.
        current: i64,
    },
    /// catalog-svc is down or its breaker is open.
    #[error("catalog-svc is unavailable")]
    CatalogUnavailable(#[source] common::http_client::CallError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> Self {
        ApiError::Validation(errors)
    }
}

impl From<SagaError> for ApiError {
    fn from(e: SagaError) -> Self {
        match e {
            SagaError::Invalid(t) => ApiError::AlreadyFinal(t.from),
            SagaError::Database(e) => ApiError::Database(e),
            other => ApiError::Unexpected(other.into()),
        }
    }
}

impl ApiError {
    fn problem(&self) -> Problem {
        match self {
            ApiError::Validation(errors) => Problem::validation(errors.clone()),
            ApiError::NotFound => Problem::new(StatusCode::NOT_FOUND).with_detail("no such order"),
            ApiError::UnknownProducts(unknown) => {
                let mut errors = FieldErrors::new();
                for (i, id) in unknown {
                    errors.add(
                        &format!("items[{i}].product_id"),
                        format!("no product {id}"),
                    );
                }
                let ids: Vec<String> = unknown.iter().map(|(_, id)| id.to_string()).collect();
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY)
                    .with_type("unknown-product", "Unknown product")
                    .with_detail(format!("no such product: {}", ids.join(", ")))
                    .with_errors(errors)
            }
            ApiError::TotalTooLarge => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY).with_detail(self.to_string())
            }
            ApiError::IdempotencyKeyReused => Problem::new(StatusCode::UNPROCESSABLE_ENTITY)
                .with_type("idempotency-key-reused", "Idempotency-Key reused")
                .with_detail(self.to_string()),
            ApiError::AlreadyFinal(status) => Problem::new(StatusCode::CONFLICT)
                .with_type("order-state", "The order's status does not allow this")
                .with_detail(self.to_string())
                .with_extension("order_status", status.as_str()),
            ApiError::UnsupportedMediaType => Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE)
                .with_detail("expected Content-Type: application/merge-patch+json"),
            ApiError::Forbidden => {
                Problem::new(StatusCode::FORBIDDEN).with_detail(self.to_string())
            }
            ApiError::StaleVersion { current } => {
                let mut problem = Problem::new(StatusCode::PRECONDITION_FAILED)
                    .with_type("stale-version", "The order changed since you read it")
                    .with_detail(self.to_string())
                    .with_extension("current_version", *current);
                if let Ok(value) = HeaderValue::from_str(&common::web::etag(*current)) {
                    problem = problem.with_header(header::ETAG, value);
                }
                problem
            }
            ApiError::CatalogUnavailable(e) => {
                tracing::warn!(error = %e, "catalog-svc unavailable");
                Problem::unavailable("the product catalog is unavailable; try again shortly", 5)
            }
            ApiError::Database(e) => e.problem(),
            ApiError::Unexpected(_) => Problem::internal(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem();
        if problem.status_code() == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error.cause_chain = %error_chain(self), "request failed");
        }
        problem.to_response()
    }
}
