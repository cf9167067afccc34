//! A strict JSON check that refuses duplicate object keys at any depth.
//!
//! Two parsers that resolve duplicate keys differently could disagree on what a
//! manifest references (the CVE-2021-41190 class), so such documents are refused.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Parses `bytes` as one JSON value, failing on duplicate keys or trailing garbage.
pub fn check_no_duplicate_keys(bytes: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<StrictValue>(bytes).map(|_| ())
}

struct StrictValue;

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<StrictValue, E> {
        Ok(StrictValue)
    }
    fn visit_i64<E>(self, _: i64) -> Result<StrictValue, E> {
        Ok(StrictValue)
    }
    fn visit_u64<E>(self, _: u64) -> Result<StrictValue, E> {
        Ok(StrictValue)
    }
    fn visit_f64<E>(self, _: f64) -> Result<StrictValue, E> {
        Ok(StrictValue)
    }
    fn visit_str<E>(self, _: &str) -> Result<StrictValue, E> {
        Ok(StrictValue)
    }
    fn visit_unit<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        while seq.next_element::<StrictValue>()?.is_some() {}
        Ok(StrictValue)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value::<StrictValue>()?;
        }
        Ok(StrictValue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_duplicates_at_any_depth() {
        assert!(check_no_duplicate_keys(br#"{"a":1,"b":{"c":[{"d":1}]}}"#).is_ok());
        assert!(check_no_duplicate_keys(br#"{"a":1,"a":2}"#).is_err());
        assert!(check_no_duplicate_keys(br#"{"a":{"x":[{"d":1,"d":2}]}}"#).is_err());
        assert!(check_no_duplicate_keys(br#"{"a":1} trailing"#).is_err());
        assert!(check_no_duplicate_keys(b"\xef\xbb\xbf{}").is_err());
    }
}
