//! `host.state-*`: per-runbook persistent key-value state. Always allowed,
//! scoped to the step's runbook so one runbook never sees another's keys.
//! Keys and values are redacted with the step's secrets before they are
//! stored: a plugin cannot park a secret in the database.

use crate::redact::Redactor;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// Where runbook state lives. The store module provides the SQLite
/// implementation; [`MemoryState`] serves single calls and tests.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync {
    async fn get(&self, runbook: &str, key: &str) -> anyhow::Result<Option<String>>;
    async fn set(&self, runbook: &str, key: &str, value: &str) -> anyhow::Result<()>;
    async fn delete(&self, runbook: &str, key: &str) -> anyhow::Result<()>;
}

/// State kept in memory for the life of the process.
#[derive(Debug, Default)]
pub struct MemoryState {
    map: Mutex<HashMap<(String, String), String>>,
}

#[async_trait::async_trait]
impl StateStore for MemoryState {
    async fn get(&self, runbook: &str, key: &str) -> anyhow::Result<Option<String>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        Ok(map.get(&(runbook.to_string(), key.to_string())).cloned())
    }
    async fn set(&self, runbook: &str, key: &str, value: &str) -> anyhow::Result<()> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.insert((runbook.to_string(), key.to_string()), value.to_string());
        Ok(())
    }
    async fn delete(&self, runbook: &str, key: &str) -> anyhow::Result<()> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&(runbook.to_string(), key.to_string()));
        Ok(())
    }
}

/// Per-step view of the state: the store and the runbook it is scoped to.
pub struct StateCap {
    store: Arc<dyn StateStore>,
    runbook: String,
    redactor: Redactor,
}

impl StateCap {
    /// Part two: per-step state; `redactor` hides the step's secrets.
    pub fn new(store: Arc<dyn StateStore>, runbook: &str, redactor: Redactor) -> Self {
        StateCap { store, runbook: runbook.to_string(), redactor }
    }

    /// Part three: `host.state-get`. A store failure reads as unset and is
    /// logged; the guest cannot tell it from a missing key.
    pub async fn get(&self, key: String) -> Option<String> {
        match self.store.get(&self.runbook, &key).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(runbook = %self.runbook, key = %self.redactor.text(&key), "state read failed: {e:#}");
                None
            }
        }
    }

    /// `host.state-set`.
    pub async fn set(&self, key: String, value: String) -> Result<(), String> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(format!("state key must be 1 to {MAX_KEY_BYTES} bytes, got {}", key.len()));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(format!(
                "state value for key {key:?} is {} bytes; the limit is {MAX_VALUE_BYTES}",
                value.len()
            ));
        }
        let (key, value) = (self.redactor.text(&key), self.redactor.text(&value));
        self.store.set(&self.runbook, &key, &value).await.map_err(|e| {
            tracing::error!(runbook = %self.runbook, key = %key, "state write failed: {e:#}");
            "state could not be saved (see the tend log)".to_string()
        })
    }

    /// `host.state-delete`.
    pub async fn delete(&self, key: String) {
        if let Err(e) = self.store.delete(&self.runbook, &key).await {
            tracing::error!(runbook = %self.runbook, key = %self.redactor.text(&key), "state delete failed: {e:#}");
        }
    }
}
