//! A password, which never prints.

use common::text::{Lines, check_controls};

/// A password of 8 to 128 characters. `Debug` is redacted so that it cannot
/// reach a log by accident.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// Accepts 8 to 128 characters (not bytes), none of them a control
    /// character.
    pub fn parse(raw: String) -> Result<Self, &'static str> {
        check_controls(&raw, Lines::Single)?;
        match raw.chars().count() {
            0..=7 => Err("must be at least 8 characters long"),
            8..=128 => Ok(Self(raw)),
            _ => Err("must be at most 128 characters long"),
        }
    }

    /// A password offered at login, checked against a hash rather than
    /// today's rules (which it may predate).
    pub(super) fn candidate(raw: String) -> Self {
        Self(raw)
    }

    /// The secret itself, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters_and_debug_is_redacted() {
        assert!(Password::parse("short".into()).is_err());
        assert!(
            Password::parse("ééééééé".into()).is_err(),
            "7 characters, 14 bytes"
        );
        assert!(Password::parse("éééééééé".into()).is_ok());
        assert!(Password::parse("x".repeat(129)).is_err());
        let pw = Password::parse("correct horse".into()).expect("valid");
        assert!(!format!("{pw:?}").contains("horse"));
    }
}
