//! `GET /me`.

use actix_web::{HttpResponse, web};
use common::auth::AuthUser;
use common::web::Problem;

use super::UserResponse;
use crate::error::ApiError;
use crate::repository;
use crate::startup::AppState;

/// The caller's profile, read fresh from the database.
///
/// Needs a bearer token; a token whose user no longer exists is 401.
#[utoipa::path(
    get, path = "/me", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserResponse),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn me(state: web::Data<AppState>, caller: AuthUser) -> Result<HttpResponse, ApiError> {
    let client = common::db::client(&state.pool).await?;
    let user = repository::users::find_by_id(&client, caller.id)
        .await?
        .ok_or(ApiError::UnknownSubject)?;
    Ok(HttpResponse::Ok().json(UserResponse::from(user)))
}
