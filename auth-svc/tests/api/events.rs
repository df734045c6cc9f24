use std::time::Duration;

use common::testing::eventually;

use crate::helpers::spawn_app;

/// `user.registered` is written with the user and published by the relay;
/// a refused registration writes nothing.
#[tokio::test]
async fn registration_emits_user_registered_through_the_outbox() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("alice", "alice@example.com").await.status(),
        201
    );
    assert_eq!(
        app.register("alice", "other@example.com").await.status(),
        409
    );

    let pool = common::db::pool(&app.config.service.database_url, 1).expect("pool");
    let client = common::db::client(&pool).await.expect("client");
    let rows = client
        .query(
            "SELECT event_type, payload->'data'->>'username' FROM outbox",
            &[],
        )
        .await
        .expect("outbox");
    assert_eq!(rows.len(), 1, "one event for one registration");
    assert_eq!(rows[0].get::<_, String>(0), "user.registered");
    assert_eq!(
        rows[0].get::<_, Option<String>>(1).as_deref(),
        Some("alice")
    );

    eventually(
        "the relay to publish user.registered",
        Duration::from_secs(15),
        || async {
            let row = client
                .query_one("SELECT published_at IS NOT NULL FROM outbox", &[])
                .await
                .expect("outbox");
            row.get::<_, bool>(0).then_some(())
        },
    )
    .await;
}
