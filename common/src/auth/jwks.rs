//! A cache of auth-svc's JWKS.
//!
//! Keys are served from memory; an unknown `kid` triggers one refetch (so a
//! key rotation is picked up at once), rate-limited so that tokens with
//! made-up `kid`s cannot turn into a flood of requests. Cached keys older
//! than `max_age` are still served while a refresh runs in the background
//! (stale-while-revalidate), and kept when auth-svc cannot be reached: a
//! slow, hung or absent auth-svc costs a request whose key is known nothing,
//! and a short outage does not log everybody out.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;

use super::TokenError;
use super::verifier::ed25519_keys;

#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
    /// When the last fetch was attempted and why it failed, if it did.
    last_attempt: Option<(Instant, Option<String>)>,
}

/// Fetches and caches the JWKS published at a URL.
pub struct JwksCache {
    inner: Arc<Inner>,
}

/// What the cache and its background refreshes share.
struct Inner {
    url: String,
    client: reqwest::Client,
    state: RwLock<State>,
    /// Serialises fetches, so concurrent misses cause one request.
    fetching: Arc<tokio::sync::Mutex<()>>,
    max_age: Duration,
    min_refetch_interval: Duration,
}

impl JwksCache {
    /// A cache for `url` (e.g. `http://auth-svc/.well-known/jwks.json`);
    /// nothing is fetched until the first token needs a key.
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_intervals(url, Duration::from_secs(300), Duration::from_secs(5))
    }

    /// As [`JwksCache::new`], with explicit refresh intervals.
    pub fn with_intervals(
        url: impl Into<String>,
        max_age: Duration,
        min_refetch_interval: Duration,
    ) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a client without TLS options always builds");
        Self {
            inner: Arc::new(Inner {
                url: url.into(),
                client,
                state: RwLock::new(State::default()),
                fetching: Arc::new(tokio::sync::Mutex::new(())),
                max_age,
                min_refetch_interval,
            }),
        }
    }

    /// The key for `kid`. A known key is answered at once, even when it is
    /// due for a refresh (which then starts in the background, one at a
    /// time); an unknown `kid` waits for one (rate-limited) fetch.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, TokenError> {
        match self.inner.lookup(kid) {
            (Some(key), true) => return Ok(key),
            (Some(key), false) => {
                // Nobody waits for it: a fetch already under way makes this
                // one unnecessary, and a failed one keeps the cached keys.
                if let Ok(guard) = self.inner.fetching.clone().try_lock_owned() {
                    let inner = self.inner.clone();
                    tokio::spawn(async move {
                        let _ = inner.refresh_locked(guard).await;
                    });
                }
                return Ok(key);
            }
            (None, _) => {
                let guard = self.inner.fetching.clone().lock_owned().await;
                self.inner.refresh_locked(guard).await?;
            }
        }
        self.inner.lookup(kid).0.ok_or(TokenError::UnknownKey)
    }
}

impl Inner {
    fn lookup(&self, kid: &str) -> (Option<Arc<DecodingKey>>, bool) {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let fresh = state.fetched_at.is_some_and(|t| t.elapsed() < self.max_age);
        (state.keys.get(kid).cloned(), fresh)
    }

    /// Refetches, holding the fetch lock, unless another fetch happened
    /// within the minimum interval; fails when the JWKS could not be had.
    async fn refresh_locked(
        &self,
        _one_at_a_time: tokio::sync::OwnedMutexGuard<()>,
    ) -> Result<(), TokenError> {
        let recent = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            state
                .last_attempt
                .as_ref()
                .filter(|(at, _)| at.elapsed() < self.min_refetch_interval)
                .map(|(_, error)| error.clone())
        };
        let outcome = match recent {
            Some(previous_error) => previous_error,
            None => {
                let fetched = self.fetch().await;
                let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
                let error = match fetched {
                    Ok(keys) => {
                        state.keys = keys;
                        state.fetched_at = Some(Instant::now());
                        None
                    }
                    Err(e) => {
                        tracing::warn!(url = %self.url, error = %e, "fetching the JWKS failed");
                        Some(e)
                    }
                };
                state.last_attempt = Some((Instant::now(), error.clone()));
                error
            }
        };
        outcome.map_or(Ok(()), |e| Err(TokenError::KeysUnavailable(e)))
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
        let response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let response = response.error_for_status().map_err(|e| e.to_string())?;
        let jwks: JwkSet = response.json().await.map_err(|e| e.to_string())?;
        Ok(ed25519_keys(&jwks))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use actix_web::{App, HttpResponse, HttpServer, web};
    use jsonwebtoken::jwk::JwkSet;
    use uuid::Uuid;

    use crate::auth::{JwksCache, Role, SigningKey, TokenError, TokenIssuer, TokenVerifier};

    /// A JWKS endpoint whose key set the test changes, counting fetches;
    /// `None` answers 503.
    #[derive(Clone, Default)]
    struct FakeAuth {
        keys: Arc<Mutex<Option<JwkSet>>>,
        fetches: Arc<AtomicUsize>,
        /// While set, requests hang (longer than the client's timeout).
        hung: Arc<AtomicBool>,
    }

    impl FakeAuth {
        async fn start(&self) -> String {
            let state = self.clone();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let server = HttpServer::new(move || {
                let state = state.clone();
                App::new().route(
                    "/jwks",
                    web::get().to(move || {
                        let state = state.clone();
                        async move {
                            state.fetches.fetch_add(1, Ordering::SeqCst);
                            if state.hung.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                            }
                            match state.keys.lock().expect("lock").clone() {
                                Some(keys) => HttpResponse::Ok().json(keys),
                                None => HttpResponse::ServiceUnavailable().finish(),
                            }
                        }
                    }),
                )
            })
            .workers(1)
            .listen(listener)
            .expect("listen")
            .run();
            tokio::spawn(server);
            format!("http://127.0.0.1:{port}/jwks")
        }

        fn publish(&self, issuers: &[&TokenIssuer]) {
            let keys = issuers.iter().flat_map(|i| i.jwks().keys.clone()).collect();
            *self.keys.lock().expect("lock") = Some(JwkSet { keys });
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(
            SigningKey::generate(),
            [],
            "iss",
            "aud",
            Duration::from_secs(600),
        )
    }

    fn token(issuer: &TokenIssuer) -> String {
        issuer
            .issue(Uuid::new_v4(), "alice", Role::Customer)
            .expect("issue")
            .token
    }

    #[tokio::test]
    async fn a_rotated_key_is_fetched_on_its_first_token_and_made_up_kids_do_not_flood() {
        let auth = FakeAuth::default();
        let url = auth.start().await;
        let (old, new, stranger) = (issuer(), issuer(), issuer());
        auth.publish(&[&old]);
        let cache =
            JwksCache::with_intervals(url, Duration::from_secs(300), Duration::from_millis(200));
        let verifier = TokenVerifier::from_jwks(cache, "iss", "aud");

        assert!(verifier.verify(&token(&old)).await.is_ok());
        assert!(verifier.verify(&token(&old)).await.is_ok());
        assert_eq!(auth.fetches(), 1, "known keys come from the cache");

        // Rotation: the new key is published; its first token triggers a refetch.
        auth.publish(&[&old, &new]);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(verifier.verify(&token(&new)).await.is_ok());
        assert_eq!(auth.fetches(), 2);

        // Tokens under kids nobody published: one refetch per interval at most.
        for _ in 0..20 {
            assert_eq!(
                verifier.verify(&token(&stranger)).await,
                Err(TokenError::UnknownKey)
            );
        }
        assert!(auth.fetches() <= 3, "{} fetches", auth.fetches());
    }

    #[tokio::test]
    async fn known_keys_outlive_an_auth_outage_but_nothing_verifies_without_keys() {
        let auth = FakeAuth::default();
        let url = auth.start().await;
        let key = issuer();
        auth.publish(&[&key]);
        // Every lookup finds the cache stale, so each one tries to refresh.
        let verifier = TokenVerifier::from_jwks(
            JwksCache::with_intervals(url.clone(), Duration::ZERO, Duration::ZERO),
            "iss",
            "aud",
        );
        assert!(verifier.verify(&token(&key)).await.is_ok());
        *auth.keys.lock().expect("lock") = None;
        assert!(
            verifier.verify(&token(&key)).await.is_ok(),
            "cached key still trusted while auth is down"
        );

        let cold = TokenVerifier::from_jwks(JwksCache::new(url), "iss", "aud");
        assert!(matches!(
            cold.verify(&token(&key)).await,
            Err(TokenError::KeysUnavailable(_))
        ));
    }

    #[tokio::test]
    async fn stale_keys_are_served_at_once_and_refreshed_in_the_background() {
        let auth = FakeAuth::default();
        let url = auth.start().await;
        let key = issuer();
        auth.publish(&[&key]);
        // Every lookup finds the cache due for a refresh.
        let verifier = TokenVerifier::from_jwks(
            JwksCache::with_intervals(url, Duration::ZERO, Duration::ZERO),
            "iss",
            "aud",
        );
        assert!(verifier.verify(&token(&key)).await.is_ok());
        assert_eq!(auth.fetches(), 1);

        // auth-svc hangs: verifying requests must not wait on the refresh
        // (the client would give up only after 5 s).
        auth.hung.store(true, Ordering::SeqCst);
        for _ in 0..5 {
            let verified =
                tokio::time::timeout(Duration::from_millis(500), verifier.verify(&token(&key)))
                    .await;
            assert!(
                matches!(verified, Ok(Ok(_))),
                "a known key waited on a hung auth-svc"
            );
        }
        // One background refresh is under way, not one per request.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(auth.fetches(), 2, "refreshes run one at a time");

        // Stopped rather than hung: the same.
        auth.hung.store(false, Ordering::SeqCst);
        *auth.keys.lock().expect("lock") = None;
        tokio::time::sleep(Duration::from_secs(6)).await; // the hung fetch times out
        let before = auth.fetches();
        assert!(verifier.verify(&token(&key)).await.is_ok());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            auth.fetches(),
            before + 1,
            "a stale cache is refreshed in the background"
        );
    }
}
