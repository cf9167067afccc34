//! Password and secret hashing: argon2id for what Berth stores, bcrypt accepted for
//! htpasswd files, and Harbor's password policy.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// The cost of argon2id hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for HashCost {
    /// OWASP's recommendation for argon2id: 19 MiB, two passes, one lane.
    fn default() -> Self {
        HashCost {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// The cost is outside what argon2 accepts.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid password hashing cost: {0}")]
pub struct InvalidCost(String);

/// Hashes and verifies passwords and secrets.
pub struct Passwords {
    argon: Argon2<'static>,
    /// Verified against when there is no stored hash, so that an unknown user costs
    /// as much time as a wrong password.
    decoy: String,
}

impl Passwords {
    /// A hasher at `cost`.
    pub fn new(cost: HashCost) -> Result<Self, InvalidCost> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| InvalidCost(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut passwords = Passwords {
            argon,
            decoy: String::new(),
        };
        passwords.decoy = passwords.hash("a decoy nobody can know: unknown users verify it");
        Ok(passwords)
    }

    /// The PHC string of `secret`'s argon2id hash with a fresh salt.
    pub fn hash(&self, secret: &str) -> String {
        let salt_bytes: [u8; 16] = rand::random();
        let salt = SaltString::encode_b64(&salt_bytes).expect("16 bytes make a valid salt");
        self.argon
            .hash_password(secret.as_bytes(), &salt)
            .expect("argon2 hashes any input with valid parameters")
            .to_string()
    }

    /// Whether `secret` matches `stored` (argon2 or bcrypt). With no stored hash the
    /// decoy is verified instead and the answer is `false`, in the same time. The
    /// comparison of hash outputs is constant-time.
    pub fn verify(&self, secret: &str, stored: Option<&str>) -> bool {
        let (hash, known) = match stored {
            Some(h) => (h, true),
            None => (self.decoy.as_str(), false),
        };
        let matches = if is_bcrypt(hash) {
            bcrypt::verify(secret, hash).unwrap_or(false)
        } else {
            match PasswordHash::new(hash) {
                Ok(parsed) => self
                    .argon
                    .verify_password(secret.as_bytes(), &parsed)
                    .is_ok(),
                Err(_) => {
                    // An unusable stored hash still costs a verification.
                    let decoy = PasswordHash::new(&self.decoy).expect("the decoy parses");
                    let _ = self.argon.verify_password(secret.as_bytes(), &decoy);
                    false
                }
            }
        };
        matches && known
    }
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|p| hash.starts_with(p))
}

/// Why a password was refused by the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the password must be 8 to 128 characters long and contain at least one upper-case \
     letter, one lower-case letter and one digit"
)]
pub struct WeakPassword;

/// Harbor's password policy: 8–128 characters with an upper-case letter, a lower-case
/// letter and a digit.
pub fn check_policy(password: &str) -> Result<(), WeakPassword> {
    let length = password.chars().count();
    let ok = (8..=128).contains(&length)
        && password.chars().any(|c| c.is_ascii_uppercase())
        && password.chars().any(|c| c.is_ascii_lowercase())
        && password.chars().any(|c| c.is_ascii_digit());
    if ok { Ok(()) } else { Err(WeakPassword) }
}

/// A random secret of `len` letters and digits (robot secrets, generated passwords).
pub fn random_secret(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut secret: String = (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    // Every generated secret passes the password policy.
    if check_policy(&secret).is_err() && len >= 3 {
        secret.replace_range(0..3, "aA0");
    }
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Passwords {
        Passwords::new(HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[test]
    fn argon2id_hashes_verify_and_differ_by_salt() {
        let p = cheap();
        let a = p.hash("Secret123");
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, p.hash("Secret123"));
        assert!(p.verify("Secret123", Some(&a)));
        assert!(!p.verify("secret123", Some(&a)));
        assert!(!p.verify("Secret123", None));
        assert!(!p.verify("Secret123", Some("garbage")));
    }

    #[test]
    fn bcrypt_hashes_from_htpasswd_files_verify() {
        let p = cheap();
        let hash = bcrypt::hash("hunter2", 4).unwrap().replace("$2b$", "$2y$");
        assert!(p.verify("hunter2", Some(&hash)));
        assert!(!p.verify("hunter3", Some(&hash)));
    }

    #[test]
    fn the_policy_is_harbors() {
        assert!(check_policy("Harbor12345").is_ok());
        assert!(check_policy("harbor12345").is_err());
        assert!(check_policy("HARBOR12345").is_err());
        assert!(check_policy("HarborHarbor").is_err());
        assert!(check_policy("Ha1").is_err());
        assert!(check_policy(&format!("Aa1{}", "x".repeat(126))).is_err());
        for _ in 0..100 {
            assert!(check_policy(&random_secret(16)).is_ok());
        }
    }
}
