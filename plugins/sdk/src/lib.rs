//! Shared bindings and helpers for tend's Rust plugins.
//!
//! Generates the bindings of the `plugin` world of `wit/plugin.wit` once and
//! re-exports them, so a plugin crate only writes its [`Guest`] impl and
//! calls [`export!`]:
//!
//! ```ignore
//! use tend_plugin_sdk::{Guest, PluginInfo, StepContext, StepError, StepOutput, export};
//!
//! struct Echo;
//!
//! impl Guest for Echo {
//!     fn describe() -> PluginInfo { /* ... */ }
//!     fn run(ctx: StepContext, config: String, input: String) -> Result<StepOutput, StepError> { /* ... */ }
//! }
//!
//! export!(Echo);
//! ```
//!
//! Besides the bindings it offers what every plugin needs: typed parsing of
//! the `config` (and `input`) JSON with errors that name the offending field
//! ([`parse_config`], [`parse_input`]), builders for metrics, findings and
//! step output, a serde-friendly [`SeverityLevel`], JSON Schema helpers,
//! logging shortcuts, and [`compare`]: a run's problems against the
//! previous run's, through the runbook state.
//!
//! This crate must stay free of side effects: it never calls a host
//! function on its own (only when a plugin calls one of its helpers, e.g.
//! [`compare::load`]), so `describe()` of a plugin stays capability-free.

// Lets the generated bindings, and the `export!` macro expanded in plugin
// crates, name the wit-bindgen runtime through this crate: plugin crates need
// no direct dependency on `wit-bindgen`.
extern crate self as tend_plugin_sdk;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub mod compare;
mod config;
mod output;
pub mod schema;

pub use config::{ParseError, parse_config, parse_input, parse_json, parse_value};
pub use output::{SeverityLevel, finding, metric, output, to_json};

/// The bindings generated from `wit/plugin.wit` (world `plugin`).
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        // The export macro is used from the plugin crates, not from here.
        pub_export_macro: true,
        default_bindings_module: "::tend_plugin_sdk::bindings",
        runtime_path: "::tend_plugin_sdk::__wit_bindgen::rt",
    });
}

pub use bindings::export;
pub use bindings::exports::tend::plugin::step::Guest;
pub use bindings::tend::plugin::host;
pub use bindings::tend::plugin::types::{
    DiskUsage, FileKind, FileMeta, Finding, HttpRequest, HttpResponse, LogLevel, Metric, PluginInfo, Severity,
    StepContext, StepError, StepOutput, SystemSnapshot, TlsCertificate, TlsReport, TlsRequest,
};

/// Shortcuts for [`host::log`].
pub mod log {
    use super::{LogLevel, host};

    /// Writes `message` to the step's log at debug level.
    pub fn debug(message: &str) {
        host::log(LogLevel::Debug, message);
    }

    /// Writes `message` to the step's log at info level.
    pub fn info(message: &str) {
        host::log(LogLevel::Info, message);
    }

    /// Writes `message` to the step's log at warn level.
    pub fn warn(message: &str) {
        host::log(LogLevel::Warn, message);
    }
}

/// A [`StepError::InvalidConfig`] with `message`.
pub fn invalid_config(message: impl Into<String>) -> StepError {
    StepError::InvalidConfig(message.into())
}

/// A [`StepError::Failed`] with `message`.
pub fn failed(message: impl Into<String>) -> StepError {
    StepError::Failed(message.into())
}

/// A [`StepError::Retryable`] with `message`.
pub fn retryable(message: impl Into<String>) -> StepError {
    StepError::Retryable(message.into())
}

/// True for `http://host...` and `https://host...` (any case) with a
/// non-empty authority and no whitespace, for checking URLs in config. The
/// host parses the URL fully.
pub fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("http://").or_else(|| lower.strip_prefix("https://")) else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !authority.is_empty() && !url.chars().any(char::is_whitespace)
}

/// Rounds `value` to `decimals` decimal places, for readable JSON output.
pub fn round(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}
