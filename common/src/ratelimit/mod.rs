//! Rate limits shared by every replica, kept in Redis.
//!
//! Each policy is a GCRA (generic cell rate algorithm) bucket per key,
//! checked and updated by one Lua script with Redis's own clock, so
//! replicas agree and no check-then-set race lets extra requests through.
//! A bucket is one integer (the "theoretical arrival time") that expires
//! with the quota, so idle keys cost nothing.
//!
//! Redis unreachable or slow: the request is served (fail open), counted in
//! `rate_limit_errors_total`, and a warning is logged at most once a minute;
//! limits never turn into a 5xx or an unready service.
//!
//! Every response of a limited route carries the IETF `RateLimit-Policy`
//! and `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers); a request
//! over a limit gets 429 with `Retry-After`.

mod client_ip;
mod rate;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use redis::Script;
use serde::Deserialize;

pub use client_ip::TrustedProxies;
pub use rate::{Policy, Rate};

use crate::auth::AuthUser;
use crate::redis::Redis;
use crate::web::{OPERATIONAL_PATHS, Problem};

/// `RateLimit-Policy`: the quota of each policy that applies to a route.
pub const RATE_LIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`: what is left of each quota after this request.
pub const RATE_LIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The settings as read from the environment: `RATE_LIMITS` (`on`/`off`),
/// `TRUSTED_PROXIES` and one `RATE_LIMIT_<POLICY>` per policy.
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    /// `off` disables every policy.
    pub rate_limits: String,
    /// CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: String,
    /// `RATE_LIMIT_LOGIN_IP`.
    pub rate_limit_login_ip: Option<String>,
    /// `RATE_LIMIT_LOGIN_ACCOUNT`.
    pub rate_limit_login_account: Option<String>,
    /// `RATE_LIMIT_REGISTER_IP`.
    pub rate_limit_register_ip: Option<String>,
    /// `RATE_LIMIT_WRITES_USER`.
    pub rate_limit_writes_user: Option<String>,
    /// `RATE_LIMIT_READS_IP`.
    pub rate_limit_reads_ip: Option<String>,
}

/// Validated rate-limit settings.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    rates: [Option<Rate>; 5],
    trusted: TrustedProxies,
}

impl Default for RateLimitConfig {
    /// Every policy at its default rate; no trusted proxies.
    fn default() -> Self {
        let rates = Policy::ALL.map(|p| Rate::parse(p.default_rate()).ok().flatten());
        Self {
            rates,
            trusted: TrustedProxies::default(),
        }
    }
}

impl RateLimitConfig {
    /// No limits at all (`RATE_LIMITS=off`).
    pub fn off() -> Self {
        Self {
            rates: [None; 5],
            trusted: TrustedProxies::default(),
        }
    }

    /// Validates the settings; the error names the offending variable.
    pub fn from_settings(settings: &RateLimitSettings) -> Result<Self, String> {
        let trusted = TrustedProxies::parse(&settings.trusted_proxies)?;
        let mut config = match settings.rate_limits.trim().to_ascii_lowercase().as_str() {
            "on" => Self::default(),
            "off" => Self::off(),
            other => return Err(format!("RATE_LIMITS must be on or off, not {other:?}")),
        };
        config.trusted = trusted;
        if config.rates.iter().all(Option::is_none) {
            return Ok(config);
        }
        let given = [
            &settings.rate_limit_login_ip,
            &settings.rate_limit_login_account,
            &settings.rate_limit_register_ip,
            &settings.rate_limit_writes_user,
            &settings.rate_limit_reads_ip,
        ];
        for (policy, text) in Policy::ALL.into_iter().zip(given) {
            if let Some(text) = text {
                let env = format!("RATE_LIMIT_{}", policy.name().to_ascii_uppercase());
                config.rates[policy as usize] =
                    Rate::parse(text).map_err(|e| format!("{env}: {e}"))?;
            }
        }
        Ok(config)
    }

    /// The same, with `policy` at `rate` (`"off"` disables it).
    pub fn with(mut self, policy: Policy, rate: &str) -> Result<Self, String> {
        self.rates[policy as usize] = Rate::parse(rate)?;
        Ok(self)
    }

    /// The same, believing `X-Forwarded-For` from `proxies`.
    pub fn trusting(mut self, proxies: TrustedProxies) -> Self {
        self.trusted = proxies;
        self
    }

    /// The rate of `policy`, `None` when it is off.
    pub fn rate(&self, policy: Policy) -> Option<Rate> {
        self.rates[policy as usize]
    }
}

/// GCRA in one atomic step. KEYS[1]: the bucket. ARGV: the interval one
/// request's share takes to refill (ms), the period of a full quota (ms),
/// and the cost (1 takes, -1 gives one back). Answers {allowed, remaining,
/// retry after ms, reset after ms}.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + cost * interval
if cost < 0 then
  if new_tat <= now then redis.call('DEL', KEYS[1])
  else redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now) end
  return {1, 0, 0, 0}
end
local allow_at = new_tat - period
if allow_at > now then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return {1, math.floor((now - allow_at) / interval), 0, new_tat - now}
";

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The policy checked.
    pub policy: Policy,
    /// Its rate.
    pub rate: Rate,
    /// What Redis said; `None` when it could not be asked (served anyway).
    pub quota: Option<Quota>,
}

/// What is left of a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Whether this request fits.
    pub allowed: bool,
    /// Requests left right now.
    pub remaining: u64,
    /// Seconds until a refused request would fit (0 when allowed).
    pub retry_after_secs: u64,
    /// Seconds until the quota is whole again (or, refused, until the next
    /// request fits).
    pub reset_secs: u64,
}

impl Decision {
    /// False only when Redis said the request is over the limit.
    pub fn allowed(&self) -> bool {
        self.quota.is_none_or(|q| q.allowed)
    }
}

/// A request over a limit: 429 with `Retry-After`.
#[derive(Debug, thiserror::Error)]
#[error("rate limit {} exceeded", .0.policy.name())]
pub struct RateLimited(pub Decision);

impl RateLimited {
    /// The problem+json 429. The `RateLimit` headers are added by the
    /// middleware from the request's recorded decisions.
    pub fn problem(&self) -> Problem {
        let retry = self.0.quota.map_or(1, |q| q.retry_after_secs.max(1));
        Problem::new(StatusCode::TOO_MANY_REQUESTS)
            .with_type("rate-limited", "Too many requests")
            .with_detail(format!(
                "over the {} limit of {} requests per {} s; retry in {retry} s",
                self.0.policy.name(),
                self.0.rate.count,
                self.0.rate.period.as_secs()
            ))
            .with_extension("policy", self.0.policy.name())
            .with_header(header::RETRY_AFTER, HeaderValue::from(retry))
    }
}

impl actix_web::ResponseError for RateLimited {
    fn status_code(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        self.problem().to_response()
    }
}

/// The decisions taken for one request, in the request extensions, for the
/// response headers.
#[derive(Debug, Default, Clone)]
struct Decisions(Vec<Decision>);

/// Checks requests against the policies.
pub struct RateLimiter {
    config: RateLimitConfig,
    redis: Arc<Redis>,
    prefix: String,
    gcra: Script,
    limited: IntCounterVec,
    errors: IntCounter,
    last_warning: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter over `redis` (keys `<REDIS_KEY_PREFIX>rl:<policy>:<key>`),
    /// registering `rate_limited_total{policy}` and `rate_limit_errors_total`.
    pub fn new(
        config: RateLimitConfig,
        redis: Arc<Redis>,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let limited = IntCounterVec::new(
            Opts::new("rate_limited_total", "Requests refused with 429, by policy"),
            &["policy"],
        )?;
        let errors = IntCounter::new(
            "rate_limit_errors_total",
            "Rate-limit checks Redis could not answer in time (the request was served)",
        )?;
        registry.register(Box::new(limited.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        Ok(Self {
            config,
            prefix: redis.key("rl:"),
            gcra: redis.script(GCRA),
            redis,
            limited,
            errors,
            last_warning: Mutex::new(None),
        })
    }

    /// The client's address as the policies see it.
    pub fn client_key(&self, req: &HttpRequest) -> String {
        self.config
            .trusted
            .client_ip(req)
            .map_or_else(|| "unknown".into(), |ip| ip.to_string())
    }

    async fn gcra(&self, policy: Policy, rate: Rate, key: &str, cost: i64) -> Option<Quota> {
        let mut invocation = self
            .gcra
            .key(format!("{}{}:{key}", self.prefix, policy.name()));
        invocation
            .arg(rate.interval_ms())
            .arg(rate.period.as_millis() as u64)
            .arg(cost);
        let answer: Option<(i64, i64, i64, i64)> = self.redis.run("rate_limit", &invocation).await;
        let Some((allowed, remaining, retry_ms, reset_ms)) = answer else {
            self.errors.inc();
            self.warn();
            return None;
        };
        let secs = |ms: i64| (ms.max(0) as u64).div_ceil(1000);
        Some(Quota {
            allowed: allowed == 1,
            remaining: remaining.max(0) as u64,
            retry_after_secs: secs(retry_ms),
            reset_secs: secs(if allowed == 1 { reset_ms } else { retry_ms }),
        })
    }

    fn warn(&self) {
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            tracing::warn!("Redis cannot be asked; rate limits are not enforced meanwhile");
            *last = Some(Instant::now());
        }
    }

    /// Takes one request from `policy`'s quota for `key` and records the
    /// decision for the response headers. Over the limit: `RateLimited`.
    /// A disabled policy is always `Ok`.
    pub async fn check(
        &self,
        req: &HttpRequest,
        policy: Policy,
        key: &str,
    ) -> Result<(), RateLimited> {
        let Some(rate) = self.config.rate(policy) else {
            return Ok(());
        };
        let decision = Decision {
            policy,
            rate,
            quota: self.gcra(policy, rate, key, 1).await,
        };
        req.extensions_mut()
            .get_or_insert_with(Decisions::default)
            .0
            .push(decision);
        if decision.allowed() {
            Ok(())
        } else {
            self.limited.with_label_values(&[policy.name()]).inc();
            Err(RateLimited(decision))
        }
    }

    /// [`RateLimiter::check`] keyed by the client's address.
    pub async fn check_client(&self, req: &HttpRequest, policy: Policy) -> Result<(), RateLimited> {
        let key = self.client_key(req);
        self.check(req, policy, &key).await
    }

    /// Gives back the request [`RateLimiter::check`] took (a login that
    /// succeeded does not count against `LOGIN_ACCOUNT`).
    pub async fn refund(&self, policy: Policy, key: &str) {
        if let Some(rate) = self.config.rate(policy) {
            self.gcra(policy, rate, key, -1).await;
        }
    }
}

/// Renders the headers for the decisions of one request.
fn headers(decisions: &[Decision]) -> (String, String) {
    let mut policy = String::new();
    let mut state = String::new();
    for d in decisions {
        let sep = if policy.is_empty() { "" } else { ", " };
        let _ = write!(
            policy,
            "{sep}\"{}\";q={};w={}",
            d.policy.name(),
            d.rate.count,
            d.rate.period.as_secs()
        );
        if let Some(q) = d.quota {
            let sep = if state.is_empty() { "" } else { ", " };
            let _ = write!(
                state,
                "{sep}\"{}\";r={};t={}",
                d.policy.name(),
                q.remaining,
                q.reset_secs
            );
        }
    }
    (policy, state)
}

fn is_read(req: &ServiceRequest) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD)
        && !OPERATIONAL_PATHS.contains(&req.path())
        && !req.path().starts_with("/docs")
        && !req.path().starts_with("/openapi/")
}

/// Middleware (in every app): applies `READS_IP` to reads when it is on,
/// and writes the `RateLimit-Policy` / `RateLimit` headers of whatever
/// policies the request was checked against.
pub async fn rate_limit_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limiter = req.app_data::<web::Data<RateLimiter>>().cloned();
    if let Some(limiter) = &limiter
        && is_read(&req)
        && limiter.config.rate(Policy::ReadsIp).is_some()
        && let Err(limited) = limiter.check_client(req.request(), Policy::ReadsIp).await
    {
        let response = limited.problem().to_response();
        let mut res = req.into_response(response).map_into_right_body();
        add_headers(&mut res);
        return Ok(res);
    }
    let mut res = next.call(req).await?.map_into_left_body();
    add_headers(&mut res);
    Ok(res)
}

fn add_headers<B>(res: &mut ServiceResponse<B>) {
    let decisions = res.request().extensions().get::<Decisions>().cloned();
    let Some(Decisions(decisions)) = decisions else {
        return;
    };
    let (policy, state) = headers(&decisions);
    let headers = res.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(RATE_LIMIT_POLICY, value);
    }
    if !state.is_empty()
        && let Ok(value) = HeaderValue::from_str(&state)
    {
        headers.insert(RATE_LIMIT, value);
    }
}

/// An authenticated caller whose request counts against `WRITES_USER`:
/// take it instead of [`AuthUser`] in handlers that change data.
#[derive(Debug, Clone)]
pub struct Writer(pub AuthUser);

impl FromRequest for Writer {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = AuthUser::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let user = user.await?;
            if let Some(limiter) = req.app_data::<web::Data<RateLimiter>>() {
                limiter
                    .check(&req, Policy::WritesUser, &user.id.to_string())
                    .await?;
            }
            Ok(Writer(user))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(policy: Policy, quota: Option<Quota>) -> Decision {
        Decision {
            policy,
            rate: Rate::parse(policy.default_rate())
                .ok()
                .flatten()
                .expect("a default rate"),
            quota,
        }
    }

    #[test]
    fn headers_list_every_policy_in_structured_field_syntax() {
        let quota = Quota {
            allowed: true,
            remaining: 19,
            retry_after_secs: 0,
            reset_secs: 3,
        };
        let (policy, state) = headers(&[
            decision(Policy::LoginIp, Some(quota)),
            decision(Policy::LoginAccount, None),
        ]);
        assert_eq!(policy, r#""login_ip";q=20;w=60, "login_account";q=5;w=900"#);
        assert_eq!(
            state, r#""login_ip";r=19;t=3"#,
            "no state where Redis was not asked"
        );
    }

    #[test]
    fn settings_validate_and_name_the_variable() {
        let settings = |on: &str, login: Option<&str>| RateLimitSettings {
            rate_limits: on.into(),
            trusted_proxies: "10.0.0.0/8".into(),
            rate_limit_login_ip: login.map(Into::into),
            rate_limit_login_account: None,
            rate_limit_register_ip: Some("off".into()),
            rate_limit_writes_user: None,
            rate_limit_reads_ip: None,
        };
        let config = RateLimitConfig::from_settings(&settings("on", Some("3/s"))).expect("valid");
        assert_eq!(config.rate(Policy::LoginIp).map(|r| r.count), Some(3));
        assert_eq!(config.rate(Policy::RegisterIp), None);
        assert_eq!(config.rate(Policy::WritesUser).map(|r| r.count), Some(120));
        assert_eq!(config.rate(Policy::ReadsIp), None);
        let off = RateLimitConfig::from_settings(&settings("off", Some("3/s"))).expect("valid");
        assert!(Policy::ALL.iter().all(|p| off.rate(*p).is_none()));
        let bad = RateLimitConfig::from_settings(&settings("on", Some("3/week")));
        assert!(bad.is_err_and(|e| e.starts_with("RATE_LIMIT_LOGIN_IP")));
        assert!(RateLimitConfig::from_settings(&settings("maybe", None)).is_err());
    }
}
