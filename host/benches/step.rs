//! Per-step overhead, measured side by side in one run (`cargo bench --bench step`):
//!
//! (a) bare wasmtime: instantiate `echo` from an `InstancePre` into a
//!     fresh store with a minimal WASI context, call `run`;
//! (b) tend: `Runtime::call` of `echo` — sandbox from grants, limits,
//!     epoch deadline, timeout, output parsing, the full record;
//! (c) fork/exec of a native no-op (`/bin/true`), what process-per-step
//!     runners pay at the least.
//!
//! Rounds interleave the three so machine noise hits them alike. Prints
//! p50/p99 of each and the ratios b/a and b/c as a Markdown table.

use ::tend::runtime::{Runtime, RuntimeConfig, StepCall, StepContext};
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Bindings for the bare baseline, generated apart from tend's own.
mod wit {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: { default: async },
        exports: { default: async },
    });
}
use wit::PluginPre;
use wit::tend::plugin::{host as wit_host, types as wit_types};

/// Store data of the bare baseline: WASI and nothing else.
struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wit_types::Host for Bare {}

/// The bare baseline answers host calls with nothing; echo makes none.
impl wit_host::Host for Bare {
    async fn log(&mut self, _: wit_types::LogLevel, _: String) {}
    async fn state_get(&mut self, _: String) -> Option<String> {
        None
    }
    async fn state_set(&mut self, _: String, _: String) -> Result<(), String> {
        Ok(())
    }
    async fn state_delete(&mut self, _: String) {}
    async fn secret(&mut self, _: String) -> Option<String> {
        None
    }
    async fn http_fetch(&mut self, _: wit_types::HttpRequest) -> Result<wit_types::HttpResponse, String> {
        Err("denied".into())
    }
    async fn system_metrics(&mut self) -> Result<wit_types::SystemSnapshot, String> {
        Err("denied".into())
    }
    async fn tls_inspect(&mut self, _: wit_types::TlsRequest) -> Result<wit_types::TlsReport, String> {
        Err("denied".into())
    }
    async fn file_metadata(&mut self, _: String) -> Result<wit_types::FileMeta, String> {
        Err("denied".into())
    }
    async fn list_metadata(&mut self, _: String) -> Result<Vec<wit_types::FileMeta>, String> {
        Err("denied".into())
    }
    async fn file_set_mode(&mut self, _: String, _: u32) -> Result<(), String> {
        Err("denied".into())
    }
}

const ROUNDS: usize = 20;
const PER_ROUND: usize = 100;
const INPUT: &str = r#"{"service":"api","region":"eu-west-1","checks":[1,2,3]}"#;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let runtime = Runtime::new(RuntimeConfig { cache_dir: None, ..RuntimeConfig::default() })?;
    let echo = runtime.plugin("echo").expect("echo is built in").clone();

    let (engine, pooled) = ::tend::runtime::engine::new_engine(::tend::runtime::limits::Limits::DEFAULT_STACK, true)?;
    let mut linker: Linker<Bare> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wit_host::add_to_linker::<Bare, HasSelf<Bare>>(&mut linker, |s| s)?;
    wit_types::add_to_linker::<Bare, HasSelf<Bare>>(&mut linker, |s| s)?;
    let component = Component::new(&engine, &echo.content()?.bytes)?;
    let pre = PluginPre::new(linker.instantiate_pre(&component)?)?;
    let ctx = wit_types::StepContext {
        run_id: "bench".into(),
        step_id: "echo".into(),
        runbook: "bench".into(),
        attempt: 1,
        iteration: 0,
    };

    let bare = || async {
        let mut store = Store::new(&engine, Bare { wasi: WasiCtx::builder().build(), table: ResourceTable::new() });
        store.set_epoch_deadline(u64::MAX / 2);
        let plugin = pre.instantiate_async(&mut store).await?;
        let out = plugin.tend_plugin_step().call_run(&mut store, &ctx, "{}", INPUT).await?;
        anyhow::ensure!(out.is_ok(), "echo failed");
        anyhow::Ok(())
    };
    let full = || async {
        let call = StepCall {
            ctx: StepContext {
                run_id: "bench".into(),
                step_id: "echo".into(),
                runbook: "bench".into(),
                attempt: 1,
                iteration: 0,
            },
            config: "{}".into(),
            input: INPUT.into(),
            ..StepCall::default()
        };
        let record = runtime.call(&echo, call).await?;
        anyhow::ensure!(record.outcome.is_ok(), "echo failed: {}", record.outcome);
        anyhow::Ok(())
    };
    let fork = || {
        let status = std::process::Command::new("/bin/true").status()?;
        anyhow::ensure!(status.success(), "/bin/true failed");
        anyhow::Ok(())
    };

    // Warm up: compile, fill pools and caches.
    for _ in 0..200 {
        bare().await?;
        full().await?;
    }
    for _ in 0..20 {
        fork()?;
    }

    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            let t = Instant::now();
            bare().await?;
            a.push(t.elapsed());
        }
        for _ in 0..PER_ROUND {
            let t = Instant::now();
            full().await?;
            b.push(t.elapsed());
        }
        for _ in 0..PER_ROUND / 4 {
            let t = Instant::now();
            fork()?;
            c.push(t.elapsed());
        }
    }

    let (a50, a99) = percentiles(&mut a);
    let (b50, b99) = percentiles(&mut b);
    let (c50, c99) = percentiles(&mut c);
    println!("pooling allocator: {pooled}; samples: a={}, b={}, c={}", a.len(), b.len(), c.len());
    println!();
    println!("| measurement | p50 | p99 |");
    println!("|---|---|---|");
    println!("| (a) bare wasmtime instantiate + call `echo` | {} | {} |", us(a50), us(a99));
    println!("| (b) tend step invocation of `echo` | {} | {} |", us(b50), us(b99));
    println!("| (c) fork/exec `/bin/true` | {} | {} |", us(c50), us(c99));
    println!();
    println!("| ratio | p50 | p99 |");
    println!("|---|---|---|");
    println!("| b/a (target ≤ 1.5) | {:.2} | {:.2} |", ratio(b50, a50), ratio(b99, a99));
    println!("| b/c (target ≤ 0.1) | {:.3} | {:.3} |", ratio(b50, c50), ratio(b99, c99));
    Ok(())
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ratio(x: Duration, y: Duration) -> f64 {
    x.as_secs_f64() / y.as_secs_f64()
}
