//! Starting the service: its command-line options ([`Options`], shared by
//! the `demo-service` binary and `tend demo service`, so both take the same
//! flags with the same defaults and messages), binding the listener, and
//! serving until a shutdown signal. Imports `api`, `sim`, `rng` and
//! `traffic`; must not exit the process or print anything but the one
//! `listening on ADDR` line on stdout (callers report errors their way).

use crate::api::{self, App, TOKEN_ENV};
use crate::rng::Rng;
use crate::sim::{Config, DEFAULT_REPLICAS, DEFAULT_RESTART_MS, MAX_RESTART_MS, Replicas, Sim};
use crate::traffic::{self, DEFAULT_TRAFFIC_RPS, MAX_TRAFFIC_RPS};
use std::fmt;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Where the service listens (`--listen`). By default 127.0.0.1:9100.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9100";

/// The service's command-line options; flatten them into a clap command.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Address to listen on; port 0 picks a free one. Prints
    /// `listening on ADDR` on stdout once bound.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Bearer token the admin endpoints require; without one they are
    /// refused.
    #[arg(long, value_name = "TOKEN", env = TOKEN_ENV, hide_env_values = true)]
    pub token: Option<String>,

    /// Replicas at start, from 1 to 20.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_REPLICAS)]
    pub replicas: Replicas,

    /// Built-in synthetic requests per second through the request path
    /// (0 for none).
    #[arg(long, value_name = "RPS", default_value_t = DEFAULT_TRAFFIC_RPS,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_TRAFFIC_RPS)))]
    pub traffic_rps: u32,

    /// How long a restart takes, in milliseconds; /healthz answers 503
    /// meanwhile.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_RESTART_MS,
          value_parser = clap::value_parser!(u64).range(0..=MAX_RESTART_MS))]
    pub restart_ms: u64,

    /// Seed of the simulation's random draws, for repeatable runs (by
    /// default drawn from the clock).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

impl Options {
    /// How the simulation starts with these options.
    pub fn config(&self) -> Config {
        Config {
            replicas: self.replicas,
            restart_time: Duration::from_millis(self.restart_ms),
            seed: self.seed.unwrap_or_else(Rng::seed_from_clock),
        }
    }
}

/// Why the service could not start or stopped serving.
#[derive(Debug)]
pub enum ServeError {
    /// Binding `--listen` failed (e.g. the port is in use).
    Listen { addr: SocketAddr, source: std::io::Error },
    /// The HTTP server stopped with an error.
    Serve(std::io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Listen { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ServeError::Serve(e) => write!(f, "the HTTP server stopped: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// The command line's behaviour: binds `options.listen`, prints
/// `listening on ADDR` on stdout once bound (tests and scripts read the
/// port from it), then [`serve`]s until SIGINT or SIGTERM.
pub async fn run(options: Options) -> Result<(), ServeError> {
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Listen { addr: options.listen, source })?;
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| options.listen.to_string());
    {
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "listening on {addr}");
        let _ = stdout.flush();
    }
    serve(listener, &options, shutdown_signal()).await
}

/// Serves the API on `listener` with the built-in traffic until `shutdown`
/// resolves; for a caller that binds its own listener (e.g. a walkthrough
/// that starts the service in its own process). Says on stderr when no
/// admin token is configured.
pub async fn serve(
    listener: TcpListener,
    options: &Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let app = App::new(Sim::new(options.config(), Instant::now()), options.token.clone());
    if !app.has_token() {
        api::note(&format!(
            "no admin token is configured: the admin endpoints refuse every request (set one with --token TOKEN or {TOKEN_ENV})"
        ));
    }
    let traffic = tokio::spawn(traffic::run(app.clone(), options.traffic_rps));
    let served = axum::serve(listener, api::router(app)).with_graceful_shutdown(shutdown).await;
    traffic.abort();
    served.map_err(ServeError::Serve)
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
