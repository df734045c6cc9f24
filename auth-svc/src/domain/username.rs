//! A username: 3-32 characters of `[A-Za-z0-9_.-]`.

/// A valid username, as the user typed it (uniqueness ignores case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Accepts 3-32 characters of letters, digits, `_`, `.` and `-`.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let len = raw.chars().count();
        if !(3..=32).contains(&len) {
            return Err("must be 3 to 32 characters long");
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err("may contain only letters, digits, '_', '.' and '-'");
        }
        Ok(Self(raw.to_string()))
    }

    /// The username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet_and_lengths() {
        for ok in ["abc", "Alice_01", "a.b-c", &"x".repeat(32)] {
            assert_eq!(
                Username::parse(ok).map(|u| u.as_str().to_string()),
                Ok(ok.to_string())
            );
        }
    }

    #[test]
    fn rejects_bad_lengths_and_characters() {
        for bad in [
            "",
            "ab",
            &"x".repeat(33),
            "has space",
            "émile",
            "semi;colon",
            "a@b.c",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
