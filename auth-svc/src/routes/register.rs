//! `POST /register`.

use actix_web::{HttpRequest, HttpResponse, web};
use common::ratelimit::{Policy, RateLimiter};
use common::web::{Problem, RequestId};

use super::UserResponse;
use crate::accounts;
use crate::domain::{NewUser, RegisterRequest};
use crate::error::ApiError;
use crate::startup::AppState;

/// Creates a user with role `customer`.
///
/// Every field is checked and all problems are reported at once; a taken
/// username or email is 409 (checked before any password work). Rate-limited
/// per client address (`REGISTER_IP`).
#[utoipa::path(
    post, path = "/register", operation_id = "register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = UserResponse),
        (status = 400, description = "Invalid input, per field", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Username or email taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many registrations from this address", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Every password worker is busy (Retry-After: 1), or the database is down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    req: HttpRequest,
    limiter: web::Data<RateLimiter>,
    state: web::Data<AppState>,
    request_id: web::ReqData<RequestId>,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    limiter.check_client(&req, Policy::RegisterIp).await?;
    let new_user = NewUser::parse(body.into_inner())?;
    // A taken name or address is answered before any bcrypt work is spent
    // on it; the unique indexes still decide a race between two requests.
    accounts::ensure_available(&state.pool, &new_user).await?;
    let hash = state.hasher.hash(new_user.password.clone()).await?;
    let user = accounts::register(&state.pool, &new_user, &hash, request_id.0.clone()).await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok(HttpResponse::Created().json(UserResponse::from(user)))
}
