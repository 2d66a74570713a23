//! End-to-end test of `examples/python-anomaly` (the `anomaly` plugin, in
//! Python): builds it with componentize-py, installs it, and drives it
//! through the `tend` binary — `plugins call` on known series (the expected
//! means, standard deviations and z-scores are computed here, not copied
//! from the plugin), its exact config errors, and two runs of a runbook
//! whose second run finds an anomaly only because the first left the
//! history in the runbook's plugin state.
//!
//! Needs `componentize-py` on PATH (`.ci/run` installs it); the component
//! is built once per version of its sources (see
//! `example_plugin::componentize_py`).

mod example_plugin;

use example_plugin::{Env, json_out, repo, stderr, stdout};
use serde_json::{Value, json};

fn wasm() -> std::path::PathBuf {
    example_plugin::componentize_py(&repo().join("examples/python-anomaly"), "anomaly")
}

fn env() -> Env {
    Env::new(&wasm(), "anomaly")
}

/// Mean and sample standard deviation.
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

fn close(got: &Value, want: f64) -> bool {
    got.as_f64().is_some_and(|g| (g - want).abs() <= 1e-9 * want.abs().max(1.0))
}

fn call(env: &Env, config: &str, input: &str) -> Value {
    json_out(&env.tend(&["plugins", "call", "anomaly", "--config", config, "--input", input]))
}

#[test]
fn anomaly_flags_the_points_far_from_their_rolling_window() {
    // Installed: checked, compiled into the cache, recorded as Python.
    let env = Env::empty();
    let wasm = wasm();
    let said = env.install(&wasm);
    let size = std::fs::metadata(&wasm).unwrap().len();
    assert!(said.starts_with("installed anomaly 0.1.0 (Python, "), "{said}");
    let info = env.inspect_installed("anomaly");
    assert_eq!(info["capabilities"], json!(["state"]));
    assert_eq!(info["config_schema"]["required"], json!(["metric"]));
    let list = json_out(&env.tend(&["plugins", "list", "--json"]));
    let entry = list.as_array().unwrap().iter().find(|p| p["name"] == "anomaly").expect("listed");
    assert_eq!((&entry["language"], entry["size_bytes"].as_u64()), (&json!("Python"), Some(size)));

    // z-score over the 5 points before each point, judged from the 4th on;
    // the call loads what install compiled.
    let values = [100.0, 102.0, 98.0, 101.0, 99.0, 100.0, 180.0, 100.0];
    let config = r#"{"metric": "latency_ms", "window": 5, "min_points": 4, "remember": false}"#;
    let input = serde_json::to_string(&values).unwrap();
    let out = env.tend_logged(&["plugins", "call", "anomaly", "--config", config, "--input", &input]);
    assert!(stderr(&out).contains("anomaly.wasm from the compile cache in"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("compiled plugin"), "{}", stderr(&out));
    let output = json_out(&out);
    let mut expected = Vec::new();
    let mut last = None;
    for i in 4..values.len() {
        let (mean, sd) = mean_sd(&values[i.saturating_sub(5)..i]);
        let z = (values[i] - mean) / sd;
        if z.abs() >= 3.0 {
            expected.push((i, mean, sd, z));
        }
        last = Some((values[i], mean, sd, z));
    }
    assert_eq!(expected.iter().map(|e| e.0).collect::<Vec<_>>(), [6], "the data has one outlier");
    let (_, mean, sd, z) = expected[0];
    assert_eq!((mean, z > 6.0), (100.0, true), "180 is far out of [102, 98, 101, 99, 100]");
    let series = &output["data"]["series"][0];
    assert_eq!(output["data"]["status"], "anomaly");
    assert_eq!(output["data"]["anomalies"], 1);
    assert_eq!(series["new_points"], 8);
    let anomaly = &series["anomalies"][0];
    assert_eq!(anomaly["index"], 6);
    assert_eq!(anomaly["value"], 180.0);
    assert_eq!(anomaly["baseline"], 5);
    assert_eq!(anomaly["direction"], "up");
    assert!(close(&anomaly["mean"], mean) && close(&anomaly["stddev"], sd) && close(&anomaly["z"], z), "{anomaly}");
    assert_eq!(anomaly["severity"], "critical", "|z| is past 2 x the threshold");
    let findings = output["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["severity"], "critical");
    assert_eq!(
        findings[0]["title"],
        format!("latency_ms point 6: 180 is {z:.2} standard deviations above the mean 100 of the 5 points before it")
    );
    assert_eq!(findings[0]["resource"], "latency_ms");
    // Metrics: the newest point (100, judged against a window holding 180).
    let (value, mean, sd, z) = last.unwrap();
    let metrics = output["metrics"].as_array().unwrap();
    let names: Vec<&str> = metrics.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["latency_ms", "latency_ms_mean", "latency_ms_stddev", "latency_ms_zscore"]);
    for (metric, want) in metrics.iter().zip([value, mean, sd, z]) {
        assert!(close(&metric["value"], want), "{metric} should be {want}");
        assert_eq!(metric["labels"], json!([]));
    }

    // EWMA (alpha 0.5), judged once 3 points are in: 13 is 2.83 moving
    // standard deviations out (not an anomaly), 40 is far out.
    let values = [10.0, 12.0, 11.0, 13.0, 12.0, 40.0];
    let config = r#"{"metric": "queue", "method": "ewma", "alpha": 0.5, "min_points": 3, "remember": false}"#;
    let output = call(&env, config, &serde_json::to_string(&values).unwrap());
    let (mut m, mut var, mut zs): (f64, f64, Vec<_>) = (values[0], 0.0, Vec::new());
    for (i, &x) in values.iter().enumerate().skip(1) {
        if i >= 3 {
            zs.push((i, m, var.sqrt(), (x - m) / var.sqrt()));
        }
        let d = x - m;
        m += 0.5 * d;
        var = 0.5 * (var + 0.5 * d * d);
    }
    let out: Vec<_> = zs.iter().filter(|z| z.3.abs() >= 3.0).collect();
    assert_eq!(out.iter().map(|z| z.0).collect::<Vec<_>>(), [5]);
    assert!(zs[0].3 > 2.5 && zs[0].3 < 3.0, "{zs:?}");
    let anomaly = &output["data"]["series"][0]["anomalies"][0];
    assert_eq!((anomaly["index"].as_u64(), output["data"]["anomalies"].as_u64()), (Some(5), Some(1)), "{output}");
    assert!(close(&anomaly["mean"], out[0].1) && close(&anomaly["z"], out[0].3), "{anomaly} vs {out:?}");
    assert_eq!(
        output["findings"][0]["title"],
        format!("queue point 5: 40 is {:.2} standard deviations above the moving average 12", out[0].3)
    );

    // A prometheus-query range result under a path: one series per label
    // set, points named by their time, "NaN" samples skipped; only drops
    // count with `direction: down`.
    let t0 = 1_796_558_400; // 2026-12-06T12:00:00Z
    let samples =
        |vals: &[&str]| -> Value { vals.iter().enumerate().map(|(i, v)| json!([t0 + 15 * i as i64, v])).collect() };
    let input = json!({"by_name": {"ok_rate": {"series": [
        {"labels": {"__name__": "ok", "job": "api"}, "values": samples(&["99", "98", "NaN", "99", "97", "98", "10"])},
        {"labels": {"job": "web"}, "values": samples(&["50", "52", "51", "49", "50", "99"])},
    ]}}});
    let config = r#"{"metric": "ok_rate", "path": "by_name.ok_rate", "min_points": 5, "direction": "down",
                     "remember": false}"#;
    let output = call(&env, config, &input.to_string());
    let api = &output["data"]["series"][0];
    assert_eq!(api["name"], r#"{job="api"}"#);
    assert_eq!((api["new_points"].as_u64(), api["skipped"].as_u64()), (Some(6), Some(1)));
    assert_eq!(output["data"]["series"][1]["status"], "ok", "a jump up is not a drop: {output}");
    let (mean, sd) = mean_sd(&[99.0, 98.0, 99.0, 97.0, 98.0]);
    let findings = output["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        findings[0]["title"],
        format!(
            r#"ok_rate{{job="api"}} at 2026-12-06T12:01:30Z: 10 is {:.2} standard deviations below the mean 98.2 of the 5 points before it"#,
            (mean - 10.0) / sd
        )
    );
    assert_eq!(findings[0]["resource"], r#"ok_rate{job="api"}"#);
    assert_eq!(output["metrics"][0], json!({"name": "ok_rate", "value": 10.0, "labels": [["job", "api"]]}));
}

#[test]
fn anomaly_config_errors_name_the_field_and_quote_the_value() {
    let env = env();
    let cases = [
        (r#"{"window": 5}"#, r#"field `metric`: required; expected a metric name, e.g. "error_rate_percent""#),
        (r#"{"metric": "m", "window": 1}"#, "field `window`: expected an integer from 2 to 1000, got 1"),
        (
            r#"{"metric": "m", "threshold": "high"}"#,
            r#"field `threshold`: expected a number greater than 0, got "high""#,
        ),
        (r#"{"metric": "m", "method": "mad"}"#, r#"field `method`: expected one of zscore, ewma, got "mad""#),
        (
            r#"{"metric": "m", "window": 10, "min_points": 20}"#,
            "field `min_points`: 20 is more than `window` (10): the baseline would never have enough points",
        ),
        (
            r#"{"metric": "m", "windw": 10}"#,
            "field `windw`: unknown field; expected one of metric, method, window, threshold, min_points, alpha, \
             direction, path, state_key, remember",
        ),
    ];
    for (config, message) in cases {
        let out = env.tend(&["plugins", "call", "anomaly", "--config", config, "--input", "[1, 2]"]);
        assert_eq!(out.status.code(), Some(1), "{config}");
        assert_eq!(stderr(&out), format!("tend: anomaly: invalid config: {message}\n"), "{config}");
    }
    let out = env.tend(&["plugins", "call", "anomaly", "--config", r#"{"metric": "m"}"#, "--input", r#"[1, "x"]"#]);
    assert_eq!(stderr(&out), "tend: anomaly: failed: input[1]: expected a number, got \"x\"\n");
    let out = env.tend(&["plugins", "call", "anomaly", "--config", r#"{"metric": "m", "path": "a.b"}"#]);
    assert_eq!(stderr(&out), "tend: anomaly: failed: input has no `a` (path 'a.b')\n");

    // `tend validate` checks `with:` against the plugin's schema.
    let out = env.validate_step("judge", "anomaly", "{metric: m, window: 1}");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "bad.yaml:5:31: step \"judge\": with.window: 1 is less than the minimum of 2 \
         (config schema of plugin \"anomaly\")\n"
    );
}

#[test]
fn anomaly_keeps_the_history_across_runs_of_a_runbook() {
    let env = env();
    // Two runbooks alike but for their names: the state of one is not the other's.
    const RUNBOOK: &str = r#"
params:
  values: {type: array}
steps:
  - id: judge
    plugin: anomaly
    input: ${{ params.values }}
    with: {metric: latency_ms, window: 10, min_points: 5}
  - id: page
    plugin: echo
    when: steps.judge.output.status == "anomaly"
    with: {output: "${{ steps.judge.findings[0].title }}"}
escalate_findings: high
"#;
    for name in ["latency", "latency-eu"] {
        std::fs::write(env.path().join(format!("{name}.yaml")), format!("name: {name}{RUNBOOK}")).unwrap();
    }
    let first = [100.0, 102.0, 98.0, 101.0, 99.0, 100.0, 101.0, 99.0];
    let run_of = |runbook: &str, values: &str| {
        let out = env.tend(&["run", runbook, "-p", &format!("values={values}"), "--json"]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        json_out(&out)
    };
    let run = |values: &str| run_of("latency", values);

    // The first run learns 5 points, then judges 3: none is out.
    let record = run(&serde_json::to_string(&first).unwrap());
    let judge = &record["steps"][0];
    assert_eq!(judge["status"], "succeeded", "{judge}");
    assert_eq!(judge["output"]["status"], "ok");
    assert_eq!(judge["output"]["series"][0]["history"], 8);
    assert_eq!(judge["findings"], json!([]));
    assert_eq!(record["steps"][1]["status"], "skipped");
    assert!(judge["logs"].to_string().contains("latency_ms: judged 8 new point(s) of 1 series by zscore: 0 anomalies"));

    // The second run brings one point: alone it could not be judged; with
    // the 8 points the first run kept, it is an anomaly.
    let record = run("[160]");
    let judge = &record["steps"][0];
    let (mean, sd) = mean_sd(&first);
    let z = (160.0 - mean) / sd;
    assert_eq!(judge["output"]["status"], "anomaly", "{judge}");
    assert_eq!(judge["output"]["series"][0]["history"], 9);
    assert!(close(&judge["output"]["series"][0]["last"]["z"], z), "{judge}");
    let title =
        format!("latency_ms point 0: 160 is {z:.2} standard deviations above the mean 100 of the 8 points before it");
    assert_eq!(judge["findings"][0]["title"], title);
    assert_eq!(judge["findings"][0]["severity"], "critical");
    assert_eq!(record["steps"][1]["output"], title, "the next step read the finding");
    let escalations = record["escalations"].as_array().unwrap();
    assert_eq!(escalations.len(), 1, "{escalations:?}");
    assert!(escalations[0].to_string().contains(&title), "{escalations:?}");

    // The history is the runbook's: the same step in another runbook starts afresh.
    let record = run_of("latency-eu", "[160]");
    let judge = &record["steps"][0];
    assert_eq!(judge["output"]["status"], "learning", "{judge}");
    assert_eq!(judge["output"]["series"][0]["history"], 1);
    assert_eq!(judge["findings"], json!([]));
}
