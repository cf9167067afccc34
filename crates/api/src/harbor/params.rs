//! Query parameters of a Harbor API request.

use super::error::HarborError;

/// The decoded query parameters, in order.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes a query string.
    pub fn parse(query: Option<&str>) -> Self {
        Params(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every pair.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `key` as an integer, when present.
    pub fn integer(&self, key: &str) -> Result<Option<i64>, HarborError> {
        self.get(key)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| HarborError::bad_request(format!("{key} must be an integer")))
            })
            .transpose()
    }

    /// `key` as a boolean, when present.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, HarborError> {
        self.get(key)
            .map(|v| match v {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(HarborError::bad_request(format!(
                    "{key} must be true or false"
                ))),
            })
            .transpose()
    }
}
