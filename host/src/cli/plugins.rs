//! `tend plugins list | inspect | call`: the plugin runtime from the shell.

use super::{Cli, EXIT_FAILED, EXIT_USAGE, fail};
use crate::runtime::grants::{DirGrant, Grants, HostPattern, parse_env};
use crate::runtime::limits::Limits;
use crate::runtime::{Origin, Runtime, StepCall, StepContext};
use crate::units::{parse_bytes, parse_duration};
use clap::{Args, Subcommand};
use std::process::ExitCode;

// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List built-in and installed plugins.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a plugin's describe() record: version, capabilities, config schema.
    Inspect {
        /// Plugin name or path to a .wasm component.
        plugin: String,
    },
    /// Run one step of a plugin and print its output as JSON.
    Call(CallArgs),
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// Plugin name or path to a .wasm component.
    pub plugin: String,
    /// The step's config as JSON, or @FILE to read it from a file.
    #[arg(long, default_value = "{}")]
    pub config: String,
    /// The step's input as JSON, or @FILE to read it from a file.
    #[arg(long, default_value = "null")]
    pub input: String,
    /// Allow outbound HTTP to HOST (e.g. api.example.com, *.example.com, localhost:8080).
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_host: Vec<String>,
    /// Make a directory visible: HOST_PATH:GUEST_PATH[:ro|:rw] (read-only by default).
    #[arg(long = "dir", value_name = "HOST_PATH:GUEST_PATH[:ro|:rw]")]
    pub dir: Vec<String>,
    /// Set an environment variable for the plugin: K=V.
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Grant a secret by name (its value comes from TEND_SECRET_<NAME>).
    #[arg(long = "secret", value_name = "NAME")]
    pub secret: Vec<String>,
    /// Grant reading CPU, memory, disk and load of this machine.
    #[arg(long)]
    pub allow_system_metrics: bool,
    /// Wall-clock limit, e.g. 500ms, 5s, 1m.
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// Memory limit across the plugin's memories, e.g. 64MiB.
    #[arg(long, default_value = "128MiB")]
    pub memory: String,
    /// WebAssembly stack size, e.g. 512KiB, 2MiB.
    #[arg(long, default_value = "512KiB")]
    pub stack: String,
    /// Runbook name the call's state is scoped to.
    #[arg(long, default_value = "cli")]
    pub runbook: String,
    /// Print the whole call record (outcome, duration, peak memory, logs)
    /// instead of the step output.
    #[arg(long)]
    pub record: bool,
}

pub async fn run(cli: &Cli, cmd: &PluginsCommand) -> ExitCode {
    let runtime = match super::runtime(cli, None, std::sync::Arc::new(crate::runtime::caps::secrets::EnvSecrets)) {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_FAILED, format!("{e:#}")),
    };
    match cmd {
        PluginsCommand::List { json } => list(&runtime, *json).await,
        PluginsCommand::Inspect { plugin } => inspect(&runtime, plugin).await,
        PluginsCommand::Call(args) => call(&runtime, args).await,
    }
}

async fn list(runtime: &Runtime, json: bool) -> ExitCode {
    let mut rows = Vec::new();
    let mut broken = false;
    for source in runtime.plugins() {
        match runtime.describe(source).await {
            Ok(info) => rows.push((source, info)),
            Err(e) => {
                broken = true;
                eprintln!("tend: warning: {e:#}");
            }
        }
    }
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(s, info)| {
                serde_json::json!({
                    "name": info.name, "version": info.version, "description": info.description,
                    "capabilities": info.capabilities, "origin": s.origin, "digest": s.digest,
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
    } else {
        outln!("{:<16} {:<9} {:<10} {:<16} DESCRIPTION", "NAME", "VERSION", "ORIGIN", "CAPABILITIES");
        for (s, info) in &rows {
            let origin = match &s.origin {
                Origin::Builtin => "built-in".to_string(),
                Origin::File(_) => "file".to_string(),
            };
            let caps = if info.capabilities.is_empty() { "-".to_string() } else { info.capabilities.join(",") };
            let summary = info.description.split(". ").next().unwrap_or("").trim_end_matches('.');
            outln!("{:<16} {:<9} {:<10} {:<16} {summary}", info.name, info.version, origin, caps);
        }
    }
    if broken { ExitCode::from(EXIT_FAILED) } else { ExitCode::SUCCESS }
}

async fn inspect(runtime: &Runtime, plugin: &str) -> ExitCode {
    let source = match runtime.resolve(plugin) {
        Ok(s) => s,
        Err(e) => return fail(EXIT_USAGE, format!("{e:#}")),
    };
    match runtime.describe(&source).await {
        Ok(info) => {
            let mut value = serde_json::to_value(&info).unwrap_or_default();
            value["origin"] = serde_json::to_value(&source.origin).unwrap_or_default();
            value["digest"] = source.digest.clone().into();
            outln!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, format!("{e:#}")),
    }
}

async fn call(runtime: &Runtime, args: &CallArgs) -> ExitCode {
    let call = match step_call(args) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let source = match runtime.resolve(&args.plugin) {
        Ok(s) => s,
        Err(e) => return fail(EXIT_USAGE, format!("{e:#}")),
    };
    let record = match runtime.call(&source, call).await {
        Ok(r) => r,
        Err(e) => return fail(EXIT_FAILED, format!("{e:#}")),
    };
    if args.record {
        outln!("{}", serde_json::to_string_pretty(&record).unwrap_or_default());
    } else if let Some(output) = &record.output {
        outln!("{}", serde_json::to_string_pretty(output).unwrap_or_default());
    }
    if record.outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        fail(EXIT_FAILED, format!("{}: {}", source.name, record.outcome))
    }
}

/// Builds the call from the flags; errors name the flag and the value.
fn step_call(args: &CallArgs) -> Result<StepCall, String> {
    let config = json_arg("--config", &args.config)?;
    let input = json_arg("--input", &args.input)?;
    let mut grants = Grants { system_metrics: args.allow_system_metrics, ..Grants::default() };
    for h in &args.allow_host {
        grants.hosts.push(HostPattern::parse(h).map_err(|e| format!("--allow-host: {e}"))?);
    }
    for d in &args.dir {
        grants.dirs.push(DirGrant::parse(d).map_err(|e| format!("--dir: {e}"))?);
    }
    for e in &args.env {
        let (k, v) = parse_env(e).map_err(|e| format!("--env: {e}"))?;
        grants.env.insert(k, v);
    }
    grants.secrets = args.secret.clone();
    let limits = Limits {
        timeout: parse_duration(&args.timeout).map_err(|e| format!("--timeout: {e}"))?,
        memory_bytes: parse_bytes(&args.memory).map_err(|e| format!("--memory: {e}"))?,
        stack_bytes: parse_bytes(&args.stack).map_err(|e| format!("--stack: {e}"))? as usize,
        ..Limits::default()
    };
    limits.check()?;
    let ctx = StepContext {
        run_id: format!("cli-{}", std::process::id()),
        step_id: "call".into(),
        runbook: args.runbook.clone(),
        attempt: 1,
        iteration: 0,
    };
    Ok(StepCall { ctx, config, input, grants, limits })
}

/// Reads a JSON argument (inline or `@FILE`) and checks it parses.
fn json_arg(flag: &str, value: &str) -> Result<String, String> {
    let text = match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{flag}: cannot read {path}: {e}"))?,
        None => value.to_string(),
    };
    serde_json::from_str::<serde_json::Value>(&text).map_err(|e| format!("{flag} is not valid JSON: {e}"))?;
    Ok(text)
}
