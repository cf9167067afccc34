//! Opaque upload-session identifiers, validated before they name a file or a row.

use std::fmt;

/// An upload session id: 32 lowercase hex characters (128 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(String);

/// Why an upload id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed upload id")]
pub struct UploadIdError;

impl UploadId {
    /// Number of hex characters in an id.
    pub const LEN: usize = 32;

    /// Builds an id from 16 random bytes.
    pub fn from_random(bytes: [u8; 16]) -> Self {
        UploadId(hex::encode(bytes))
    }

    /// Parses an id taken from a URL.
    pub fn parse(s: &str) -> Result<Self, UploadIdError> {
        let hex = s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if s.len() == Self::LEN && hex {
            Ok(UploadId(s.to_owned()))
        } else {
            Err(UploadIdError)
        }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An upload as its URL names it: the session's id and, on the URL that opened the
/// session, when it was opened. A session opened so has no record until its first
/// request, which that URL alone may make: the URL says the session is new.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadRef {
    /// The session.
    pub id: UploadId,
    /// When the session was opened (Unix milliseconds), on the URL that opened it.
    pub opened_at: Option<i64>,
}

impl UploadRef {
    /// Number of hex characters that follow the id on the URL that opened a session.
    const STAMP_LEN: usize = 16;

    /// The URL of a session that has a record.
    pub fn recorded(id: UploadId) -> Self {
        UploadRef {
            id,
            opened_at: None,
        }
    }

    /// The URL that opens session `id` at `opened_at`, before it has a record.
    pub fn opened(id: UploadId, opened_at: i64) -> Self {
        UploadRef {
            id,
            opened_at: Some(opened_at),
        }
    }

    /// Parses the last segment of an upload URL: an id, or an id followed by when the
    /// session was opened (16 hex characters).
    pub fn parse(s: &str) -> Result<Self, UploadIdError> {
        if s.len() == UploadId::LEN {
            return UploadId::parse(s).map(Self::recorded);
        }
        if s.len() != UploadId::LEN + Self::STAMP_LEN || !s.is_ascii() {
            return Err(UploadIdError);
        }
        let (id, stamp) = s.split_at(UploadId::LEN);
        let lowercase_hex = stamp
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let opened_at = u64::from_str_radix(stamp, 16)
            .ok()
            .and_then(|t| i64::try_from(t).ok())
            .filter(|_| lowercase_hex)
            .ok_or(UploadIdError)?;
        Ok(Self::opened(UploadId::parse(id)?, opened_at))
    }
}

impl fmt::Display for UploadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.opened_at {
            Some(at) => write!(f, "{}{:016x}", self.id, at),
            None => write!(f, "{}", self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ref_names_an_id_and_perhaps_when_its_session_was_opened() {
        let id = UploadId::from_random([0xab; 16]);
        let recorded = UploadRef::recorded(id.clone());
        assert_eq!(UploadRef::parse(&recorded.to_string()), Ok(recorded));
        let opened = UploadRef::opened(id.clone(), 1_765_000_000_123);
        let text = opened.to_string();
        assert_eq!(text.len(), 48);
        assert_eq!(UploadRef::parse(&text), Ok(opened));
        for bad in [
            format!("{id}{}", "F".repeat(16)),
            format!("{id}{}", "f".repeat(16)),
            format!("{id}+{}", "0".repeat(15)),
            format!("{id}{}", "0".repeat(15)),
            format!("{}{}", "A".repeat(32), "0".repeat(16)),
        ] {
            assert!(UploadRef::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_lowercase_hex_of_the_right_length() {
        let id = UploadId::from_random([0xab; 16]);
        assert_eq!(UploadId::parse(id.as_str()), Ok(id));
        assert!(UploadId::parse("../../etc/passwd").is_err());
        assert!(UploadId::parse(&"A".repeat(32)).is_err());
        assert!(UploadId::parse(&"a".repeat(31)).is_err());
    }
}
