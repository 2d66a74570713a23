//! The web view in a real browser: headless Chromium (Debian's
//! `chromium`, driven by playwright-core from `tests/web/`) against the
//! real `tend serve` on 127.0.0.1. Each test starts a server with its own
//! runbooks, sets the scene through the API, runs one scenario of
//! `tests/web/browser.js` (sign in, see a run appear live, open it,
//! approve it, acknowledge and resolve an escalation, be refused as a
//! read token, start a run from the runbook form), then checks through the
//! API that what the browser did really happened. Every page visited
//! passes axe-core (WCAG 2.1 A and AA); a screenshot of each main page is
//! written to `target/web-screenshots/`.
//!
//! Needs Node.js and npm (the test runs `npm ci` from
//! `tests/web/package-lock.json` itself, once per lock file, into the
//! target's tmp directory) and `chromium` on PATH (`.ci/run` installs it);
//! without them the tests fail, saying so.

mod serve_support;

use serde_json::{Value, json};
use serve_support::{ADMIN, READER, Server, TRIGGER};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn tool(name: &str, hint: &str) -> String {
    match Command::new(name).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Ok(out) => {
            panic!("`{name} --version` failed ({}): {}\n{hint}", out.status, String::from_utf8_lossy(&out.stderr))
        }
        Err(e) => panic!("cannot run {name} ({e}): it is not on PATH\n{hint}"),
    }
}

/// The pinned browser driver and axe-core, installed with `npm ci` once
/// per version of the lock file; returns their `node_modules`. Test
/// processes installing at the same time wait for each other.
fn node_modules() -> PathBuf {
    let hint = "Node.js (20 or later) and npm run the browser tests: install them (e.g. `apt-get install nodejs npm`)";
    tool("node", hint);
    tool("npm", hint);
    let web = repo().join("tests/web");
    let lock = std::fs::read(web.join("package-lock.json")).unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-npm");
    std::fs::create_dir_all(&dir).unwrap();
    let guard = std::fs::File::create(dir.join(".lock")).unwrap();
    guard.lock().unwrap();
    let deps = dir.join(&blake3::hash(&lock).to_hex()[..16]);
    let installed = deps.join("node_modules/playwright-core/package.json");
    if !installed.exists() {
        let _ = std::fs::remove_dir_all(&deps);
        std::fs::create_dir_all(&deps).unwrap();
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(web.join(file), deps.join(file)).unwrap();
        }
        let out = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&deps).output().unwrap();
        assert!(out.status.success(), "npm ci failed:\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(installed.exists(), "npm ci did not install playwright-core");
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.path().is_dir() && entry.path() != deps {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    deps.join("node_modules")
}

/// Where screenshots of the main pages go: `target/web-screenshots/`.
fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("web-screenshots")
}

/// Runs a scenario of `tests/web/browser.js` against the server; returns
/// its result (the last line it prints).
fn browser(server: &Server, scenario: &str, args: Value) -> Value {
    let chromium = std::env::var("TEND_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    tool(&chromium, "Debian's chromium runs the browser tests: `apt-get install chromium` (.ci/run installs it)");
    let chromium = which(&chromium);
    let start = Instant::now();
    let out = Command::new("node")
        .arg(repo().join("tests/web/browser.js"))
        .arg(scenario)
        .env("NODE_PATH", node_modules())
        .env("TEND_BASE", &server.base)
        .env("TEND_WEB_ARGS", args.to_string())
        .env("TEND_CHROMIUM", chromium)
        .env("TEND_SCREENSHOTS", screenshots())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("browser scenario {scenario}: {:.1?}\n{stdout}", start.elapsed());
    assert!(
        out.status.success(),
        "browser scenario {scenario} failed:\n{}\n{stdout}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(server.path().join("serve.log")).unwrap_or_default()
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

fn which(program: &str) -> String {
    if program.contains('/') {
        return program.to_string();
    }
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| program.to_string())
}

const APPROVAL_MESSAGE: &str = "Restart checkout (score 3/10)?";

/// Probe (fails: a finding, a metric, a critical escalation), restart
/// after approval, verify; a post-mortem when it ends.
const CHECKOUT: &str = r#"
name: checkout
description: Probe checkout, restart it after approval, verify.
triggers:
  - http: true
steps:
  - id: probe
    plugin: echo
    with:
      output: {healthy: false, score: 3}
      metrics: [{name: health_score, value: 3}]
      findings: [{severity: high, title: "checkout answers 503", detail: "5 of 5 probes failed", resource: checkout}]
      log: probing checkout
  - id: restart
    plugin: echo
    approval: {message: "Restart checkout (score 3/10)?", timeout: 10m}
    with: {output: {restarted: true}}
  - id: verify
    plugin: echo
    with:
      metrics: [{name: health_score, value: 10}]
escalations:
  - when: steps.probe.output.score < 5
    severity: critical
    message: "checkout score {{ steps.probe.output.score }}"
    dedup_key: checkout-score
report: postmortem
"#;

const DISK_ERROR: &str = "disk /var is 97% full; 3% left";

const DISK: &str = r#"
name: disk-check
triggers:
  - http: true
steps:
  - id: df
    plugin: echo
    with:
      error: {kind: failed, message: "disk /var is 97% full; 3% left"}
"#;

const SCALE: &str = r#"
name: scale
description: Scale a service.
params:
  target: {type: string, required: true, description: Service to scale}
  replicas: {type: number, default: 2}
  mode: {type: string, enum: [rolling, all-at-once], default: rolling}
triggers:
  - http: true
  - cron: "0 6 * * 1"
    params: {target: checkout}
steps:
  - id: scale
    plugin: echo
    with: {output: "scaling ${{ params.target }} to ${{ params.replicas }}"}
"#;

async fn trigger(s: &Server, runbook: &str) -> String {
    let (status, body) = s.call("POST", &format!("/v1/runbooks/{runbook}/runs"), Some(TRIGGER), Some("{}")).await;
    assert_eq!(status, 202, "{body}");
    body["run_id"].as_str().unwrap().to_string()
}

/// The open escalation of a run, once raised.
async fn escalation_of(s: &Server, run: &str) -> i64 {
    let start = Instant::now();
    loop {
        let (_, list) = s.call("GET", &format!("/v1/escalations?run={run}"), Some(READER), None).await;
        if let Some(id) = list["escalations"][0]["id"].as_i64() {
            return id;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "run {run} raised no escalation");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_screenshots(names: &[&str]) {
    for name in names {
        let path = screenshots().join(format!("{name}.png"));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "no screenshot of {name} at {}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_sees_a_run_appear_live_approves_it_and_acknowledges_its_escalation() {
    let mut s = Server::new();
    s.runbook("checkout", CHECKOUT);
    s.start();
    let args = json!({
        "admin": ADMIN, "trigger": TRIGGER, "runbook": "checkout",
        "approval_message": APPROVAL_MESSAGE, "escalation_message": "checkout score 3",
    });
    let result = tokio::task::block_in_place(|| browser(&s, "approve", args));
    let id = result["run_id"].as_str().unwrap();
    let run = s.wait_final(id).await;
    assert_eq!(run["run"]["status"], "succeeded", "{run}");
    assert_eq!(run["approvals"][0]["status"], "approved");
    assert_eq!(run["approvals"][0]["decided_by"], "token:admin");
    assert_eq!(run["approvals"][0]["reason"], "restart approved by the on-call");
    let critical = run["escalations"].as_array().unwrap().iter().find(|e| e["severity"] == "critical").unwrap();
    assert_eq!(critical["status"], "acknowledged", "{critical}");
    assert_eq!(critical["acknowledged_by"], "token:admin");
    assert_screenshots(&["signin", "runs", "approvals", "run-waiting", "run-succeeded"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_is_found_by_its_status_and_says_why() {
    let mut s = Server::new();
    s.runbook("disk-check", DISK);
    s.runbook("scale", SCALE);
    s.start();
    let failed = trigger(&s, "disk-check").await;
    assert_eq!(s.wait_final(&failed).await["run"]["status"], "failed");
    let (_, ok) =
        s.call("POST", "/v1/runbooks/scale/runs", Some(TRIGGER), Some(r#"{"params": {"target": "a"}}"#)).await;
    assert_eq!(s.wait_final(ok["run_id"].as_str().unwrap()).await["run"]["status"], "succeeded");
    let args = json!({"admin": ADMIN, "failed": failed, "error": DISK_ERROR});
    tokio::task::block_in_place(|| browser(&s, "failure", args));
    assert_screenshots(&["run-failed"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_escalation_is_acknowledged_and_resolved_in_the_browser() {
    let mut s = Server::new();
    s.runbook("checkout", CHECKOUT);
    s.start();
    let run = trigger(&s, "checkout").await;
    let escalation = escalation_of(&s, &run).await;
    let args = json!({"admin": ADMIN, "escalation": escalation});
    tokio::task::block_in_place(|| browser(&s, "escalation", args));
    let (_, list) = s.call("GET", &format!("/v1/escalations?run={run}"), Some(READER), None).await;
    let e = &list["escalations"][0];
    assert_eq!((e["status"].as_str(), e["acknowledged_by"].as_str()), (Some("resolved"), Some("token:admin")), "{e}");
    assert_eq!(
        (e["resolved_by"].as_str(), e["resolution"].as_str()),
        (Some("token:admin"), Some("cache cleared by hand"))
    );
    assert_screenshots(&["escalations"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_token_sees_no_buttons_and_is_refused_the_actions_anyway() {
    let mut s = Server::new();
    s.runbook("checkout", CHECKOUT);
    s.start();
    let run = trigger(&s, "checkout").await;
    s.wait_status(&run, "waiting_approval").await;
    let escalation = escalation_of(&s, &run).await;
    let args = json!({"reader": READER, "waiting": run, "escalation": escalation});
    tokio::task::block_in_place(|| browser(&s, "reader", args));
    let (_, record) = s.call("GET", &format!("/v1/runs/{run}"), Some(READER), None).await;
    assert_eq!(record["run"]["status"], "waiting_approval", "the refused approval changed nothing");
    assert_eq!(record["approvals"][0]["status"], "pending");
    assert_eq!(record["escalations"][0]["status"], "open");
    assert_screenshots(&["run-read-only"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_is_started_from_the_runbook_page_once_its_params_pass_the_apis_checks() {
    let mut s = Server::new();
    s.runbook("scale", SCALE);
    s.runbook("broken", "name: broken\nsteps:\n  - id: a\n    plugin: no-such-plugin\n");
    s.start();
    let args = json!({
        "trigger": TRIGGER, "runbook": "scale", "problem_file": "broken.yaml",
        "bad_param_error": "param \"replicas\": expected a number, got string \"many\"",
    });
    let result = tokio::task::block_in_place(|| browser(&s, "start", args));
    let run = s.wait_final(result["run_id"].as_str().unwrap()).await;
    assert_eq!(run["run"]["status"], "succeeded", "{run}");
    assert_eq!(run["run"]["params"], json!({"target": "checkout-eu", "replicas": 3, "mode": "all-at-once"}));
    assert_eq!(run["run"]["trigger_source"], "token:ci");
    assert_screenshots(&["runbooks", "runbook", "plugins"]);
}

// ---- without a browser: cookies, refusals, shutdown -------------------------

/// Signs in over plain HTTP as a browser would; returns the session
/// cookie (`tend_session=...`) and the `Set-Cookie` line that set it.
async fn sign_in_http(s: &Server, token: &str) -> (String, String) {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = http.get(format!("{}/signin", s.base)).send().await.unwrap();
    let set = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .find(|v| v.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} cookie set"))
    };
    let line = set(&form, "tend_signin");
    let value = line.split(';').next().unwrap().strip_prefix("tend_signin=").unwrap().to_string();
    let r = http
        .post(format!("{}/signin", s.base))
        .header("cookie", format!("tend_signin={value}"))
        .form(&[("token", token), ("csrf", value.as_str()), ("next", "/runs")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/runs");
    let line = set(&r, "tend_session");
    (line.split(';').next().unwrap().to_string(), line)
}

/// A page's CSRF token (the first form's).
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a csrf field") + 19;
    html[at..at + 64].to_string()
}

async fn get(s: &Server, path: &str, cookie: &str) -> reqwest::Response {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    http.get(format!("{}{path}", s.base)).header("cookie", cookie).send().await.unwrap()
}

#[tokio::test]
async fn the_session_cookie_is_secure_behind_tls_and_removing_its_token_ends_the_session() {
    let mut s = Server::new();
    s.setting("public_url", "\"https://tend.example.com\"");
    s.start();
    let (cookie, line) = sign_in_http(&s, ADMIN).await;
    assert!(line.ends_with("; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict; Secure"), "{line}");
    assert_eq!(get(&s, "/runs", &cookie).await.status(), 200);
    let value = cookie.strip_prefix("tend_session=").unwrap();
    for file in ["tend.db", "tend.db-wal"] {
        let bytes = std::fs::read(s.path().join(file)).unwrap_or_default();
        assert!(!bytes.windows(value.len()).any(|w| w == value.as_bytes()), "the cookie's value is in {file}");
    }
    s.kill9();
    let config = std::fs::read_to_string(s.path().join("tend.toml")).unwrap();
    let without_admin = config.replace(&serve_support::sha256(ADMIN), &serve_support::sha256("another-token"));
    std::fs::write(s.path().join("tend.toml"), without_admin).unwrap();
    s.start();
    let r = get(&s, "/runs?status=failed", &cookie).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/signin?next=%2Fruns%3Fstatus%3Dfailed");
}

#[tokio::test]
async fn a_form_from_another_site_or_without_its_sign_in_cookie_is_refused() {
    let mut s = Server::new();
    s.runbook("checkout", CHECKOUT);
    s.start();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = http
        .post(format!("{}/signin", s.base))
        .form(&[("token", ADMIN), ("csrf", "forged"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("the sign-in form expired or was not sent from this site"), "{body}");

    let run = trigger(&s, "checkout").await;
    s.wait_status(&run, "waiting_approval").await;
    let (cookie, _) = sign_in_http(&s, ADMIN).await;
    let csrf = csrf_of(&get(&s, "/runs", &cookie).await.text().await.unwrap());
    let r = http
        .post(format!("{}/runs/{run}/approve", s.base))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("this form was sent from &quot;http:&#x2f;&#x2f;evil.example&quot;, not from this site"),
        "{body}"
    );
    let r = http
        .post(format!("{}/runs/{run}/approve", s.base))
        .header("cookie", &cookie)
        .header("origin", &s.base)
        .form(&[("csrf", csrf.as_str()), ("reason", "ok")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status(), r.headers()["location"].to_str().unwrap()),
        (reqwest::StatusCode::SEE_OTHER, &*format!("/runs/{run}"))
    );
    assert_eq!(s.wait_final(&run).await["run"]["status"], "succeeded");
    let r = http
        .post(format!("{}/runs/{run}/approve", s.base))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "approving twice");
    let body = r.text().await.unwrap();
    assert!(body.contains(&format!("run {run} is not waiting for an approval (it is succeeded)")), "{body}");
}

#[tokio::test]
async fn shutting_down_ends_the_live_stream_instead_of_waiting_for_the_browser() {
    let mut s = Server::new();
    s.start();
    let (cookie, _) = sign_in_http(&s, ADMIN).await;
    let live = get(&s, "/live", &cookie).await;
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let pid = s.child.as_ref().unwrap().id();
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let start = Instant::now();
    let mut child = s.child.take().unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "tend serve exited with {status}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "tend serve still running 10 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rest = live.bytes().await;
    assert!(rest.is_ok(), "the stream ended cleanly: {rest:?}");
}

#[tokio::test]
async fn bad_filters_unknown_runs_and_unknown_pages_get_an_html_page_saying_what_is_wrong() {
    let mut s = Server::new();
    s.runbook("disk-check", DISK);
    s.start();
    let (cookie, _) = sign_in_http(&s, READER).await;
    let cases = [
        ("/runs?status=bogus", 400, "run status &quot;bogus&quot; is not one of queued, running, waiting_approval"),
        ("/runs?limit=5", 400, "unknown field `limit`"),
        ("/runs/nope", 404, "run &quot;nope&quot; not found"),
        ("/runbooks/nope", 404, "runbook &quot;nope&quot; not found"),
        ("/escalations?resolved_before=x", 400, "resolved_before: invalid digit found in string"),
    ];
    for (path, status, message) in cases {
        let r = get(&s, path, &cookie).await;
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8", "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains(message), "{path}: {body}");
    }
    let http = reqwest::Client::new();
    let page = http.get(format!("{}/nowhere", s.base)).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status(), 404);
    assert!(page.text().await.unwrap().contains("there is no page at &#x2f;nowhere; the runs are at &#x2f;runs"));
    let (status, body) = s.call("GET", "/v1/nowhere", Some(READER), None).await;
    assert_eq!(
        (status.as_u16(), body["error"]["message"].as_str()),
        (404, Some("no such endpoint")),
        "API clients keep JSON"
    );
}

const HELLO: &str = "name: hello\ntriggers:\n  - http: true\nsteps:\n  - id: greet\n    plugin: echo\n";

#[tokio::test]
async fn the_runs_page_shows_fifty_runs_and_links_to_the_older_ones() {
    let mut s = Server::new();
    s.runbook("hello", HELLO);
    s.start();
    let mut ids = Vec::new();
    for _ in 0..53 {
        ids.push(trigger(&s, "hello").await);
    }
    for id in &ids {
        s.wait_final(id).await;
    }
    let (cookie, _) = sign_in_http(&s, READER).await;
    // Links as a browser reads them (minijinja escapes `/` and `&` in attributes).
    let page = |html: String| html.replace("&#x2f;", "/").replace("&amp;", "&");
    let first = page(get(&s, "/runs?runbook=hello&status=succeeded", &cookie).await.text().await.unwrap());
    let rows = |html: &str| html.matches("<tr data-run=\"").count();
    assert_eq!(rows(&first), 50);
    assert!(first.contains(&format!("<tr data-run=\"{}\"", ids[52])), "newest first");
    let older = format!("/runs?runbook=hello&status=succeeded&before={}", ids[3]);
    assert!(first.contains(&format!("href=\"{older}\" rel=\"next\">Older runs</a>")), "{first}");
    let second = page(get(&s, &older, &cookie).await.text().await.unwrap());
    assert_eq!(rows(&second), 3);
    assert!(second.contains(&format!("<tr data-run=\"{}\"", ids[0])));
    assert!(second.contains("href=\"/runs?runbook=hello&status=succeeded\">Newest runs</a>"), "{second}");
    assert!(!second.contains("Older runs"));
}

#[tokio::test]
async fn a_rejection_with_a_reason_is_recorded_and_ends_the_run() {
    let mut s = Server::new();
    s.runbook("checkout", CHECKOUT);
    s.start();
    let run = trigger(&s, "checkout").await;
    s.wait_status(&run, "waiting_approval").await;
    let (cookie, _) = sign_in_http(&s, ADMIN).await;
    let csrf = csrf_of(&get(&s, &format!("/runs/{run}"), &cookie).await.text().await.unwrap());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = http
        .post(format!("{}/runs/{run}/reject", s.base))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("reason", "not during the sale")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let record = s.wait_final(&run).await;
    assert_eq!(record["approvals"][0]["status"], "rejected");
    assert_eq!(record["approvals"][0]["reason"], "not during the sale");
    assert_eq!(record["approvals"][0]["decided_by"], "token:admin");
    assert_ne!(record["run"]["status"], "succeeded", "{record}");
}
