//! `GET /.well-known/jwks.json`.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{HttpResponse, web};

use crate::startup::AppState;

/// The public keys that verify Shop's tokens (RFC 7517).
///
/// Other services fetch and cache these keys to verify tokens locally; a key is
/// named by its RFC 7638 thumbprint (`kid`). Public, never rate-limited.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JSON Web Key Set", body = Object))
)]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(300),
        ]))
        .json(state.issuer.jwks())
}
