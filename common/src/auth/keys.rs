//! Ed25519 signing keys and the token issuer of auth-svc.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use uuid::Uuid;

use super::{Claims, Role};

/// A key could not be read, encoded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM is not a PKCS#8 Ed25519 private key.
    #[error("not a PKCS#8 Ed25519 private key: {0}")]
    Pem(String),
    /// Signing or JWK derivation failed.
    #[error("jwt: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// An Ed25519 private key with its public JWK; its `kid` is the RFC 7638
/// thumbprint of the public key, so every holder of the same key derives the
/// same id.
pub struct SigningKey {
    encoding: EncodingKey,
    pkcs8_pem: String,
    public: ed25519_dalek::VerifyingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let secret: [u8; 32] = rand::random();
        Self::from_dalek(&ed25519_dalek::SigningKey::from_bytes(&secret))
            .expect("a generated key always encodes")
    }

    /// Reads a PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| KeyError::Pem(e.to_string()))?;
        Self::from_dalek(&key)
    }

    fn from_dalek(key: &ed25519_dalek::SigningKey) -> Result<Self, KeyError> {
        let der = key
            .to_pkcs8_der()
            .map_err(|e| KeyError::Pem(e.to_string()))?;
        let pkcs8_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Pem(e.to_string()))?
            .to_string();
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        let public = key.verifying_key();
        let jwk = public_jwk(&public)?;
        Ok(Self {
            encoding,
            pkcs8_pem,
            public,
            jwk,
        })
    }

    /// The key id published in the JWKS and written in token headers.
    pub fn kid(&self) -> &str {
        self.jwk.common.key_id.as_deref().unwrap_or_default()
    }

    /// The private key as PKCS#8 PEM, for storing it.
    pub fn to_pkcs8_pem(&self) -> &str {
        &self.pkcs8_pem
    }

    /// The public half as SPKI PEM (what `JWT_PUBLIC_KEY_FILE` holds).
    pub fn public_key_pem(&self) -> String {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        self.public
            .to_public_key_pem(LineEnding::LF)
            .expect("an Ed25519 public key always encodes")
    }

    /// The public half as a JWK.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }
}

/// The JWK of an Ed25519 public key, `kid` = its RFC 7638 thumbprint.
pub(crate) fn public_jwk(key: &ed25519_dalek::VerifyingKey) -> Result<Jwk, KeyError> {
    let mut jwk = Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            ..Default::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
        }),
    };
    jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256)?);
    Ok(jwk)
}

/// A freshly issued access token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Signs access tokens with the active key and publishes the JWKS.
pub struct TokenIssuer {
    active: SigningKey,
    published: JwkSet,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl TokenIssuer {
    /// `active` signs; `also_published` are older keys whose tokens are still
    /// honoured, listed in the JWKS beside the active one.
    pub fn new(
        active: SigningKey,
        also_published: impl IntoIterator<Item = Jwk>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        let mut keys = vec![active.public_jwk().clone()];
        keys.extend(
            also_published
                .into_iter()
                .filter(|k| k.common.key_id.as_deref() != Some(active.kid())),
        );
        Self {
            active,
            published: JwkSet { keys },
            issuer: issuer.into(),
            audience: audience.into(),
            ttl,
        }
    }

    /// The JWKS document: every key a token of ours may be signed with.
    pub fn jwks(&self) -> &JwkSet {
        &self.published
    }

    /// Signs a token for a user.
    pub fn issue(
        &self,
        user_id: Uuid,
        username: &str,
        role: Role,
    ) -> Result<IssuedToken, KeyError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            username: username.to_string(),
            role,
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Uuid::new_v4(),
        };
        Ok(IssuedToken {
            token: self.sign(&claims)?,
            expires_in: self.ttl.as_secs(),
        })
    }

    /// Signs arbitrary claims with the active key (tests build odd tokens with it).
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.active.kid().to_string());
        Ok(jsonwebtoken::encode(
            &header,
            claims,
            &self.active.encoding,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_the_kid() {
        let key = SigningKey::generate();
        let again = SigningKey::from_pkcs8_pem(key.to_pkcs8_pem()).expect("pem parses");
        assert_eq!(key.kid(), again.kid());
        assert_eq!(key.kid().len(), 43, "base64url SHA-256 thumbprint");
        assert_ne!(key.kid(), SigningKey::generate().kid());
    }

    #[test]
    fn garbage_pem_is_rejected() {
        assert!(
            SigningKey::from_pkcs8_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .is_err()
        );
    }
}
