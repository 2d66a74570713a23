//! The plugin runtime: knows the installed plugins (built-in and from a
//! plugins directory), compiles each once per engine, and runs one step in
//! a fresh sandboxed store, returning a [`StepRecord`] whatever the guest
//! does. Knows nothing of runbooks, schedules or the database: callers
//! pass grants, limits and a [`StateStore`].

pub mod bindings;
pub mod caps;
pub mod engine;
pub mod grants;
pub mod inspect;
pub mod installed;
pub mod limits;
pub mod output;
pub mod record;
pub mod sandbox;

use anyhow::Context as _;
use bindings::{PluginPre, types};
use caps::secrets::SecretSource;
use caps::state::StateStore;
use engine::{CompileCache, EPOCH_TICK};
use grants::Grants;
use limits::Limits;
use record::{ErrorKind, Finding, LogLevel, LogLine, Metric, Outcome, Severity, StepOutput, StepRecord, TrapKind};
use sandbox::StepState;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use wasmtime::component::Linker;
use wasmtime::{Engine, Store, Trap};

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// Shared services the capabilities use.
#[derive(Clone)]
pub struct Services {
    pub state: Arc<dyn StateStore>,
    pub secrets: Arc<dyn SecretSource>,
    pub http: reqwest::Client,
    pub system: Arc<caps::system::Sampler>,
}

/// How to build a [`Runtime`]. Every field has a default.
pub struct RuntimeConfig {
    /// Directory of extra plugins (`*.wasm`, one component each, named by
    /// file stem). By default none.
    pub plugin_dir: Option<PathBuf>,
    /// Where precompiled components are cached. By default
    /// [`CompileCache::default_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling allocator when the address space allows. By default true.
    pub pooling: bool,
    /// Runbook state. By default in memory for the life of the process.
    pub state: Arc<dyn StateStore>,
    /// Secret values. By default from `TEND_SECRET_<NAME>` variables.
    pub secrets: Arc<dyn SecretSource>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            plugin_dir: None,
            cache_dir: CompileCache::default_dir(),
            pooling: true,
            state: Arc::new(caps::state::MemoryState::default()),
            secrets: Arc::new(caps::secrets::EnvSecrets),
        }
    }
}

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Builtin,
    File(PathBuf),
}

/// An installed plugin: its name and where its component comes from. A
/// plugin file's bytes are read on first use ([`PluginSource::content`]),
/// so a process that calls one plugin does not read (and hash) every file
/// of the plugin directory.
#[derive(Debug, Clone)]
pub struct PluginSource {
    /// Name runbooks use: the built-in's name or the file stem.
    pub name: String,
    pub origin: Origin,
    content: Arc<OnceLock<Content>>,
}

/// A component's bytes, before compilation, and their digest.
#[derive(Debug)]
pub struct Content {
    pub bytes: Arc<[u8]>,
    /// blake3 of `bytes`, hex.
    pub digest: String,
}

impl Content {
    fn new(bytes: Arc<[u8]>) -> Self {
        let digest = blake3::hash(&bytes).to_hex().to_string();
        Content { bytes, digest }
    }
}

impl PluginSource {
    fn with_content(name: String, origin: Origin, bytes: Arc<[u8]>) -> Self {
        PluginSource { name, origin, content: Arc::new(OnceLock::from(Content::new(bytes))) }
    }

    /// Reads a component file now; its plugin name is the file stem.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let source = Self::lazy_file(path)?;
        source.content()?;
        Ok(source)
    }

    /// A component file read on first use; its plugin name is the file
    /// stem. Only checks now that the file can be opened.
    fn lazy_file(path: &Path) -> anyhow::Result<Self> {
        std::fs::File::open(path).with_context(|| format!("reading plugin file {}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .with_context(|| format!("plugin file {} has no name", path.display()))?;
        Ok(PluginSource { name, origin: Origin::File(path.to_path_buf()), content: Arc::default() })
    }

    /// The component's bytes and digest, reading a plugin file the first
    /// time.
    pub fn content(&self) -> anyhow::Result<&Content> {
        if let Some(content) = self.content.get() {
            return Ok(content);
        }
        let Origin::File(path) = &self.origin else {
            anyhow::bail!("built-in plugin {:?} has no component", self.name)
        };
        let bytes = std::fs::read(path).with_context(|| format!("reading plugin file {}", path.display()))?;
        Ok(self.content.get_or_init(|| Content::new(bytes.into())))
    }
}

/// What `describe()` returned, with the schema parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub config_schema: Option<serde_json::Value>,
    pub capabilities: Vec<String>,
}

/// Where a call sits in a run (the contract's `step-context`). By default
/// the first attempt of a step outside any loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepContext {
    pub run_id: String,
    pub step_id: String,
    pub runbook: String,
    pub attempt: u32,
    pub iteration: u32,
}

impl Default for StepContext {
    fn default() -> Self {
        StepContext { run_id: String::new(), step_id: String::new(), runbook: String::new(), attempt: 1, iteration: 0 }
    }
}

/// One plugin call: context, JSON config and input, grants and limits.
#[derive(Debug, Clone, Default)]
pub struct StepCall {
    pub ctx: StepContext,
    /// The step's config as JSON text.
    pub config: String,
    /// The step's input as JSON text.
    pub input: String,
    pub grants: Grants,
    pub limits: Limits,
}

/// A plugin compiled for one engine, ready to instantiate.
struct Loaded {
    pre: PluginPre<StepState>,
    info: PluginInfo,
    /// blake3 of the component, hex.
    digest: String,
}

/// An engine with its linker and the plugins compiled for it.
struct EngineSlot {
    engine: Engine,
    linker: Linker<StepState>,
    /// Compiled plugins by digest.
    loaded: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<Loaded>>>>>,
}

/// Runs plugin steps. Cheap to share behind an `Arc`.
pub struct Runtime {
    services: Services,
    cache: CompileCache,
    plugins: BTreeMap<String, PluginSource>,
    /// Problems with files in the plugin directory; those plugins are skipped.
    pub load_warnings: Vec<String>,
    /// One engine per distinct wasm stack size (the stack is engine-wide in
    /// wasmtime); the default stack's engine is created up front.
    engines: Mutex<HashMap<usize, Arc<EngineSlot>>>,
    default_pooled: bool,
}

impl Runtime {
    /// Creates the runtime: the default engine, the built-in plugins, and
    /// the plugins of `config.plugin_dir`. Compiles nothing yet.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Runtime> {
        let services = Services {
            state: config.state,
            secrets: config.secrets,
            http: caps::http::client()?,
            system: Arc::default(),
        };
        let mut plugins = BTreeMap::new();
        for (name, bytes) in BUILTIN_PLUGINS {
            plugins.insert(
                name.to_string(),
                PluginSource::with_content(name.to_string(), Origin::Builtin, Arc::from(*bytes)),
            );
        }
        let mut load_warnings = Vec::new();
        if let Some(dir) = &config.plugin_dir {
            scan_plugin_dir(dir, &mut plugins, &mut load_warnings);
        }
        let (engine, pooled) = engine::new_engine(Limits::DEFAULT_STACK, config.pooling)?;
        let slot = Arc::new(EngineSlot { linker: sandbox::linker(&engine)?, engine, loaded: Mutex::default() });
        Ok(Runtime {
            services,
            cache: CompileCache::new(config.cache_dir),
            plugins,
            load_warnings,
            engines: Mutex::new(HashMap::from([(Limits::DEFAULT_STACK, slot)])),
            default_pooled: pooled,
        })
    }

    /// Whether the default engine uses the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.default_pooled
    }

    /// Installed plugins, by name.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginSource> {
        self.plugins.values()
    }

    /// An installed plugin by name.
    pub fn plugin(&self, name: &str) -> Option<&PluginSource> {
        self.plugins.get(name)
    }

    /// An installed plugin by name, or a `.wasm` file by path. The error
    /// lists the installed plugins.
    pub fn resolve(&self, name_or_path: &str) -> anyhow::Result<PluginSource> {
        if let Some(p) = self.plugins.get(name_or_path) {
            return Ok(p.clone());
        }
        let path = Path::new(name_or_path);
        if name_or_path.ends_with(".wasm") || path.components().count() > 1 {
            return PluginSource::from_file(path);
        }
        let names: Vec<&str> = self.plugins.keys().map(String::as_str).collect();
        anyhow::bail!("plugin {name_or_path:?} is not installed (installed: {})", names.join(", "))
    }

    /// The plugin's `describe()` record (compiling it first if needed).
    pub async fn describe(&self, source: &PluginSource) -> anyhow::Result<PluginInfo> {
        let slot = self.engine(Limits::DEFAULT_STACK)?;
        Ok(self.load(&slot, source).await?.info.clone())
    }

    /// Compiles (or loads from cache) every installed plugin, so the first
    /// steps do not pay for it, and returns each one's `describe()` record
    /// by name (None for a plugin that does not load) with the problems.
    pub async fn describe_all(&self) -> (BTreeMap<String, Option<PluginInfo>>, Vec<String>) {
        let mut infos = BTreeMap::new();
        let mut problems = Vec::new();
        for source in self.plugins.values() {
            let info = match self.describe(source).await {
                Ok(info) => Some(info),
                Err(e) => {
                    problems.push(format!("{e:#}"));
                    None
                }
            };
            infos.insert(source.name.clone(), info);
        }
        (infos, problems)
    }

    /// Runs one step. `Err` only for problems before the guest runs
    /// (limits out of range, a plugin that does not load, a granted
    /// directory that cannot be opened); everything the guest does ends in
    /// a [`StepRecord`].
    pub async fn call(&self, source: &PluginSource, call: StepCall) -> anyhow::Result<StepRecord> {
        call.limits.check().map_err(anyhow::Error::msg)?;
        let slot = self.engine(call.limits.stack_bytes)?;
        let loaded = self.load(&slot, source).await?;
        let start = Instant::now();
        let deadline = start + call.limits.timeout;
        let state = sandbox::step_state(&self.services, &call.ctx.runbook, &call.grants, &call.limits, deadline)
            .map_err(anyhow::Error::msg)?;
        let mut store = Store::new(&slot.engine, state);
        store.limiter(|s| &mut s.limiter);
        let ticks = call.limits.timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64;
        store.set_epoch_deadline(ticks.max(1));
        store.epoch_deadline_trap();

        let ctx = types::StepContext {
            run_id: call.ctx.run_id.clone(),
            step_id: call.ctx.step_id.clone(),
            runbook: call.ctx.runbook.clone(),
            attempt: call.ctx.attempt,
            iteration: call.ctx.iteration,
        };
        let run = async {
            let plugin = loaded.pre.instantiate_async(&mut store).await?;
            plugin.tend_plugin_step().call_run(&mut store, &ctx, &call.config, &call.input).await
        };
        // The epoch deadline stops a guest running wasm; this timeout also
        // stops one blocked in a host call (a sleep, a slow HTTP request).
        let result = tokio::time::timeout(call.limits.timeout + 2 * EPOCH_TICK, run).await;
        let duration = start.elapsed();
        Ok(finish(store.into_data(), result, &call.limits, duration, &loaded))
    }

    /// The engine for a stack size, created on first use.
    fn engine(&self, stack_bytes: usize) -> anyhow::Result<Arc<EngineSlot>> {
        let mut engines = self.engines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = engines.get(&stack_bytes) {
            return Ok(slot.clone());
        }
        // Only the default engine pools: each pool reserves terabytes of
        // address space, and custom stacks are rare.
        let (engine, _) = engine::new_engine(stack_bytes, false)?;
        let slot = Arc::new(EngineSlot { linker: sandbox::linker(&engine)?, engine, loaded: Mutex::default() });
        engines.insert(stack_bytes, slot.clone());
        Ok(slot)
    }

    /// Compiles a plugin for an engine once, checks its imports against
    /// the linker and reads its `describe()` record.
    async fn load(&self, slot: &Arc<EngineSlot>, source: &PluginSource) -> anyhow::Result<Arc<Loaded>> {
        let content = source.content()?;
        let cell = {
            let mut loaded = slot.loaded.lock().unwrap_or_else(|e| e.into_inner());
            loaded.entry(content.digest.clone()).or_default().clone()
        };
        let loaded = cell
            .get_or_try_init(|| async {
                let what = describe_origin(source);
                let (pre, _) = self.prepare(slot, content.bytes.clone(), &what).await?;
                let info = self.read_info(&slot.engine, &pre, &what).await?;
                if info.name != source.name {
                    anyhow::bail!("{what} describes itself as {:?}; rename the file to {}.wasm", info.name, info.name);
                }
                anyhow::Ok(Arc::new(Loaded { pre, info, digest: content.digest.clone() }))
            })
            .await?;
        Ok(loaded.clone())
    }

    /// Compiles (or loads from the cache) a component and links it: the
    /// component ready to instantiate, and whether it came from the cache.
    async fn prepare(
        &self,
        slot: &Arc<EngineSlot>,
        bytes: Arc<[u8]>,
        what: &str,
    ) -> anyhow::Result<(PluginPre<StepState>, CompileReport)> {
        let (engine, cache) = (slot.engine.clone(), self.cache.clone());
        let compiled = tokio::task::spawn_blocking(move || cache.load(&engine, &bytes))
            .await?
            .with_context(|| format!("{what} is not a valid WebAssembly component"))?;
        let report = CompileReport { from_cache: compiled.from_cache, took: compiled.took };
        if report.from_cache {
            tracing::info!(target: "tend::runtime", "loaded {what} from the compile cache in {:.1?}", report.took);
        } else {
            tracing::info!(target: "tend::runtime", "compiled {what} in {:.1?}", report.took);
        }
        let pre = slot
            .linker
            .instantiate_pre(&compiled.component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{what} needs imports tend does not provide"))?;
        let pre = PluginPre::new(pre)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{what} does not implement the tend:plugin/plugin world"))?;
        Ok((pre, report))
    }

    /// Checks a component for installing: its contract (without
    /// compiling), then compiles it into the cache, links it and reads its
    /// `describe()` record. `what` names it in errors ("plugin file x.wasm").
    pub async fn check_component(&self, bytes: Arc<[u8]>, what: &str) -> Result<Checked, CheckError> {
        let facts = inspect::ComponentFacts::read(&bytes).map_err(|e| CheckError::Contract(format!("{what} {e}")))?;
        let slot = self.engine(Limits::DEFAULT_STACK).map_err(|e| CheckError::Load(format!("{e:#}")))?;
        let (pre, compile) = self.prepare(&slot, bytes, what).await.map_err(|e| CheckError::Load(format!("{e:#}")))?;
        let info = self.read_info(&slot.engine, &pre, what).await.map_err(|e| CheckError::Load(format!("{e:#}")))?;
        if let Some(builtin) = BUILTIN_PLUGINS.iter().find(|(name, _)| *name == info.name) {
            return Err(CheckError::NameTaken(format!(
                "{what} describes itself as {:?}, the name of a built-in plugin; rename it in describe()",
                builtin.0
            )));
        }
        if let Err(problem) = valid_plugin_name(&info.name) {
            return Err(CheckError::Load(format!("{what} describes itself as {:?}: {problem}", info.name)));
        }
        Ok(Checked { info, facts, compile })
    }

    /// Removes a plugin's compiled artifacts from the cache (every engine
    /// this runtime created). Returns how many it removed.
    pub fn evict(&self, source: &PluginSource) -> usize {
        let slots: Vec<Arc<EngineSlot>> =
            self.engines.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        let Ok(content) = source.content() else { return 0 };
        slots.iter().filter(|slot| self.cache.evict(&slot.engine, &content.bytes).unwrap_or(false)).count()
    }

    /// Calls `describe()` in a sandbox with no grants and default limits.
    async fn read_info(&self, engine: &Engine, pre: &PluginPre<StepState>, what: &str) -> anyhow::Result<PluginInfo> {
        let limits = Limits { timeout: Duration::from_secs(10), ..Limits::default() };
        let deadline = Instant::now() + limits.timeout;
        let state = sandbox::step_state(&self.services, "", &Grants::default(), &limits, deadline)
            .map_err(anyhow::Error::msg)?;
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(limits.timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64);
        store.epoch_deadline_trap();
        let info = tokio::time::timeout(limits.timeout, async {
            let plugin = pre.instantiate_async(&mut store).await?;
            plugin.tend_plugin_step().call_describe(&mut store).await
        })
        .await
        .map_err(|_| anyhow::anyhow!("{what}: describe() did not return within 10s"))?
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{what}: describe() failed"))?;
        let config_schema = match &info.config_schema {
            None => None,
            Some(text) => Some(
                serde_json::from_str(text)
                    .with_context(|| format!("{what}: describe() returned a config-schema that is not valid JSON"))?,
            ),
        };
        Ok(PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            config_schema,
            capabilities: info.capabilities,
        })
    }
}

/// How a component was made ready.
#[derive(Debug, Clone, Copy)]
pub struct CompileReport {
    /// Loaded from the compile cache rather than compiled.
    pub from_cache: bool,
    pub took: Duration,
}

/// A component that passed [`Runtime::check_component`].
#[derive(Debug)]
pub struct Checked {
    pub info: PluginInfo,
    pub facts: inspect::ComponentFacts,
    pub compile: CompileReport,
}

/// Why a component cannot be installed. Each message names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// Not a component of this tend's contract (found without compiling).
    #[error("{0}")]
    Contract(String),
    /// Does not compile, link or describe itself.
    #[error("{0}")]
    Load(String),
    /// Its name is a built-in plugin's.
    #[error("{0}")]
    NameTaken(String),
}

/// A plugin name is a file stem and a runbook's `uses:`: lowercase
/// letters, digits, `-` and `_`, starting with a letter.
pub fn valid_plugin_name(name: &str) -> Result<(), String> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok && name.len() <= 64 {
        Ok(())
    } else {
        Err("expected 1 to 64 lowercase letters, digits, '-' or '_', starting with a letter".into())
    }
}

fn describe_origin(source: &PluginSource) -> String {
    match &source.origin {
        Origin::Builtin => format!("built-in plugin {:?}", source.name),
        Origin::File(path) => format!("plugin file {}", path.display()),
    }
}

/// Adds every `*.wasm` file of `dir`; a name taken by a built-in plugin,
/// or an unreadable file, becomes a warning.
fn scan_plugin_dir(dir: &Path, plugins: &mut BTreeMap<String, PluginSource>, warnings: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            warnings.push(format!("plugin directory {}: {e}", dir.display()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
        .collect();
    paths.sort();
    for path in paths {
        match PluginSource::lazy_file(&path) {
            Ok(source) if plugins.contains_key(&source.name) => warnings.push(format!(
                "plugin file {}: the name {:?} is taken by a built-in plugin; rename the file",
                path.display(),
                source.name
            )),
            Ok(source) => {
                plugins.insert(source.name.clone(), source);
            }
            Err(e) => warnings.push(format!("{e:#}")),
        }
    }
}

type RunResult = Result<wasmtime::Result<Result<types::StepOutput, types::StepError>>, tokio::time::error::Elapsed>;

/// Turns what the call returned and what the sandbox saw into the record.
fn finish(state: StepState, result: RunResult, limits: &Limits, duration: Duration, loaded: &Loaded) -> StepRecord {
    let info = &loaded.info;
    let redactor = &state.caps.secrets.redactor;
    let (stdout, stdout_dropped) = state.stdout.contents();
    let (stderr, stderr_dropped) = state.stderr.contents();
    // A secret spanning lines is caught before the text is split.
    let (stdout, stderr) = (redactor.string(&stdout), redactor.string(&stderr));
    let denials = state.caps.denials.list();
    let timeout = || Outcome::Trap { trap: TrapKind::Timeout { limit_ms: limits.timeout.as_millis() as u64 } };

    let mut output = None;
    let mut outcome = match result {
        Err(_elapsed) => timeout(),
        Ok(Err(err)) => Outcome::Trap { trap: classify_trap(&err, state.limiter.hit_limit, limits, &stderr) },
        Ok(Ok(Err(step_error))) => {
            let (kind, message) = match step_error {
                types::StepError::InvalidConfig(m) => (ErrorKind::InvalidConfig, m),
                types::StepError::Retryable(m) => (ErrorKind::Retryable, m),
                types::StepError::Failed(m) => (ErrorKind::Failed, m),
            };
            Outcome::PluginError { kind, message }
        }
        Ok(Ok(Ok(out))) => match convert_output(out, limits) {
            Ok(o) => {
                output = Some(o);
                Outcome::Ok
            }
            Err(message) => Outcome::Trap { trap: TrapKind::InvalidOutput { message } },
        },
    };
    if let Outcome::Trap { trap: TrapKind::Timeout { .. } } = outcome {
        // A timeout stays a timeout even if the guest was refused something.
    } else if !outcome.is_ok()
        && !matches!(outcome, Outcome::Trap { trap: TrapKind::OutOfMemory { .. } | TrapKind::StackOverflow })
        && let Some(first) = denials.first()
    {
        let grant = first.split(':').next().unwrap_or("").to_string();
        let detail = match &outcome {
            Outcome::PluginError { message, .. } => format!("{first}; the plugin then failed: {message}"),
            other => format!("{first}; then {other}"),
        };
        outcome = Outcome::Trap { trap: TrapKind::DeniedCapability { grant, message: detail } };
    }

    let mut logs: Vec<LogLine> = state.caps.log.lines.clone();
    for (level, text, dropped) in
        [(LogLevel::Stdout, stdout, stdout_dropped), (LogLevel::Stderr, stderr, stderr_dropped)]
    {
        logs.extend(text.lines().map(|l| LogLine { level, message: l.to_string() }));
        if dropped > 0 {
            logs.push(LogLine { level, message: format!("[{dropped} more bytes dropped]") });
        }
    }
    let mut record = StepRecord {
        plugin: info.name.clone(),
        plugin_digest: loaded.digest.clone(),
        outcome,
        output,
        duration_ms: duration.as_secs_f64() * 1000.0,
        peak_memory_bytes: state.limiter.peak(),
        logs,
        logs_dropped: state.caps.log.dropped + stdout_dropped + stderr_dropped,
        denials,
    };
    record.redact(redactor);
    for line in &record.logs {
        tracing::debug!(target: "tend::plugin", plugin = %record.plugin, level = ?line.level, "{}", line.message);
    }
    for denial in &record.denials {
        tracing::debug!(target: "tend::sandbox", plugin = %record.plugin, "denied: {denial}");
    }
    record
}

/// Names a trap: timeout, out of memory, stack overflow, panic, exit.
fn classify_trap(err: &wasmtime::Error, hit_memory_limit: bool, limits: &Limits, stderr: &str) -> TrapKind {
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return TrapKind::Exit { code: exit.0 };
    }
    let oom = TrapKind::OutOfMemory { limit_bytes: limits.memory_bytes };
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => TrapKind::Timeout { limit_ms: limits.timeout.as_millis() as u64 },
        Some(Trap::StackOverflow) => TrapKind::StackOverflow,
        Some(_) if hit_memory_limit => oom,
        Some(Trap::UnreachableCodeReached) => TrapKind::Panic { message: panic_message(stderr) },
        Some(trap) => TrapKind::Other { message: trap.to_string() },
        None if hit_memory_limit => oom,
        None => TrapKind::Other { message: format!("{err:#}") },
    }
}

/// Why a guest aborted, from what it printed to stderr: the exception of a
/// Python traceback printed before the abort (componentize-py prints the
/// uncaught exception, then panics with a generic "Python function threw
/// an unexpected exception"), else a Rust panic's message, else a generic
/// message. A componentize-js (StarlingMonkey) component prints an
/// uncaught JavaScript exception and its stack, then aborts: the exception
/// is the message.
fn panic_message(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let panic_at = lines.iter().position(|l| l.contains("panicked at"));
    if let Some(exception) = python_exception(&lines[..panic_at.unwrap_or(lines.len())]) {
        return exception;
    }
    if let Some(exception) = js_exception(&lines) {
        return exception;
    }
    if let Some(at) = panic_at {
        let msg: Vec<&str> = lines[at + 1..].iter().copied().take_while(|l| !l.starts_with("note:")).collect();
        if !msg.is_empty() {
            return msg.join(" ");
        }
        return lines[at].to_string();
    }
    "the guest aborted (wasm unreachable instruction)".to_string()
}

/// The exception line of the last Python traceback in `lines`, e.g.
/// "ValueError: disk on fire": the first unindented line after the
/// traceback's header (frames and source lines are indented).
fn python_exception(lines: &[&str]) -> Option<String> {
    let start = lines.iter().rposition(|l| l.starts_with("Traceback (most recent call last):"))?;
    lines[start + 1..].iter().find(|l| !l.trim().is_empty() && !l.starts_with([' ', '\t'])).map(|l| l.to_string())
}

/// The uncaught exception a componentize-js component printed before
/// aborting, e.g. "TypeError: x is undefined": the line before the last
/// "Stack:" header. An exception thrown out of a function returning a
/// `result` is printed as the `err` variant it failed to convert, e.g.
/// "invalid variant tag value `undefined` (received `TypeError: ...`)
/// specified for `StepError`": the received value is the exception.
fn js_exception(lines: &[&str]) -> Option<String> {
    let stack = lines.iter().rposition(|l| *l == "Stack:")?;
    let line = lines[..stack].iter().rev().find(|l| !l.trim().is_empty())?;
    let received = line
        .strip_prefix("invalid variant tag value `")
        .and_then(|rest| rest.split_once("` (received `"))
        .and_then(|(_, rest)| rest.rsplit_once("`) specified for `"))
        .map(|(exception, _)| exception);
    Some(received.unwrap_or(line).to_string())
}

/// The guest's output as the record keeps it (not yet redacted).
fn convert_output(out: types::StepOutput, limits: &Limits) -> Result<StepOutput, String> {
    if out.data.len() > limits.max_data_bytes {
        return Err(format!(
            "data is {} long; the limit is {}",
            crate::units::format_bytes(out.data.len() as u64),
            crate::units::format_bytes(limits.max_data_bytes as u64)
        ));
    }
    let data = if out.data.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&out.data).map_err(|e| format!("data is not valid JSON: {e}"))?
    };
    let metrics = out.metrics.into_iter().map(|m| Metric { name: m.name, value: m.value, labels: m.labels }).collect();
    let findings = out
        .findings
        .into_iter()
        .map(|f| Finding {
            severity: match f.severity {
                types::Severity::Info => Severity::Info,
                types::Severity::Low => Severity::Low,
                types::Severity::Medium => Severity::Medium,
                types::Severity::High => Severity::High,
                types::Severity::Critical => Severity::Critical,
            },
            title: f.title,
            detail: f.detail,
            resource: f.resource,
        })
        .collect();
    Ok(StepOutput { data, metrics, findings })
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn a_rust_panic_is_named_by_its_message() {
        let stderr = "thread '<unnamed>' (1) panicked at src/lib.rs:10:5:\ndisk on fire\n\
                      note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(panic_message(stderr), "disk on fire");
        assert_eq!(panic_message(""), "the guest aborted (wasm unreachable instruction)");
    }

    #[test]
    fn an_uncaught_python_exception_is_named_by_its_exception_line() {
        // What a componentize-py 0.25 component prints for `raise ValueError(...)` in `run`.
        let stderr = "Traceback (most recent call last):\n  File \"/0/app.py\", line 15, in run\n\
                      ValueError: the disk is on fire\n\n\
                      thread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\n\
                      Python function threw an unexpected exception\n\
                      note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(panic_message(stderr), "ValueError: the disk is on fire");
        // Chained exceptions: the last traceback's exception is the one that escaped.
        let chained = "Traceback (most recent call last):\n  File \"/0/app.py\", line 3, in run\n\
                       KeyError: 'x'\n\nDuring handling of the above exception, another exception occurred:\n\n\
                       Traceback (most recent call last):\n  File \"/0/app.py\", line 5, in run\n    \
                       raise Boom()\napp.Boom: bad config\n\n\
                       thread '<unnamed>' (1) panicked at x.rs:1:1:\nPython function threw\n";
        assert_eq!(panic_message(chained), "app.Boom: bad config");
    }

    #[test]
    fn an_uncaught_javascript_exception_is_named_by_the_exception() {
        // What a componentize-js 0.23 component prints for an exception escaping `run`.
        let stderr = "invalid variant tag value `undefined` (received `TypeError: can't access property \"x\" \
                      of null`) specified for `StepError`\nStack:\n  \
                      export_step_0_1_0$run@/tmp/6f4b26a5dbf8/sources/initializer.js:831:17\n\n\
                      Redirecting call to abort() to mozalloc_abort\n\n";
        assert_eq!(panic_message(stderr), "TypeError: can't access property \"x\" of null");
        // Any other exception: the line before its stack.
        let stderr = "Error: no describe for you\nStack:\n  describe@app.js:3:11\n\n\
                      Redirecting call to abort() to mozalloc_abort\n";
        assert_eq!(panic_message(stderr), "Error: no describe for you");
    }
}
