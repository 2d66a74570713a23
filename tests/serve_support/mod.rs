//! The `tend serve` test harness shared by the end-to-end tests: a scratch
//! directory with runbooks, a `tend.toml` with three tokens (admin, reader,
//! trigger) and a database; the real binary started on a free loopback
//! port; calls with a token; polling a run to its end; the scheduler's
//! clock file.

#![allow(dead_code)] // Each test binary uses its own part of the harness.

use reqwest::{Client, StatusCode};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "admin-token";
pub const READER: &str = "reader-token";
pub const TRIGGER: &str = "trigger-token";

pub fn sha256(s: &str) -> String {
    tend::serve::config::token_hash(s)
}

/// A scratch directory with runbooks, a config and a database.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub base: String,
    pub http: Client,
    /// Variables set for `tend serve` on top of the harness's own.
    env: Vec<(String, String)>,
}

impl Server {
    pub fn new() -> Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("runbooks")).unwrap();
        let config = format!(
            "body_limit = \"4KiB\"\nrate_limit = 1000\n\
             [[tokens]]\nname = \"admin\"\nsha256 = \"{}\"\nscopes = [\"admin\"]\n\
             [[tokens]]\nname = \"reader\"\nsha256 = \"{}\"\nscopes = [\"read\"]\n\
             [[tokens]]\nname = \"ci\"\nsha256 = \"{}\"\nscopes = [\"trigger\"]\n",
            sha256(ADMIN),
            sha256(READER),
            sha256(TRIGGER)
        );
        std::fs::write(dir.path().join("tend.toml"), config).unwrap();
        Server { dir, child: None, base: String::new(), http: Client::new(), env: Vec::new() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets a top-level setting of tend.toml (`key = value`), replacing the
    /// harness's own value if it has one.
    pub fn setting(&self, key: &str, value: &str) {
        let path = self.path().join("tend.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let prefix = format!("{key} = ");
        let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with(&prefix)).collect();
        std::fs::write(path, format!("{key} = {value}\n{}\n", kept.join("\n"))).unwrap();
    }

    /// Adds a table to tend.toml.
    pub fn configure(&self, table: &str) {
        let path = self.path().join("tend.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(path, format!("{text}\n{table}\n")).unwrap();
    }

    pub fn runbook(&self, name: &str, yaml: &str) {
        std::fs::write(self.path().join("runbooks").join(format!("{name}.yaml")), yaml).unwrap();
    }

    /// Sets a variable for `tend serve` from the next start (e.g.
    /// `TEND_SECRET_X`, or `TEND_LOG=debug` over the harness's `warn`).
    pub fn env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_string(), value.to_string()));
    }

    /// Starts `tend serve` on a free port and waits until it listens.
    pub fn start(&mut self) {
        let plugins = self.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::copy(env!("TEND_HOSTILE_WASM"), plugins.join("hostile.wasm")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tend"));
        cmd.args(["serve", "--config", "tend.toml", "--listen", "127.0.0.1:0"])
            .current_dir(self.path())
            .env("TEND_CACHE_DIR", std::env::temp_dir().join("tend-test-cache"))
            .env_remove("TEND_DB")
            .env_remove("TEND_RUNBOOKS")
            .env_remove("TEND_PLUGINS")
            .env_remove("TEND_TOKEN")
            .env_remove("TEND_CLOCK_FILE")
            .env("TEND_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.path().join("serve.log")).unwrap());
        if self.clock_file().exists() {
            cmd.env("TEND_CLOCK_FILE", self.clock_file());
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| {
            panic!(
                "tend serve did not start: {line:?}\n{}",
                std::fs::read_to_string(self.path().join("serve.log")).unwrap_or_default()
            )
        });
        self.base = format!("http://{addr}");
        self.child = Some(child);
    }

    pub fn clock_file(&self) -> std::path::PathBuf {
        self.path().join("clock")
    }

    /// Sets the scheduler's clock (`TEND_CLOCK_FILE`, used from the next
    /// start if the file did not exist), replacing the file at once.
    pub fn set_clock(&self, at: &str) {
        let tmp = self.path().join("clock.tmp");
        std::fs::write(&tmp, at).unwrap();
        std::fs::rename(tmp, self.clock_file()).unwrap();
    }

    /// Sets the clock and waits until the scheduler has made a whole pass
    /// at that time: every fire due by then is recorded.
    pub async fn clock_to(&self, at: &str) {
        self.set_clock(at);
        self.scheduler_reached(at).await;
    }

    /// Waits until the scheduler has made a whole pass at `at` or later
    /// (its clock may be a file another harness sets).
    pub async fn scheduler_reached(&self, at: &str) {
        let wanted = at.parse::<jiff::Timestamp>().unwrap().as_millisecond() as f64 / 1000.0;
        let start = Instant::now();
        loop {
            let metrics = self
                .http
                .get(format!("{}/metrics", self.base))
                .bearer_auth(READER)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let seen = metrics
                .lines()
                .find_map(|l| l.strip_prefix("tend_scheduler_pass_timestamp_seconds "))
                .map(|v| v.trim().parse::<f64>().unwrap());
            if seen.is_some_and(|t| t >= wanted) {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "the scheduler never reached {at}: {seen:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The scheduled instant of each cron run of `runbook`, oldest first.
    pub async fn fires(&self, runbook: &str) -> Vec<String> {
        let (status, list) =
            self.call("GET", &format!("/v1/runs?runbook={runbook}&limit=500"), Some(READER), None).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let mut fires: Vec<String> = list["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["trigger_kind"], "cron", "{r}");
                r["trigger_source"].as_str().unwrap().rsplit(" at ").next().unwrap().to_string()
            })
            .collect();
        fires.reverse();
        fires
    }

    /// The first cron trigger of `runbook` as `GET /v1/runbooks/{name}` shows it.
    pub async fn cron_trigger(&self, runbook: &str) -> Value {
        let (status, rb) = self.call("GET", &format!("/v1/runbooks/{runbook}"), Some(READER), None).await;
        assert_eq!(status, StatusCode::OK, "{rb}");
        rb["triggers"].as_array().unwrap().iter().find(|t| t.get("cron").is_some()).unwrap().clone()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
    }

    /// Polls a run until it is final.
    pub async fn wait_final(&self, id: &str) -> Value {
        let start = Instant::now();
        loop {
            let (status, body) = self.call("GET", &format!("/v1/runs/{id}"), Some(READER), None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let s = body["run"]["status"].as_str().unwrap().to_string();
            if !["queued", "running", "waiting_approval"].contains(&s.as_str()) {
                return body;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "run {id} still {s}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_status(&self, id: &str, wanted: &str) {
        let start = Instant::now();
        loop {
            let (_, body) = self.call("GET", &format!("/v1/runs/{id}"), Some(READER), None).await;
            if body["run"]["status"] == wanted {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "run {id} never became {wanted}: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}
