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
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> anyhow::Result<Component> {
        let Some(dir) = &self.dir else {
            return Ok(Component::new(engine, bytes)?);
        };
        let path = dir.join(format!("{}.cwasm", cache_key(engine, bytes)));
        if path.exists() {
            // SAFETY: the file was written by `store` below from
            // `Component::serialize` for an engine with the same
            // compatibility hash (part of the key); the cache directory is
            // documented as trusted. wasmtime checks the header again.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!("ignoring unusable cached component {}: {e:#}", path.display()),
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = store(&path, &component) {
            tracing::warn!("could not cache the compiled component at {}: {e:#}", path.display());
        }
        Ok(component)
    }
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
