//! `sslmode` against the real local PostgreSQL (Debian's default has TLS
//! on with a self-signed certificate).
#![cfg(feature = "testing")]

use common::db;
use secrecy::SecretString;

fn url(sslmode: &str) -> SecretString {
    let admin = common::testing::admin_url();
    let sep = if admin.contains('?') { '&' } else { '?' };
    format!("{admin}{sep}sslmode={sslmode}").into()
}

/// Whether the session is encrypted, as the server sees it.
async fn encrypted(url: &SecretString) -> Result<bool, db::ConnectError> {
    let (client, connection) = db::connect(url).await?;
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn sslmode_means_what_it_means_in_libpq() {
    assert!(
        !encrypted(&url("disable")).await.expect("plain connection"),
        "disable: never TLS"
    );
    let server_tls: bool = {
        let (client, connection) = db::connect(&url("disable")).await.expect("connect");
        tokio::spawn(connection);
        let row = client.query_one("SHOW ssl", &[]).await.expect("show ssl");
        row.get::<_, String>(0) == "on"
    };
    if server_tls {
        assert!(
            encrypted(&url("prefer")).await.expect("prefer"),
            "prefer: TLS when offered"
        );
        assert!(
            encrypted(&url("require")).await.expect("require"),
            "require: TLS, certificate not checked"
        );
        // A self-signed certificate is not trusted by the public roots.
        assert!(
            encrypted(&url("verify-full")).await.is_err(),
            "verify-full checks the certificate"
        );
    } else {
        assert!(
            !encrypted(&url("prefer")).await.expect("prefer"),
            "prefer: plain when not offered"
        );
        assert!(
            encrypted(&url("require")).await.is_err(),
            "require: refuses a server without TLS"
        );
    }
}

#[tokio::test]
async fn the_pool_and_migrations_use_the_same_rules() {
    let pool = db::pool(&url("prefer"), 1).expect("pool");
    db::client(&pool)
        .await
        .expect("pooled connection")
        .simple_query("SELECT 1")
        .await
        .expect("query");
    assert!(
        db::pool(&url("sometimes"), 1).is_err(),
        "an unknown sslmode is a configuration error"
    );
}
