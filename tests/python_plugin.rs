//! End-to-end test of a plugin written in Python: builds
//! `examples/python-plugin` (the `threshold` plugin) with componentize-py,
//! then drives it through the `tend` binary — `plugins inspect`, `plugins
//! call`, and a runbook run that uses it as a step — asserting on its
//! describe() record, data, metrics, findings and `host.log` lines.
//!
//! Needs `componentize-py` on PATH (`.ci/run` installs it); without it the
//! tests fail, naming the tool. The component is built once per version of
//! its sources (the example's `*.py`, the WIT, componentize-py) into the
//! target's tmp directory: componentize-py takes 6 s or more and its output
//! is not reproducible, so rebuilding every time would also miss tend's
//! cache of compiled components (compiling the 18 MiB component takes a
//! debug `tend` another 8 s).

mod example_plugin;

use example_plugin::{Env, json_out, repo, stderr, stdout};
use serde_json::json;
use std::path::PathBuf;

fn example() -> PathBuf {
    repo().join("examples/python-plugin")
}

fn env() -> Env {
    Env::new(&example_plugin::componentize_py(&example(), "threshold"), "threshold")
}

const DISK_CONFIG: &str = r#"{"metric": "disk_used_percent", "warn": 80, "critical": 95, "unit": "%",
                               "name_field": "mount_point", "value_field": "used_percent"}"#;

const DISKS: &str = r#"[{"mount_point": "/", "used_percent": 97.5}, {"mount_point": "/data", "used_percent": 85},
                        {"mount_point": "/boot", "used_percent": 12.25}]"#;

#[test]
fn python_plugin_is_inspected_and_called_through_the_cli() {
    let env = env();

    // describe(), by path and by name from the plugins directory.
    let info = json_out(&env.tend(&["plugins", "inspect", "plugins/threshold.wasm"]));
    assert_eq!(info["name"], "threshold");
    assert_eq!(info["version"], "0.1.0");
    assert_eq!(info["capabilities"], json!([]));
    assert_eq!(info["origin"], json!({"file": "plugins/threshold.wasm"}));
    assert!(info["description"].as_str().unwrap().starts_with("Checks numbers against warning and critical"));
    let schema = &info["config_schema"];
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], json!(["metric"]));
    assert!(schema["properties"].as_object().unwrap().values().all(|p| p["description"].is_string()), "{schema}");
    let list = json_out(&env.tend(&["plugins", "list", "--json"]));
    let listed = list.as_array().unwrap().iter().find(|p| p["name"] == "threshold").expect("listed");
    assert_eq!(listed["origin"], json!({"file": env.plugins().join("threshold.wasm")}));
    assert_eq!(listed["language"], "Python");
    assert_eq!(listed["installed"]["language"], "Python");
    // Installing compiled it: every later load comes from the compile cache.
    let out = env.tend_logged(&["plugins", "inspect", "threshold"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("threshold.wasm from the compile cache in"), "{}", stderr(&out));
    assert_eq!(listed["digest"], info["digest"]);

    // run(): data, a metric per value, a finding per value past a threshold.
    let out = env.tend(&["plugins", "call", "threshold", "--config", DISK_CONFIG, "--input", DISKS]);
    let output = json_out(&out);
    assert_eq!(
        output["data"],
        json!({
            "metric": "disk_used_percent", "status": "critical", "ok": false,
            "warn": 80, "critical": 95, "below": false,
            "values": [
                {"name": "/", "value": 97.5, "status": "critical"},
                {"name": "/data", "value": 85, "status": "warn"},
                {"name": "/boot", "value": 12.25, "status": "ok"},
            ],
        })
    );
    assert_eq!(
        output["metrics"],
        json!([
            {"name": "disk_used_percent", "value": 97.5, "labels": [["name", "/"]]},
            {"name": "disk_used_percent", "value": 85.0, "labels": [["name", "/data"]]},
            {"name": "disk_used_percent", "value": 12.25, "labels": [["name", "/boot"]]},
        ])
    );
    let findings = output["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2, "{findings:?}");
    assert_eq!(findings[0]["severity"], "critical");
    assert_eq!(findings[0]["title"], "disk_used_percent of / is 97.5%, at or over the critical threshold 95%");
    assert_eq!(findings[0]["resource"], "/");
    assert!(findings[0]["detail"].as_str().unwrap().contains("warn 80%, critical 95%"), "{findings:?}");
    assert_eq!(findings[1]["severity"], "medium");
    assert_eq!(findings[1]["title"], "disk_used_percent of /data is 85%, at or over the warn threshold 80%");

    // The whole record: the host.log import reached the step's log.
    let record =
        json_out(&env.tend(&["plugins", "call", "threshold", "--config", DISK_CONFIG, "--input", DISKS, "--record"]));
    assert_eq!(record["outcome"], json!({"status": "ok"}));
    assert_eq!(
        record["logs"],
        json!([{"level": "info", "message": "disk_used_percent: checked 3 value(s): 1 ok, 1 warn, 1 critical"}])
    );
    let peak = record["peak_memory_bytes"].as_u64().unwrap();
    eprintln!("peak memory {peak} bytes, call {} ms", record["duration_ms"]);
    assert!(peak > 4 << 20 && peak < 64 << 20, "a Python step's peak memory: {peak}");

    // Lower bounds, and a single number under a dotted path.
    let config = r#"{"metric": "free_gib", "warn": 10, "critical": 2, "below": true, "path": "disk.free"}"#;
    let output = json_out(&env.tend(&[
        "plugins",
        "call",
        "threshold",
        "--config",
        config,
        "--input",
        r#"{"disk": {"free": 7}}"#,
    ]));
    assert_eq!(output["data"]["status"], "warn");
    assert_eq!(output["metrics"], json!([{"name": "free_gib", "value": 7.0, "labels": []}]));
    assert_eq!(output["findings"][0]["title"], "free_gib is 7, at or under the warn threshold 10");

    // Errors travel back as the contract's step-error variants.
    let out = env.tend(&["plugins", "call", "threshold", "--config", r#"{"metric": "m", "warn": "high"}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "tend: threshold: invalid config: field `warn`: expected a number, got a string\n");
    let out = env.tend(&["plugins", "call", "threshold", "--config", r#"{"metric": "m", "warn": 1, "path": "x"}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "tend: threshold: failed: input has no `x` (path 'x')\n");

    // The interpreter needs about 12.5 MiB before the step's code runs;
    // a limit under that is reported as such.
    let out =
        env.tend(&["plugins", "call", "threshold", "--config", DISK_CONFIG, "--input", DISKS, "--memory", "8MiB"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "tend: threshold: trap: out of memory (limit 8 MiB; raise it with the step's `memory:` or `--memory`)\n"
    );
}

#[test]
fn python_plugin_runs_as_a_runbook_step() {
    let env = env();
    std::fs::write(
        env.path().join("disks.yaml"),
        r#"
name: disks
steps:
  - id: measure
    plugin: echo
    with:
      output:
        disks:
          - {mount_point: /, used_percent: 97.5}
          - {mount_point: /data, used_percent: 40}
  - id: check
    plugin: threshold
    input: ${{ steps.measure.output }}
    with: {metric: disk_used_percent, path: disks, value_field: used_percent, name_field: mount_point,
           warn: 80, critical: 95, unit: "%"}
  - id: report
    plugin: echo
    when: steps.check.output.status == "critical" && size(steps.check.findings) == 1
    with: {output: "${{ steps.check.output.values[0].name }}"}
escalate_findings: high
"#,
    )
    .unwrap();
    let out = env.tend(&["run", "disks", "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let record = json_out(&out);
    assert_eq!(record["run"]["status"], "succeeded");
    let steps = record["steps"].as_array().unwrap();
    let check = &steps[1];
    assert_eq!(check["status"], "succeeded", "{check}");
    assert_eq!(check["output"]["status"], "critical");
    assert_eq!(check["findings"].as_array().unwrap().len(), 1, "{check}");
    assert_eq!(check["findings"][0]["severity"], "critical");
    assert_eq!(check["findings"][0]["resource"], "/");
    assert!(check["logs"].to_string().contains("disk_used_percent: checked 2 value(s): 1 ok, 0 warn, 1 critical"));
    // The next step read the Python step's output and findings.
    assert_eq!(steps[2]["status"], "succeeded", "{}", steps[2]);
    assert_eq!(steps[2]["output"], "/");
    // Its critical finding escalated.
    let escalations = record["escalations"].as_array().unwrap();
    assert_eq!(escalations.len(), 1, "{escalations:?}");
    assert!(escalations[0].to_string().contains("disk_used_percent of / is 97.5%"), "{escalations:?}");

    // `tend validate` checks a step's config against the Python plugin's schema.
    std::fs::write(
        env.path().join("bad.yaml"),
        "name: bad\nsteps:\n  - id: check\n    plugin: threshold\n    with: {metric: m, warn: high}\n",
    )
    .unwrap();
    let out = env.tend(&["validate", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "bad.yaml:5:29: step \"check\": with.warn: \"high\" is not of type \"number\" \
         (config schema of plugin \"threshold\")\n"
    );
}
