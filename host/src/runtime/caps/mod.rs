//! The `host` interface of the contract: one file per capability (log,
//! state, secrets, http, system, files, tls), each holding its per-step
//! state built from the step's grants, its calls, and the conversions
//! between the contract's types and its own. This module implements the
//! generated `Host` trait on [`Caps`], the capabilities' state together. A denied call returns an error (or none) the
//! guest sees and is recorded in [`Denials`]; nothing here traps.

pub mod files;
pub mod http;
pub mod log;
pub mod secrets;
pub mod state;
pub mod system;
pub mod tls;

use super::bindings::tend::plugin::{host, types};
use std::sync::{Arc, Mutex};

/// Capabilities a step was refused, in order, each naming the grant.
/// Shared with callbacks that outlive a borrow of the store (socket checks).
#[derive(Debug, Clone, Default)]
pub struct Denials(Arc<Mutex<Vec<String>>>);

impl Denials {
    /// Most denials kept per step.
    const MAX: usize = 100;

    /// Records a refusal. Not traced here: a denial quotes what the guest
    /// asked for, so it is traced once redacted, with the record.
    pub fn push(&self, denial: String) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() < Self::MAX && !list.contains(&denial) {
            list.push(denial);
        }
    }

    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The per-step state of every capability.
pub struct Caps {
    pub log: log::LogCap,
    pub state: state::StateCap,
    pub secrets: secrets::SecretsCap,
    pub http: http::HttpCap,
    pub system: system::SystemCap,
    pub files: files::FilesCap,
    pub tls: tls::TlsCap,
    pub denials: Denials,
}

impl types::Host for Caps {}

/// The contract's `host` interface, on the capabilities' own state (the
/// linker hands each call `&mut Caps`, never the sandbox's store data).
/// Each call goes to its capability; the conversions between the
/// contract's types and the capability's live in the capability's file.
impl host::Host for Caps {
    async fn log(&mut self, level: types::LogLevel, message: String) {
        self.log.log(level.into(), message);
    }

    async fn state_get(&mut self, key: String) -> Option<String> {
        self.state.get(key).await
    }

    async fn state_set(&mut self, key: String, value: String) -> Result<(), String> {
        self.state.set(key, value).await
    }

    async fn state_delete(&mut self, key: String) {
        self.state.delete(key).await
    }

    async fn secret(&mut self, name: String) -> Option<String> {
        self.secrets.secret(name)
    }

    async fn http_fetch(&mut self, req: types::HttpRequest) -> Result<types::HttpResponse, String> {
        Ok(self.http.request(req.into()).await?.into())
    }

    async fn system_metrics(&mut self) -> Result<types::SystemSnapshot, String> {
        Ok(self.system.snapshot().await?.into())
    }

    async fn tls_inspect(&mut self, req: types::TlsRequest) -> Result<types::TlsReport, String> {
        Ok(self.tls.inspect(req.into()).await?.into())
    }

    async fn file_metadata(&mut self, path: String) -> Result<types::FileMeta, String> {
        self.files.metadata(path).await.map(Into::into)
    }

    async fn list_metadata(&mut self, dir: String) -> Result<Vec<types::FileMeta>, String> {
        Ok(self.files.list(dir).await?.into_iter().map(Into::into).collect())
    }

    async fn file_set_mode(&mut self, path: String, mode: u32) -> Result<(), String> {
        self.files.set_mode(path, mode).await
    }
}
