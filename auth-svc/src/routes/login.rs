//! `POST /login`.

use actix_web::{HttpResponse, web};
use common::web::Problem;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Credentials, LoginRequest};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::{hashing, repository};

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

/// Exchanges a username (or email) and password for an access token.
#[utoipa::path(
    post, path = "/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Missing fields", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown user or wrong password (indistinguishable)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let credentials = Credentials::parse(body.into_inner())?;
    let client = common::db::client(&state.pool).await?;
    let user = repository::users::find_by_login(&client, &credentials.login).await?;
    drop(client);
    // An unknown user is checked against a dummy hash of the same cost, so
    // both failures take the same time.
    let hash = user
        .as_ref()
        .map_or_else(|| state.dummy_hash.clone(), |u| u.password_hash.clone());
    let matches = hashing::verify(credentials.password, hash).await?;
    let user = match user {
        Some(user) if matches => user,
        _ => return Err(ApiError::InvalidCredentials),
    };
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
