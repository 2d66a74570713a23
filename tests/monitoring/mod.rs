//! The real monitoring stack for end-to-end tests: Debian's `prometheus`
//! and `prometheus-alertmanager`, each started as the current user on a
//! free loopback port with temporary storage, and killed when dropped.
//! Nothing here talks to anything outside 127.0.0.1.
//!
//! Both must be on PATH (`apt-get install -y prometheus
//! prometheus-alertmanager`; `.ci/run` installs them); without them the
//! tests that need them fail, saying so.

#![allow(dead_code)] // Each test binary uses its own part.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to get Prometheus when it is missing.
pub const PROMETHEUS_HINT: &str = "these tests run the real Prometheus server, so `prometheus` must be on PATH: \
                                   install it with `apt-get install -y prometheus` (Debian/Ubuntu; .ci/run does this)";

/// How to get Alertmanager when it is missing.
pub const ALERTMANAGER_HINT: &str = "these tests run the real Alertmanager, so `prometheus-alertmanager` must be on \
                                     PATH: install it with `apt-get install -y prometheus-alertmanager` \
                                     (Debian/Ubuntu; .ci/run does this)";

/// How long to wait for a server to start, or for what a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A loopback port nothing listens on (right now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Percent-encodes `text` for a URL query.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// `GET path` on `addr` over HTTP/1.0: status and body, none when nothing answers.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nhost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// Checks that `program --version` runs, or fails the test with `hint`.
fn require(program: &str, hint: &str) {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            panic!("`{program} --version` failed ({}): {}\n{hint}", out.status, String::from_utf8_lossy(&out.stderr))
        }
        Err(e) => panic!("cannot run {program} ({e}): it is not installed\n{hint}"),
    }
}

/// A server process with its scratch directory and log.
struct Process {
    name: &'static str,
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Process {
    fn spawn(name: &'static str, program: &str, args: Vec<String>, dir: tempfile::TempDir, addr: String) -> Process {
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(program)
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} ({e})"));
        Process { name, child, addr, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Polls `done` until it holds, failing with the server's log after [`PATIENCE`].
    fn wait_for(&mut self, what: &str, done: impl Fn(&str) -> bool) {
        let start = Instant::now();
        while !done(&self.addr) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) while waiting for {what}; its log:\n{}", self.name, self.log());
            }
            if start.elapsed() > PATIENCE {
                panic!("timed out after {PATIENCE:?} waiting for {what}; {}'s log:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a [`Prometheus`] scrapes and evaluates.
#[derive(Default)]
pub struct PrometheusSetup<'a> {
    /// Targets of the scrape job `demo`, scraped every second.
    pub targets: &'a [&'a str],
    /// A rule file's text (alerting and recording rules), evaluated every second.
    pub rules: Option<&'a str>,
    /// Address of an Alertmanager to send alerts to.
    pub alertmanager: Option<&'a str>,
}

/// A real Prometheus on a free loopback port with temporary storage,
/// killed on drop.
pub struct Prometheus {
    process: Process,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second (nothing when
    /// none) and waits until it is ready.
    pub fn start(target: Option<&str>) -> Prometheus {
        let targets: Vec<&str> = target.into_iter().collect();
        Prometheus::start_with(&PrometheusSetup { targets: &targets, ..PrometheusSetup::default() })
    }

    /// Starts Prometheus as `setup` says and waits until it is ready.
    pub fn start_with(setup: &PrometheusSetup) -> Prometheus {
        require("prometheus", PROMETHEUS_HINT);
        let dir = tempfile::tempdir().unwrap();
        let mut config = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n");
        if let Some(rules) = setup.rules {
            std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
            config.push_str("rule_files: [rules.yml]\n");
        }
        if let Some(am) = setup.alertmanager {
            config.push_str(&format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{am}\"]\n"
            ));
        }
        if setup.targets.is_empty() {
            config.push_str("scrape_configs: []\n");
        } else {
            let targets: Vec<String> = setup.targets.iter().map(|t| format!("\"{t}\"")).collect();
            config.push_str(&format!(
                "scrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ));
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let args = vec![
            format!("--config.file={}", dir.path().join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={addr}"),
        ];
        let mut process = Process::spawn("prometheus", "prometheus", args, dir, addr);
        process.wait_for("Prometheus to be ready", |addr| http_get(addr, "/-/ready").is_some_and(|(s, _)| s == 200));
        Prometheus { process }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.process.addr)
    }

    /// `GET path` on Prometheus: status and body, none when it does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&self.process.addr, path)
    }

    /// Prometheus's own JSON answer to the instant query `query`.
    pub fn query(&self, query: &str) -> Value {
        let (_, body) = self.get(&format!("/api/v1/query?query={}", encode(query))).expect("Prometheus answers");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("Prometheus answered {body:?}: {e}"))
    }

    /// The single value of the instant query `query`, none without one.
    pub fn value(&self, query: &str) -> Option<f64> {
        let v = self.query(query);
        v["data"]["result"][0]["value"][1].as_str().and_then(|s| s.parse().ok())
    }

    /// Polls `done` until it holds, failing with Prometheus's log after [`PATIENCE`].
    pub fn wait_for(&mut self, what: &str, done: impl Fn(&Prometheus) -> bool) {
        let start = Instant::now();
        while !done(self) {
            if let Ok(Some(status)) = self.process.child.try_wait() {
                panic!("prometheus exited ({status}) while waiting for {what}; its log:\n{}", self.log());
            }
            if start.elapsed() > PATIENCE {
                panic!("timed out after {PATIENCE:?} waiting for {what}; Prometheus's log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// A real Alertmanager on a free loopback port with temporary storage and
/// clustering off, routing every alert to one webhook; killed on drop.
pub struct Alertmanager {
    process: Process,
}

impl Alertmanager {
    /// Starts Alertmanager sending every alert group (and its resolution)
    /// to `webhook_url` with `Authorization: Bearer <bearer>`, grouped by
    /// alert name, within a second.
    pub fn start(webhook_url: &str, bearer: &str) -> Alertmanager {
        require("prometheus-alertmanager", ALERTMANAGER_HINT);
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "route:\n  receiver: tend\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  \
             repeat_interval: 1h\nreceivers:\n  - name: tend\n    webhook_configs:\n      - url: \"{webhook_url}\"\n        \
             send_resolved: true\n        http_config:\n          authorization:\n            type: Bearer\n            \
             credentials: \"{bearer}\"\n"
        );
        std::fs::write(dir.path().join("alertmanager.yml"), config).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let args = vec![
            format!("--config.file={}", dir.path().join("alertmanager.yml").display()),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={addr}"),
            // No gossip port: one instance, loopback only.
            "--cluster.listen-address=".to_string(),
        ];
        let mut process = Process::spawn("alertmanager", "prometheus-alertmanager", args, dir, addr);
        process.wait_for("Alertmanager to be ready", |addr| http_get(addr, "/-/ready").is_some_and(|(s, _)| s == 200));
        Alertmanager { process }
    }

    /// `host:port`, as Prometheus's `alerting` config takes it.
    pub fn addr(&self) -> &str {
        &self.process.addr
    }

    /// The alerts Alertmanager holds (`GET /api/v2/alerts`).
    pub fn alerts(&self) -> Value {
        let (_, body) = http_get(&self.process.addr, "/api/v2/alerts").expect("Alertmanager answers");
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Where its files are, for a test's failure message.
    pub fn dir(&self) -> PathBuf {
        self.process.dir.path().to_path_buf()
    }
}
