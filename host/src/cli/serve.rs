//! `tend serve`: reads the config, starts the service and the API, reloads
//! runbooks on SIGHUP or when the directory changes, and drains in-flight
//! runs on SIGTERM or Ctrl-C.

use super::{Cli, EXIT_FAILED, EXIT_USAGE, fail};
use crate::serve::Service;
use crate::serve::config::{Overrides, ServeConfig};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long in-flight runs get to finish after SIGTERM.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);
/// How often the runbooks directory is checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (TOML); see README for every setting and its default.
    #[arg(long, env = "TEND_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8800].
    #[arg(long, env = "TEND_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Log format: human or json [default: human].
    #[arg(long, env = "TEND_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
}

pub async fn run(cli: &Cli, args: &ServeArgs) -> ExitCode {
    let text = match &args.config {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => Some((path.clone(), t)),
            Err(e) => return fail(EXIT_USAGE, format!("{}: cannot read the config file: {e}", path.display())),
        },
        None => None,
    };
    let overrides = Overrides {
        listen: args.listen.clone(),
        database: cli.db_path.clone(),
        runbooks: cli.runbooks_dir.clone(),
        plugins: cli.plugins_dir.clone(),
        log_format: args.log_format.clone(),
        admin_token: std::env::var("TEND_TOKEN").ok(),
        clock_file: std::env::var_os("TEND_CLOCK_FILE").filter(|v| !v.is_empty()).map(PathBuf::from),
        public_url: std::env::var("TEND_PUBLIC_URL").ok(),
    };
    let config = match ServeConfig::resolve(text.as_ref().map(|(p, t)| (p.as_path(), t.as_str())), &overrides) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    if config.tokens.is_empty() {
        tracing::warn!(
            "no API tokens are configured: every /v1 request will be refused (set TEND_TOKEN or add [[tokens]])"
        );
    }
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => return fail(EXIT_FAILED, format!("cannot listen on {}: {e}", config.listen)),
    };
    let service = match Service::start(config).await {
        Ok(s) => s,
        Err(e) => return fail(EXIT_FAILED, format!("{e:#}")),
    };
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!("tend serve listening on {addr}");
    // A line on stdout so scripts (and tests) can wait for readiness.
    outln!("listening on {addr}");

    tokio::spawn(reload_on_hup(service.clone()));
    tokio::spawn(reload_on_change(service.clone()));
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let app = crate::api::router(service.clone(), closing);
    let shutdown = async move {
        shutdown_signal().await;
        let _ = closing_tx.send(true);
    };
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    if let Err(e) = served {
        return fail(EXIT_FAILED, format!("the HTTP server stopped: {e}"));
    }
    tracing::info!("shutting down: waiting up to {}s for runs in flight", DRAIN_DEADLINE.as_secs());
    if !service.drain(DRAIN_DEADLINE).await {
        tracing::warn!("runs still in flight after the deadline are left to crash recovery");
    }
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn reload_on_hup(service: Arc<Service>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading runbooks");
            service.reload().await;
        }
    }
    #[cfg(not(unix))]
    let _ = service;
}

type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// Names, modification times and sizes of the runbook files: one `stat`
/// each, off the async workers (7 ms for 1,000 files in the
/// `scheduler_scale` bench).
async fn fingerprint(dir: &std::path::Path) -> Fingerprint {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        crate::runbook::files_with_metadata(&dir)
            .unwrap_or_default()
            .into_iter()
            .map(|(p, m)| (p, m.modified().ok(), m.len()))
            .collect()
    })
    .await
    .unwrap_or_default()
}

async fn reload_on_change(service: Arc<Service>) {
    let dir = service.config.runbooks.clone();
    let mut last = fingerprint(&dir).await;
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let now = fingerprint(&dir).await;
        if now != last {
            tracing::info!("runbooks changed: reloading");
            service.reload().await;
            last = now;
        }
    }
}
