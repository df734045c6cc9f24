//! The `signing_keys` table: keys shared by every replica when no key file
//! is configured.

use common::db::{Cached as _, DbError, GenericClient};

/// All stored keys as `(kid, PKCS#8 PEM)`, newest first.
pub async fn all(client: &impl GenericClient) -> Result<Vec<(String, String)>, DbError> {
    let rows = client
        .query_cached(
            "SELECT kid, private_key_pem FROM signing_keys ORDER BY created_at DESC, kid",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Serialises key creation between replicas for the rest of the transaction.
pub async fn lock(client: &impl GenericClient) -> Result<(), DbError> {
    client
        .execute_cached(
            "SELECT pg_advisory_xact_lock(hashtext('shop.signing_keys'))",
            &[],
        )
        .await?;
    Ok(())
}

/// Stores a key.
pub async fn insert(client: &impl GenericClient, kid: &str, pem: &str) -> Result<(), DbError> {
    client
        .execute_cached(
            "INSERT INTO signing_keys (kid, private_key_pem) VALUES ($1, $2) ON CONFLICT (kid) DO NOTHING",
            &[&kid, &pem],
        )
        .await?;
    Ok(())
}
