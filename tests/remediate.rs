//! End-to-end tests of the `remediate` plugin: the real `tend` binary
//! (`tend plugins call remediate`, and one runbook run) acting on the real
//! demo service (`tend demo service`, started by `demo_support`). Only
//! 127.0.0.1 is contacted.

mod demo_support;

use demo_support::DemoService;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// The secret the tests grant, holding the demo service's token.
const SECRET: &str = "demo-token";
/// The variable `tend` reads [`SECRET`] from.
const SECRET_VAR: &str = "TEND_SECRET_DEMO_TOKEN";

fn tend(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(dir)
        .env("TEND_CACHE_DIR", std::env::temp_dir().join("tend-test-cache"))
        .env("TEND_PLUGINS", dir.join("plugins"))
        .env("TEND_DB", dir.join("tend.db"))
        .env("TEND_RUNBOOKS", dir)
        .env_remove(SECRET_VAR)
        .envs(env.iter().copied())
        .env_remove("TEND_LOG")
        .output()
        .expect("tend runs")
}

/// `tend plugins call remediate --config <config> <flags...>` with the
/// demo service's token in [`SECRET`] (granted only if `flags` say so).
fn call(config: &Value, flags: &[&str], token: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let config = config.to_string();
    let mut args = vec!["plugins", "call", "remediate", "--config", &config];
    args.extend_from_slice(flags);
    tend(&args, &[(SECRET_VAR, token)], dir.path())
}

/// [`call`] granted the demo service's host and the secret.
fn call_granted(demo: &DemoService, config: &Value) -> Output {
    call(config, &["--allow-host", "127.0.0.1", "--secret", SECRET], demo.token())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_out(out: &Output) -> Value {
    assert!(out.status.success(), "tend failed ({}):\n{}", out.status, stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), stderr(out))
    })
}

/// An action on the demo service: `{"name": name, "url": <service>/path}` plus `extra`.
fn action(demo: &DemoService, name: &str, path: &str, extra: Value) -> Value {
    let mut a = json!({"name": name, "url": format!("{}{path}", demo.url())});
    for (k, v) in extra.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

#[test]
fn a_restart_cures_a_down_service() {
    let demo = DemoService::start();
    demo.set_faults(&json!({"down": true}));
    assert_eq!(demo.get("/healthz").status, 503);
    let restarts = demo.metric("demo_restarts_total").unwrap();

    let restart = action(&demo, "restart", "/admin/restart", json!({"expect_status": [202]}));
    let config = json!({"bearer_secret": SECRET, "reason": "service down", "actions": [restart]});
    let v = json_out(&call_granted(&demo, &config));

    let data = &v["data"];
    let url = format!("{}/admin/restart", demo.url());
    assert_eq!((data["dry_run"].clone(), data["reason"].clone()), (json!(false), json!("service down")));
    assert_eq!(data["summary"], "sent 1 action (restart); each answered as expected");
    let a = &data["actions"][0];
    assert_eq!(a["summary"], format!("restart: POST {url} answered 202 Accepted"));
    assert_eq!((a["status"].clone(), a["ok"].clone(), a["expected"].clone()), (json!(202), json!(true), json!("202")));
    assert_eq!(a["response"], json!({"status": "restarting", "restart_ms": demo_support::RESTART_MS}));
    assert!(a["duration_ms"].as_f64().unwrap() > 0.0, "{a}");
    let metrics: Vec<(String, Value)> = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["labels"].clone()))
        .collect();
    assert_eq!(
        metrics,
        [
            ("remediation_duration_ms".to_string(), json!([["action", "restart"]])),
            ("remediation_actions".to_string(), json!([]))
        ]
    );
    assert_eq!(v["metrics"][1]["value"], 1.0);
    assert_eq!(v["findings"], json!([]));

    demo.eventually("the restart cures the down fault", || demo.get("/healthz").status == 200);
    assert_eq!(demo.faults()["down"], false);
    assert_eq!(demo.metric("demo_restarts_total"), Some(restarts + 1.0));
}

#[test]
fn a_scale_answer_lands_in_the_output() {
    let demo = DemoService::start();
    let scale =
        action(&demo, "scale", "/admin/scale", json!({"body": {"replicas": 3}, "headers": {"X-Reason": "tend"}}));
    let v = json_out(&call_granted(&demo, &json!({"bearer_secret": SECRET, "actions": [scale]})));
    let a = &v["data"]["actions"][0];
    assert_eq!(a["request_body"], json!({"replicas": 3}));
    assert_eq!(a["response"], json!({"replicas": 3, "previous": 1}));
    assert_eq!(a["summary"], format!("scale: POST {}/admin/scale answered 200 OK", demo.url()));
    assert_eq!(a["expected"], "2xx");
    assert_eq!(demo.metric("demo_replicas"), Some(3.0));
}

#[test]
fn a_dry_run_sends_nothing_and_says_what_it_would_do() {
    let demo = DemoService::start();
    let faults = demo.set_faults(&json!({"down": true, "cache_misses": true}));
    let restarts = demo.metric("demo_restarts_total").unwrap();
    let config = json!({"bearer_secret": SECRET, "dry_run": true, "reason": "score 3/10", "actions": [
        action(&demo, "restart", "/admin/restart", json!({"expect_status": [202]})),
        action(&demo, "clear", "/admin/cache/clear", json!({})),
    ]});
    let v = json_out(&call_granted(&demo, &config));
    let data = &v["data"];
    assert_eq!(data["summary"], "dry run: would send 2 actions (restart, clear); nothing was sent");
    assert_eq!(data["actions"][0]["summary"], format!("restart: would POST {}/admin/restart", demo.url()));
    assert_eq!(data["actions"][1]["status"], Value::Null);
    let titles: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["dry run: restart not sent", "dry run: clear not sent"]);
    assert_eq!(v["metrics"], json!([{"name": "remediation_actions", "value": 0.0, "labels": []}]));

    // Longer than a restart takes: had one been sent, it would show.
    std::thread::sleep(Duration::from_millis(demo_support::RESTART_MS * 3));
    assert_eq!(demo.faults(), faults);
    assert_eq!(demo.metric("demo_restarts_total"), Some(restarts));
    assert_eq!(demo.get("/healthz").status, 503);
}

#[test]
fn a_restart_during_a_restart_fails_with_the_services_message() {
    // A restart long enough for the second action to find it in progress.
    let demo = DemoService::start_with(&["--restart-ms", "10000"]);
    let config = json!({"bearer_secret": SECRET, "actions": [
        action(&demo, "restart", "/admin/restart", json!({"expect_status": [202]})),
        action(&demo, "again", "/admin/restart", json!({"expect_status": [202]})),
        action(&demo, "scale", "/admin/scale", json!({"body": {"replicas": 2}})),
    ]});
    let out = call_granted(&demo, &config);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "tend: remediate: failed: action \"again\": POST {}/admin/restart answered 409 Conflict, expected 202: \"a \
             restart is already in progress: wait until /healthz answers 200\"; sent before it: restart; not sent: \
             scale\n",
            demo.url()
        )
    );
    assert_eq!(demo.metric("demo_replicas"), Some(1.0), "the action after the failed one is not sent");
}

#[test]
fn a_wrong_token_fails_naming_the_secret() {
    let demo = DemoService::start();
    let config = json!({"bearer_secret": SECRET, "actions": [action(&demo, "restart", "/admin/restart", json!({}))]});
    let out = call(&config, &["--allow-host", "127.0.0.1", "--secret", SECRET], "not-the-token");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "tend: remediate: failed: action \"restart\": POST {}/admin/restart answered 401 Unauthorized, expected \
             2xx: \"the admin token is not valid\"; check that secret \"demo-token\" holds a token the service \
             accepts\n",
            demo.url()
        )
    );
    assert_eq!(demo.metric("demo_restarts_total"), Some(0.0));
}

#[test]
fn a_host_not_granted_is_denied_and_nothing_is_sent() {
    let demo = DemoService::start();
    let config = json!({"bearer_secret": SECRET, "actions": [action(&demo, "restart", "/admin/restart", json!({}))]});
    let out = call(&config, &["--secret", SECRET], demo.token());
    assert_eq!(out.status.code(), Some(1));
    let addr = demo.addr();
    assert_eq!(
        stderr(&out),
        format!(
            "tend: remediate: trap: denied capability: hosts (hosts: {addr} is not granted to this step (granted: \
             none); the plugin then failed: action \"restart\": hosts: {addr} is not granted to this step (granted: \
             none))\n"
        )
    );
    std::thread::sleep(Duration::from_millis(demo_support::RESTART_MS * 2));
    assert_eq!(demo.metric("demo_restarts_total"), Some(0.0));
}

#[test]
fn a_bearer_secret_not_granted_or_not_set_is_named() {
    let demo = DemoService::start();
    let config = json!({"bearer_secret": SECRET, "actions": [action(&demo, "restart", "/admin/restart", json!({}))]});
    let message = "field `bearer_secret`: secret \"demo-token\" is not available to this step: grant it (`secrets: \
                   [demo-token]` in the step's grants, or `--secret demo-token` with `tend plugins call`) and set it";

    let out = call(&config, &["--allow-host", "127.0.0.1"], demo.token());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "tend: remediate: trap: denied capability: secrets (secrets: secret \"demo-token\" is not granted to this \
             step; the plugin then failed: {message})\n"
        )
    );

    let dir = tempfile::tempdir().unwrap();
    let text = config.to_string();
    let args = ["plugins", "call", "remediate", "--config", &text, "--allow-host", "127.0.0.1", "--secret", SECRET];
    let out = tend(&args, &[], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), format!("tend: remediate: invalid config: {message}\n"));
    assert_eq!(demo.metric("demo_restarts_total"), Some(0.0));
}

#[test]
fn a_bad_config_names_the_field_and_quotes_the_value() {
    let demo = DemoService::start();
    let config =
        json!({"actions": [action(&demo, "restart", "/admin/restart", json!({})), {"name": "b", "url": "ftp://x"}]});
    let out = call_granted(&demo, &config);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "tend: remediate: invalid config: field `actions[1].url`: \"ftp://x\" is not an absolute http or https URL, \
         e.g. \"http://127.0.0.1:9100/admin/restart\"\n"
    );
    assert_eq!(demo.metric("demo_restarts_total"), Some(0.0), "nothing is sent when any action is wrong");
}

#[test]
fn a_runbook_restarts_the_service_when_its_probe_fails() {
    let demo = DemoService::start();
    demo.set_faults(&json!({"down": true}));
    let dir = tempfile::tempdir().unwrap();
    let runbook = format!(
        r#"
name: heal
steps:
  - id: probe
    plugin: http-probe
    with:
      targets: ["{url}/healthz"]
    grants:
      hosts: ["127.0.0.1"]
  - id: heal
    plugin: remediate
    when: steps.probe.output.summary.down > 0
    with:
      bearer_secret: {SECRET}
      reason: "${{{{ steps.probe.output.summary.down }}}} target down"
      actions:
        - name: restart
          url: "{url}/admin/restart"
          expect_status: [202]
    grants:
      hosts: ["127.0.0.1"]
      secrets: [{SECRET}]
"#,
        url = demo.url()
    );
    std::fs::write(dir.path().join("heal.yaml"), runbook).unwrap();
    let out = tend(&["run", "heal", "--json"], &[(SECRET_VAR, demo.token())], dir.path());
    let record = json_out(&out);
    assert_eq!(record["run"]["status"], "succeeded", "{record}");
    let heal = &record["steps"][1];
    assert_eq!(heal["output"]["reason"], "1 target down", "{heal}");
    assert_eq!(heal["output"]["actions"][0]["status"], 202);
    demo.eventually("the runbook's restart cures the service", || demo.get("/healthz").status == 200);
}
