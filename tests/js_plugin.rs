//! End-to-end test of a plugin written in JavaScript: builds
//! `examples/js-plugin` (the `line-match` plugin) with componentize-js,
//! then drives it through the `tend` binary — `plugins inspect`, `plugins
//! call`, and a runbook run that uses it as a step — asserting on its
//! describe() record, data, metrics, findings and `host.log` lines.
//!
//! Needs Node.js and npm on PATH (`.ci/run` checks): the test installs the
//! example's pinned devDependencies itself with `npm ci` (from its
//! `package-lock.json`, once per version of the lock file, about 15 s) into
//! the target's tmp directory, so a clean clone needs no `node_modules`.
//! Without node or npm the tests fail, naming the tool. The component is
//! built once per version of its sources (`app.js`, the WIT, the lock file,
//! node's version): componentize-js takes 8 s or more and its output is not
//! reproducible, so rebuilding every time would also miss tend's cache of
//! compiled components (compiling the 12 MiB component takes a debug `tend`
//! another 19 s).

mod example_plugin;

use example_plugin::{Env, json_out, repo, stderr, stdout};
use serde_json::json;
use std::path::PathBuf;

fn example() -> PathBuf {
    repo().join("examples/js-plugin")
}

fn env() -> Env {
    Env::new(&example_plugin::componentize_js(&example(), "line-match"), "line-match")
}

const CONFIG: &str = r#"{"patterns": [
    {"name": "oom", "regex": "out of memory", "flags": "i", "severity": "high"},
    {"name": "timeout", "regex": "timed? ?out", "severity": "low", "min_count": 2},
    {"name": "panic", "regex": "^panic:"}],
  "source": "syslog", "max_lines": 1}"#;

/// Five lines (a CRLF and a trailing newline included): two out-of-memory
/// lines, one timeout, no panic.
const LOG: &str =
    r#""boot ok\nOut of memory: Killed process 12 (java)\nok\r\nkernel: OUT OF MEMORY again\nconnection timed out\n""#;

#[test]
fn js_plugin_is_inspected_and_called_through_the_cli() {
    let env = env();

    // describe(), by path and by name from the plugins directory.
    let info = json_out(&env.tend(&["plugins", "inspect", "plugins/line-match.wasm"]));
    assert_eq!(info["name"], "line-match");
    assert_eq!(info["version"], "0.1.0");
    assert_eq!(info["capabilities"], json!([]));
    assert_eq!(info["origin"], json!({"file": "plugins/line-match.wasm"}));
    assert!(info["description"].as_str().unwrap().starts_with("Counts the lines of a log"), "{info}");
    let schema = &info["config_schema"];
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], json!(["patterns"]));
    let properties = schema["properties"].as_object().unwrap();
    assert_eq!(properties.keys().collect::<Vec<_>>(), ["max_lines", "path", "patterns", "source"]);
    assert!(properties.values().all(|p| p["description"].is_string()), "{schema}");
    let item = &schema["properties"]["patterns"]["items"];
    assert_eq!(item["additionalProperties"], false);
    assert_eq!(item["required"], json!(["name", "regex"]));
    assert!(item["properties"].as_object().unwrap().values().all(|p| p["description"].is_string()), "{item}");
    let list = json_out(&env.tend(&["plugins", "list", "--json"]));
    let listed = list.as_array().unwrap().iter().find(|p| p["name"] == "line-match").expect("listed");
    assert_eq!(listed["origin"], json!({"file": env.plugins().join("line-match.wasm")}));
    assert_eq!(listed["language"], "JavaScript");
    assert_eq!(listed["installed"]["language"], "JavaScript");
    // Installing compiled it: every later load comes from the compile cache.
    let out = env.tend_logged(&["plugins", "inspect", "line-match"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("line-match.wasm from the compile cache in"), "{}", stderr(&out));
    assert_eq!(listed["digest"], info["digest"]);

    // run(): data, a metric per pattern, a finding per pattern that matched often enough.
    let record =
        json_out(&env.tend(&["plugins", "call", "line-match", "--config", CONFIG, "--input", LOG, "--record"]));
    assert_eq!(record["outcome"], json!({"status": "ok"}));
    let output = &record["output"];
    assert_eq!(
        output["data"],
        json!({
            "lines": 5,
            "matched": ["oom", "timeout"],
            "patterns": {
                "oom": {"count": 2, "severity": "high", "truncated": true,
                        "lines": [{"number": 2, "text": "Out of memory: Killed process 12 (java)"}]},
                "timeout": {"count": 1, "severity": "low", "truncated": false,
                            "lines": [{"number": 5, "text": "connection timed out"}]},
                "panic": {"count": 0, "severity": "medium", "truncated": false, "lines": []},
            },
        })
    );
    assert_eq!(
        output["metrics"],
        json!([
            {"name": "log_lines", "value": 5.0, "labels": [["source", "syslog"]]},
            {"name": "log_matches", "value": 2.0, "labels": [["pattern", "oom"], ["source", "syslog"]]},
            {"name": "log_matches", "value": 1.0, "labels": [["pattern", "timeout"], ["source", "syslog"]]},
            {"name": "log_matches", "value": 0.0, "labels": [["pattern", "panic"], ["source", "syslog"]]},
        ])
    );
    // `timeout` matched once, under its min_count of 2: no finding.
    assert_eq!(
        output["findings"],
        json!([{
            "severity": "high",
            "title": "oom: 2 of 5 line(s) of syslog match /out of memory/i",
            "detail": "Matching lines:\n  2: Out of memory: Killed process 12 (java)\n  ... 1 more",
            "resource": "syslog",
        }])
    );
    // The host.log import reached the step's log (with the step id from the context).
    assert_eq!(
        record["logs"],
        json!([{"level": "info", "message": "call: scanned 5 line(s): oom 2, timeout 1, panic 0"}])
    );
    let peak = record["peak_memory_bytes"].as_u64().unwrap();
    eprintln!("peak memory {peak} bytes, call {} ms", record["duration_ms"]);
    assert!(peak > 2 << 20 && peak < 64 << 20, "a JavaScript step's peak memory: {peak}");

    // A list of lines under a dotted path, without a source; nothing matches.
    let config = r#"{"patterns": [{"name": "err", "regex": "\\bERROR\\b"}], "path": "probe.lines"}"#;
    let input = r#"{"probe": {"lines": ["INFO up", "WARN slow\nINFO ok", "ERRORS: 0"]}}"#;
    let output = json_out(&env.tend(&["plugins", "call", "line-match", "--config", config, "--input", input]));
    assert_eq!(
        output["data"],
        json!({"lines": 4, "matched": [], "patterns": {"err": {"count": 0, "severity": "medium", "truncated": false, "lines": []}}})
    );
    assert_eq!(
        output["metrics"],
        json!([{"name": "log_lines", "value": 4.0, "labels": []}, {"name": "log_matches", "value": 0.0, "labels": [["pattern", "err"]]}])
    );
    assert_eq!(output["findings"], json!([]));

    // Errors thrown by the plugin travel back as the contract's step-error variants.
    let out = env.tend(&[
        "plugins",
        "call",
        "line-match",
        "--config",
        r#"{"patterns": [{"name": "a", "regex": "x", "severity": "urgent"}]}"#,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "tend: line-match: invalid config: field `patterns[0].severity`: \"urgent\" is not one of info, low, medium, high, critical\n"
    );
    let out =
        env.tend(&["plugins", "call", "line-match", "--config", r#"{"patterns": [{"name": "a", "regex": "(x"}]}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "tend: line-match: invalid config: field `patterns[0].regex`: pattern `a`: unterminated parenthetical\n"
    );
    let out = env.tend(&[
        "plugins",
        "call",
        "line-match",
        "--config",
        r#"{"patterns": [{"name": "a", "regex": "x"}], "path": "body"}"#,
        "--input",
        "[1]",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "tend: line-match: failed: input has no `body` (path 'body')\n");

    // StarlingMonkey needs about 9 MiB before the step's code runs; a
    // limit under that is reported as such.
    let out = env.tend(&["plugins", "call", "line-match", "--config", CONFIG, "--input", LOG, "--memory", "8MiB"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "tend: line-match: trap: out of memory (limit 8 MiB; raise it with the step's `memory:` or `--memory`)\n"
    );
}

#[test]
fn js_plugin_runs_as_a_runbook_step() {
    let env = env();
    std::fs::write(
        env.path().join("logs.yaml"),
        r#"
name: logs
steps:
  - id: fetch
    plugin: echo
    with:
      output:
        body: "12:00 start\n12:01 Out of memory: Killed process 4242 (java)\n12:02 restart\n"
  - id: scan
    plugin: line-match
    input: ${{ steps.fetch.output }}
    with:
      path: body
      source: app.log
      patterns:
        - {name: oom, regex: "Out of memory", severity: critical}
        - {name: restart, regex: restart, severity: info, min_count: 3}
  - id: report
    plugin: echo
    when: steps.scan.output.patterns.oom.count == 1 && size(steps.scan.findings) == 1
    with: {output: "${{ steps.scan.output.patterns.oom.lines[0].text }}"}
escalate_findings: high
"#,
    )
    .unwrap();
    let out = env.tend(&["run", "logs", "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let record = json_out(&out);
    assert_eq!(record["run"]["status"], "succeeded");
    let steps = record["steps"].as_array().unwrap();
    let scan = &steps[1];
    assert_eq!(scan["status"], "succeeded", "{scan}");
    assert_eq!(scan["output"]["lines"], 3);
    assert_eq!(scan["output"]["matched"], json!(["oom", "restart"]));
    assert_eq!(scan["findings"].as_array().unwrap().len(), 1, "{scan}");
    assert_eq!(scan["findings"][0]["severity"], "critical");
    assert_eq!(scan["findings"][0]["resource"], "app.log");
    assert!(scan["logs"].to_string().contains("scan: scanned 3 line(s): oom 1, restart 1"), "{scan}");
    // The next step read the JavaScript step's output and findings.
    assert_eq!(steps[2]["status"], "succeeded", "{}", steps[2]);
    assert_eq!(steps[2]["output"], "12:01 Out of memory: Killed process 4242 (java)");
    // Its critical finding escalated.
    let escalations = record["escalations"].as_array().unwrap();
    assert_eq!(escalations.len(), 1, "{escalations:?}");
    assert!(
        escalations[0].to_string().contains("oom: 1 of 3 line(s) of app.log match /Out of memory/"),
        "{escalations:?}"
    );

    // `tend validate` checks a step's config against the JavaScript plugin's schema.
    std::fs::write(
        env.path().join("bad.yaml"),
        "name: bad\nsteps:\n  - id: scan\n    plugin: line-match\n    with: {patterns: [{name: a, regex: x}], max_line: 3}\n",
    )
    .unwrap();
    let out = env.tend(&["validate", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "bad.yaml:5:11: step \"scan\": with: Additional properties are not allowed ('max_line' was unexpected) \
         (config schema of plugin \"line-match\")\n"
    );
}
