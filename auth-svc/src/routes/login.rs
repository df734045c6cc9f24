//! `POST /login`.

use actix_web::{HttpRequest, HttpResponse, web};
use common::ratelimit::{Policy, RateLimiter};
use common::web::Problem;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Credentials, LoginRequest};
use crate::error::ApiError;
use crate::repository;
use crate::repository::users::UserRecord;
use crate::startup::AppState;

/// A bearer token.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 3600)]
    pub expires_in: u64,
}

/// The user whose password this is; `InvalidCredentials` for an unknown
/// user or a wrong password, which take the same time.
async fn check_password(
    state: &AppState,
    credentials: Credentials,
) -> Result<UserRecord, ApiError> {
    let client = common::db::client(&state.pool).await?;
    let user = repository::users::find_by_login(&client, &credentials.login).await?;
    drop(client);
    let hash = user
        .as_ref()
        .map_or_else(|| state.dummy_hash.clone(), |u| u.password_hash.clone());
    let matches = state.hasher.verify(credentials.password, hash).await?;
    match user {
        Some(user) if matches => Ok(user),
        _ => Err(ApiError::InvalidCredentials),
    }
}

/// Exchanges a username (or email) and password for an access token.
///
/// Rate-limited per client address (`LOGIN_IP`) and per account for failed
/// attempts (`LOGIN_ACCOUNT`); the `RateLimit` headers say what is left.
/// Password checks are bounded: beyond the workers and their queue the
/// answer is 503 with `Retry-After: 1`.
#[utoipa::path(
    post, path = "/login", operation_id = "login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Missing fields", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown user or wrong password (indistinguishable)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many logins from this address, or too many failed ones for this account", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Every password worker is busy (Retry-After: 1), or the database is down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    limiter: web::Data<RateLimiter>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    limiter.check_client(&req, Policy::LoginIp).await?;
    let credentials = Credentials::parse(body.into_inner())?;
    // Every attempt on an account takes from its quota before the password
    // is checked (so parallel guesses cannot slip past it). Only a wrong
    // password keeps it: a success, or an attempt that could not be checked
    // (busy, database down), gives it back.
    let account = credentials.login.to_lowercase();
    limiter.check(&req, Policy::LoginAccount, &account).await?;
    let checked = check_password(&state, credentials).await;
    if !matches!(checked, Err(ApiError::InvalidCredentials)) {
        limiter.refund(Policy::LoginAccount, &account).await;
    }
    let user = checked?;
    let issued = state
        .issuer
        .issue(user.id, &user.username, user.role)
        .map_err(anyhow::Error::from)?;
    tracing::info!(user_id = %user.id, "user logged in");
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
    }))
}
