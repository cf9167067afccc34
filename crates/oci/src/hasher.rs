//! Incremental hashing whose state can be saved and restored, so an upload can resume
//! after a restart or on another node without re-reading what was already received.

use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest as _, Sha256, Sha512};

use crate::{Algorithm, Digest};

/// Why a saved hash state could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("saved hash state is corrupt")]
pub struct HashStateError;

/// A running SHA-256 or SHA-512 computation (SHA-NI is used when the CPU has it).
#[derive(Clone)]
pub enum ResumableHasher {
    /// SHA-256 state.
    Sha256(Sha256),
    /// SHA-512 state.
    Sha512(Sha512),
}

impl ResumableHasher {
    /// Starts a new computation.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => ResumableHasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => ResumableHasher::Sha512(Sha512::new()),
        }
    }

    /// The algorithm being computed.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            ResumableHasher::Sha256(_) => Algorithm::Sha256,
            ResumableHasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            ResumableHasher::Sha256(h) => h.update(data),
            ResumableHasher::Sha512(h) => h.update(data),
        }
    }

    /// Finishes the computation.
    pub fn finish(self) -> Digest {
        let algorithm = self.algorithm();
        match self {
            ResumableHasher::Sha256(h) => Digest::from_hash(algorithm, &h.finalize()),
            ResumableHasher::Sha512(h) => Digest::from_hash(algorithm, &h.finalize()),
        }
    }

    /// Serializes the running state (a few hundred bytes at most).
    pub fn save(&self) -> Vec<u8> {
        match self {
            ResumableHasher::Sha256(h) => h.serialize().to_vec(),
            ResumableHasher::Sha512(h) => h.serialize().to_vec(),
        }
    }

    /// Restores a state produced by [`ResumableHasher::save`].
    pub fn restore(algorithm: Algorithm, state: &[u8]) -> Result<Self, HashStateError> {
        match algorithm {
            Algorithm::Sha256 => {
                let arr = state.try_into().map_err(|_| HashStateError)?;
                Sha256::deserialize(arr)
                    .map(ResumableHasher::Sha256)
                    .map_err(|_| HashStateError)
            }
            Algorithm::Sha512 => {
                let arr = state.try_into().map_err(|_| HashStateError)?;
                Sha512::deserialize(arr)
                    .map(ResumableHasher::Sha512)
                    .map_err(|_| HashStateError)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_resumes_to_the_same_digest() {
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut h = ResumableHasher::new(alg);
            h.update(b"hello ");
            let saved = h.save();
            let mut resumed = ResumableHasher::restore(alg, &saved).unwrap();
            resumed.update(b"world");
            assert_eq!(resumed.finish(), Digest::compute(alg, b"hello world"));
        }
        assert!(ResumableHasher::restore(Algorithm::Sha256, b"short").is_err());
    }
}
