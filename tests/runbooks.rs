//! End-to-end tests of runbooks through the `tend` binary: `tend validate`
//! against fixtures with their exact errors, `tend run` with real plugins,
//! approvals decided from a second process, escalations and their
//! notifications, and a run whose process is killed mid-step.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// A scratch directory with its own database and runbooks.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn runbook(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tend"));
        cmd.args(args)
            .current_dir(self.path())
            .env("TEND_CACHE_DIR", std::env::temp_dir().join("tend-test-cache"))
            .env("TEND_DB", self.path().join("tend.db"))
            .env("TEND_RUNBOOKS", self.path())
            .env("TEND_PLUGINS", self.path().join("plugins"))
            .env_remove("TEND_LOG");
        cmd
    }

    fn tend(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("tend runs")
    }

    /// Starts tend in the background; its stderr goes to `stderr.log` in
    /// the scratch directory, for failure messages.
    fn spawn(&self, args: &[&str]) -> Child {
        let log = std::fs::File::create(self.path().join("stderr.log")).unwrap();
        self.command(args).stdout(Stdio::piped()).stderr(log).spawn().expect("tend starts")
    }

    /// `tend runs list --json`.
    fn runs(&self) -> Vec<Value> {
        let out = self.tend(&["runs", "list", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    }

    /// `tend runs show --json`.
    fn show(&self, id: &str) -> Value {
        let out = self.tend(&["runs", "show", id, "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Polls until `f` gives a value, for at most 30 seconds.
    fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let log = std::fs::read_to_string(self.path().join("stderr.log")).unwrap_or_default();
                panic!("timed out waiting for {what}; background tend said:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_out(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", stdout(out), stderr(out)))
}

#[test]
fn invalid_fixtures_produce_their_exact_errors() {
    let dir = fixtures().join("invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let expected = std::fs::read_to_string(path.with_extension("errors")).unwrap();
        let out = Env::new().command(&["validate", name]).current_dir(&dir).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert_eq!(stdout(&out), expected, "{name}");
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} fixtures");
}

#[test]
fn valid_fixtures_and_shipped_runbooks_validate() {
    let env = Env::new();
    let valid = fixtures().join("valid");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
    let out = env.tend(&["validate", valid.to_str().unwrap(), shipped.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn validate_reports_every_file_and_a_total() {
    let env = Env::new();
    env.runbook("ok", "name: ok\nsteps:\n  - id: a\n    plugin: echo\n");
    env.runbook("bad", "name: bad\nsteps:\n  - id: a\n    plugin: slak\n  - id: a\n    plugin: echo\n");
    let out = env.tend(&["validate", "."]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "./bad.yaml:4:13: step \"a\": plugin \"slak\" is not installed (installed: cost-audit, echo, health-score, host-metrics, http-probe, http-security, incident-triage, prometheus-query, remediate, secrets-scan, tls-check)\n\
         ./bad.yaml:5:9: step id \"a\" is already used at line 3\n"
    );
    assert_eq!(stderr(&out), "tend: 2 errors in 1 of 2 files\n");
    let missing = env.tend(&["validate", "nope.yaml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(stderr(&missing), "tend: nope.yaml: no such file or directory\n");
}

#[test]
fn a_run_passes_data_between_real_plugins_and_is_recorded() {
    let env = Env::new();
    env.runbook(
        "flow",
        r#"
name: flow
params:
  n: {type: number, default: 1}
steps:
  - id: first
    plugin: echo
    with:
      output: {value: "${{ params.n * 2 }}"}
      metrics: [{name: doubled, value: 4}]
  - id: second
    plugin: echo
    input: ${{ steps.first.output }}
    when: steps.first.metrics.doubled == 4.0
  - id: skipped
    plugin: echo
    when: "false"
"#,
    );
    let out = env.tend(&["run", "flow", "-p", "n=21", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let record = json_out(&out);
    assert_eq!(record["run"]["status"], "succeeded");
    assert_eq!(record["run"]["params"], json!({"n": 21}));
    assert_eq!(record["run"]["trigger_kind"], "cli");
    let steps = record["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0]["output"], json!({"value": 42}));
    assert_eq!(steps[0]["metrics"], json!([{"name": "doubled", "value": 4.0, "labels": []}]));
    assert_eq!(steps[1]["input"], json!({"value": 42}));
    assert_eq!(steps[1]["output"], json!({"value": 42}));
    assert_eq!(steps[2]["status"], "skipped");
    assert!(steps[0]["plugin_digest"].as_str().unwrap().len() == 64);

    // The same run, listed and shown from another process.
    let runs = env.runs();
    assert_eq!(runs.len(), 1);
    let id = runs[0]["id"].as_str().unwrap();
    assert_eq!(env.show(id)["steps"].as_array().unwrap().len(), 3);
    let human = env.tend(&["runs", "show", id]);
    assert!(stdout(&human).contains("first output: {\"value\":42}"), "{}", stdout(&human));
}

#[test]
fn a_failing_run_exits_non_zero_after_its_retries() {
    let env = Env::new();
    env.runbook(
        "flaky",
        "name: flaky\nsteps:\n  - id: f\n    plugin: echo\n    with: {fail_attempts: 5}\n    retry: {attempts: 3, delay: 10ms, jitter: false}\n",
    );
    let out = env.tend(&["run", "flaky"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("↻ f: attempt 2 in 10ms"), "{err}");
    assert!(err.contains("↻ f: attempt 3 in 20ms"), "{err}");
    let s = stdout(&out);
    assert!(s.contains("failed"), "{s}");
    assert!(s.contains("error: step \"f\" failed: retryable error: attempt 3 of the first 5 fails on purpose"), "{s}");
    let runs = env.runs();
    assert_eq!(runs[0]["status"], "failed");
}

#[test]
fn bad_params_are_refused_before_anything_runs() {
    let env = Env::new();
    env.runbook("p", "name: p\nparams:\n  n: {type: number, required: true}\nsteps:\n  - id: a\n    plugin: echo\n");
    let out = env.tend(&["run", "p", "-p", "n=abc"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "tend: -p n: \"abc\" is not a number\n");
    let out = env.tend(&["run", "p"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "tend: param \"n\" is required\n");
    let out = env.tend(&["run", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("tend: runbook \"nope\" is neither a file nor the name of a runbook in "),
        "{}",
        stderr(&out)
    );
    assert!(env.runs().is_empty(), "nothing recorded");
}

#[test]
fn approvals_are_decided_from_another_process() {
    let env = Env::new();
    env.runbook(
        "gate",
        r#"
name: gate
steps:
  - id: restart
    plugin: echo
    with: {output: restarted}
    approval:
      message: "Restart the web tier?"
      timeout: 5m
"#,
    );
    for (verb, code) in [("approve", 0), ("reject", 1)] {
        let mut child = env.spawn(&["run", "gate"]);
        let id = env.wait_for("a run waiting for approval", || {
            env.runs()
                .into_iter()
                .find(|r| r["status"] == "waiting_approval")
                .map(|r| r["id"].as_str().unwrap().to_string())
        });
        let out = env.tend(&["runs", verb, &id, "--by", "ann", "--reason", "ticket 7"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{verb}");
        let record = env.show(&id);
        assert_eq!(record["approvals"][0]["decided_by"], "ann");
        assert_eq!(record["approvals"][0]["message"], "Restart the web tier?");
        // Deciding twice is refused with a reason.
        let again = env.tend(&["runs", "approve", &id]);
        assert_eq!(again.status.code(), Some(2));
        assert!(stderr(&again).contains("is not waiting for an approval"), "{}", stderr(&again));
    }
}

/// Counts webhook POSTs and keeps their bodies.
fn webhook() -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { break };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            if let Ok(v) = serde_json::from_slice(&body) {
                seen.lock().unwrap().push(v);
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (url, bodies)
}

#[test]
fn escalations_notify_once_per_dedup_window_and_can_be_acked_and_resolved() {
    let env = Env::new();
    let (url, bodies) = webhook();
    env.runbook(
        "esc",
        &format!(
            r#"
name: esc
steps:
  - id: score
    plugin: echo
    with: {{output: {{score: 3}}}}
escalations:
  - when: steps.score.output.score < 5
    severity: critical
    message: "score {{{{ steps.score.output.score }}}} is too low"
    dedup_key: esc-score
notify:
  webhooks: [{{url: "{url}"}}]
  log: false
"#
        ),
    );
    for _ in 0..2 {
        let out = env.command(&["run", "esc"]).env("TEND_PUBLIC_URL", "https://tend.example.com/").output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let sent = bodies.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "the second run is grouped: {sent:?}");
    let run_url = format!("https://tend.example.com/v1/runs/{}", sent[0]["run_id"].as_str().unwrap());
    assert_eq!(sent[0]["run_url"], run_url.as_str(), "TEND_PUBLIC_URL links to the run");
    assert!(sent[0]["text"].as_str().unwrap().starts_with("[CRITICAL] esc: score 3 is too low (run "), "{sent:?}");
    assert_eq!(sent[0]["dedup_key"], "esc-score");

    let list = json_out(&env.tend(&["escalations", "list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 1);
    let e = &list[0];
    assert_eq!((e["occurrences"].as_i64(), e["status"].as_str()), (Some(2), Some("open")));
    assert_eq!(e["notifications"][0]["ok"], true);
    let id = e["id"].to_string();
    assert!(env.tend(&["escalations", "ack", &id, "--by", "bob"]).status.success());
    let out = env.tend(&["escalations", "ack", &id]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), format!("tend: escalation {id} is acknowledged and cannot be acknowledged\n"));
    let out = env.tend(&["escalations", "resolve", &id, "--reason", "fixed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("escalation {id} resolved\n  notified webhook:127.0.0.1\n"));
    let resolved = json_out(&env.tend(&["escalations", "list", "--status", "resolved", "--json"]));
    assert_eq!(resolved[0]["acknowledged_by"], "bob");
    assert_eq!(resolved[0]["resolution"], "fixed");
    // The runbook's webhook was told, with the same body and status resolved.
    let sent = bodies.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!((sent[1]["status"].as_str(), sent[1]["reason"].as_str()), (Some("resolved"), Some("fixed")));
    assert_eq!(sent[1]["dedup_key"], "esc-score");

    // Resolved, the next run raises and notifies again.
    assert!(env.tend(&["run", "esc"]).status.success());
    assert_eq!(bodies.lock().unwrap().len(), 3);
}

/// A step that sleeps for a minute in a host call. The test-only hostile
/// plugin declares every capability, so the step must grant them all.
const SLOW_RUNBOOK: &str = r#"
name: slow
steps:
  - id: wait
    plugin: hostile
    with: {mode: sleep, ms: 60000}
    timeout: 2m
    grants: {env: {A: b}, dirs: ["/tmp:/tmp:ro"], hosts: [localhost], secrets: [none]}
"#;

#[test]
fn a_run_killed_mid_step_is_marked_interrupted_not_left_running() {
    let env = Env::new();
    let plugins = env.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(env!("TEND_HOSTILE_WASM"), plugins.join("hostile.wasm")).unwrap();
    env.runbook("slow", SLOW_RUNBOOK);
    let mut child = env.spawn(&["run", "slow"]);
    let id = env.wait_for("the step to start", || {
        let runs = env.runs();
        let run = runs.first()?;
        let record = env.show(run["id"].as_str()?);
        (record["steps"].as_array()?.first()?["status"] == "running").then(|| run["id"].as_str().unwrap().to_string())
    });
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    // Any later tend command notices.
    let out = env.tend(&["runs", "list", "--json"]);
    assert!(stderr(&out).contains(&format!("run {id} was interrupted")), "{}", stderr(&out));
    let record = env.show(&id);
    assert_eq!(record["run"]["status"], "interrupted");
    assert!(record["run"]["error"].as_str().unwrap().contains("exited mid-run"), "{record}");
    assert_eq!(record["steps"][0]["status"], "interrupted");
}

#[test]
fn runs_cancel_stops_a_run_in_another_process() {
    let env = Env::new();
    let plugins = env.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(env!("TEND_HOSTILE_WASM"), plugins.join("hostile.wasm")).unwrap();
    env.runbook("slow", SLOW_RUNBOOK);
    let child = env.spawn(&["run", "slow"]);
    let id = env.wait_for("the run to start", || {
        env.runs().into_iter().find(|r| r["status"] == "running").map(|r| r["id"].as_str().unwrap().to_string())
    });
    let out = env.tend(&["runs", "cancel", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let output = child.wait_with_output().unwrap();
    let log = std::fs::read_to_string(env.path().join("stderr.log")).unwrap();
    assert_eq!(output.status.code(), Some(130), "{log}");
    let record = env.show(&id);
    assert_eq!(record["run"]["status"], "cancelled");
    assert_eq!(record["steps"][0]["status"], "cancelled");
}

#[test]
fn runs_list_filters_and_explains_bad_filters() {
    let env = Env::new();
    env.runbook("a", "name: a\nsteps:\n  - id: x\n    plugin: echo\n");
    env.runbook(
        "b",
        "name: b\nsteps:\n  - id: x\n    plugin: echo\n    with: {error: {kind: failed, message: boom}}\n",
    );
    assert!(env.tend(&["run", "a"]).status.success());
    assert!(!env.tend(&["run", "b"]).status.success());
    let failed = json_out(&env.tend(&["runs", "list", "--status", "failed", "--json"]));
    assert_eq!(failed.as_array().unwrap().len(), 1);
    assert_eq!(failed[0]["runbook"], "b");
    let by_name = json_out(&env.tend(&["runs", "list", "--runbook", "a", "--json"]));
    assert_eq!(by_name[0]["status"], "succeeded");
    let out = env.tend(&["runs", "list", "--status", "done"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("tend: --status: run status \"done\" is not one of queued, running,"),
        "{}",
        stderr(&out)
    );
    let out = env.tend(&["runs", "show", "01NOPE"]);
    assert_eq!((out.status.code(), stderr(&out)), (Some(2), "tend: run \"01NOPE\" not found\n".to_string()));
}
