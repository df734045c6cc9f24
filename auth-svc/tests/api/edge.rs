//! Edge protection of auth-svc against a real Redis: the rate limits (per
//! address, behind trusted proxies or not; per account, counting failures
//! only; Redis stopped mid-run), the bounded bcrypt work, control
//! characters and unknown methods.

use common::ratelimit::{Policy, RateLimitConfig, TrustedProxies};
use common::testing::{PrivateRedis, edge_with, eventually};
use futures_util::future::join_all;
use reqwest::Response;
use serde_json::json;
use std::time::Duration;

use crate::helpers::{PASSWORD, TestApp, assert_problem, spawn_app, spawn_app_with};

fn limits(rates: &[(Policy, &str)]) -> RateLimitConfig {
    rates
        .iter()
        .try_fold(common::testing::edge().limits, |limits, (policy, rate)| {
            limits.with(*policy, rate)
        })
        .expect("valid rates")
}

fn local_proxy() -> TrustedProxies {
    TrustedProxies::parse("127.0.0.1/32").expect("cidr")
}

async fn limited_app(rates: &[(Policy, &str)], trust_local_proxy: bool) -> TestApp {
    let mut limits = limits(rates);
    if trust_local_proxy {
        limits = limits.trusting(local_proxy());
    }
    spawn_app_with(|config| config.edge = edge_with(limits)).await
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ascii")
        .to_string()
}

async fn assert_limited(response: Response, policy: &str) {
    let retry: u64 = header(&response, "retry-after").parse().expect("seconds");
    assert!(retry >= 1, "Retry-After {retry}");
    assert!(header(&response, "ratelimit-policy").contains(&format!("\"{policy}\"")));
    let body = assert_problem(response, 429).await;
    assert_eq!(body["policy"], policy);
    assert_eq!(body["type"], "urn:shop:problem:rate-limited");
}

fn wrong_login(username: &str) -> serde_json::Value {
    json!({"username": username, "password": "not the password"})
}

#[tokio::test]
async fn login_ip_limits_each_client_address_seen_through_a_trusted_proxy() {
    let app = limited_app(&[(Policy::LoginIp, "3/min")], true).await;
    for remaining in [2, 1, 0] {
        let response = app
            .post_from("203.0.113.1", "/login", &wrong_login("nobody"))
            .await;
        assert_eq!(response.status(), 401);
        assert_eq!(
            header(&response, "ratelimit-policy"),
            r#""login_ip";q=3;w=60, "login_account";q=5;w=900"#
        );
        let state = header(&response, "ratelimit");
        assert!(
            state.starts_with(&format!(r#""login_ip";r={remaining};t="#)),
            "{state}"
        );
    }
    let over = app
        .post_from("203.0.113.1", "/login", &wrong_login("nobody"))
        .await;
    assert_limited(over, "login_ip").await;
    // Another client behind the same proxy has its own quota; a hop the
    // client wrote itself (left of the one the proxy appended) is ignored.
    let other = app
        .post_from("203.0.113.1, 203.0.113.2", "/login", &wrong_login("nobody"))
        .await;
    assert_eq!(other.status(), 401);
    assert_eq!(
        app.metric("rate_limited_total", &[("policy", "login_ip")])
            .await,
        1.0
    );
}

#[tokio::test]
async fn an_untrusted_peer_cannot_escape_the_limit_by_forging_x_forwarded_for() {
    let app = limited_app(&[(Policy::LoginIp, "3/min")], false).await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let forged = format!("198.51.100.{i}");
        let response = app
            .post_from(&forged, "/login", &wrong_login("nobody"))
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
}

#[tokio::test]
async fn failed_logins_are_limited_per_account_from_any_address_and_successes_do_not_count() {
    let app = limited_app(&[(Policy::LoginAccount, "3/15min")], true).await;
    assert_eq!(
        app.register("alice", "alice@example.com").await.status(),
        201
    );
    let good = json!({"username": "alice", "password": PASSWORD});
    for _ in 0..5 {
        assert_eq!(
            app.post_from("203.0.113.9", "/login", &good).await.status(),
            200
        );
    }
    // Three guesses from three addresses use up the account's quota...
    for i in 1..=3 {
        let guess = app
            .post_from(&format!("198.51.100.{i}"), "/login", &wrong_login("alice"))
            .await;
        assert_eq!(guess.status(), 401);
    }
    // ...so a fourth address is refused, even with the right password, and
    // so is the account's email (the same account, any spelling).
    let fourth = app.post_from("198.51.100.4", "/login", &good).await;
    assert_limited(fourth, "login_account").await;
    let by_email = json!({"username": "ALICE", "password": PASSWORD});
    assert_eq!(
        app.post_from("198.51.100.5", "/login", &by_email)
            .await
            .status(),
        429
    );
    // Another account is untouched.
    assert_eq!(app.register("bob", "bob@example.com").await.status(), 201);
    assert_eq!(app.login("bob", PASSWORD).await.status(), 200);
    assert_eq!(
        app.metric("rate_limited_total", &[("policy", "login_account")])
            .await,
        2.0
    );
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let app = limited_app(&[(Policy::RegisterIp, "2/hour")], true).await;
    let body = |name: &str| json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD});
    for name in ["user1", "user2"] {
        assert_eq!(
            app.post_from("203.0.113.5", "/register", &body(name))
                .await
                .status(),
            201
        );
    }
    let over = app
        .post_from("203.0.113.5", "/register", &body("user3"))
        .await;
    assert_limited(over, "register_ip").await;
    let elsewhere = app
        .post_from("203.0.113.6", "/register", &body("user3"))
        .await;
    assert_eq!(elsewhere.status(), 201);
}

#[tokio::test]
async fn with_redis_stopped_mid_run_requests_are_served_and_limits_return_with_it() {
    let mut redis = PrivateRedis::start();
    let mut edge = redis.edge(limits(&[(Policy::LoginIp, "2/min")]));
    edge.limits = edge.limits.clone().trusting(local_proxy());
    let app = spawn_app_with(|config| config.edge = edge).await;
    let wrong = wrong_login("nobody");
    let attempt = || app.post_from("203.0.113.1", "/login", &wrong);
    eventually("Redis connected", Duration::from_secs(10), || async {
        (attempt().await.status() == 429).then_some(())
    })
    .await;

    redis.stop();
    for _ in 0..5 {
        let response = attempt().await;
        assert_eq!(response.status(), 401, "served, neither limited nor failed");
        assert!(
            response.headers().get("ratelimit").is_none(),
            "no quota to report"
        );
    }
    assert!(app.metric("rate_limit_errors_total", &[]).await >= 5.0);
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200, "Redis is not a readiness condition");

    redis.restart();
    eventually("limits enforced again", Duration::from_secs(15), || async {
        (attempt().await.status() == 429).then_some(())
    })
    .await;
}

#[tokio::test]
async fn bcrypt_work_beyond_the_workers_and_queue_is_refused_at_once() {
    let app = spawn_app_with(|config| {
        // Slow enough hashes that every request arrives while they run.
        config.auth.bcrypt_cost = 10;
        config.auth.bcrypt_concurrency = Some(1);
        config.auth.bcrypt_queue = Some(1);
    })
    .await;
    let names: Vec<String> = (0..8).map(|i| format!("nobody{i}")).collect();
    let attempts = names.iter().map(|name| app.login(name, "not the password"));
    let responses = join_all(attempts).await;
    let mut unavailable = 0;
    for response in responses {
        match response.status().as_u16() {
            401 => {}
            503 => {
                assert_eq!(header(&response, "retry-after"), "1");
                assert_problem(response, 503).await;
                unavailable += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(unavailable >= 1, "nothing was refused");
    assert_eq!(
        app.metric("password_hashes_rejected_total", &[]).await,
        f64::from(unavailable)
    );
    // Once the work is done the service takes logins again.
    assert_eq!(app.login("nobody", "not the password").await.status(), 401);
}

#[tokio::test]
async fn control_characters_in_any_text_field_are_400_naming_the_field() {
    let app = spawn_app().await;
    let valid = json!({"username": "carol", "email": "carol@example.com", "password": PASSWORD});
    for field in ["username", "email", "password"] {
        for bad in ["a\u{0}b-carol", "tab\tcarol", "bell\u{7}carol"] {
            let mut body = valid.clone();
            body[field] = json!(bad);
            let problem = assert_problem(app.post_json("/register", &body).await, 400).await;
            assert!(problem["errors"][field].is_array(), "{field}: {problem}");
        }
    }
    for field in ["username", "password"] {
        let mut body = json!({"username": "carol", "password": PASSWORD});
        body[field] = json!("a\u{0}b");
        let problem = assert_problem(app.post_json("/login", &body).await, 400).await;
        assert_eq!(
            problem["errors"][field][0],
            "must not contain control characters"
        );
    }
}

#[tokio::test]
async fn unknown_methods_are_405_on_known_paths_and_never_grow_the_metrics() {
    let app = spawn_app().await;
    let send = |method: String, path: &'static str| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("token");
        app.client.request(method, app.url(path)).send()
    };
    let allowed = send("DELETE".into(), "/login").await.expect("request");
    assert_eq!(header(&allowed, "allow"), "POST");
    assert_problem(allowed, 405).await;
    let healthz = send("POST".into(), "/healthz").await.expect("request");
    assert_eq!(healthz.status(), 405);

    // The first odd method creates the OTHER series (for a known path and
    // for an unknown one); a thousand more add none.
    assert_eq!(
        send("WEIRD0".into(), "/login")
            .await
            .expect("request")
            .status(),
        405
    );
    assert_eq!(
        send("M0".into(), "/no/such/path")
            .await
            .expect("request")
            .status(),
        404
    );
    let series = || async {
        let text = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("metrics");
        let text = text.text().await.expect("text");
        text.lines().filter(|l| !l.starts_with('#')).count()
    };
    series().await; // its own series appear from the next scrape on
    let before = series().await;
    for chunk in (1..=1000).collect::<Vec<_>>().chunks(50) {
        let sends = chunk.iter().map(|i| send(format!("WEIRD{i}"), "/login"));
        for response in join_all(sends).await {
            assert_eq!(response.expect("request").status(), 405);
        }
        let unknown = chunk.iter().map(|i| send(format!("M{i}"), "/no/such/path"));
        for response in join_all(unknown).await {
            assert_eq!(response.expect("request").status(), 404);
        }
    }
    assert_eq!(series().await, before, "a method token made new series");
}
