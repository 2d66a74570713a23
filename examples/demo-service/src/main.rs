//! The demo-service binary: reads the command line and runs the service
//! ([`demo_service::server::run`]): binds the listener, prints
//! `listening on ADDR` on stdout once bound (tests and scripts read the port
//! from it), starts the built-in traffic and serves until SIGINT or SIGTERM.
//! Everything else it says goes to stderr.

use clap::Parser;
use demo_service::api;
use demo_service::server::{self, Options};
use std::process::ExitCode;

/// Exit code when the service cannot listen or stops serving.
const EXIT_FAILED: u8 = 1;

/// A small HTTP service to break on purpose: Prometheus metrics, admin
/// endpoints behind a bearer token, and fault switches. See
/// examples/demo-service/README.md.
#[derive(Debug, Parser)]
#[command(name = "demo-service", version)]
struct Args {
    #[command(flatten)]
    options: Options,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match server::run(args.options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            api::note(&e.to_string());
            ExitCode::from(EXIT_FAILED)
        }
    }
}
