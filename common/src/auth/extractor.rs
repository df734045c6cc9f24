//! `AuthUser`: the authenticated caller, as an actix extractor.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use super::{Role, TokenError, TokenVerifier};
use crate::web::Problem;

/// The caller, proven by a valid bearer token. Handlers that take it are
/// authenticated; the rest are public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// The user's id (`sub`).
    pub id: Uuid,
    /// The user's name when the token was issued.
    pub username: String,
    /// The user's role when the token was issued.
    pub role: Role,
}

impl AuthUser {
    /// True for admins.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// The token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// No `TokenVerifier` registered in the app data: a wiring bug.
    #[error("no token verifier is configured")]
    NotConfigured,
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            AuthError::Token(TokenError::KeysUnavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AuthError::Missing => Problem::new(StatusCode::UNAUTHORIZED)
                .with_detail("this endpoint needs a bearer token")
                .with_header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="shop""#),
                ),
            AuthError::Token(TokenError::KeysUnavailable(reason)) => {
                tracing::warn!(%reason, "cannot verify tokens: signing keys unavailable");
                Problem::unavailable("tokens cannot be verified right now", 5)
            }
            AuthError::Token(e) => Problem::new(StatusCode::UNAUTHORIZED)
                .with_detail(e.to_string())
                .with_header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&format!(
                        r#"Bearer realm="shop", error="invalid_token", error_description="{e}""#
                    ))
                    .unwrap_or_else(|_| {
                        HeaderValue::from_static(r#"Bearer error="invalid_token""#)
                    }),
                ),
            AuthError::NotConfigured => {
                tracing::error!("AuthUser used without a TokenVerifier in the app data");
                Problem::internal()
            }
        }
        .to_response()
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme
/// case-insensitive, as RFC 7235 says).
fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

impl FromRequest for AuthUser {
    type Error = AuthError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<TokenVerifier>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let verifier = verifier.ok_or(AuthError::NotConfigured)?;
            let token = token.ok_or(AuthError::Missing)?;
            let claims = verifier.verify(&token).await?;
            Ok(AuthUser {
                id: claims.sub,
                username: claims.username,
                role: claims.role,
            })
        })
    }
}
