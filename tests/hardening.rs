//! End-to-end tests of what a hostile probe of `tend serve` found leaking:
//! secrets leaving the sandbox in clear, triggers whose client hung up
//! left queued, and a database that grew under load until the next start.
//! Each drives the real binary over loopback (harness in `serve_support`).

mod loopback;
mod serve_support;

use reqwest::StatusCode;
use serde_json::Value;
use serve_support::{ADMIN, READER, Server, TRIGGER};
use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A plain secret.
const SECRET_A: &str = "s3cr3t-value-7f1c2a";
/// A secret with quotes, `|`, `\` and non-ASCII characters.
const SECRET_B: &str = "q\"uo'te|pipe\\back✓ünï-9e2";
/// The token in the path of a webhook URL kept in a secret.
const HOOK_TOKEN: &str = "T0K3N-in-path-5a7d";

/// Every form a secret could be written in: raw, and escaped as JSON
/// writes it inside a string (and doubly, as JSON inside JSON text).
fn forms(secret: &str) -> Vec<String> {
    let once = serde_json::to_string(secret).unwrap();
    let once = once[1..once.len() - 1].to_string();
    let twice = serde_json::to_string(&once).unwrap();
    let twice = twice[1..twice.len() - 1].to_string();
    let mut all = vec![secret.to_string(), once, twice];
    all.dedup();
    all
}

/// Where each planted secret was found, as `"<place>: <form>"`.
fn leaks(place: &str, haystack: &[u8], found: &mut Vec<String>) {
    for secret in [SECRET_A, SECRET_B, HOOK_TOKEN] {
        for form in forms(secret) {
            if haystack.windows(form.len()).any(|w| w == form.as_bytes()) {
                found.push(format!("{place}: {form}"));
            }
        }
    }
}

/// A loopback webhook receiver: its URL (with [`HOOK_TOKEN`] in the path)
/// and the requests it got.
fn webhook_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let (addr, requests) = loopback::recorder(200, "ok");
    (format!("http://{addr}/hook/{HOOK_TOKEN}"), requests)
}

const LEAKY: &str = r#"
name: leaky
triggers:
  - http: true
steps:
  - id: leak_a
    plugin: hostile
    with: {mode: leak-secret, name: a}
    grants: {secrets: [a], env: {A: b}, dirs: ["/tmp:/tmp:ro"], hosts: [localhost]}
  - id: leak_b
    plugin: hostile
    with: {mode: leak-secret, name: b}
    grants: {secrets: [b], env: {A: b}, dirs: ["/tmp:/tmp:ro"], hosts: [localhost]}
  - id: fail_b
    plugin: hostile
    with: {mode: leak-secret, name: b, fail: true}
    grants: {secrets: [b], env: {A: b}, dirs: ["/tmp:/tmp:ro"], hosts: [localhost]}
    on_failure: continue
escalations:
  - when: steps.leak_b.status == 'succeeded'
    severity: critical
    message: "a={{ steps.leak_a.output.secret }} b={{ steps.leak_b.output.secret }} metrics={{ steps.leak_b.metrics }}"
    dedup_key: "key-{{ steps.leak_a.output.secret }}-{{ steps.leak_b.output.nested }}"
escalate_findings: high
notify:
  log: true
  webhooks: [{url_secret: hook}]
"#;

#[tokio::test]
async fn secrets_planted_in_a_runbook_never_leave_the_sandbox_in_clear() {
    let (hook_url, bodies) = webhook_receiver();
    let mut s = Server::new();
    s.runbook("leaky", LEAKY);
    s.env("TEND_SECRET_A", SECRET_A);
    s.env("TEND_SECRET_B", SECRET_B);
    s.env("TEND_SECRET_HOOK", &hook_url);
    s.env("TEND_LOG", "debug");
    s.start();

    let (status, body) = s.call("POST", "/v1/runbooks/leaky/runs", Some(TRIGGER), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["run_id"].as_str().unwrap().to_string();
    let record = s.wait_final(&id).await;
    assert_eq!(record["run"]["status"], "succeeded", "{record}");

    // Every channel was used, so a leak would show: the outputs, metrics,
    // findings, errors and escalations are there, masked.
    let steps = record["steps"].as_array().unwrap();
    assert_eq!(steps[0]["output"]["secret"], "***", "{record}");
    assert_eq!(steps[1]["findings"][0]["resource"], "resource ***", "{record}");
    assert_eq!(steps[1]["metrics"][0]["name"], "metric_***", "{record}");
    // Refused the secret-named host, then failed quoting the secret.
    assert!(steps[2]["error"].as_str().unwrap().ends_with("the plugin then failed: error: ***)"), "{record}");
    assert!(steps[0]["logs"].as_array().unwrap().iter().any(|l| l["message"] == "log: ***"), "{record}");
    let escalations = record["escalations"].as_array().unwrap();
    assert!(escalations.iter().any(|e| e["severity"] == "critical"), "{record}");
    assert!(escalations.iter().any(|e| e["dedup_key"].as_str().unwrap().contains("resource ***")), "{record}");
    let start = Instant::now();
    while bodies.lock().unwrap().len() < escalations.len() {
        assert!(start.elapsed() < Duration::from_secs(20), "webhooks: {:?}", bodies.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut found = Vec::new();
    for path in [
        "/v1/runs".to_string(),
        format!("/v1/runs/{id}"),
        format!("/v1/runs/{id}/events"),
        "/v1/escalations".to_string(),
        "/v1/runbooks/leaky".to_string(),
        "/metrics".to_string(),
    ] {
        let resp = s.http.get(format!("{}{path}", s.base)).bearer_auth(ADMIN).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        leaks(&format!("GET {path}"), &resp.bytes().await.unwrap(), &mut found);
    }
    for request in bodies.lock().unwrap().iter() {
        let body = loopback::body_of(request);
        assert!(body.contains("***"), "the webhook got the masked message: {body}");
        leaks("webhook payload", body.as_bytes(), &mut found);
    }

    let tend = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tend"))
            .args(args)
            .current_dir(s.path())
            .env("TEND_DB", s.path().join("tend.db"))
            .env("TEND_PLUGINS", s.path().join("plugins"))
            .env("TEND_CACHE_DIR", std::env::temp_dir().join("tend-test-cache"))
            .env("TEND_SECRET_A", SECRET_A)
            .env("TEND_SECRET_B", SECRET_B)
            .output()
            .unwrap();
        let mut all = out.stdout.clone();
        all.extend_from_slice(&out.stderr);
        (out.status.success(), all)
    };
    for args in [
        vec!["runs", "show", &id],
        vec!["runs", "show", &id, "--json"],
        vec!["runs", "list"],
        vec!["runs", "list", "--json"],
        vec!["escalations", "list"],
        vec!["escalations", "list", "--json"],
    ] {
        let (ok, out) = tend(&args);
        assert!(ok, "tend {args:?}: {}", String::from_utf8_lossy(&out));
        leaks(&format!("tend {}", args.join(" ")), &out, &mut found);
    }
    for config in [r#"{"mode": "leak-secret", "name": "b"}"#, r#"{"mode": "leak-secret", "name": "b", "fail": true}"#] {
        for record in [false, true] {
            let mut args = vec!["plugins", "call", "hostile", "--config", config, "--secret", "b"];
            args.extend(["--allow-host", "localhost", "--env", "A=b", "--dir", "/tmp:/tmp:ro"]);
            if record {
                args.push("--record");
            }
            let (_, out) = tend(&args);
            assert!(String::from_utf8_lossy(&out).contains("***"), "tend {args:?}: {}", String::from_utf8_lossy(&out));
            leaks(&format!("tend {}", args.join(" ")), &out, &mut found);
        }
    }

    s.kill9();
    for file in ["tend.db", "tend.db-wal", "serve.log"] {
        let bytes = std::fs::read(s.path().join(file)).unwrap_or_default();
        leaks(file, &bytes, &mut found);
    }
    let db = std::fs::read(s.path().join("tend.db")).unwrap();
    let wal = std::fs::read(s.path().join("tend.db-wal")).unwrap_or_default();
    let stored = [db, wal].concat();
    assert!(stored.windows(9).any(|w| w == b"key-***-["), "the state key and escalation key were stored, masked");
    assert!(found.is_empty(), "secrets found in clear:\n{}", found.join("\n"));
}

const HELLO: &str = r#"
name: hello
triggers:
  - http: true
  - alert: {match: {alertname: HangUp}}
steps:
  - id: greet
    plugin: echo
    with: {output: hello}
"#;

/// Writes one HTTP request on a fresh connection and closes it at once,
/// without reading the answer.
fn post_and_hang_up(base: &str, path: &str, body: &str) {
    let addr = base.strip_prefix("http://").unwrap();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {TRIGGER}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).unwrap();
    drop(conn);
}

fn alert(i: usize) -> String {
    format!(
        r#"{{"version": "4", "status": "firing", "receiver": "tend", "groupKey": "g{i}", "groupLabels": {{}},
            "commonLabels": {{}}, "commonAnnotations": {{}}, "externalURL": "http://127.0.0.1:9093",
            "alerts": [{{"status": "firing", "labels": {{"alertname": "HangUp", "i": "{i}"}}, "annotations": {{}},
                         "startsAt": "2026-12-02T10:00:0{}Z", "endsAt": "0001-01-01T00:00:00Z",
                         "fingerprint": "fp{i}"}}]}}"#,
        i % 10
    )
}

#[tokio::test]
async fn a_trigger_whose_client_hangs_up_is_still_run() {
    let mut s = Server::new();
    s.runbook("hello", HELLO);
    s.start();
    for _ in 0..20 {
        post_and_hang_up(&s.base, "/v1/runbooks/hello/runs", "{}");
    }
    for i in 0..5 {
        post_and_hang_up(&s.base, "/v1/alerts/alertmanager", &alert(i));
    }
    // Whatever was recorded runs to its end: nothing stays queued.
    let start = Instant::now();
    let runs = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (status, list) = s.call("GET", "/v1/runs?runbook=hello&limit=500", Some(READER), None).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let runs = list["runs"].as_array().unwrap().clone();
        let open: Vec<&Value> = runs.iter().filter(|r| r["status"] != "succeeded").collect();
        if open.is_empty() && start.elapsed() > Duration::from_secs(2) {
            break runs;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "runs left behind: {open:?}");
    };
    // Whether hyper sees the hang-up before or after the handler starts is
    // a race: some triggers are never recorded, and that is fine (the
    // client got no 202). The service-level test
    // `a_trigger_dropped_after_its_first_poll_is_still_recorded_and_run`
    // pins the case deterministically.
    let http = runs.iter().filter(|r| r["trigger_kind"] == "http").count();
    let alerts = runs.iter().filter(|r| r["trigger_kind"] == "alert").count();
    eprintln!("hung-up triggers recorded and run: {http} http, {alerts} alert");
}

#[tokio::test]
async fn retention_keeps_the_database_bounded_under_sustained_load() {
    /// Concurrent clients triggering as fast as they can.
    const CLIENTS: usize = 6;
    /// How long the load lasts.
    const LOAD: Duration = Duration::from_secs(16);
    let mut s = Server::new();
    s.setting("retention", "\"2s\"");
    s.setting("rate_limit", "100000");
    s.runbook("hello", HELLO);
    s.start();
    let size = |dir: &std::path::Path| -> u64 {
        ["tend.db", "tend.db-wal"].iter().map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0)).sum()
    };
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (http, url) = (s.http.clone(), format!("{}/v1/runbooks/hello/runs", s.base));
        clients.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            while started.elapsed() < LOAD {
                let resp = http.post(&url).bearer_auth(TRIGGER).body("{}").send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::ACCEPTED);
                accepted += 1;
            }
            accepted
        }));
    }
    // Sizes once a second: (seconds since the start, bytes).
    let mut sizes = Vec::new();
    while started.elapsed() < LOAD {
        tokio::time::sleep(Duration::from_secs(1)).await;
        sizes.push((started.elapsed().as_secs_f64(), size(s.path())));
    }
    let mut accepted = 0;
    for c in clients {
        accepted += c.await.unwrap();
    }
    let early = sizes.iter().filter(|(t, _)| (2.0..6.0).contains(t)).map(|(_, b)| *b).max().unwrap();
    let late = sizes.iter().filter(|(t, _)| *t >= 11.0).map(|(_, b)| *b).max().unwrap();
    // Without pruning the file grows with every run: 16 s of load holds
    // about three times what 5 s do.
    assert!(
        late <= early * 2,
        "the database kept growing under load ({accepted} runs): {early} bytes by 6 s, {late} after 11 s; {sizes:?}"
    );
    let db = rusqlite::Connection::open(s.path().join("tend.db")).unwrap();
    let kept: i64 = db.query_row("SELECT count(*) FROM runs", [], |r| r.get(0)).unwrap();
    assert!((kept as u64) < accepted / 2, "{kept} of {accepted} runs still stored after a 2 s retention");
}
