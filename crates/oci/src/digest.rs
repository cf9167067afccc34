//! Content digests (`algorithm:encoded`), validated before any path or query is formed.

use std::fmt;
use std::str::FromStr;

/// The digest algorithms Berth accepts for content it stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the registry default.
    Sha256,
    /// SHA-512, accepted where clients ask for it.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as it appears before the colon in a digest.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Number of lowercase hex characters in the encoded part.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// Parses an algorithm name such as `sha256`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            _ => Err(DigestError::Unsupported(s.chars().take(32).collect())),
        }
    }
}

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The string is not of the form `algorithm:encoded`.
    #[error("digest is not of the form algorithm:hex")]
    Malformed,
    /// The algorithm is well formed but not one Berth supports.
    #[error("unsupported digest algorithm {0:?}")]
    Unsupported(String),
    /// The encoded part has the wrong length or characters for its algorithm.
    #[error("invalid {algorithm} encoding: expected {expected} lowercase hex characters")]
    BadEncoding {
        /// Algorithm named by the digest.
        algorithm: &'static str,
        /// Required number of hex characters.
        expected: usize,
    },
}

/// A validated content digest: a supported algorithm and its lowercase hex encoding.
///
/// Only [`Digest::parse`] (or hashing) builds one, so holders may use the encoded part
/// in file paths without further checks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    text: String,
    algorithm: Algorithm,
}

impl Digest {
    /// Parses and validates `algorithm:hex`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let (alg, enc) = s.split_once(':').ok_or(DigestError::Malformed)?;
        if alg.is_empty() || enc.is_empty() {
            return Err(DigestError::Malformed);
        }
        if !alg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
        {
            return Err(DigestError::Malformed);
        }
        let algorithm = Algorithm::parse(alg)?;
        let lowercase_hex = enc
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if enc.len() != algorithm.hex_len() || !lowercase_hex {
            return Err(DigestError::BadEncoding {
                algorithm: algorithm.as_str(),
                expected: algorithm.hex_len(),
            });
        }
        Ok(Digest {
            text: s.to_owned(),
            algorithm,
        })
    }

    /// Builds the digest of raw hash output.
    pub fn from_hash(algorithm: Algorithm, hash: &[u8]) -> Self {
        Digest {
            text: format!("{}:{}", algorithm.as_str(), hex::encode(hash)),
            algorithm,
        }
    }

    /// Computes the digest of `data` with `algorithm`.
    pub fn compute(algorithm: Algorithm, data: &[u8]) -> Self {
        let mut hasher = crate::ResumableHasher::new(algorithm);
        hasher.update(data);
        hasher.finish()
    }

    /// The digest algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part after the colon.
    pub fn encoded(&self) -> &str {
        &self.text[self.algorithm.as_str().len() + 1..]
    }

    /// The full `algorithm:hex` text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, ok: bool) {
        assert_eq!(Digest::parse(input).is_ok(), ok, "{input:?}");
    }

    #[test]
    fn accepts_only_canonical_digests() {
        let hex64 = "a".repeat(64);
        check(&format!("sha256:{hex64}"), true);
        check(&format!("sha512:{}", "0".repeat(128)), true);
        check("sha256:abc", false);
        check(&format!("sha256:{}", "A".repeat(64)), false);
        check("md5:d41d8cd98f00b204e9800998ecf8427e", false);
        check("foo:bar", false);
        check("sha256:../../../etc/passwd", false);
        check(&format!("sha256:{hex64}/.."), false);
        check(&format!("sha256:{}\0", "a".repeat(63)), false);
        check("sha256", false);
        check(":abc", false);
        check(&format!("SHA256:{hex64}"), false);
    }

    #[test]
    fn encoded_part_follows_the_colon() {
        let d = Digest::compute(Algorithm::Sha256, b"");
        assert_eq!(
            d.encoded(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.algorithm(), Algorithm::Sha256);
    }
}
