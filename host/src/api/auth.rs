//! Bearer tokens: compared as SHA-256 hashes in constant time, each with
//! scopes, and a per-token rate limit (token bucket). No token values are
//! kept in memory, only their hashes.

use super::error::ApiError;
use crate::serve::config::{Scope, TokenConfig};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;
use subtle::ConstantTimeEq;

/// Who made a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name, e.g. `ci`.
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// `admin` includes everything; `trigger` includes `read`.
    pub fn may(&self, needed: Scope) -> bool {
        self.scopes.iter().any(|s| match s {
            Scope::Admin => true,
            Scope::Trigger => matches!(needed, Scope::Trigger | Scope::Read),
            Scope::Read => needed == Scope::Read,
        })
    }

    /// Refuses a caller without the `needed` scope, with the API's message.
    pub fn require(&self, needed: Scope) -> Result<(), ApiError> {
        if !self.may(needed) {
            let have: Vec<&str> = self.scopes.iter().map(|s| s.as_str()).collect();
            return Err(ApiError::Forbidden(format!(
                "token {:?} has scopes [{}]; this needs {:?}",
                self.name,
                have.join(", "),
                needed.as_str()
            )));
        }
        Ok(())
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The configured tokens and their rate limits.
pub struct Auth {
    tokens: Vec<([u8; 32], TokenConfig)>,
    rate: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Auth {
    /// `rate` requests per second per token, bursts of twice that.
    pub fn new(tokens: &[TokenConfig], rate: u32) -> Auth {
        let tokens = tokens.iter().filter_map(|t| decode_hex(&t.sha256).map(|h| (h, t.clone()))).collect();
        Auth { tokens, rate: f64::from(rate), buckets: Mutex::default() }
    }

    /// Checks the `Authorization` header and the scope, then the rate limit.
    pub fn check(&self, header: Option<&str>, needed: Scope) -> Result<Caller, ApiError> {
        let Some(value) = header else {
            return Err(ApiError::Unauthorized("missing bearer token: send Authorization: Bearer <token>".into()));
        };
        let Some(token) = value.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into()));
        };
        let config = self.find(token).ok_or_else(|| ApiError::Unauthorized("the bearer token is not valid".into()))?;
        let caller = Caller { name: config.name.clone(), scopes: config.scopes.clone() };
        caller.require(needed)?;
        self.take(&caller.name)?;
        Ok(caller)
    }

    /// The configured token whose hash is the hash of `token`, compared
    /// against every token without stopping early.
    fn find(&self, token: &str) -> Option<&TokenConfig> {
        use sha2::Digest;
        let presented: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        self.by_digest(&presented)
    }

    fn by_digest(&self, presented: &[u8; 32]) -> Option<&TokenConfig> {
        let mut found: Option<&TokenConfig> = None;
        for (hash, config) in &self.tokens {
            if bool::from(hash.ct_eq(presented)) {
                found = Some(config);
            }
        }
        found
    }

    /// A token given at the web view's sign-in: who it is and its hex
    /// SHA-256 (what a session keeps instead of the token), or None when
    /// no configured token matches.
    pub fn identify(&self, token: &str) -> Option<(Caller, String)> {
        self.find(token).map(|c| (Caller { name: c.name.clone(), scopes: c.scopes.clone() }, c.sha256.clone()))
    }

    /// The caller of the configured token with this hex SHA-256 (a web
    /// session's), as configured now; None once the token is removed.
    pub fn by_hash(&self, sha256_hex: &str) -> Option<Caller> {
        let digest = decode_hex(&sha256_hex.to_ascii_lowercase())?;
        self.by_digest(&digest).map(|c| Caller { name: c.name.clone(), scopes: c.scopes.clone() })
    }

    /// Takes one request from the token's rate limit.
    pub fn take(&self, name: &str) -> Result<(), ApiError> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let burst = self.rate * 2.0;
        let now = Instant::now();
        let b = buckets.entry(name.to_string()).or_insert(Bucket { tokens: burst, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(ApiError::RateLimited(((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::config::token_hash;

    fn auth(rate: u32) -> Auth {
        let t = |name: &str, value: &str, scopes: Vec<Scope>| TokenConfig {
            name: name.into(),
            sha256: token_hash(value),
            scopes,
        };
        Auth::new(&[t("reader", "r-token", vec![Scope::Read]), t("ci", "t-token", vec![Scope::Trigger])], rate)
    }

    #[test]
    fn tokens_and_scopes() {
        let a = auth(100);
        assert!(matches!(a.check(None, Scope::Read), Err(ApiError::Unauthorized(_))));
        assert!(matches!(a.check(Some("Bearer nope"), Scope::Read), Err(ApiError::Unauthorized(_))));
        assert!(matches!(a.check(Some("Basic r-token"), Scope::Read), Err(ApiError::Unauthorized(_))));
        assert_eq!(a.check(Some("Bearer r-token"), Scope::Read).unwrap().name, "reader");
        let err = a.check(Some("Bearer r-token"), Scope::Trigger).unwrap_err();
        assert_eq!(err.to_string(), "token \"reader\" has scopes [read]; this needs \"trigger\"");
        assert!(a.check(Some("Bearer t-token"), Scope::Read).is_ok(), "trigger includes read");
        assert!(matches!(a.check(Some("Bearer t-token"), Scope::Admin), Err(ApiError::Forbidden(_))));
    }

    #[test]
    fn each_token_has_its_own_bucket() {
        let a = auth(1);
        assert!(a.check(Some("Bearer r-token"), Scope::Read).is_ok());
        assert!(a.check(Some("Bearer r-token"), Scope::Read).is_ok());
        assert!(matches!(a.check(Some("Bearer r-token"), Scope::Read), Err(ApiError::RateLimited(1))));
        assert!(a.check(Some("Bearer t-token"), Scope::Read).is_ok());
    }
}
