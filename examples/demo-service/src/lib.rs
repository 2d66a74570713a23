//! demo-service: a small HTTP service to break on purpose. It serves items
//! through a cache, reports Prometheus metrics, takes admin actions
//! (restart, scale, cache clear) behind a bearer token, and has fault
//! switches that bend its metrics and health. tend's runbooks monitor it and
//! heal it; the README at examples/demo-service/README.md is the user's
//! guide.
//!
//! Modules, each importing only those listed before it:
//! - [`rng`], [`input`]: leaves (a pseudo-random generator; JSON body reading).
//! - [`faults`]: the fault switches, what cures each, parsing of an update.
//! - [`metrics`]: the latency histogram and the Prometheus text rendering.
//! - [`cache`]: the item cache and its hit ratio.
//! - [`sim`]: the simulated service (CPU, memory, replicas, restarts) driven
//!   by instants the caller passes; no I/O, no sleeping.
//! - [`api`]: the HTTP routes, the admin token check, and the request path
//!   that external requests and [`traffic`] share.
//! - [`traffic`]: built-in synthetic requests through that path.
//! - [`server`]: the command-line options, binding and serving until a
//!   signal; shared by the `demo-service` binary and `tend demo service`.

pub mod api;
pub mod cache;
pub mod faults;
pub mod input;
pub mod metrics;
pub mod rng;
pub mod server;
pub mod sim;
pub mod traffic;
