//! The one error type of auth-svc and its HTTP mapping.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use common::db::DbError;
use common::ratelimit::RateLimited;
use common::telemetry::error_chain;
use common::web::{FieldErrors, Problem};

use crate::hashing::HashError;
use crate::repository::users::{EMAIL_UNIQUE, USERNAME_UNIQUE};

/// Everything a request to auth-svc can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input that does not parse.
    #[error("invalid input")]
    Validation(FieldErrors),
    /// The username is registered already.
    #[error("username already taken")]
    UsernameTaken,
    /// The email is registered already.
    #[error("email already registered")]
    EmailTaken,
    /// Unknown user or wrong password: deliberately indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A valid token whose user no longer exists.
    #[error("the token's user does not exist")]
    UnknownSubject,
    /// Over a rate limit.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// Every password worker is busy and the queue is full.
    #[error("too many password checks in progress")]
    Busy,
    /// The database failed.
    #[error(transparent)]
    Database(DbError),
    /// Anything else: a bug or an unexpected failure.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> Self {
        ApiError::Validation(errors)
    }
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => ApiError::Busy,
            HashError::Failed(e) => ApiError::Unexpected(e),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e.unique_violation() {
            Some(USERNAME_UNIQUE) => ApiError::UsernameTaken,
            Some(EMAIL_UNIQUE) => ApiError::EmailTaken,
            _ => ApiError::Database(e),
        }
    }
}

fn conflict(field: &str, message: &str) -> Problem {
    let mut errors = FieldErrors::new();
    errors.add(field, message);
    Problem::new(StatusCode::CONFLICT)
        .with_type("conflict", "Already exists")
        .with_detail(format!("{field} {message}"))
        .with_errors(errors)
}

impl ApiError {
    fn problem(&self) -> Problem {
        match self {
            ApiError::Validation(errors) => Problem::validation(errors.clone()),
            ApiError::UsernameTaken => conflict("username", "is already taken"),
            ApiError::EmailTaken => conflict("email", "is already registered"),
            ApiError::InvalidCredentials => Problem::new(StatusCode::UNAUTHORIZED)
                .with_detail("invalid username or password")
                .with_header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="shop""#),
                ),
            ApiError::UnknownSubject => Problem::new(StatusCode::UNAUTHORIZED)
                .with_detail("the token's user no longer exists")
                .with_header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="shop", error="invalid_token""#),
                ),
            ApiError::RateLimited(limited) => limited.problem(),
            ApiError::Busy => Problem::unavailable(
                "too many logins and registrations in progress; try again in a moment",
                1,
            ),
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
