//! Query-string access without allocation for the common no-query case.

use std::borrow::Cow;

/// The decoded query parameters of a request, in order.
pub struct Query<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> Query<'a> {
    /// Parses a raw query string (or none).
    pub fn parse(raw: Option<&'a str>) -> Self {
        Query(
            raw.map(|q| form_urlencoded::parse(q.as_bytes()).collect())
                .unwrap_or_default(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }
}
