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
/// session, when it was opened and the seal that binds that URL to its repository. A
/// session opened so has no record until its first request, which that URL alone may
/// make: the URL says the session is new.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadRef {
    /// The session.
    pub id: UploadId,
    /// On the URL that opened the session: when, and its seal.
    pub opening: Option<Opening>,
}

/// When an upload URL opened its session, and the seal its opener put on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Opening {
    /// When the session was opened (Unix milliseconds).
    pub at: i64,
    /// A keyed hash of the id, the time and the repository, which only the registry can
    /// make.
    pub seal: [u8; Opening::SEAL_LEN],
}

impl Opening {
    /// Bytes in a seal.
    pub const SEAL_LEN: usize = 16;
    /// Hex characters of the time and the seal, after the id.
    const HEX_LEN: usize = 16 + 2 * Self::SEAL_LEN;
}

impl UploadRef {
    /// The URL of a session that has a record.
    pub fn recorded(id: UploadId) -> Self {
        UploadRef { id, opening: None }
    }

    /// The URL that opened session `id`.
    pub fn opened(id: UploadId, opening: Opening) -> Self {
        UploadRef {
            id,
            opening: Some(opening),
        }
    }

    /// Parses the last segment of an upload URL: an id, or an id followed by when the
    /// session was opened (16 hex characters) and its seal (32).
    pub fn parse(s: &str) -> Result<Self, UploadIdError> {
        if s.len() == UploadId::LEN {
            return UploadId::parse(s).map(Self::recorded);
        }
        if s.len() != UploadId::LEN + Opening::HEX_LEN || !is_lowercase_hex(s) {
            return Err(UploadIdError);
        }
        let (id, rest) = s.split_at(UploadId::LEN);
        let (at, seal) = rest.split_at(16);
        let at = u64::from_str_radix(at, 16)
            .ok()
            .and_then(|t| i64::try_from(t).ok())
            .ok_or(UploadIdError)?;
        let mut bytes = [0; Opening::SEAL_LEN];
        hex::decode_to_slice(seal, &mut bytes).map_err(|_| UploadIdError)?;
        Ok(Self::opened(
            UploadId::parse(id)?,
            Opening { at, seal: bytes },
        ))
    }
}

fn is_lowercase_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl fmt::Display for UploadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.opening {
            Some(o) => write!(f, "{}{:016x}{}", self.id, o.at, hex::encode(o.seal)),
            None => write!(f, "{}", self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ref_names_an_id_and_perhaps_its_opening() {
        let id = UploadId::from_random([0xab; 16]);
        let recorded = UploadRef::recorded(id.clone());
        assert_eq!(UploadRef::parse(&recorded.to_string()), Ok(recorded));
        let opening = Opening {
            at: 1_765_000_000_123,
            seal: [0x5c; 16],
        };
        let opened = UploadRef::opened(id.clone(), opening);
        let text = opened.to_string();
        assert_eq!(text.len(), 80);
        assert_eq!(UploadRef::parse(&text), Ok(opened));
        let seal = "5c".repeat(16);
        for bad in [
            format!("{id}{}{seal}", "F".repeat(16)),
            format!("{id}{}{seal}", "f".repeat(16)),
            format!("{id}+{}{seal}", "0".repeat(15)),
            format!("{id}{}{seal}", "0".repeat(15)),
            format!("{id}{}{}", "0".repeat(16), "5c".repeat(15)),
            format!("{}{}{seal}", "A".repeat(32), "0".repeat(16)),
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
