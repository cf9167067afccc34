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

/// A repository name from a path: Harbor's clients encode its slashes twice
/// (`a%252Fb`), so after the router's decoding one more round is needed.
pub fn repository_param(raw: &str) -> Result<String, HarborError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| HarborError::bad_request("invalid escape in the repository name"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| HarborError::bad_request("the repository name is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_lose_their_second_encoding() {
        assert_eq!(repository_param("a%2Fb").unwrap(), "a/b");
        assert_eq!(repository_param("plain").unwrap(), "plain");
        assert!(repository_param("bad%2").is_err());
        assert!(repository_param("bad%zz").is_err());
    }
}
