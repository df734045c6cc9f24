//! Which key signs tokens: the configured key file, or else the key kept in
//! the database (created once, shared by every replica).

use anyhow::Context as _;
use common::auth::{SigningKey, TokenIssuer};
use common::db::PgPool;

use crate::config::AuthConfig;
use crate::repository::signing_keys;

/// Builds the token issuer from the configured or the stored key.
pub async fn load_issuer(config: &AuthConfig, pool: &PgPool) -> anyhow::Result<TokenIssuer> {
    let (active, older) = match &config.auth.jwt_private_key_file {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("reading JWT_PRIVATE_KEY_FILE {}", path.display()))?;
            let key = SigningKey::from_pkcs8_pem(&pem)
                .with_context(|| format!("JWT_PRIVATE_KEY_FILE {}", path.display()))?;
            (key, Vec::new())
        }
        None => {
            tracing::warn!(
                "JWT_PRIVATE_KEY_FILE is not set: signing with a key generated once and kept in the \
                 database; configure a key file in production"
            );
            stored_keys(pool).await?
        }
    };
    tracing::info!(kid = active.kid(), "token signing key loaded");
    let older = older
        .iter()
        .map(|k| k.public_jwk().clone())
        .collect::<Vec<_>>();
    Ok(TokenIssuer::new(
        active,
        older,
        config.jwt.jwt_issuer.clone(),
        config.jwt.jwt_audience.clone(),
        config.token_ttl(),
    ))
}

/// The newest stored key (generating the first one under a lock, so replicas
/// starting together agree) and the older ones, still published.
async fn stored_keys(pool: &PgPool) -> anyhow::Result<(SigningKey, Vec<SigningKey>)> {
    let mut client = pool.get().await.context("database connection")?;
    let tx = client.transaction().await.context("begin")?;
    signing_keys::lock(&tx).await?;
    let mut stored = signing_keys::all(&tx).await?;
    if stored.is_empty() {
        let key = SigningKey::generate();
        signing_keys::insert(&tx, key.kid(), key.to_pkcs8_pem()).await?;
        stored.push((key.kid().to_string(), key.to_pkcs8_pem().to_string()));
    }
    tx.commit().await.context("commit")?;
    let mut keys = stored
        .iter()
        .map(|(kid, pem)| {
            SigningKey::from_pkcs8_pem(pem).with_context(|| format!("stored signing key {kid}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let active = keys.remove(0);
    Ok((active, keys))
}
