//! The one error type of catalog-svc and its HTTP mapping.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use common::db::DbError;
use common::telemetry::error_chain;
use common::web::{FieldErrors, Problem};

use crate::domain::{PreconditionError, VersionSource, etag};

/// Everything a request to catalog-svc can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input that does not parse.
    #[error("invalid input")]
    Validation(FieldErrors),
    /// No such product.
    #[error("product not found")]
    NotFound,
    /// The caller may not change this product.
    #[error("only the owner or an admin may change this product")]
    Forbidden,
    /// A write without `If-Match` or `version`.
    #[error("a version is required")]
    PreconditionRequired,
    /// `If-Match` and the body's `version` differ.
    #[error("If-Match and version name different versions")]
    VersionsDisagree,
    /// The write named a version that is no longer current.
    #[error("version {expected} is stale; the current version is {current}")]
    StaleVersion {
        /// The version the client sent.
        expected: i64,
        /// The version in the database now.
        current: i64,
        /// Where the client sent it: decides 412 or 409.
        via: VersionSource,
    },
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

impl From<PreconditionError> for ApiError {
    fn from(e: PreconditionError) -> Self {
        match e {
            PreconditionError::Missing => ApiError::PreconditionRequired,
            PreconditionError::Invalid(errors) => ApiError::Validation(errors),
            PreconditionError::Disagree => ApiError::VersionsDisagree,
        }
    }
}

impl ApiError {
    fn problem(&self) -> Problem {
        match self {
            ApiError::Validation(errors) => Problem::validation(errors.clone()),
            ApiError::NotFound => Problem::new(StatusCode::NOT_FOUND).with_detail("no such product"),
            ApiError::Forbidden => Problem::new(StatusCode::FORBIDDEN).with_detail(self.to_string()),
            ApiError::VersionsDisagree => Problem::new(StatusCode::CONFLICT)
                .with_type("stale-version", "The versions of the request disagree")
                .with_detail("If-Match and version name different versions; at most one of them is current"),
            ApiError::PreconditionRequired => Problem::new(StatusCode::PRECONDITION_REQUIRED)
                .with_detail("send the version you are replacing, as If-Match: \"<version>\" or \"version\" in the body"),
            ApiError::StaleVersion { current, via, .. } => {
                let status = match via {
                    VersionSource::IfMatch => StatusCode::PRECONDITION_FAILED,
                    VersionSource::Body => StatusCode::CONFLICT,
                };
                let mut problem = Problem::new(status)
                    .with_type("stale-version", "The product changed since you read it")
                    .with_detail(self.to_string())
                    .with_extension("current_version", *current);
                if let Ok(value) = HeaderValue::from_str(&etag(*current)) {
                    problem = problem.with_header(header::ETAG, value);
                }
                problem
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
        if problem.status_code().is_server_error() {
            tracing::error!(error.cause_chain = %error_chain(self), "request failed");
        }
        problem.to_response()
    }
}
