//! tend: runbook automation where every step is a sandboxed WebAssembly
//! component. The `tend` binary (src/main.rs) is a thin shell over this
//! library so tests and benchmarks drive the same code.

pub mod api;
pub mod cli;
pub mod clock;
pub mod cron;
pub mod engine;
pub mod notifier;
pub mod notify;
pub mod process;
pub mod redact;
pub mod report;
pub mod runbook;
pub mod runtime;
pub mod scheduler;
pub mod serve;
pub mod store;
pub mod units;
pub mod web;
