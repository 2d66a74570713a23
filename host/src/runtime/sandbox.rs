//! The sandbox of one step: the store data (WASI context, resource table,
//! memory limiter, capabilities) built from the step's grants, and the
//! linker every plugin is instantiated against.
//!
//! Deny by default: no preopened directories, no environment, no
//! arguments, closed stdin, no sockets (every address refused and the
//! refusal recorded), no name lookups. Stdout and stderr are captured,
//! bounded, into the step's log.

use super::Services;
use super::caps::{self, Caps, Denials};
use super::grants::Grants;
use super::limits::{Limits, MemoryLimiter};
use super::output::BoundedPipe;
use std::time::Instant;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Data of the store of one step.
pub struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) caps: Caps,
    pub(crate) stdout: BoundedPipe,
    pub(crate) stderr: BoundedPipe,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The linker for every plugin: WASI 0.2 plus the `host` interface.
pub fn linker(engine: &Engine) -> anyhow::Result<Linker<StepState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    // The `host` calls get the capabilities' own state, not the whole store data.
    super::bindings::tend::plugin::host::add_to_linker::<StepState, HasSelf<Caps>>(&mut linker, |s| &mut s.caps)?;
    super::bindings::tend::plugin::types::add_to_linker::<StepState, HasSelf<Caps>>(&mut linker, |s| &mut s.caps)?;
    Ok(linker)
}

/// Builds the store data of one step from its grants. Fails (naming the
/// grant) when a granted directory cannot be opened.
pub fn step_state(
    services: &Services,
    runbook: &str,
    grants: &Grants,
    limits: &Limits,
    deadline: Instant,
) -> Result<StepState, String> {
    let denials = Denials::default();
    let stdout = BoundedPipe::new(limits.output_bytes);
    let stderr = BoundedPipe::new(limits.output_bytes);

    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(stdout.clone()).stderr(stderr.clone());
    for (k, v) in &grants.env {
        wasi.env(k, v);
    }
    for dir in &grants.dirs {
        let perms = if dir.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        wasi.preopened_dir(&dir.host, &dir.guest, perms)
            .map_err(|e| format!("dirs: cannot open {} for grant {dir}: {e}", dir.host.display()))?;
    }
    // Raw sockets are never granted: HTTP goes through `host.http-fetch`
    // where the allow-list is enforced. TCP and UDP stay "enabled" only so
    // that every bind and connect reaches this check, which refuses it and
    // records the refusal.
    let socket_denials = denials.clone();
    wasi.allow_tcp(true).allow_udp(true).allow_ip_name_lookup(false).socket_addr_check(move |addr, _use| {
        socket_denials.push(format!(
            "sockets: raw socket access to {addr} is not granted (use the hosts grant and host.http-fetch)"
        ));
        Box::pin(async { false })
    });

    let secrets = caps::secrets::SecretsCap::new(services.secrets.clone(), &grants.secrets, denials.clone());
    let caps = Caps {
        log: caps::log::LogCap::new(),
        state: caps::state::StateCap::new(services.state.clone(), runbook, secrets.redactor.clone()),
        secrets,
        http: caps::http::HttpCap::new(services.http.clone(), &grants.hosts, deadline, denials.clone()),
        system: caps::system::SystemCap::new(services.system.clone(), grants.system_metrics, denials.clone()),
        files: caps::files::FilesCap::new(&grants.dirs, denials.clone()),
        tls: caps::tls::TlsCap::new(&grants.hosts, deadline, denials.clone()),
        denials,
    };
    Ok(StepState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        limiter: MemoryLimiter::new(limits.memory_bytes),
        caps,
        stdout,
        stderr,
    })
}
