//! The `host` interface of the contract: one file per capability (log,
//! state, secrets, http, system, files, tls), each building its per-step state from the
//! step's grants and implementing its calls. This module wires them to the
//! generated `Host` trait. A denied call returns an error (or none) the
//! guest sees and is recorded in [`Denials`]; nothing here traps.

pub mod files;
pub mod http;
pub mod log;
pub mod secrets;
pub mod state;
pub mod system;
pub mod tls;

use super::bindings::tend::plugin::{host, types};
use super::record::LogLevel;
use super::sandbox::StepState;
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

impl types::Host for StepState {}

impl host::Host for StepState {
    async fn log(&mut self, level: types::LogLevel, message: String) {
        let level = match level {
            types::LogLevel::Trace => LogLevel::Trace,
            types::LogLevel::Debug => LogLevel::Debug,
            types::LogLevel::Info => LogLevel::Info,
            types::LogLevel::Warn => LogLevel::Warn,
            types::LogLevel::Error => LogLevel::Error,
        };
        self.caps.log.log(level, message);
    }

    async fn state_get(&mut self, key: String) -> Option<String> {
        self.caps.state.get(key).await
    }

    async fn state_set(&mut self, key: String, value: String) -> Result<(), String> {
        self.caps.state.set(key, value).await
    }

    async fn state_delete(&mut self, key: String) {
        self.caps.state.delete(key).await
    }

    async fn secret(&mut self, name: String) -> Option<String> {
        self.caps.secrets.secret(name)
    }

    async fn http_fetch(&mut self, req: types::HttpRequest) -> Result<types::HttpResponse, String> {
        let req = http::Request {
            method: req.method,
            url: req.url,
            headers: req.headers,
            body: req.body,
            timeout: req.timeout_ms.map(|ms| std::time::Duration::from_millis(ms.into())),
            follow_redirects: req.follow_redirects,
        };
        let resp = self.caps.http.request(req).await?;
        Ok(types::HttpResponse {
            status: resp.status,
            headers: resp.headers,
            body: resp.body,
            truncated: resp.truncated,
            final_url: resp.final_url,
        })
    }

    async fn system_metrics(&mut self) -> Result<types::SystemSnapshot, String> {
        let s = self.caps.system.snapshot().await?;
        Ok(types::SystemSnapshot {
            hostname: s.hostname,
            cpu_count: s.cpu_count,
            cpu_usage_percent: s.cpu_usage_percent,
            load_average: s.load_average,
            memory_total_bytes: s.memory_total_bytes,
            memory_available_bytes: s.memory_available_bytes,
            swap_total_bytes: s.swap_total_bytes,
            swap_used_bytes: s.swap_used_bytes,
            uptime_seconds: s.uptime_seconds,
            disks: s
                .disks
                .into_iter()
                .map(|d| types::DiskUsage {
                    mount_point: d.mount_point,
                    filesystem: d.filesystem,
                    total_bytes: d.total_bytes,
                    available_bytes: d.available_bytes,
                })
                .collect(),
        })
    }

    async fn tls_inspect(&mut self, req: types::TlsRequest) -> Result<types::TlsReport, String> {
        let req = tls::Request {
            host: req.host,
            port: req.port,
            server_name: req.server_name,
            trusted_ca_pem: req.trusted_ca_pem,
            timeout: req.timeout_ms.map(|ms| std::time::Duration::from_millis(ms.into())),
        };
        let r = self.caps.tls.inspect(req).await?;
        Ok(types::TlsReport {
            protocol_version: r.protocol_version,
            cipher_suite: r.cipher_suite,
            server_name: r.server_name,
            chain: r
                .chain
                .into_iter()
                .map(|c| types::TlsCertificate {
                    subject: c.subject,
                    issuer: c.issuer,
                    serial: c.serial,
                    not_before: c.not_before,
                    not_after: c.not_after,
                    subject_alt_names: c.subject_alt_names,
                    self_signed: c.self_signed,
                    sha256_fingerprint: c.sha256_fingerprint,
                })
                .collect(),
            chain_valid: r.chain_valid,
            hostname_valid: r.hostname_valid,
            verify_error: r.verify_error,
        })
    }

    async fn file_metadata(&mut self, path: String) -> Result<types::FileMeta, String> {
        self.caps.files.metadata(path).await.map(file_meta)
    }

    async fn list_metadata(&mut self, dir: String) -> Result<Vec<types::FileMeta>, String> {
        Ok(self.caps.files.list(dir).await?.into_iter().map(file_meta).collect())
    }

    async fn file_set_mode(&mut self, path: String, mode: u32) -> Result<(), String> {
        self.caps.files.set_mode(path, mode).await
    }
}

fn file_meta(m: files::Meta) -> types::FileMeta {
    types::FileMeta {
        path: m.path,
        kind: match m.kind {
            files::Kind::File => types::FileKind::File,
            files::Kind::Dir => types::FileKind::Dir,
            files::Kind::Symlink => types::FileKind::Symlink,
            files::Kind::Other => types::FileKind::Other,
        },
        size: m.size,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        setuid: m.setuid,
        setgid: m.setgid,
        world_writable: m.world_writable,
        modified: m.modified,
    }
}
