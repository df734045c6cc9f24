//! A rate such as `20/min` or `5/15min`, and the names of the policies.

use std::fmt;
use std::time::Duration;

/// `count` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many requests a full quota holds.
    pub count: u32,
    /// Over how long the quota refills completely.
    pub period: Duration,
}

impl Rate {
    /// Parses `<count>/<period>`, the period `s`, `min`, `hour` or `day`
    /// with an optional number in front: `10/min`, `5/15min`, `100/s`.
    /// `off` is `None` (the policy is disabled).
    pub fn parse(text: &str) -> Result<Option<Self>, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let invalid = || {
            format!(
                "{text:?} is not a rate: expected <count>/<period> such as 10/min or 5/15min \
                 (periods s, min, hour, day), or off"
            )
        };
        let (count, period) = text.split_once('/').ok_or_else(invalid)?;
        let count: u32 = count.trim().parse().map_err(|_| invalid())?;
        let period = period.trim();
        let unit_at = period
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let (multiple, unit) = period.split_at(unit_at);
        let multiple: u64 = if multiple.is_empty() {
            1
        } else {
            multiple.parse().map_err(|_| invalid())?
        };
        let unit_secs = match unit {
            "s" => 1,
            "min" => 60,
            "hour" => 3600,
            "day" => 86_400,
            _ => return Err(invalid()),
        };
        if count == 0 || multiple == 0 {
            return Err(format!(
                "{text:?}: count and period must be positive (or say off)"
            ));
        }
        let secs = multiple
            .checked_mul(unit_secs)
            .filter(|s| *s <= 366 * 86_400);
        let secs = secs.ok_or_else(|| format!("{text:?}: the period is longer than a year"))?;
        if u64::from(count) > secs * 1000 {
            return Err(format!("{text:?}: at most one request per millisecond"));
        }
        Ok(Some(Self {
            count,
            period: Duration::from_secs(secs),
        }))
    }

    /// The time one request's share of the quota takes to refill.
    pub fn interval_ms(&self) -> u64 {
        (self.period.as_millis() as u64 / u64::from(self.count)).max(1)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.count, self.period.as_secs())
    }
}

/// The rate-limit policies, each configured by `RATE_LIMIT_<NAME>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `POST /login` per client address.
    LoginIp,
    /// Failed logins per username or email, from any address.
    LoginAccount,
    /// `POST /register` per client address.
    RegisterIp,
    /// Product and order writes per authenticated user.
    WritesUser,
    /// Reads (`GET`, `HEAD`) per client address.
    ReadsIp,
}

impl Policy {
    /// Every policy.
    pub const ALL: [Policy; 5] = [
        Policy::LoginIp,
        Policy::LoginAccount,
        Policy::RegisterIp,
        Policy::WritesUser,
        Policy::ReadsIp,
    ];

    /// The name in metrics, Redis keys and the `RateLimit` headers.
    pub fn name(self) -> &'static str {
        match self {
            Policy::LoginIp => "login_ip",
            Policy::LoginAccount => "login_account",
            Policy::RegisterIp => "register_ip",
            Policy::WritesUser => "writes_user",
            Policy::ReadsIp => "reads_ip",
        }
    }

    /// The rate when `RATE_LIMIT_<NAME>` is not set.
    pub fn default_rate(self) -> &'static str {
        match self {
            Policy::LoginIp => "20/min",
            Policy::LoginAccount => "5/15min",
            Policy::RegisterIp => "10/hour",
            Policy::WritesUser => "120/min",
            Policy::ReadsIp => "off",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u32, secs: u64) -> Option<Rate> {
        Some(Rate {
            count,
            period: Duration::from_secs(secs),
        })
    }

    #[test]
    fn rates_parse_with_and_without_a_multiple() {
        assert_eq!(Rate::parse("10/min"), Ok(rate(10, 60)));
        assert_eq!(Rate::parse("5/15min"), Ok(rate(5, 900)));
        assert_eq!(Rate::parse(" 100/s "), Ok(rate(100, 1)));
        assert_eq!(Rate::parse("10/hour"), Ok(rate(10, 3600)));
        assert_eq!(Rate::parse("1000/2day"), Ok(rate(1000, 172_800)));
        assert_eq!(Rate::parse("off"), Ok(None));
        assert_eq!(Rate::parse("OFF"), Ok(None));
    }

    #[test]
    fn malformed_rates_are_refused() {
        for bad in [
            "",
            "10",
            "10/",
            "/min",
            "x/min",
            "10/minute",
            "10/m",
            "0/min",
            "10/0min",
            "-1/min",
            "10/min5",
            "5/1000day",
            "5000/s",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn every_default_parses() {
        for policy in Policy::ALL {
            assert!(Rate::parse(policy.default_rate()).is_ok(), "{policy:?}");
        }
        assert_eq!(rate(20, 60).map(|r| r.interval_ms()), Some(3000));
    }
}
