//! Registry bearer tokens: JWTs signed with ES256 (or RS256 with an RSA key), as the
//! Docker token specification describes them, and refresh tokens for its OAuth2 flow.
//!
//! A token is verified once, then remembered until it expires, so a client reusing
//! its token costs a map lookup per request and no database round trip. The lookup
//! hashes only the signature (the token's last part) and then compares the whole
//! token. Expiry and not-before are checked against the application's clock on every
//! use.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// Tokens remembered as verified, at most; past that, expired ones are dropped first.
const MAX_REMEMBERED: usize = 65_536;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: i64 = 30;

/// Why a signing key could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("token signing key: {0}")]
pub struct KeyError(String);

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token this registry signed, or not one for this use.
    #[error("invalid token")]
    Invalid,
    /// Past its expiry, or not yet valid.
    #[error("the token has expired or is not valid yet")]
    Expired,
}

/// The key tokens are signed and verified with.
pub struct SigningKey {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Names the key in token headers.
    kid: String,
}

impl SigningKey {
    /// A new P-256 private key as PKCS#8 PEM (for ES256).
    pub fn generate_pem() -> Result<String, KeyError> {
        let der = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .map_err(|_| KeyError("could not generate a P-256 key".into()))?;
        Ok(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            der.as_ref().to_vec(),
        )))
    }

    /// Reads a PEM private key: a P-256 key in PKCS#8 signs ES256; an RSA key
    /// (PKCS#8 or PKCS#1) signs RS256.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(text).map_err(|e| KeyError(e.to_string()))?;
        let der = block.contents();
        let rng = SystemRandom::new();
        if let Ok(pair) = signature::EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der,
            &rng,
        ) {
            let public = pair.public_key().as_ref().to_vec();
            return Ok(Self::assemble(
                Algorithm::ES256,
                EncodingKey::from_ec_der(der),
                DecodingKey::from_ec_der(&public),
                &public,
            ));
        }
        let rsa = signature::RsaKeyPair::from_pkcs8(der)
            .or_else(|_| signature::RsaKeyPair::from_der(der))
            .map_err(|_| KeyError("expected a P-256 (PKCS#8) or RSA private key in PEM".into()))?;
        let public = rsa.public_key().as_ref().to_vec();
        let encoding = if block.tag() == "RSA PRIVATE KEY" {
            EncodingKey::from_rsa_der(der)
        } else {
            EncodingKey::from_rsa_pem(text.as_bytes()).map_err(|e| KeyError(e.to_string()))?
        };
        Ok(Self::assemble(
            Algorithm::RS256,
            encoding,
            DecodingKey::from_rsa_der(&public),
            &public,
        ))
    }

    fn assemble(
        algorithm: Algorithm,
        encoding: EncodingKey,
        decoding: DecodingKey,
        public: &[u8],
    ) -> Self {
        let fingerprint = sha2::Sha256::digest(public);
        SigningKey {
            algorithm,
            encoding,
            decoding,
            kid: hex::encode(&fingerprint[..16]),
        }
    }

    /// `ES256` or `RS256`.
    pub fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            Algorithm::RS256 => "RS256",
            _ => "ES256",
        }
    }
}

/// One resource a token grants actions on (the token's `access` claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedAccess {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name, or `catalog`.
    pub name: String,
    /// `pull`, `push`, `delete`, `*`.
    pub actions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    nbf: i64,
    iat: i64,
    jti: String,
    #[serde(default)]
    access: Vec<GrantedAccess>,
    /// On refresh tokens: the account's credential stamp when it was issued.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    stamp: String,
}

/// A verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// Who it was issued to (a login name or robot name; empty for anonymous).
    pub subject: String,
    /// What it grants.
    pub access: Vec<GrantedAccess>,
    /// Not valid before (Unix seconds).
    pub not_before: i64,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
}

impl VerifiedToken {
    /// Whether it grants `action` on repository `name` (exactly that name).
    pub fn allows(&self, name: &str, action: &str) -> bool {
        self.access.iter().any(|a| {
            a.kind == "repository"
                && a.name == name
                && a.actions.iter().any(|x| x == action || x == "*")
        })
    }

    /// Whether it grants listing the catalog.
    pub fn allows_catalog(&self) -> bool {
        self.access
            .iter()
            .any(|a| a.kind == "registry" && a.name == "catalog")
    }
}

/// A token as the token endpoint returns it.
/// Not `Debug`: it holds a bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The JWT.
    pub token: String,
    /// Lifetime in seconds.
    pub expires_in: i64,
    /// Issue time (Unix seconds).
    pub issued_at: i64,
}

/// Issues and verifies tokens.
pub struct Tokens {
    key: SigningKey,
    issuer: String,
    service: String,
    access_validation: Validation,
    refresh_validation: Validation,
    remembered: RwLock<HashMap<Box<str>, Remembered>>,
}

/// A verified token, filed under its signature.
struct Remembered {
    token: Box<str>,
    verified: Arc<VerifiedToken>,
}

/// The token's signature: its last part.
fn signature(token: &str) -> &str {
    token.rsplit('.').next().unwrap_or(token)
}

impl Tokens {
    /// Tokens signed by `key`, naming `issuer` and, as audience, `service`.
    pub fn new(key: SigningKey, issuer: &str, service: &str) -> Self {
        let validation = |audience: &str| {
            let mut v = Validation::new(key.algorithm);
            v.set_issuer(&[issuer]);
            v.set_audience(&[audience]);
            // Times are checked against the application's clock, with its leeway.
            v.validate_exp = false;
            v.validate_nbf = false;
            v.set_required_spec_claims(&["iss", "aud", "sub"]);
            v
        };
        Tokens {
            access_validation: validation(service),
            refresh_validation: validation(&refresh_audience(service)),
            key,
            issuer: issuer.to_owned(),
            service: service.to_owned(),
            remembered: RwLock::new(HashMap::new()),
        }
    }

    /// The service name tokens are issued for (their audience).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The signing algorithm's name.
    pub fn algorithm(&self) -> &'static str {
        self.key.algorithm_name()
    }

    /// Signs an access token for `subject` granting `access`, valid for `ttl_secs`.
    pub fn issue(
        &self,
        subject: &str,
        access: Vec<GrantedAccess>,
        ttl_secs: i64,
        now_secs: i64,
    ) -> IssuedToken {
        let token = self.sign(&self.service, subject, access, ttl_secs, now_secs);
        IssuedToken {
            token,
            expires_in: ttl_secs,
            issued_at: now_secs,
        }
    }

    /// Signs a refresh token for `subject`, valid for `ttl_secs`; it only buys new
    /// access tokens, and only while the account still exists, is enabled and has
    /// the credential `stamp` it had when the token was issued.
    pub fn issue_refresh(
        &self,
        subject: &str,
        stamp: &str,
        ttl_secs: i64,
        now_secs: i64,
    ) -> String {
        self.sign_claims(Claims {
            stamp: stamp.to_owned(),
            ..self.claims(
                &refresh_audience(&self.service),
                subject,
                Vec::new(),
                ttl_secs,
                now_secs,
            )
        })
    }

    fn sign(
        &self,
        audience: &str,
        subject: &str,
        access: Vec<GrantedAccess>,
        ttl_secs: i64,
        now_secs: i64,
    ) -> String {
        self.sign_claims(self.claims(audience, subject, access, ttl_secs, now_secs))
    }

    fn claims(
        &self,
        audience: &str,
        subject: &str,
        access: Vec<GrantedAccess>,
        ttl_secs: i64,
        now_secs: i64,
    ) -> Claims {
        Claims {
            iss: self.issuer.clone(),
            sub: subject.to_owned(),
            aud: audience.to_owned(),
            exp: now_secs.saturating_add(ttl_secs),
            nbf: now_secs,
            iat: now_secs,
            jti: hex::encode(rand::random::<[u8; 16]>()),
            access,
            stamp: String::new(),
        }
    }

    fn sign_claims(&self, claims: Claims) -> String {
        let mut header = Header::new(self.key.algorithm);
        header.kid = Some(self.key.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key.encoding)
            .expect("signing with a valid key cannot fail")
    }

    /// Verifies an access token (remembering it), then checks its validity period.
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<Arc<VerifiedToken>, TokenError> {
        let known = self
            .remembered
            .read()
            .expect("token cache lock")
            .get(signature(token))
            .filter(|r| &*r.token == token)
            .map(|r| r.verified.clone());
        let verified = match known {
            Some(v) => v,
            None => {
                let claims = self.decode(token, &self.access_validation)?;
                let verified = Arc::new(VerifiedToken {
                    subject: claims.sub,
                    access: claims.access,
                    not_before: claims.nbf,
                    expires_at: claims.exp,
                });
                self.remember(token, verified.clone(), now_secs);
                verified
            }
        };
        check_period(verified.not_before, verified.expires_at, now_secs)?;
        Ok(verified)
    }

    /// Verifies a refresh token; returns its subject and credential stamp.
    pub fn verify_refresh(
        &self,
        token: &str,
        now_secs: i64,
    ) -> Result<(String, String), TokenError> {
        let claims = self.decode(token, &self.refresh_validation)?;
        check_period(claims.nbf, claims.exp, now_secs)?;
        Ok((claims.sub, claims.stamp))
    }

    fn decode(&self, token: &str, validation: &Validation) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.key.decoding, validation)
            .map(|data| data.claims)
            .map_err(|_| TokenError::Invalid)
    }

    fn remember(&self, token: &str, verified: Arc<VerifiedToken>, now_secs: i64) {
        let mut remembered = self.remembered.write().expect("token cache lock");
        if remembered.len() >= MAX_REMEMBERED {
            remembered.retain(|_, r| r.verified.expires_at + LEEWAY_SECS >= now_secs);
            if remembered.len() >= MAX_REMEMBERED {
                remembered.clear();
            }
        }
        remembered.insert(
            signature(token).into(),
            Remembered {
                token: token.into(),
                verified,
            },
        );
    }
}

fn refresh_audience(service: &str) -> String {
    format!("{service}#refresh")
}

fn check_period(not_before: i64, expires_at: i64, now_secs: i64) -> Result<(), TokenError> {
    if now_secs + LEEWAY_SECS < not_before || now_secs > expires_at + LEEWAY_SECS {
        return Err(TokenError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let key = SigningKey::from_pem(&SigningKey::generate_pem().unwrap()).unwrap();
        Tokens::new(key, "berth", "berth-registry")
    }

    fn pull(name: &str) -> Vec<GrantedAccess> {
        vec![GrantedAccess {
            kind: "repository".into(),
            name: name.into(),
            actions: vec!["pull".into()],
        }]
    }

    #[test]
    fn issued_tokens_verify_and_grant_exactly_their_scope() {
        let t = tokens();
        let issued = t.issue("alice", pull("p/x"), 300, 1_000);
        let v = t.verify(&issued.token, 1_010).unwrap();
        assert_eq!(v.subject, "alice");
        assert!(v.allows("p/x", "pull"));
        for other in ["p/xy", "p/x/y", "P/x", "p/x/", "p"] {
            assert!(!v.allows(other, "pull"), "{other}");
        }
        assert!(!v.allows("p/x", "push"));
        assert!(!v.allows("p/x", "delete"));
        // Remembered, but still expires.
        assert_eq!(
            t.verify(&issued.token, 1_300 + LEEWAY_SECS + 1),
            Err(TokenError::Expired)
        );
        assert_eq!(
            t.verify(&issued.token, 1_000 - LEEWAY_SECS - 1),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_remembered_signature_never_vouches_for_another_payload() {
        let t = tokens();
        let issued = t.issue("alice", pull("p/x"), 300, 1_000);
        t.verify(&issued.token, 1_000).unwrap();
        let parts: Vec<&str> = issued.token.split('.').collect();
        let other = t.issue("mallory", pull("p/secret"), 300, 1_000).token;
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            other.split('.').nth(1).unwrap(),
            parts[2]
        );
        assert_eq!(t.verify(&forged, 1_000), Err(TokenError::Invalid));
    }

    #[test]
    fn another_key_audience_or_use_is_refused() {
        let (a, b) = (tokens(), tokens());
        let issued = a.issue("alice", pull("p/x"), 300, 1_000);
        assert_eq!(b.verify(&issued.token, 1_000), Err(TokenError::Invalid));
        let refresh = a.issue_refresh("alice", "stamp", 3_600, 1_000);
        assert_eq!(a.verify(&refresh, 1_000), Err(TokenError::Invalid));
        assert_eq!(
            a.verify_refresh(&refresh, 1_000).unwrap(),
            ("alice".to_owned(), "stamp".to_owned())
        );
        assert_eq!(
            a.verify_refresh(&issued.token, 1_000),
            Err(TokenError::Invalid)
        );
        let key = SigningKey::from_pem(&SigningKey::generate_pem().unwrap()).unwrap();
        let other_service = Tokens::new(key, "berth", "elsewhere");
        let foreign = other_service.issue("alice", pull("p/x"), 300, 1_000);
        assert_eq!(a.verify(&foreign.token, 1_000), Err(TokenError::Invalid));
    }
}
