//! End-to-end test of `examples/js-chat` (the `chat-notify` plugin, in
//! JavaScript): builds it with componentize-js, installs it, and drives it
//! through the `tend` binary against a loopback webhook receiver
//! (127.0.0.1 only): the exact Slack, Teams and Mattermost payloads it
//! posts, the denial when the receiver's host is not granted, 429/5xx
//! answers as retryable errors, and a runbook whose step posts the findings
//! of an earlier step and is retried past a 503.
//!
//! Needs Node.js and npm on PATH (`.ci/run` checks); the test installs the
//! example's pinned devDependencies itself (see
//! `example_plugin::componentize_js`).

mod example_plugin;
mod loopback;

use example_plugin::{Env, json_out, repo, stderr, stdout};
use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

fn wasm() -> std::path::PathBuf {
    example_plugin::componentize_js(&repo().join("examples/js-chat"), "chat-notify")
}

fn env() -> Env {
    Env::new(&wasm(), "chat-notify")
}

/// The JSON body of a request the receiver got.
fn body(request: &str) -> Value {
    serde_json::from_str(loopback::body_of(request)).unwrap_or_else(|e| panic!("not JSON ({e}): {request}"))
}

/// The header lines of a request, lowercased names: `name: value`.
fn has_header(request: &str, line: &str) -> bool {
    let head = request.split("\r\n\r\n").next().unwrap();
    head.lines()
        .skip(1)
        .any(|l| l.split_once(':').is_some_and(|(n, v)| format!("{}: {}", n.to_ascii_lowercase(), v.trim()) == line))
}

/// A loopback receiver that answers the first requests with `statuses`
/// (each with a `retry-after: 1` header), then 200 `ok`, and keeps every
/// request it got.
fn flaky_receiver(statuses: &'static [u16]) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let request = loopback::read_request(&mut stream);
            let n = {
                let mut seen = seen.lock().unwrap();
                seen.push(request);
                seen.len()
            };
            let (status, body) = statuses.get(n - 1).map(|s| (*s, "busy")).unwrap_or((200, "ok"));
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nretry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, requests)
}

const ESCALATION: &str = r#"{"severity": "critical", "title": "checkout is down",
    "detail": "5 of 5 probes failed <since 12:00> & counting", "resource": "https://shop.example.com/health",
    "step_id": "probe", "run_id": "01JRUN"}"#;

#[test]
fn chat_notify_posts_a_slack_block_kit_message_to_the_webhook() {
    // Installed: checked, compiled into the cache, recorded as JavaScript.
    let env = Env::empty();
    let wasm = wasm();
    let said = env.install(&wasm);
    assert!(said.starts_with("installed chat-notify 0.1.0 (JavaScript, "), "{said}");
    let info = env.inspect_installed("chat-notify");
    let list = json_out(&env.tend(&["plugins", "list", "--json"]));
    let entry = list.as_array().unwrap().iter().find(|p| p["name"] == "chat-notify").expect("listed");
    let size = std::fs::metadata(&wasm).unwrap().len();
    assert_eq!((&entry["language"], entry["size_bytes"].as_u64()), (&json!("JavaScript"), Some(size)));
    assert_eq!(info["capabilities"], json!(["http"]), "secrets are granted only to steps that use one");
    let (addr, requests) = loopback::recorder(200, "ok");
    let config = json!({"url": format!("http://{addr}/services/T0/B0/XyZ"), "token_secret": "chat-token",
                        "public_url": "https://tend.example.com/", "mention": "<!here>"});
    let args = ["plugins", "call", "chat-notify", "--runbook", "checkout", "--allow-host", "127.0.0.1"];
    let out = env.tend_with(
        &[&args[..], &["--secret", "chat-token", "--config", &config.to_string(), "--input", ESCALATION]].concat(),
        &[("TEND_SECRET_CHAT_TOKEN", "s3cr3t-t0ken"), ("TEND_LOG", "warn,tend::runtime=info")],
    );
    // The call loads what install compiled.
    assert!(stderr(&out).contains("chat-notify.wasm from the compile cache in"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("compiled plugin"), "{}", stderr(&out));
    let output = json_out(&out);
    let text = "<!here> [CRITICAL] checkout is down (runbook checkout, run 01JRUN)";
    assert_eq!(
        output["data"],
        json!({"posted": true, "format": "slack", "host": addr, "status": 200, "severity": "critical",
               "text": text, "findings": 0})
    );
    assert_eq!(output["metrics"][0]["name"], "chat_post_ms");
    assert_eq!(output["metrics"][0]["labels"], json!([["format", "slack"]]));

    let requests = requests.lock().unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert!(request.starts_with("POST /services/T0/B0/XyZ HTTP/1.1\r\n"), "{request}");
    assert!(has_header(request, "content-type: application/json"), "{request}");
    assert!(has_header(request, "authorization: Bearer s3cr3t-t0ken"), "{request}");
    let run_url = "https://tend.example.com/v1/runs/01JRUN";
    assert_eq!(
        body(request),
        json!({
            "text": text,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "[CRITICAL] checkout is down"}},
                {"type": "section",
                 "text": {"type": "mrkdwn", "text": "5 of 5 probes failed &lt;since 12:00&gt; &amp; counting"},
                 "fields": [
                     {"type": "mrkdwn", "text": "*Severity*\ncritical"},
                     {"type": "mrkdwn", "text": "*Runbook*\ncheckout"},
                     {"type": "mrkdwn", "text": "*Step*\nprobe"},
                     {"type": "mrkdwn", "text": "*Resource*\nhttps://shop.example.com/health"},
                     {"type": "mrkdwn", "text": format!("*Run*\n<{run_url}|01JRUN>")},
                 ]},
                {"type": "actions", "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Open run"}, "url": run_url}]},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "tend · checkout · run 01JRUN"}]},
            ],
        })
    );
}

#[test]
fn chat_notify_formats_findings_for_teams_and_escalations_for_mattermost() {
    let env = env();
    let (addr, requests) = loopback::recorder(200, "1");

    // A list of findings: one Teams card at the highest severity, most severe first.
    let findings = r#"[{"severity": "low", "title": "TLS certificate expires in 20 days", "resource": "shop:443"},
                       {"severity": "high", "title": "error rate 7%", "detail": "over 5%"},
                       {"severity": "low", "title": "p95 latency up 40%"}]"#;
    let config = json!({"url": format!("http://{addr}/webhookb2/abc"), "format": "teams"});
    let output = json_out(&env.tend(&[
        "plugins",
        "call",
        "chat-notify",
        "--runbook",
        "nightly",
        "--allow-host",
        "127.0.0.1",
        "--config",
        &config.to_string(),
        "--input",
        findings,
    ]));
    assert_eq!(output["data"]["findings"], 3);
    let run_id = output["data"]["text"].as_str().unwrap().rsplit("run ").next().unwrap().trim_end_matches(')');
    let card = &body(&requests.lock().unwrap()[0])["attachments"][0];
    assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(
        card["content"],
        json!({
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": "[HIGH] 3 findings in nightly", "weight": "Bolder", "size": "Medium",
                 "color": "Attention", "wrap": true},
                {"type": "TextBlock", "text": "- [HIGH] error rate 7%", "wrap": true, "spacing": "None"},
                {"type": "TextBlock", "text": "- [LOW] TLS certificate expires in 20 days (shop:443)", "wrap": true,
                 "spacing": "None"},
                {"type": "TextBlock", "text": "- [LOW] p95 latency up 40%", "wrap": true, "spacing": "None"},
                {"type": "FactSet", "facts": [
                    {"title": "Severity", "value": "high"}, {"title": "Runbook", "value": "nightly"},
                    {"title": "Run", "value": run_id}]},
                {"type": "TextBlock", "text": format!("tend · nightly · run {run_id}"), "isSubtle": true,
                 "size": "Small", "wrap": true},
            ],
        })
    );

    // tend's own notification JSON as input; the URL from a secret, which
    // no output shows (the host redacts it, and the plugin names the host only).
    let notification = r#"{"text": "[HIGH] api: errors (run 01JX, escalation 7)", "status": "resolved",
        "severity": "high", "runbook": "api", "run_id": "01JX", "step_id": "score", "escalation_id": 7,
        "dedup_key": "api-errors", "message": "errors over 5%", "run_url": "https://tend.example.com/v1/runs/01JX"}"#;
    let config = r#"{"url_secret": "mm-hook", "format": "mattermost", "channel": "ops", "username": "tend"}"#;
    let hook = format!("http://{addr}/hooks/xx7tok");
    let out = env.tend_with(
        &[
            "plugins",
            "call",
            "chat-notify",
            "--allow-host",
            "127.0.0.1",
            "--secret",
            "mm-hook",
            "--config",
            config,
            "--input",
            notification,
        ],
        &[("TEND_SECRET_MM_HOOK", &hook)],
    );
    let output = json_out(&out);
    assert!(!stdout(&out).contains("xx7tok"), "{}", stdout(&out));
    assert_eq!(output["data"]["text"], "[RESOLVED] errors over 5% (runbook api, run 01JX)");
    let requests = requests.lock().unwrap();
    assert!(requests[1].starts_with("POST /hooks/xx7tok HTTP/1.1\r\n"), "{}", requests[1]);
    assert_eq!(
        body(&requests[1]),
        json!({
            "text": "[RESOLVED] errors over 5% (runbook api, run 01JX)",
            "channel": "ops",
            "username": "tend",
            "attachments": [{
                "fallback": "[RESOLVED] errors over 5% (runbook api, run 01JX)",
                "color": "#2eb886",
                "title": "[RESOLVED] errors over 5%",
                "title_link": "https://tend.example.com/v1/runs/01JX",
                "text": "",
                "fields": [
                    {"short": true, "title": "Severity", "value": "high"},
                    {"short": true, "title": "Runbook", "value": "api"},
                    {"short": true, "title": "Step", "value": "score"},
                    {"short": true, "title": "Run", "value": "01JX"},
                ],
                "footer": "tend · api · run 01JX · resolved",
            }],
        })
    );
}

#[test]
fn chat_notify_is_denied_an_ungranted_host_and_retries_on_429_and_5xx() {
    let env = env();
    let (addr, requests) = loopback::recorder(200, "ok");
    let config = json!({"url": format!("http://{addr}/hook")}).to_string();
    let call = |config: &str, grant: Option<&str>| {
        let mut args = vec!["plugins", "call", "chat-notify", "--config", config, "--input", ESCALATION];
        if let Some(host) = grant {
            args.extend(["--allow-host", host]);
        }
        env.tend(&args)
    };

    // Not granted: nothing is sent, and the error names the host and the grant.
    let out = call(&config, None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "tend: chat-notify: trap: denied capability: hosts (hosts: {addr} is not granted to this step (granted: \
             none); the plugin then failed: webhook {addr}: hosts: {addr} is not granted to this step (granted: none))\n"
        )
    );
    let out = call(&config, Some("example.com"));
    assert!(stderr(&out).contains(&format!("hosts: {addr} is not granted to this step (granted: example.com)")));
    assert!(requests.lock().unwrap().is_empty(), "a denied post reached the receiver");

    // 429 and 5xx answers are retryable, quoting the answer; other answers fail.
    for (status, kind, hint) in [
        (429, "retryable error", " (Retry-After: 1)"),
        (503, "retryable error", " (Retry-After: 1)"),
        (404, "failed", ""),
    ] {
        let statuses: &'static [u16] = Box::leak(Box::new([status]));
        let (addr, _) = flaky_receiver(statuses);
        let config = json!({"url": format!("http://{addr}/hook")}).to_string();
        let out = call(&config, Some("127.0.0.1"));
        assert_eq!(out.status.code(), Some(1));
        let retry = if kind == "failed" { "" } else { "; worth retrying" };
        assert_eq!(
            stderr(&out),
            format!("tend: chat-notify: {kind}: webhook {addr} answered {status}{hint}: \"busy\"{retry}\n")
        );
    }

    // No answer is retryable too; the host's message keeps the URL's path (a token) out.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = call(&json!({"url": format!("http://{closed}/hooks/t0ken")}).to_string(), Some("127.0.0.1"));
    assert_eq!(
        stderr(&out),
        format!(
            "tend: chat-notify: retryable error: webhook {closed}: no answer: request to http://{closed}/... failed: \
             Connection refused (os error 111)\n"
        )
    );

    // Config errors name the field and quote the value.
    for (config, message) in [
        (
            r#"{"url": "http://x/h", "format": "discord"}"#,
            r#"field `format`: expected one of slack, teams, mattermost, json, got "discord""#,
        ),
        (r#"{"url": "ftp://x/h"}"#, r#"field `url`: expected an http or https URL, got "ftp://x/h""#),
        (r#"{"format": "slack"}"#, "give exactly one of `url` and `url_secret`"),
        (r#"{"url": "http://x/h", "timeout_ms": 0}"#, "field `timeout_ms`: expected an integer from 1 to 60000, got 0"),
    ] {
        let out = call(config, Some("x"));
        assert_eq!(stderr(&out), format!("tend: chat-notify: invalid config: {message}\n"), "{config}");
    }
    let out = env.tend(&[
        "plugins",
        "call",
        "chat-notify",
        "--config",
        &config,
        "--input",
        r#"{"severity": "bad", "title": "t"}"#,
    ]);
    assert_eq!(
        stderr(&out),
        "tend: chat-notify: failed: input.severity: expected a severity (info, low, medium, high, critical), got \"bad\"\n"
    );
}

#[test]
fn chat_notify_posts_a_runbook_s_findings_and_is_retried_past_a_503() {
    let env = env();
    let (addr, requests) = flaky_receiver(&[503]);
    std::fs::write(
        env.path().join("disk-check.yaml"),
        format!(
            r#"
name: disk-check
steps:
  - id: check
    plugin: echo
    with:
      findings:
        - {{severity: high, title: "/ is 97% full", resource: "/"}}
        - {{severity: medium, title: "/data is 85% full", resource: "/data"}}
  - id: notify
    plugin: chat-notify
    when: size(steps.check.findings) > 0
    input: ${{{{ steps.check.findings }}}}
    with: {{url: "http://{addr}/hooks/ops", format: json}}
    grants: {{hosts: ["127.0.0.1"]}}
    retry: {{attempts: 3, delay: 100ms, jitter: false}}
"#
        ),
    )
    .unwrap();
    let out = env.tend(&["run", "disk-check", "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let record = json_out(&out);
    let run_id = record["run"]["id"].as_str().unwrap();
    // One record per attempt: the 503 was retryable, the second attempt posted.
    let attempts: Vec<&Value> =
        record["steps"].as_array().unwrap().iter().filter(|s| s["step_id"] == "notify").collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["outcome"], "retryable", "{}", attempts[0]);
    assert_eq!(
        attempts[0]["error"],
        format!("retryable error: webhook {addr} answered 503 (Retry-After: 1): \"busy\"; worth retrying")
    );
    assert_eq!((attempts[1]["attempt"].as_u64(), &attempts[1]["status"]), (Some(2), &json!("succeeded")));
    assert_eq!(attempts[1]["output"]["findings"], 2);
    let requests = requests.lock().unwrap();
    assert_eq!(requests.len(), 2, "the 503 was retried once");
    assert_eq!(requests[0], requests[1], "the retry posts the same message");
    assert_eq!(
        body(&requests[1]),
        json!({
            "text": format!("[HIGH] 2 findings in disk-check (runbook disk-check, run {run_id})"),
            "status": "triggered",
            "severity": "high",
            "title": "2 findings in disk-check",
            "detail": null,
            "runbook": "disk-check",
            "run_id": run_id,
            "run_url": null,
            "step_id": null,
            "resource": null,
            "dedup_key": null,
            "findings": [
                {"severity": "high", "title": "/ is 97% full", "detail": "", "resource": "/"},
                {"severity": "medium", "title": "/data is 85% full", "detail": "", "resource": "/data"},
            ],
        })
    );

    // `tend validate` asks for the grant the plugin's `http` capability needs.
    let out = env.validate_step("notify", "chat-notify", r#"{url: "http://127.0.0.1:1/h"}"#);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "bad.yaml:4:13: step \"notify\": plugin \"chat-notify\" needs the \"http\" capability, but the step is not \
         granted it; add grants.hosts (e.g. hosts: [api.example.com])\n"
    );
}
