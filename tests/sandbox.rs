//! The hostile suite: a plugin that misbehaves in every way we know ends in
//! a recorded, named outcome within its limit, and the same runtime then
//! serves the next call. Drives the runtime library directly with the
//! test-only `hostile` plugin built from plugins/hostile.

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tend::runtime::grants::{DirGrant, Grants, HostPattern};
use tend::runtime::limits::Limits;
use tend::runtime::record::{ErrorKind, LogLevel, Outcome, StepRecord, TrapKind};
use tend::runtime::{PluginSource, Runtime, RuntimeConfig, StepCall};

fn runtime() -> Runtime {
    let cache = std::env::temp_dir().join("tend-test-cache");
    Runtime::new(RuntimeConfig { cache_dir: Some(cache), ..RuntimeConfig::default() }).expect("runtime")
}

fn hostile() -> PluginSource {
    PluginSource::from_file(Path::new(env!("TEND_HOSTILE_WASM"))).expect("hostile plugin built")
}

async fn call(rt: &Runtime, config: Value, grants: Grants, limits: Limits) -> StepRecord {
    let call = StepCall { config: config.to_string(), input: "null".into(), grants, limits, ..StepCall::default() };
    rt.call(&hostile(), call).await.expect("the call runs")
}

async fn mode(rt: &Runtime, mode: &str) -> StepRecord {
    call(rt, json!({ "mode": mode }), Grants::default(), quick()).await
}

/// Short limits so a misbehaving guest is stopped fast.
fn quick() -> Limits {
    Limits { timeout: Duration::from_millis(500), memory_bytes: 32 << 20, ..Limits::default() }
}

fn trap(record: &StepRecord) -> &TrapKind {
    match &record.outcome {
        Outcome::Trap { trap } => trap,
        other => panic!("expected a trap, got {other:?}"),
    }
}

/// Asserts the next call on the same runtime still works.
async fn still_serves(rt: &Runtime) {
    let echo = rt.plugin("echo").expect("echo is built in").clone();
    let call = StepCall { input: r#"{"ok":1}"#.into(), ..StepCall::default() };
    let record = rt.call(&echo, call).await.unwrap();
    assert_eq!(record.outcome, Outcome::Ok);
    assert_eq!(record.output.unwrap().data, json!({"ok": 1}));
}

/// A loopback TCP listener counting the connections it accepts, answering
/// each with a small HTTP response.
struct Listener {
    addr: String,
    accepted: Arc<AtomicUsize>,
}

fn listener(response: &'static str) -> Listener {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { break };
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(response.as_bytes());
        }
    });
    Listener { addr, accepted }
}

const OK_RESPONSE: &str = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello";

#[tokio::test]
async fn infinite_loop_times_out() {
    let rt = runtime();
    let r = mode(&rt, "loop").await;
    assert_eq!(trap(&r), &TrapKind::Timeout { limit_ms: 500 });
    assert!(r.duration_ms < 5_000.0, "stopped near its limit, took {}ms", r.duration_ms);
    still_serves(&rt).await;
}

#[tokio::test]
async fn guest_blocked_in_a_host_call_times_out() {
    let rt = runtime();
    let r = call(&rt, json!({"mode": "sleep", "ms": 60_000}), Grants::default(), quick()).await;
    assert_eq!(trap(&r), &TrapKind::Timeout { limit_ms: 500 });
    assert!(r.duration_ms < 5_000.0, "stopped near its limit, took {}ms", r.duration_ms);
    still_serves(&rt).await;
}

#[tokio::test]
async fn memory_bomb_is_out_of_memory() {
    let rt = runtime();
    let r = mode(&rt, "memory-bomb").await;
    assert_eq!(trap(&r), &TrapKind::OutOfMemory { limit_bytes: 32 << 20 });
    assert!(r.peak_memory_bytes <= 32 << 20, "peak {} within the limit", r.peak_memory_bytes);
    assert!(r.peak_memory_bytes > 16 << 20, "the bomb did grow: peak {}", r.peak_memory_bytes);
    still_serves(&rt).await;
}

#[tokio::test]
async fn unbounded_recursion_is_a_stack_overflow() {
    let rt = runtime();
    let r = mode(&rt, "recursion").await;
    assert_eq!(trap(&r), &TrapKind::StackOverflow);
    // A bigger stack is honoured per step and still ends the same way.
    let limits = Limits { stack_bytes: 2 << 20, ..quick() };
    let r = call(&rt, json!({"mode": "recursion"}), Grants::default(), limits).await;
    assert_eq!(trap(&r), &TrapKind::StackOverflow);
    still_serves(&rt).await;
}

#[tokio::test]
async fn panic_is_named_with_its_message() {
    let rt = runtime();
    let r = mode(&rt, "panic").await;
    match trap(&r) {
        TrapKind::Panic { message } => assert!(message.contains("hostile plugin panics on purpose"), "{message}"),
        other => panic!("expected a panic, got {other:?}"),
    }
    assert!(r.logs.iter().any(|l| l.level == LogLevel::Stderr && l.message.contains("panics on purpose")));
    still_serves(&rt).await;
}

#[tokio::test]
async fn exit_code_is_recorded() {
    let rt = runtime();
    let r = mode(&rt, "exit").await;
    assert_eq!(trap(&r), &TrapKind::Exit { code: 3 });
    assert_eq!(r.outcome.to_string(), "trap: exit(3)");
    still_serves(&rt).await;
}

#[tokio::test]
async fn files_are_invisible_without_a_dir_grant() {
    let rt = runtime();
    let r = call(&rt, json!({"mode": "read-file", "path": "/etc/passwd"}), Grants::default(), quick()).await;
    match &r.outcome {
        Outcome::PluginError { kind: ErrorKind::Failed, message } => {
            assert!(message.starts_with("read /etc/passwd:"), "{message}")
        }
        other => panic!("expected the read to fail, got {other:?}"),
    }
    assert!(!serde_json::to_string(&r).unwrap().contains("root:"), "no content of /etc/passwd leaked");

    // With a read-only grant the same plugin reads a granted file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), "granted content").unwrap();
    let grants = Grants {
        dirs: vec![DirGrant { host: dir.path().to_path_buf(), guest: "/data".into(), writable: false }],
        ..Grants::default()
    };
    let r = call(&rt, json!({"mode": "read-file", "path": "/data/note.txt"}), grants, quick()).await;
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(r.output.unwrap().data, json!({"content": "granted content"}));
    still_serves(&rt).await;
}

#[tokio::test]
async fn environment_is_empty_unless_granted() {
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("TEND_TEST_CANARY", "must-not-leak") };
    let rt = runtime();
    let r = mode(&rt, "env").await;
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(r.output.unwrap().data, json!({"vars": {}}));

    let grants = Grants { env: [("REGION".to_string(), "eu-west-1".to_string())].into(), ..Grants::default() };
    let r = call(&rt, json!({"mode": "env"}), grants, quick()).await;
    assert_eq!(r.output.unwrap().data, json!({"vars": {"REGION": "eu-west-1"}}));
}

#[tokio::test]
async fn tcp_connect_is_denied_and_named() {
    let rt = runtime();
    let l = listener(OK_RESPONSE);
    let r = call(&rt, json!({"mode": "tcp-connect", "addr": l.addr}), Grants::default(), quick()).await;
    match trap(&r) {
        TrapKind::DeniedCapability { grant, message } => {
            assert_eq!(grant, "sockets");
            assert!(message.contains(&l.addr), "{message}");
        }
        other => panic!("expected a denied capability, got {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(l.accepted.load(Ordering::SeqCst), 0, "no connection reached the listener");
    still_serves(&rt).await;
}

#[tokio::test]
async fn http_to_a_host_not_granted_is_denied_and_named() {
    let rt = runtime();
    let l = listener(OK_RESPONSE);
    let url = format!("http://{}/", l.addr);
    let granted = Grants { hosts: vec![HostPattern::parse("api.example.com").unwrap()], ..Grants::default() };
    let r = call(&rt, json!({"mode": "http", "url": url}), granted, quick()).await;
    match trap(&r) {
        TrapKind::DeniedCapability { grant, message } => {
            assert_eq!(grant, "hosts");
            assert!(
                message
                    .starts_with(&format!("hosts: {} is not granted to this step (granted: api.example.com)", l.addr)),
                "{message}"
            );
        }
        other => panic!("expected a denied capability, got {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(l.accepted.load(Ordering::SeqCst), 0, "no request reached the listener");

    // Granted, the same request goes through.
    let grants = Grants { hosts: vec![HostPattern::parse(&l.addr).unwrap()], ..Grants::default() };
    let r = call(&rt, json!({"mode": "http", "url": url}), grants, quick()).await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.logs);
    assert_eq!(l.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn redirects_to_a_host_not_granted_are_denied() {
    let rt = runtime();
    let target = listener(OK_RESPONSE);
    let redirect: &'static str = Box::leak(
        format!(
            "HTTP/1.1 302 Found\r\nlocation: http://{}/x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            target.addr
        )
        .into_boxed_str(),
    );
    let first = listener(redirect);
    let grants = Grants { hosts: vec![HostPattern::parse(&first.addr).unwrap()], ..Grants::default() };
    let r = call(&rt, json!({"mode": "http", "url": format!("http://{}/", first.addr)}), grants, quick()).await;
    assert_eq!(r.outcome.name(), "denied-capability", "{}", r.outcome);
    assert!(r.denials[0].starts_with(&format!("hosts: {} is not granted", target.addr)), "{:?}", r.denials);
    assert_eq!(first.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(target.accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn secrets_need_a_grant_and_are_redacted() {
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("TEND_SECRET_API_TOKEN", "s3cr3t-value") };
    let rt = runtime();
    let r = call(&rt, json!({"mode": "secret", "name": "api-token"}), Grants::default(), quick()).await;
    match trap(&r) {
        TrapKind::DeniedCapability { grant, message } => {
            assert_eq!(grant, "secrets");
            assert!(message.starts_with("secrets: secret \"api-token\" is not granted to this step"), "{message}");
        }
        other => panic!("expected a denied capability, got {other:?}"),
    }
    let grants = Grants { secrets: vec!["api-token".into()], ..Grants::default() };
    let r = call(&rt, json!({"mode": "secret", "name": "api-token"}), grants, quick()).await;
    assert_eq!(r.outcome, Outcome::Ok);
    let text = serde_json::to_string(&r).unwrap();
    assert!(!text.contains("s3cr3t-value"), "the secret value is redacted from the record: {text}");
    assert_eq!(r.output.unwrap().data, json!({"secret": "***"}));
}

#[tokio::test]
async fn stdout_flood_is_bounded_and_never_traps() {
    let rt = runtime();
    let limits = Limits { timeout: Duration::from_secs(20), ..quick() };
    let r = call(&rt, json!({"mode": "flood-stdout", "bytes": 8 << 20}), Grants::default(), limits).await;
    assert_eq!(r.outcome, Outcome::Ok, "{}", r.outcome);
    let kept: usize = r.logs.iter().map(|l| l.message.len()).sum();
    assert!(kept <= 2 * Limits::default().output_bytes + 4096, "kept {kept} bytes");
    assert!(r.logs_dropped >= (8 << 20) - (64 << 10), "dropped {}", r.logs_dropped);
    still_serves(&rt).await;
}

#[tokio::test]
async fn a_512_mib_output_is_out_of_memory() {
    let rt = runtime();
    let limits = Limits { timeout: Duration::from_secs(20), ..Limits::default() };
    let r = call(&rt, json!({"mode": "huge-output"}), Grants::default(), limits).await;
    assert_eq!(trap(&r), &TrapKind::OutOfMemory { limit_bytes: Limits::default().memory_bytes });
    still_serves(&rt).await;
}

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test]
async fn a_thousand_hostile_calls_leave_memory_flat() {
    let rt = runtime();
    let modes = ["memory-bomb", "panic", "exit", "recursion", "read-file", "env", "secret", "huge-output"];
    let limits = Limits { timeout: Duration::from_secs(10), memory_bytes: 16 << 20, ..Limits::default() };
    let round = |n: usize| {
        let rt = &rt;
        async move {
            for i in 0..n {
                let m = modes[i % modes.len()];
                let r =
                    call(rt, json!({"mode": m, "name": "x", "path": "/etc/passwd"}), Grants::default(), limits).await;
                assert!(!r.outcome.is_ok() || m == "env", "{m}: {}", r.outcome);
            }
        }
    };
    round(100).await; // warm up: pools, caches, allocator arenas
    let before = rss();
    round(1000).await;
    let after = rss();
    let growth = after.saturating_sub(before);
    assert!(growth < 48 << 20, "RSS grew by {} MiB over 1,000 hostile calls ({before} -> {after})", growth >> 20);
    still_serves(&rt).await;
}
