//! Sign-in sessions of the web view: the `web_sessions` table. A session
//! is found by the SHA-256 of its cookie's value (the value itself is
//! never stored) and names the API token it was opened with, by the
//! token's SHA-256, as tend.toml holds it. Backend-neutral: cookies, scopes and
//! expiry policy are the web module's.

use super::{Store, StoreResult};

/// A signed-in session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Hex SHA-256 of the API token signed in with.
    pub token_sha256: String,
    /// The token's name when the session was opened, e.g. `admin`.
    pub token_name: String,
    /// ms since the epoch.
    pub expires_at: i64,
}

impl Store {
    /// Opens a session under the hash of its cookie's value, until
    /// `expires_at`, and deletes the sessions already expired.
    pub async fn open_session(
        &self,
        id_sha256: &str,
        token_sha256: &str,
        token_name: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        dispatch!(self, open_session(id_sha256, token_sha256, token_name, expires_at))
    }

    /// The session whose cookie hashes to `id_sha256`, unless it expired by `now`.
    pub async fn session(&self, id_sha256: &str, now: i64) -> StoreResult<Option<SessionRow>> {
        dispatch!(self, session(id_sha256, now))
    }

    /// Ends a session (signing out). Ending one that does not exist is not an error.
    pub async fn close_session(&self, id_sha256: &str) -> StoreResult<()> {
        dispatch!(self, close_session(id_sha256))
    }
}
