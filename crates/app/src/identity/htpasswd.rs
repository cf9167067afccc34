//! A read-only htpasswd file of bcrypt hashes, as Distribution's `auth.htpasswd`
//! uses: an extra source of users.

use std::collections::HashMap;
use std::path::Path;

/// The file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    /// It could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `user:bcrypt-hash`.
    #[error("{path}, line {line}: expected user:bcrypt-hash")]
    Malformed {
        /// The file.
        path: String,
        /// The line number.
        line: usize,
    },
}

/// Users and their bcrypt hashes.
#[derive(Debug, Clone, Default)]
pub struct Htpasswd {
    hashes: HashMap<String, String>,
}

impl Htpasswd {
    /// Reads the file at `path`; only bcrypt hashes are accepted.
    pub fn load(path: &Path) -> Result<Self, HtpasswdError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Read {
            path: name.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|line| HtpasswdError::Malformed { path: name, line })
    }

    /// Parses the file's text; the error is the first bad line's number.
    pub fn parse(text: &str) -> Result<Self, usize> {
        let mut hashes = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line.split_once(':').ok_or(i + 1)?;
            if user.is_empty() || !hash.starts_with("$2") {
                return Err(i + 1);
            }
            hashes.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Htpasswd { hashes })
    }

    /// The bcrypt hash of `user`.
    pub fn hash(&self, user: &str) -> Option<&str> {
        self.hashes.get(user).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_user_and_bcrypt_hash() {
        let h = Htpasswd::parse("# users\nalice:$2y$05$abc\n\nbob:$2b$04$def\n").unwrap();
        assert_eq!(h.hash("alice"), Some("$2y$05$abc"));
        assert_eq!(h.hash("carol"), None);
        assert_eq!(Htpasswd::parse("alice:{SHA}abc").unwrap_err(), 1);
        assert_eq!(Htpasswd::parse("ok:$2y$x\nnocolon").unwrap_err(), 2);
    }
}
