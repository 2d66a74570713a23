//! `tend demo ...`: the demo service embedded in tend, so a fresh machine
//! needs nothing but the `tend` binary to try the runbooks.
//!
//! `tend demo service` runs examples/demo-service (the library
//! `demo_service`) with the same options, defaults and messages as its own
//! binary: it prints `listening on ADDR` on stdout once bound and serves
//! until SIGINT or SIGTERM. Startup lives in `demo_service::server`; this
//! file only parses and reports. It must not touch the store or plugins.

use super::{EXIT_FAILED, fail};
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Run the demo service: a small HTTP service to break on purpose, with
    /// Prometheus metrics, admin endpoints behind a bearer token and fault
    /// switches (see examples/demo-service/README.md).
    Service(demo_service::server::Options),
}

pub async fn run(cmd: &DemoCommand) -> ExitCode {
    match cmd {
        DemoCommand::Service(options) => service(options.clone()).await,
    }
}

async fn service(options: demo_service::server::Options) -> ExitCode {
    match demo_service::server::run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_FAILED, e),
    }
}
