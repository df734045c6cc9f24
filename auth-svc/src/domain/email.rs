//! An email address.

/// A syntactically valid email address (RFC 5321 limits: 254 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain` addresses; the domain must have a dot, since
    /// Shop mails real people, not `root@localhost`.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.trim();
        if trimmed.len() > 254 {
            return Err("must be at most 254 characters long");
        }
        let valid = email_address::EmailAddress::is_valid(trimmed)
            && trimmed.rsplit_once('@').is_some_and(|(_, domain)| {
                domain.contains('.') && !domain.starts_with('[') && !domain.ends_with('.')
            });
        if !valid {
            return Err("is not a valid email address");
        }
        Ok(Self(trimmed.to_string()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in [
            "a@example.com",
            "first.last+tag@sub.example.org",
            " padded@example.com ",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok:?} should be accepted");
        }
        assert_eq!(
            Email::parse(" padded@example.com ").map(|e| e.0),
            Ok("padded@example.com".into())
        );
    }

    #[test]
    fn rejects_malformed_addresses() {
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@example.com",
            "a@example.com.",
            &long,
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
