//! Keyset pagination shared by the list endpoints: an opaque cursor (the
//! last id of a page) and the `limit` parameter.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 20;
/// Largest page size.
pub const MAX_LIMIT: i64 = 100;

/// An opaque position in a listing: the last id of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub Uuid);

impl Cursor {
    /// The opaque text form.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    /// Reads the text form back.
    pub fn decode(text: &str) -> Result<Self, &'static str> {
        URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|bytes| Uuid::from_slice(&bytes).ok())
            .map(Cursor)
            .ok_or("is not a cursor returned by this API")
    }

    /// An optional `cursor` parameter (absent or empty: the first page).
    pub fn parse_param(raw: Option<&str>) -> Result<Option<Uuid>, &'static str> {
        match raw {
            None | Some("") => Ok(None),
            Some(raw) => Self::decode(raw).map(|c| Some(c.0)),
        }
    }
}

/// The `limit` parameter: 1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
pub fn parse_limit(raw: Option<&str>) -> Result<i64, String> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or(format!("must be a whole number from 1 to {MAX_LIMIT}")),
    }
}

/// Cuts a page fetched with `limit + 1` rows down to `limit`, returning the
/// cursor of the next page when there is one.
pub fn split_page<T>(items: &mut Vec<T>, limit: i64, id: impl Fn(&T) -> Uuid) -> Option<Cursor> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| Cursor(id(last)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_limits_are_bounded() {
        let id = Uuid::now_v7();
        assert_eq!(Cursor::decode(&Cursor(id).encode()), Ok(Cursor(id)));
        assert!(Cursor::decode("AAAA").is_err());
        assert_eq!(Cursor::parse_param(Some("")), Ok(None));
        assert_eq!(parse_limit(None), Ok(DEFAULT_LIMIT));
        assert!(
            parse_limit(Some("0")).is_err()
                && parse_limit(Some("101")).is_err()
                && parse_limit(Some("x")).is_err()
        );
    }

    #[test]
    fn pages_are_split_with_a_cursor_only_when_more_follow() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let mut page = ids.clone();
        assert_eq!(split_page(&mut page, 2, |id| *id), Some(Cursor(ids[1])));
        assert_eq!(page.len(), 2);
        let mut last = ids.clone();
        assert_eq!(split_page(&mut last, 3, |id| *id), None);
    }
}
