//! The demo service for end-to-end tests: starts the real `tend demo service`
//! on a free loopback port (admin token [`TOKEN`], 200 synthetic requests a
//! second, 200 ms restarts), and talks to it with a small blocking HTTP/1.1
//! client, so it works from plain and from `#[tokio::test]` tests alike.
//! The process is killed when the [`DemoService`] is dropped.
//!
//! ```ignore
//! mod demo_support;
//! let demo = demo_support::DemoService::start();
//! demo.set_faults(&serde_json::json!({"down": true}));
//! assert_eq!(demo.get("/healthz").status, 503);
//! let restarts = demo.metric("demo_restarts_total");
//! ```
//!
//! Only 127.0.0.1 is ever contacted.

#![allow(dead_code)] // Each test binary uses its own part.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The admin token the service is started with, unless `--token` is given
/// to [`DemoService::start_with`].
pub const TOKEN: &str = "demo-test-token";
/// How long a restart takes in the tests' service, in milliseconds.
pub const RESTART_MS: u64 = 200;
/// Synthetic requests a second of the tests' service.
pub const TRAFFIC_RPS: u32 = 200;
/// How long [`DemoService::eventually`] waits, and the timeout of one request.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// `tend demo service`, running; killed when dropped.
pub struct DemoService {
    child: Child,
    addr: String,
    token: String,
    stderr: Arc<Mutex<String>>,
}

/// An HTTP answer: status and body text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

impl DemoService {
    /// Starts `tend demo service --listen 127.0.0.1:0 --token TOKEN
    /// --restart-ms 200 --traffic-rps 200` and waits for its
    /// `listening on ADDR` line.
    pub fn start() -> DemoService {
        DemoService::start_with(&[])
    }

    /// Like [`DemoService::start`], with `extra` flags (e.g. `["--replicas",
    /// "2"]`, `["--seed", "7"]`); a flag of the harness's own given in
    /// `extra` (`--restart-ms 5000`) replaces the harness's value.
    pub fn start_with(extra: &[&str]) -> DemoService {
        let (restart_ms, rps) = (RESTART_MS.to_string(), TRAFFIC_RPS.to_string());
        let mut args = vec!["demo", "service", "--listen", "127.0.0.1:0"];
        for (flag, value) in [("--token", TOKEN), ("--restart-ms", &restart_ms), ("--traffic-rps", &rps)] {
            if !extra.contains(&flag) {
                args.extend([flag, value]);
            }
        }
        args.extend_from_slice(extra);
        let token = args.iter().position(|a| *a == "--token").and_then(|i| args.get(i + 1)).unwrap_or(&"").to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tend"))
            .args(&args)
            .env_remove("DEMO_TOKEN")
            .env_remove("TEND_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tend demo service starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().expect("stdout is piped")).read_line(&mut line);
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tend demo service did not start: {line:?}\n{}", stderr.lock().unwrap());
        };
        DemoService { addr: addr.to_string(), child, token, stderr }
    }

    /// `http://127.0.0.1:PORT`, without a trailing `/`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`, e.g. for `--allow-host` or a `hosts` grant.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The admin token the service was started with.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// What the service wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `GET path` without a token.
    pub fn get(&self, path: &str) -> Reply {
        request(&self.addr, "GET", path, None, None)
    }

    /// An admin request with the token; any status.
    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let body = body.map(Value::to_string);
        request(&self.addr, method, path, Some(&self.token), body.as_deref())
    }

    /// An admin request that must answer 2xx; its JSON body.
    pub fn admin_ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let reply = self.admin(method, path, body);
        assert!((200..300).contains(&reply.status), "{method} {path}: {} {}", reply.status, reply.body);
        reply.json()
    }

    /// Switches faults (`POST /admin/faults`, a partial update such as
    /// `{"down": true}`); returns every switch.
    pub fn set_faults(&self, faults: &Value) -> Value {
        self.admin_ok("POST", "/admin/faults", Some(faults))
    }

    /// Every fault switch (`GET /admin/faults`).
    pub fn faults(&self) -> Value {
        self.admin_ok("GET", "/admin/faults", None)
    }

    /// The `/metrics` text.
    pub fn metrics_text(&self) -> String {
        let reply = self.get("/metrics");
        assert_eq!(reply.status, 200, "GET /metrics: {}", reply.body);
        reply.body
    }

    /// The value of the sample written exactly `series` (a name, or a name
    /// with its labels as the service writes them, e.g.
    /// `demo_requests_total{status="500"}`); None when there is none.
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.metrics_text().lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }

    /// Polls `check` every 20 ms until it holds; panics naming `what` after
    /// [`PATIENCE`].
    pub fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        let start = Instant::now();
        while !check() {
            assert!(start.elapsed() < PATIENCE, "{what}: not within {PATIENCE:?}\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DemoService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on its own connection (`connection: close`), with
/// `Authorization: Bearer token` when given and a JSON body when given.
pub fn request(addr: &str, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        head.push_str("content-type: application/json\r\n");
    }
    head.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap_or_else(|e| panic!("{method} {path}: cannot read the answer: {e}"));
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{method} {path}: no HTTP answer: {text}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad status: {head}"));
    // The service sends every body with a content-length (never chunked).
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding"), "{method} {path}: a chunked answer: {head}");
    Reply { status, body: rest.to_string() }
}
