//! Token verification with the algorithm pinned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::pkcs8::DecodePublicKey;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::keys::public_jwk;
use super::{Claims, JwksCache};
use crate::config::{JwtConfig, VerifierConfig};

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or a header we do not accept (no `kid`, `alg: none`, ...).
    #[error("the token is malformed")]
    Malformed,
    /// Signed with an algorithm other than EdDSA.
    #[error("the token uses a disallowed algorithm")]
    WrongAlgorithm,
    /// The `kid` names no key we trust.
    #[error("the token is signed by an unknown key")]
    UnknownKey,
    /// The signature does not match.
    #[error("the token signature is invalid")]
    BadSignature,
    /// `exp` is in the past.
    #[error("the token has expired")]
    Expired,
    /// `iss` is not ours.
    #[error("the token has the wrong issuer")]
    WrongIssuer,
    /// `aud` is not ours.
    #[error("the token has the wrong audience")]
    WrongAudience,
    /// A required claim is missing or has the wrong type.
    #[error("the token claims are invalid")]
    InvalidClaims,
    /// The keys could not be fetched, so nothing can be verified right now.
    #[error("signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl From<jsonwebtoken::errors::Error> for TokenError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        match e.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
            ErrorKind::InvalidAudience => TokenError::WrongAudience,
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                TokenError::InvalidClaims
            }
            _ => TokenError::Malformed,
        }
    }
}

/// Where verification keys come from.
enum KeySource {
    /// A fixed set (auth-svc's own keys, or a configured public key file).
    Static(HashMap<String, Arc<DecodingKey>>),
    /// auth-svc's JWKS, cached and refetched on an unknown `kid`.
    Jwks(JwksCache),
}

/// Verifies Shop access tokens: EdDSA only, known `kid`, valid signature,
/// `exp`, `iss` and `aud` checked.
pub struct TokenVerifier {
    keys: KeySource,
    validation: Validation,
    verified: Mutex<HashMap<String, Verified>>,
}

/// A token verified a moment ago: checking an Ed25519 signature is most of
/// the CPU an authenticated request costs, and clients send the same token
/// for many requests. Keyed by the whole token, so only that exact token
/// hits; kept for at most [`VERIFIED_FOR`] (so a key withdrawn from the
/// JWKS stops being honoured soon) and never past the token's `exp`.
struct Verified {
    claims: Claims,
    until: Instant,
}

/// Clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 30;
/// How long a verified token is remembered.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// How many verified tokens are remembered at most.
const VERIFIED_MAX: usize = 10_000;

impl TokenVerifier {
    fn new(keys: KeySource, issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            keys,
            validation,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Trusts exactly the Ed25519 keys of `jwks`.
    pub fn from_jwk_set(jwks: &JwkSet, issuer: &str, audience: &str) -> Self {
        Self::new(KeySource::Static(ed25519_keys(jwks)), issuer, audience)
    }

    /// Trusts one public key given as SPKI PEM; its `kid` is its thumbprint,
    /// as auth-svc computes it.
    pub fn from_public_key_pem(pem: &str, issuer: &str, audience: &str) -> Result<Self, String> {
        let key =
            ed25519_dalek::VerifyingKey::from_public_key_pem(pem).map_err(|e| e.to_string())?;
        let jwk = public_jwk(&key).map_err(|e| e.to_string())?;
        Ok(Self::from_jwk_set(
            &JwkSet { keys: vec![jwk] },
            issuer,
            audience,
        ))
    }

    /// Trusts the keys of auth-svc's JWKS, fetched through `cache`.
    pub fn from_jwks(cache: JwksCache, issuer: &str, audience: &str) -> Self {
        Self::new(KeySource::Jwks(cache), issuer, audience)
    }

    /// The verifier a service's configuration asks for: the public key file
    /// when one is set, else auth-svc's JWKS.
    pub fn from_config(verifier: &VerifierConfig, jwt: &JwtConfig) -> Result<Self, String> {
        match &verifier.jwt_public_key_file {
            Some(path) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| format!("reading JWT_PUBLIC_KEY_FILE {}: {e}", path.display()))?;
                Self::from_public_key_pem(&pem, &jwt.jwt_issuer, &jwt.jwt_audience)
                    .map_err(|e| format!("JWT_PUBLIC_KEY_FILE {}: {e}", path.display()))
            }
            None => Ok(Self::from_jwks(
                JwksCache::new(verifier.jwks_url.clone()),
                &jwt.jwt_issuer,
                &jwt.jwt_audience,
            )),
        }
    }

    /// Verifies a compact JWT and returns its claims (from the memory of
    /// recently verified tokens when it is there).
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let now = Instant::now();
        if let Some(hit) = self.remembered().get(token).filter(|v| v.until > now) {
            return Ok(hit.claims.clone());
        }
        let claims = self.verify_signature(token).await?;
        // Remembered no longer than the token is valid (with the leeway).
        let left = claims.exp.saturating_add(LEEWAY_SECS as i64) - chrono::Utc::now().timestamp();
        let keep = VERIFIED_FOR.min(Duration::from_secs(u64::try_from(left).unwrap_or(0)));
        let mut verified = self.remembered();
        if verified.len() >= VERIFIED_MAX {
            verified.retain(|_, v| v.until > now);
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
        }
        verified.insert(
            token.to_string(),
            Verified {
                claims: claims.clone(),
                until: now + keep,
            },
        );
        Ok(claims)
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<String, Verified>> {
        // A poisoned map holds only verified tokens.
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        // `alg: none` and unknown algorithms fail to parse here.
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::WrongAlgorithm);
        }
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        let key = match &self.keys {
            KeySource::Static(keys) => keys.get(&kid).cloned().ok_or(TokenError::UnknownKey)?,
            KeySource::Jwks(cache) => cache.key(&kid).await?,
        };
        Ok(jsonwebtoken::decode::<Claims>(token, &key, &self.validation)?.claims)
    }
}

/// The usable keys of a JWKS: Ed25519 keys with a `kid`. Anything else (an
/// HMAC secret, an RSA key) is skipped, so it can never verify a token.
pub(crate) fn ed25519_keys(jwks: &JwkSet) -> HashMap<String, Arc<DecodingKey>> {
    jwks.keys
        .iter()
        .filter_map(|jwk| match (&jwk.common.key_id, &jwk.algorithm) {
            (Some(kid), AlgorithmParameters::OctetKeyPair(p))
                if p.curve == EllipticCurve::Ed25519 =>
            {
                DecodingKey::from_jwk(jwk)
                    .ok()
                    .map(|key| (kid.clone(), Arc::new(key)))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use uuid::Uuid;

    use super::*;
    use crate::auth::{Role, SigningKey, TokenIssuer};

    const ISS: &str = "shop-auth";
    const AUD: &str = "shop";

    fn issuer(key: SigningKey) -> TokenIssuer {
        TokenIssuer::new(key, [], ISS, AUD, Duration::from_secs(900))
    }

    fn claims(issuer: &str, audience: &str, exp_offset: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            sub: Uuid::new_v4(),
            username: "alice".into(),
            role: Role::Customer,
            iat: now,
            exp: now + exp_offset,
            iss: issuer.into(),
            aud: audience.into(),
            jti: Uuid::new_v4(),
        }
    }

    fn setup() -> (TokenIssuer, TokenVerifier) {
        let issuer = issuer(SigningKey::generate());
        let verifier = TokenVerifier::from_jwk_set(issuer.jwks(), ISS, AUD);
        (issuer, verifier)
    }

    #[tokio::test]
    async fn a_valid_token_verifies_and_carries_its_claims() {
        let (issuer, verifier) = setup();
        let user = Uuid::new_v4();
        let issued = issuer.issue(user, "alice", Role::Admin).expect("issue");
        let claims = verifier.verify(&issued.token).await.expect("valid");
        assert_eq!(
            (claims.sub, claims.role, claims.username.as_str()),
            (user, Role::Admin, "alice")
        );
        assert_eq!(issued.expires_in, 900);
    }

    #[tokio::test]
    async fn a_remembered_token_helps_no_other_token_and_is_kept_only_while_valid() {
        let (issuer, verifier) = setup();
        let issued = issuer
            .issue(Uuid::new_v4(), "alice", Role::Customer)
            .expect("issue");
        let first = verifier.verify(&issued.token).await.expect("valid");
        assert_eq!(verifier.verify(&issued.token).await, Ok(first));
        // The same claims under a forged signature are still refused.
        let (head, _) = issued.token.rsplit_once('.').expect("three parts");
        let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode([7u8; 64]));
        assert_eq!(
            verifier.verify(&forged).await,
            Err(TokenError::BadSignature)
        );
        // A token about to expire is remembered no longer than it is valid.
        let short = issuer
            .sign(&claims(ISS, AUD, -(LEEWAY_SECS as i64) + 1))
            .expect("sign");
        assert!(verifier.verify(&short).await.is_ok());
        let until = verifier
            .remembered()
            .get(&short)
            .map(|v| v.until)
            .expect("kept");
        assert!(until <= Instant::now() + Duration::from_secs(1));
    }

    #[tokio::test]
    async fn expired_wrong_issuer_and_wrong_audience_are_refused() {
        let (issuer, verifier) = setup();
        let expired = issuer.sign(&claims(ISS, AUD, -3600)).expect("sign");
        assert_eq!(verifier.verify(&expired).await, Err(TokenError::Expired));
        let wrong_iss = issuer
            .sign(&claims("someone-else", AUD, 600))
            .expect("sign");
        assert_eq!(
            verifier.verify(&wrong_iss).await,
            Err(TokenError::WrongIssuer)
        );
        let wrong_aud = issuer.sign(&claims(ISS, "other-app", 600)).expect("sign");
        assert_eq!(
            verifier.verify(&wrong_aud).await,
            Err(TokenError::WrongAudience)
        );
    }

    #[tokio::test]
    async fn a_tampered_payload_fails_the_signature_check() {
        let (issuer, verifier) = setup();
        let token = issuer
            .issue(Uuid::new_v4(), "alice", Role::Customer)
            .expect("issue")
            .token;
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        payload["role"] = "admin".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).expect("json"));
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(
            verifier.verify(&forged).await,
            Err(TokenError::BadSignature)
        );
    }

    #[tokio::test]
    async fn alg_none_and_symmetric_algorithms_are_refused() {
        let (issuer, verifier) = setup();
        let kid = issuer.jwks().keys[0].common.key_id.clone().expect("kid");
        let body =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(ISS, AUD, 600)).expect("json"));
        let none_header =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#));
        let unsigned = format!("{none_header}.{body}.");
        assert_eq!(verifier.verify(&unsigned).await, Err(TokenError::Malformed));

        // An HS256 token "signed" with the public key bytes: the classic
        // algorithm-confusion forgery.
        let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
        header.kid = Some(kid);
        let hs = jsonwebtoken::encode(
            &header,
            &claims(ISS, AUD, 600),
            &jsonwebtoken::EncodingKey::from_secret(b"public-key-bytes"),
        )
        .expect("sign");
        assert_eq!(verifier.verify(&hs).await, Err(TokenError::WrongAlgorithm));
        assert_eq!(
            verifier.verify("not a token").await,
            Err(TokenError::Malformed)
        );
    }

    #[tokio::test]
    async fn a_token_from_another_key_is_refused_even_under_our_kid() {
        let (issuer, verifier) = setup();
        let stranger = self::issuer(SigningKey::generate());
        let token = stranger
            .issue(Uuid::new_v4(), "mallory", Role::Admin)
            .expect("issue")
            .token;
        assert_eq!(verifier.verify(&token).await, Err(TokenError::UnknownKey));

        // Same token, header rewritten to claim our kid: the signature fails.
        let our_kid = issuer.jwks().keys[0].common.key_id.clone().expect("kid");
        let header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"EdDSA","typ":"JWT","kid":"{our_kid}"}}"#
        ));
        let (_, rest) = token.split_once('.').expect("jwt");
        let spoofed = format!("{header}.{rest}");
        assert_eq!(
            verifier.verify(&spoofed).await,
            Err(TokenError::BadSignature)
        );
    }

    #[tokio::test]
    async fn a_public_key_file_verifies_tokens_of_its_private_key() {
        let key = SigningKey::generate();
        let public_pem = key.public_key_pem();
        let issuer = issuer(key);
        let verifier = TokenVerifier::from_public_key_pem(&public_pem, ISS, AUD).expect("verifier");
        let token = issuer
            .issue(Uuid::new_v4(), "alice", Role::Customer)
            .expect("issue")
            .token;
        assert!(verifier.verify(&token).await.is_ok());
    }
}
