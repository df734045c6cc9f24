use common::auth::Role;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{product_body, spawn_app};

/// Many writers holding the same version: exactly one wins, each loser gets
/// the conflict, and the stored product is exactly the winner's write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_one_version_exactly_one_wins() {
    let app = spawn_app().await;
    let alice = app.user(Role::Customer);
    let created = app.create_ok(&alice, "Contended", json!(1), 100).await;
    let id = created["id"].as_str().expect("id").to_string();

    for round in 1..=5_i64 {
        let writers = (0..16).map(|w| {
            let mut body = product_body(
                &format!("round {round} writer {w}"),
                json!(format!("{w}.{round:02}")),
                w,
            );
            body["version"] = json!(round);
            let (app, alice, id) = (&app, &alice, &id);
            async move { (w, app.put(alice, id, None, &body).await) }
        });
        let results = join_all(writers).await;
        let winners: Vec<i64> = results
            .iter()
            .filter(|(_, r)| r.status() == 200)
            .map(|(w, _)| *w)
            .collect();
        let conflicts = results.iter().filter(|(_, r)| r.status() == 409).count();
        assert_eq!(winners.len(), 1, "round {round}: exactly one winner");
        assert_eq!(conflicts, 15, "round {round}: every other writer conflicts");

        let stored: Value = app.get(&id).await.json().await.expect("json");
        let w = winners[0];
        assert_eq!(stored["version"], round + 1);
        assert_eq!(
            stored["name"],
            format!("round {round} writer {w}"),
            "the winner's write, whole"
        );
        assert_eq!(stored["stock"], w);
        assert_eq!(
            stored["price"],
            json!(format!("{w}.{round:02}").parse::<f64>().expect("number"))
        );
    }
}
