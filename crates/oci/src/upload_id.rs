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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lowercase_hex_of_the_right_length() {
        let id = UploadId::from_random([0xab; 16]);
        assert_eq!(UploadId::parse(id.as_str()), Ok(id));
        assert!(UploadId::parse("../../etc/passwd").is_err());
        assert!(UploadId::parse(&"A".repeat(32)).is_err());
        assert!(UploadId::parse(&"a".repeat(31)).is_err());
    }
}
