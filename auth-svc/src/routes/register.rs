//! `POST /register`.

use actix_web::{HttpResponse, web};
use common::web::{Problem, RequestId};

use super::UserResponse;
use crate::domain::{NewUser, RegisterRequest};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::{accounts, hashing};

/// Creates a user with role `customer`.
#[utoipa::path(
    post, path = "/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = UserResponse),
        (status = 400, description = "Invalid input, per field", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Username or email taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    state: web::Data<AppState>,
    request_id: web::ReqData<RequestId>,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let new_user = NewUser::parse(body.into_inner())?;
    let hash = hashing::hash(new_user.password.clone(), state.bcrypt_cost).await?;
    let user = accounts::register(&state.pool, &new_user, &hash, request_id.0.clone()).await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok(HttpResponse::Created().json(UserResponse::from(user)))
}
