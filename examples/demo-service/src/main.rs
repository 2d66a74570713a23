//! The demo-service binary: reads the command line, binds the listener,
//! prints `listening on ADDR` on stdout once bound (tests and scripts read
//! the port from it), starts the built-in traffic and serves until SIGINT
//! or SIGTERM. Everything else it says goes to stderr.

use clap::Parser;
use demo_service::api::{self, App, TOKEN_ENV};
use demo_service::rng::Rng;
use demo_service::sim::{Config, DEFAULT_REPLICAS, DEFAULT_RESTART_MS, MAX_RESTART_MS, Replicas, Sim};
use demo_service::traffic::{self, DEFAULT_TRAFFIC_RPS, MAX_TRAFFIC_RPS};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Where the service listens (`--listen`). By default 127.0.0.1:9100.
const DEFAULT_LISTEN: &str = "127.0.0.1:9100";

/// Exit code when the service cannot listen or stops serving.
const EXIT_FAILED: u8 = 1;

/// A small HTTP service to break on purpose: Prometheus metrics, admin
/// endpoints behind a bearer token, and fault switches. See
/// examples/demo-service/README.md.
#[derive(Debug, Parser)]
#[command(name = "demo-service", version)]
struct Args {
    /// Address to listen on; port 0 picks a free one. Prints
    /// `listening on ADDR` on stdout once bound.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// Bearer token the admin endpoints require; without one they are
    /// refused.
    #[arg(long, value_name = "TOKEN", env = TOKEN_ENV, hide_env_values = true)]
    token: Option<String>,

    /// Replicas at start, from 1 to 20.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_REPLICAS)]
    replicas: Replicas,

    /// Built-in synthetic requests per second through the request path
    /// (0 for none).
    #[arg(long, value_name = "RPS", default_value_t = DEFAULT_TRAFFIC_RPS,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_TRAFFIC_RPS)))]
    traffic_rps: u32,

    /// How long a restart takes, in milliseconds; /healthz answers 503
    /// meanwhile.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_RESTART_MS,
          value_parser = clap::value_parser!(u64).range(0..=MAX_RESTART_MS))]
    restart_ms: u64,

    /// Seed of the simulation's random draws, for repeatable runs (by
    /// default drawn from the clock).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            api::note(&format!("cannot listen on {}: {e}", args.listen));
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| args.listen.to_string());
    let config = Config {
        replicas: args.replicas,
        restart_time: Duration::from_millis(args.restart_ms),
        seed: args.seed.unwrap_or_else(Rng::seed_from_clock),
    };
    let app = App::new(Sim::new(config, Instant::now()), args.token);
    if !app.has_token() {
        api::note(&format!(
            "no admin token is configured: the admin endpoints refuse every request (set one with --token TOKEN or {TOKEN_ENV})"
        ));
    }
    {
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "listening on {addr}");
        let _ = stdout.flush();
    }
    tokio::spawn(traffic::run(app.clone(), args.traffic_rps));
    let served = axum::serve(listener, api::router(app)).with_graceful_shutdown(shutdown_signal()).await;
    if let Err(e) = served {
        api::note(&format!("the HTTP server stopped: {e}"));
        return ExitCode::from(EXIT_FAILED);
    }
    ExitCode::SUCCESS
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
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
