//! `tend plugins list | install | remove | inspect | call`: the plugin
//! runtime from the shell.

use super::{Cli, EXIT_FAILED, EXIT_USAGE, fail};
use crate::runtime::caps::state::StateStore;
use crate::runtime::grants::{DirGrant, Grants, HostPattern, parse_env};
use crate::runtime::inspect::{CONTRACT_PACKAGE, CONTRACT_VERSION, ComponentFacts, Language};
use crate::runtime::installed::{self, Manifest};
use crate::runtime::limits::Limits;
use crate::runtime::{CheckError, Content, Origin, PluginInfo, PluginSource, Runtime, StepCall, StepContext};
use crate::units::{format_bytes, parse_bytes, parse_duration};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// The runbook name a call without `--runbook` runs under (its state is in memory).
const DEFAULT_CALL_RUNBOOK: &str = "cli";

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
    /// Check a component against the contract, precompile it and install
    /// it into the plugins directory under the name it describes itself by.
    Install {
        /// The component file (.wasm).
        file: PathBuf,
    },
    /// Remove an installed plugin and its compiled code.
    Remove {
        /// The plugin's name.
        name: String,
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
    /// Read and write this runbook's plugin state in the database (--db),
    /// as the runbook's own steps do; without it the state lives in memory
    /// for this one call.
    #[arg(long, value_name = "RUNBOOK")]
    pub runbook: Option<String>,
    /// Print the whole call record (outcome, duration, peak memory, logs)
    /// instead of the step output.
    #[arg(long)]
    pub record: bool,
}

pub async fn run(cli: &Cli, cmd: &PluginsCommand) -> ExitCode {
    // A call naming a runbook shares that runbook's state in the database.
    let state: Option<Arc<dyn StateStore>> = match cmd {
        PluginsCommand::Call(CallArgs { runbook: Some(_), .. }) => match super::runbooks::open_store(cli).await {
            Ok(store) => Some(Arc::new(store)),
            Err(code) => return code,
        },
        _ => None,
    };
    let runtime = match super::runtime(cli, state, Arc::new(crate::runtime::caps::secrets::EnvSecrets)) {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_FAILED, format!("{e:#}")),
    };
    match cmd {
        PluginsCommand::List { json } => list(&runtime, &cli.plugins(), *json).await,
        PluginsCommand::Install { file } => install(&runtime, &cli.plugins(), file).await,
        PluginsCommand::Remove { name } => remove(&runtime, &cli.plugins(), name),
        PluginsCommand::Inspect { plugin } => inspect(&runtime, plugin).await,
        PluginsCommand::Call(args) => call(&runtime, args).await,
    }
}

/// One line of `tend plugins list --json`.
#[derive(Serialize)]
struct ListEntry<'a> {
    name: &'a str,
    version: &'a str,
    description: &'a str,
    capabilities: &'a [String],
    origin: &'a Origin,
    language: Language,
    size_bytes: u64,
    digest: &'a str,
    /// What `tend plugins install` recorded, when it installed this file.
    installed: Option<Manifest>,
}

async fn list(runtime: &Runtime, dir: &Path, json: bool) -> ExitCode {
    let mut rows = Vec::new();
    let mut broken = false;
    for source in runtime.plugins() {
        match runtime.describe(source).await {
            Ok(info) => match list_entry(source, info, dir) {
                Ok(row) => rows.push(row),
                Err(e) => {
                    broken = true;
                    eprintln!("tend: warning: {e:#}");
                }
            },
            Err(e) => {
                broken = true;
                eprintln!("tend: warning: {e:#}");
            }
        }
    }
    if json {
        let list: Vec<ListEntry> = rows
            .iter()
            .map(|(s, content, info, manifest)| ListEntry {
                name: &info.name,
                version: &info.version,
                description: &info.description,
                capabilities: &info.capabilities,
                origin: &s.origin,
                language: language_of(content, manifest.as_ref()),
                size_bytes: content.bytes.len() as u64,
                digest: &content.digest,
                installed: manifest.clone(),
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
    } else {
        outln!(
            "{:<16} {:<9} {:<9} {:<10} {:>9}  {:<12} {:<16} DESCRIPTION",
            "NAME",
            "VERSION",
            "ORIGIN",
            "LANGUAGE",
            "SIZE",
            "DIGEST",
            "CAPABILITIES"
        );
        for (s, content, info, manifest) in &rows {
            let origin = match (&s.origin, manifest) {
                (Origin::Builtin, _) => "built-in",
                (Origin::File(_), Some(_)) => "installed",
                (Origin::File(_), None) => "file",
            };
            let caps = if info.capabilities.is_empty() { "-".to_string() } else { info.capabilities.join(",") };
            let summary = info.description.split(". ").next().unwrap_or("").trim_end_matches('.');
            outln!(
                "{:<16} {:<9} {:<9} {:<10} {:>9}  {:<12} {:<16} {summary}",
                info.name,
                info.version,
                origin,
                language_of(content, manifest.as_ref()).as_str(),
                format_bytes(content.bytes.len() as u64),
                &content.digest[..12],
                caps
            );
        }
    }
    if broken { ExitCode::from(EXIT_FAILED) } else { ExitCode::SUCCESS }
}

/// A plugin with its component and its manifest, when `tend plugins
/// install` wrote one for exactly these bytes.
fn list_entry<'a>(
    source: &'a PluginSource,
    info: PluginInfo,
    dir: &Path,
) -> anyhow::Result<(&'a PluginSource, &'a Content, PluginInfo, Option<Manifest>)> {
    let content = source.content()?;
    let manifest = match source.origin {
        Origin::Builtin => None,
        Origin::File(_) => installed::read_manifest(dir, &source.name).filter(|m| m.digest == content.digest),
    };
    Ok((source, content, info, manifest))
}

/// The recorded language, else what the component's producers say.
fn language_of(content: &Content, manifest: Option<&Manifest>) -> Language {
    manifest
        .map(|m| m.language)
        .unwrap_or_else(|| ComponentFacts::read(&content.bytes).map(|f| f.language).unwrap_or(Language::Unknown))
}

/// Checks, precompiles and installs a component as `<name>.wasm` with its
/// manifest. A plugin of the same name is replaced.
async fn install(runtime: &Runtime, dir: &Path, file: &Path) -> ExitCode {
    let bytes: Arc<[u8]> = match std::fs::read(file) {
        Ok(b) => b.into(),
        Err(e) => return fail(EXIT_USAGE, format!("cannot read plugin file {}: {e}", file.display())),
    };
    let what = format!("plugin file {}", file.display());
    let checked = match runtime.check_component(bytes.clone(), &what).await {
        Ok(c) => c,
        Err(e @ (CheckError::Contract(_) | CheckError::NameTaken(_))) => return fail(EXIT_USAGE, e.to_string()),
        Err(e @ CheckError::Load(_)) => return fail(EXIT_FAILED, e.to_string()),
    };
    let info = &checked.info;
    let digest = blake3::hash(&bytes).to_hex().to_string();
    let previous = runtime.plugin(&info.name).filter(|p| matches!(p.origin, Origin::File(_))).cloned();
    let manifest = Manifest {
        name: info.name.clone(),
        version: info.version.clone(),
        description: info.description.clone(),
        language: checked.facts.language,
        contract: format!("{CONTRACT_PACKAGE}@{CONTRACT_VERSION}"),
        digest: digest.clone(),
        size_bytes: bytes.len() as u64,
        installed_at: jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now())
            .to_string(),
        source: file.display().to_string(),
    };
    let path = match installed::write(dir, &bytes, &manifest) {
        Ok(p) => p,
        Err(e) => return fail(EXIT_FAILED, format!("cannot install into {}: {e}", dir.display())),
    };
    let compile = if checked.compile.from_cache {
        format!("compiled code loaded from the cache in {:.0?}", checked.compile.took)
    } else {
        format!("compiled in {:.1?}", checked.compile.took)
    };
    let previous_digest = previous.as_ref().and_then(|p| p.content().ok()).map(|c| c.digest.clone());
    let was = match &previous {
        Some(_) if previous_digest.as_ref() == Some(&digest) => {
            " (the same component was installed already)".to_string()
        }
        Some(p) => {
            runtime.evict(p);
            let old = installed::read_manifest(dir, &p.name)
                .map(|m| m.version)
                .or_else(|| previous_digest.map(|d| d[..12].to_string()))
                .unwrap_or_else(|| "an unreadable file".to_string());
            format!(" (replacing {old})")
        }
        None => String::new(),
    };
    outln!(
        "installed {} {} ({}, {}, blake3 {}) as {}{was}; {compile}",
        info.name,
        info.version,
        manifest.language,
        format_bytes(manifest.size_bytes),
        &digest[..12],
        path.display()
    );
    ExitCode::SUCCESS
}

/// Removes an installed plugin, its manifest and its compiled code.
fn remove(runtime: &Runtime, dir: &Path, name: &str) -> ExitCode {
    let source = match runtime.plugin(name) {
        Some(s) if s.origin == Origin::Builtin => {
            return fail(EXIT_USAGE, format!("plugin {name:?} is built in; it cannot be removed"));
        }
        Some(s) => s.clone(),
        None => {
            let here: Vec<&str> =
                runtime.plugins().filter(|p| matches!(p.origin, Origin::File(_))).map(|p| p.name.as_str()).collect();
            let here = if here.is_empty() { "none".to_string() } else { here.join(", ") };
            return fail(
                EXIT_USAGE,
                format!("plugin {name:?} is not installed in {} (installed: {here})", dir.display()),
            );
        }
    };
    let version = installed::read_manifest(dir, name).map(|m| m.version);
    let evicted = runtime.evict(&source);
    if let Err(e) = installed::remove(dir, name) {
        return fail(EXIT_FAILED, format!("cannot remove plugin {name:?} from {}: {e}", dir.display()));
    }
    let version = version.map(|v| format!(" {v}")).unwrap_or_default();
    let cache = if evicted > 0 { " and its compiled code" } else { "" };
    outln!("removed {name}{version} ({}){cache}", installed::wasm_path(dir, name).display());
    ExitCode::SUCCESS
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
            value["digest"] = source.content().map(|c| c.digest.clone()).unwrap_or_default().into();
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
        runbook: args.runbook.clone().unwrap_or_else(|| DEFAULT_CALL_RUNBOOK.into()),
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
