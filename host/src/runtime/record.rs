//! The record every plugin call returns: outcome, output, duration, peak
//! memory, logs and denials. Plain data, serialisable as JSON; no I/O.

use crate::redact::Redactor;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The plugin returned a step output.
    Ok,
    /// The plugin returned a `step-error`.
    PluginError { kind: ErrorKind, message: String },
    /// The call was stopped by the host; `trap` names why.
    Trap {
        #[serde(flatten)]
        trap: TrapKind,
    },
}

/// The three `step-error` cases of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    InvalidConfig,
    Retryable,
    Failed,
}

/// Why the host stopped a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "trap", rename_all = "snake_case")]
pub enum TrapKind {
    /// The step ran past its wall-clock limit.
    Timeout { limit_ms: u64 },
    /// The step tried to use more memory than its limit.
    OutOfMemory { limit_bytes: u64 },
    /// The step exhausted its WebAssembly stack.
    StackOverflow,
    /// The guest aborted (a Rust panic, a C `abort()`, an `unreachable`).
    Panic { message: String },
    /// The guest called `exit` (WASI `exit` with a code).
    Exit { code: i32 },
    /// The step failed after being refused a capability it was not granted.
    DeniedCapability { grant: String, message: String },
    /// The returned output broke the contract (invalid JSON, too large).
    InvalidOutput { message: String },
    /// Any other trap, e.g. an out-of-bounds memory access.
    Other { message: String },
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }

    /// Short stable name: `ok`, `invalid-config`, `retryable`, `failed`,
    /// `timeout`, `out-of-memory`, `stack-overflow`, `panic`, `exit`,
    /// `denied-capability`, `invalid-output`, `trap`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::PluginError { kind: ErrorKind::InvalidConfig, .. } => "invalid-config",
            Outcome::PluginError { kind: ErrorKind::Retryable, .. } => "retryable",
            Outcome::PluginError { kind: ErrorKind::Failed, .. } => "failed",
            Outcome::Trap { trap } => match trap {
                TrapKind::Timeout { .. } => "timeout",
                TrapKind::OutOfMemory { .. } => "out-of-memory",
                TrapKind::StackOverflow => "stack-overflow",
                TrapKind::Panic { .. } => "panic",
                TrapKind::Exit { .. } => "exit",
                TrapKind::DeniedCapability { .. } => "denied-capability",
                TrapKind::InvalidOutput { .. } => "invalid-output",
                TrapKind::Other { .. } => "trap",
            },
        }
    }
}

impl fmt::Display for Outcome {
    /// One line, e.g. `trap: timeout after 5s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::units::{format_bytes, format_duration};
        match self {
            Outcome::Ok => write!(f, "ok"),
            Outcome::PluginError { kind, message } => {
                let kind = match kind {
                    ErrorKind::InvalidConfig => "invalid config",
                    ErrorKind::Retryable => "retryable error",
                    ErrorKind::Failed => "failed",
                };
                write!(f, "{kind}: {message}")
            }
            Outcome::Trap { trap } => match trap {
                TrapKind::Timeout { limit_ms } => {
                    write!(f, "trap: timeout after {}", format_duration(Duration::from_millis(*limit_ms)))
                }
                TrapKind::OutOfMemory { limit_bytes } => {
                    // Python components alone need about 12.5 MiB, so say how to raise it.
                    write!(
                        f,
                        "trap: out of memory (limit {}; raise it with the step's `memory:` or `--memory`)",
                        format_bytes(*limit_bytes)
                    )
                }
                TrapKind::StackOverflow => write!(f, "trap: stack overflow"),
                TrapKind::Panic { message } => write!(f, "trap: panic: {message}"),
                TrapKind::Exit { code } => write!(f, "trap: exit({code})"),
                TrapKind::DeniedCapability { grant, message } => {
                    write!(f, "trap: denied capability: {grant} ({message})")
                }
                TrapKind::InvalidOutput { message } => write!(f, "trap: invalid output: {message}"),
                TrapKind::Other { message } => write!(f, "trap: {message}"),
            },
        }
    }
}

/// Severity of a finding, lowest first (the contract's `severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A measurement returned by a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    /// Label pairs, e.g. `[["url", "https://x"]]`.
    #[schema(value_type = Vec<Vec<String>>)]
    #[serde(default)]
    pub labels: Vec<(String, String)>,
}

/// A problem a step found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    pub resource: Option<String>,
}

/// What a successful step returned; `data` is parsed JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutput {
    pub data: serde_json::Value,
    pub metrics: Vec<Metric>,
    pub findings: Vec<Finding>,
}

/// Level of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    /// A line the guest wrote to stdout.
    Stdout,
    /// A line the guest wrote to stderr.
    Stderr,
}

/// One line of a step's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

/// Everything the host knows about one plugin call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Name of the plugin, e.g. "echo".
    pub plugin: String,
    /// blake3 digest of the plugin's component bytes, hex.
    pub plugin_digest: String,
    pub outcome: Outcome,
    /// Present when `outcome` is `ok`.
    pub output: Option<StepOutput>,
    /// Wall-clock time of the call, instantiation included.
    pub duration_ms: f64,
    /// Highest linear memory across the component's memories, in bytes.
    pub peak_memory_bytes: u64,
    /// `host.log` lines, then stdout and stderr lines, secrets redacted.
    pub logs: Vec<LogLine>,
    /// Log lines or output bytes dropped because a bound was reached.
    pub logs_dropped: u64,
    /// Each refused capability, e.g. `hosts: 127.0.0.1:9 is not granted`.
    pub denials: Vec<String>,
}

impl Outcome {
    /// Redacts the messages a plugin or its denials wrote.
    pub fn redact(&mut self, r: &Redactor) {
        match self {
            Outcome::Ok => {}
            Outcome::PluginError { message, .. } => r.in_place(message),
            Outcome::Trap { trap } => match trap {
                TrapKind::Panic { message } | TrapKind::InvalidOutput { message } | TrapKind::Other { message } => {
                    r.in_place(message)
                }
                TrapKind::DeniedCapability { grant, message } => {
                    r.in_place(grant);
                    r.in_place(message);
                }
                TrapKind::Timeout { .. }
                | TrapKind::OutOfMemory { .. }
                | TrapKind::StackOverflow
                | TrapKind::Exit { .. } => {}
            },
        }
    }
}

impl StepOutput {
    /// Redacts every string: data (keys too), metric names and labels,
    /// and every field of every finding.
    pub fn redact(&mut self, r: &Redactor) {
        r.json_in_place(&mut self.data);
        for m in &mut self.metrics {
            r.in_place(&mut m.name);
            for (k, v) in &mut m.labels {
                r.in_place(k);
                r.in_place(v);
            }
        }
        for f in &mut self.findings {
            r.in_place(&mut f.title);
            r.in_place(&mut f.detail);
            if let Some(resource) = &mut f.resource {
                r.in_place(resource);
            }
        }
    }
}

impl StepRecord {
    /// Redacts every string the plugin returned or wrote, and the denials
    /// (which quote what it asked for). Everything a plugin returns is
    /// untrusted: a record is redacted before it is stored, logged, sent
    /// or printed.
    pub fn redact(&mut self, r: &Redactor) {
        if r.is_empty() {
            return;
        }
        self.outcome.redact(r);
        if let Some(output) = &mut self.output {
            output.redact(r);
        }
        for line in &mut self.logs {
            r.in_place(&mut line.message);
        }
        for d in &mut self.denials {
            r.in_place(d);
        }
    }
}
