//! Authentication: JWT signing (auth-svc) and verification (everyone),
//! the JWKS document and cache, and the [`AuthUser`] extractor.
//!
//! Tokens are EdDSA (Ed25519). Verifiers pin the algorithm, require a `kid`
//! they know, and check `exp`, `iss` and `aud`.

mod claims;
mod extractor;
mod jwks;
mod keys;
mod verifier;

pub use claims::{Claims, Role};
pub use extractor::{AuthError, AuthUser};
pub use jwks::JwksCache;
pub use keys::{IssuedToken, KeyError, SigningKey, TokenIssuer};
pub use verifier::{TokenError, TokenVerifier};

pub use jsonwebtoken::jwk::{Jwk, JwkSet};
