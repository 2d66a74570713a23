//! wasmtime engines and compiled components: engine configuration
//! (pooling allocator with an on-demand fallback, epoch interruption driven
//! by a ticker thread), and the on-disk cache of precompiled components.
//! Reads and writes only the cache directory.

use anyhow::Context as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// How often the epoch advances; the resolution of step timeouts.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Steps that may run at once on the pooling allocator.
const POOL_INSTANCES: u32 = 1000;

/// Creates an engine whose wasm stack is `stack_bytes`, on the pooling
/// allocator when `pooling` is true and the address space allows it (it
/// reserves a few TiB of virtual memory up front), else on the on-demand
/// allocator. Returns the engine and whether it pools. Starts the engine's
/// epoch ticker, which stops when the engine is dropped.
pub fn new_engine(stack_bytes: usize, pooling: bool) -> anyhow::Result<(Engine, bool)> {
    let mut config = base_config(stack_bytes);
    let engine = if pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool_config()));
        match Engine::new(&config) {
            Ok(engine) => Some(engine),
            Err(e) => {
                tracing::warn!("pooling allocator unavailable, using on-demand allocation: {e:#}");
                None
            }
        }
    } else {
        None
    };
    let (engine, pooled) = match engine {
        Some(engine) => (engine, true),
        None => (
            Engine::new(&base_config(stack_bytes))
                .map_err(anyhow::Error::from)
                .context("creating the wasmtime engine")?,
            false,
        ),
    };
    start_ticker(&engine);
    Ok((engine, pooled))
}

fn base_config(stack_bytes: usize) -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(stack_bytes)
        // Host calls run on the fiber stack too; keep 1 MiB of headroom.
        .async_stack_size(stack_bytes + (1 << 20))
        .cranelift_opt_level(OptLevel::Speed)
        .parallel_compilation(true);
    config
}

fn pool_config() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 8)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 8)
        .total_stacks(POOL_INSTANCES)
        .max_core_instances_per_component(64)
        .max_memories_per_component(8)
        .max_tables_per_component(32)
        .max_memories_per_module(2)
        .max_tables_per_module(8)
        .table_elements(100_000)
        .max_core_instance_size(2 << 20)
        .max_component_instance_size(2 << 20)
        .max_memory_size(super::limits::Limits::MAX_MEMORY as usize)
        // Keep a few warm slots and their pages so repeated steps are fast,
        // while memory returns to the OS after a burst.
        .max_unused_warm_slots(64)
        .linear_memory_keep_resident(64 << 10)
        .table_keep_resident(64 << 10);
    pool
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is gone.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("tend-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// Precompiled components on disk, keyed by a hash of the component bytes,
/// the engine's compatibility hash and tend's version, so a restart (or a
/// second engine with the same settings) does not recompile.
///
/// Files in the cache are native code: the directory must be writable only
/// by the user tend runs as. By default `$TEND_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/tend/components`, else `~/.cache/tend/components`;
/// without any of them, caching is off.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    /// A cache in `dir`, or no cache.
    pub fn new(dir: Option<PathBuf>) -> Self {
        CompileCache { dir }
    }

    /// The default cache directory (see the type's docs).
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("TEND_CACHE_DIR").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|d| !d.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("tend").join("components"))
    }

    /// Compiles `bytes` for `engine`, or loads the cached artifact. Blocking.
    ///
    /// Processes compiling the same uncached component do the work once:
    /// the first holds a lock on the cache entry (`<key>.lock`) while it
    /// compiles, the others wait for it and load its artifact.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> anyhow::Result<Compiled> {
        let start = std::time::Instant::now();
        let compiled = |component, from_cache| Compiled { component, from_cache, took: start.elapsed() };
        let Some(dir) = &self.dir else {
            return Ok(compiled(Component::new(engine, bytes)?, false));
        };
        let key = cache_key(engine, bytes);
        let path = dir.join(format!("{key}.cwasm"));
        if let Some(component) = deserialize(engine, &path) {
            return Ok(compiled(component, true));
        }
        let _lock = match lock_entry(dir, &key) {
            Ok(lock) => Some(lock),
            Err(e) => {
                tracing::warn!("could not lock the compile cache entry in {}: {e:#}", dir.display());
                None
            }
        };
        // Another process may have compiled it while this one waited.
        if let Some(component) = deserialize(engine, &path) {
            return Ok(compiled(component, true));
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = store(&path, &component) {
            tracing::warn!("could not cache the compiled component at {}: {e:#}", path.display());
        }
        Ok(compiled(component, false))
    }

    /// Removes the cached artifact of `bytes` for `engine`, if any.
    pub fn evict(&self, engine: &Engine, bytes: &[u8]) -> std::io::Result<bool> {
        let Some(dir) = &self.dir else { return Ok(false) };
        let key = cache_key(engine, bytes);
        let _ = std::fs::remove_file(dir.join(format!("{key}.lock")));
        match std::fs::remove_file(dir.join(format!("{key}.cwasm"))) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A component ready for an engine, and how it got there.
pub struct Compiled {
    pub component: Component,
    /// Loaded from the cache rather than compiled.
    pub from_cache: bool,
    /// How long compiling or loading took.
    pub took: Duration,
}

/// The cached artifact at `path`, if there is a usable one.
fn deserialize(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: the file was written by `store` below from
    // `Component::serialize` for an engine with the same compatibility
    // hash (part of the key); the cache directory is documented as
    // trusted. wasmtime checks the header again.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!("ignoring unusable cached component {}: {e:#}", path.display());
            None
        }
    }
}

/// An exclusive lock on one cache entry, held until the file is dropped.
fn lock_entry(dir: &Path, key: &str) -> std::io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(format!("{key}.lock")))?;
    file.lock()?;
    Ok(file)
}

fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let mut key = blake3::Hasher::new();
    key.update(bytes);
    key.update(&hasher.finish().to_le_bytes());
    key.update(env!("CARGO_PKG_VERSION").as_bytes());
    key.finalize().to_hex()[..32].to_string()
}

/// Writes the artifact atomically: a temporary file renamed into place.
fn store(path: &Path, component: &Component) -> anyhow::Result<()> {
    let dir = path.parent().context("cache path has no parent")?;
    std::fs::create_dir_all(dir)?;
    let tmp =
        dir.join(format!(".{}.{}.tmp", std::process::id(), path.file_name().unwrap_or_default().to_string_lossy()));
    std::fs::write(&tmp, component.serialize()?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
