//! Checks shared by every text field a client sends.
//!
//! PostgreSQL refuses NUL in `text`, and other control characters have no
//! business in names, logins or search terms (they garble logs and
//! terminals). Every text field is therefore checked when its domain type is
//! built, so such input is a 400 naming the field, never a 500.

/// Whether a field may hold line breaks and tabs (free text such as a
/// description) or must be a single line (names, logins, search terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// No control character at all.
    Single,
    /// Tab, line feed and carriage return are allowed; other controls are not.
    Multi,
}

/// The message for a field that holds a control character it may not.
pub const CONTROL_CHARACTERS: &str = "must not contain control characters";

/// Refuses NUL and other control characters (C0, DEL, C1), except the line
/// breaks and tabs that [`Lines::Multi`] allows.
pub fn check_controls(value: &str, lines: Lines) -> Result<(), &'static str> {
    let allowed = |c: char| lines == Lines::Multi && matches!(c, '\t' | '\n' | '\r');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        Err(CONTROL_CHARACTERS)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_text_refuses_every_control_character() {
        assert!(check_controls("plain text, ünïcode ✓", Lines::Single).is_ok());
        for bad in ["a\0b", "tab\there", "line\nbreak", "del\u{7f}", "c1\u{85}"] {
            assert_eq!(check_controls(bad, Lines::Single), Err(CONTROL_CHARACTERS));
        }
    }

    #[test]
    fn multi_line_text_allows_breaks_and_tabs_but_not_nul() {
        assert!(check_controls("one\r\ntwo\tthree", Lines::Multi).is_ok());
        assert!(check_controls("a\0b", Lines::Multi).is_err());
        assert!(check_controls("bell\u{7}", Lines::Multi).is_err());
    }
}
