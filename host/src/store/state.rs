//! Plugin state (`host.state-*`): per-runbook keys and values. The store
//! implements the capability's [`StateStore`]; the capability knows nothing
//! of the store.

use super::Store;
use crate::runtime::caps::state::StateStore;

#[async_trait::async_trait]
impl StateStore for Store {
    async fn get(&self, runbook: &str, key: &str) -> anyhow::Result<Option<String>> {
        Ok(dispatch!(self, state_get(runbook, key))?)
    }

    async fn set(&self, runbook: &str, key: &str, value: &str) -> anyhow::Result<()> {
        Ok(dispatch!(self, state_set(runbook, key, value))?)
    }

    async fn delete(&self, runbook: &str, key: &str) -> anyhow::Result<()> {
        Ok(dispatch!(self, state_delete(runbook, key))?)
    }
}
