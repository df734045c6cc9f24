//! HTTP handlers: extract, parse, call, map.

pub mod jwks;
pub mod login;
pub mod me;
pub mod register;

use actix_web::web;
use chrono::{DateTime, Utc};
use common::auth::Role;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::repository::users::UserRecord;

/// Mounts the auth-svc endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources (not bare routes) so that a wrong method is a 405 with `Allow`.
    cfg.service(web::resource("/register").post(register::register))
        .service(web::resource("/login").post(login::login))
        .service(web::resource("/me").get(me::me))
        .service(web::resource("/.well-known/jwks.json").get(jwks::jwks));
}

/// A user's public profile.
#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    /// User id.
    pub id: Uuid,
    /// Username.
    #[schema(example = "alice")]
    pub username: String,
    /// Email address.
    #[schema(example = "alice@example.com")]
    pub email: String,
    /// Role (`customer` or `admin`).
    pub role: Role,
    /// Registration time.
    pub created_at: DateTime<Utc>,
}

impl From<UserRecord> for UserResponse {
    fn from(user: UserRecord) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            role: user.role,
            created_at: user.created_at,
        }
    }
}
