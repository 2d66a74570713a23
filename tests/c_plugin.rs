//! End-to-end test of a plugin written in C: builds `examples/c-plugin`
//! (the `stats` plugin) with its `build.sh` — `wit-bindgen c`, Debian's
//! clang 14 and wasi-libc (WASI preview1, reactor), `wasm-tools component
//! new` with wasmtime 48's preview1 adapter — then drives it through the
//! `tend` binary: `plugins install` (checked, compiled once, every later
//! load from the compile cache), `plugins inspect`, `plugins call` (data,
//! metrics, findings, `host.log` lines, errors, memory), and a runbook run
//! that uses it as a step.
//!
//! Needs clang-14, wasm-ld (lld-14), Debian's wasi-libc and
//! libclang-rt-14-dev-wasm32, `wit-bindgen` 0.60 and `wasm-tools` 1.254
//! (`.ci/run` installs them when missing); without them the tests fail,
//! naming the tool. `build.sh` runs `cargo` once to write the adapter
//! (into the target's tmp directory). The component is built once per
//! version of its sources and tools into the target's tmp directory; the
//! build takes about 2 s and is reproducible.

mod example_plugin;

use example_plugin::{Env, json_out, read, remove_others, repo, stderr, stdout};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn example() -> PathBuf {
    repo().join("examples/c-plugin")
}

/// `<tool> --version`, or a failure that says how to install the tools.
fn tool_version(tool: &str) -> String {
    let hint = "the C example plugin needs Debian's clang and wasi-libc (`apt-get install clang-14 lld-14 \
                wasi-libc libclang-rt-14-dev-wasm32`) and `cargo install --locked wit-bindgen-cli@0.60.0 \
                wasm-tools@1.254.2` (.ci/run does both)";
    example_plugin::tool_version(tool, hint)
}

/// The files `build.sh` reads, relative to the example (sorted).
fn sources() -> Vec<PathBuf> {
    let mut files = vec![
        PathBuf::from("build.sh"),
        PathBuf::from("adapter/Cargo.toml"),
        PathBuf::from("adapter/Cargo.lock"),
        PathBuf::from("adapter/src/main.rs"),
    ];
    for entry in std::fs::read_dir(example().join("src")).unwrap() {
        files.push(Path::new("src").join(entry.unwrap().file_name()));
    }
    files.sort();
    files
}

/// Builds `stats.wasm` with the example's `build.sh` unless this version
/// of its sources and tools was built already; returns its path. Test
/// processes building at the same time wait for each other on a lock file.
fn stats_wasm() -> PathBuf {
    let tools = ["clang-14", "wit-bindgen", "wasm-tools"].map(tool_version).join("\n");
    let mut key = blake3::Hasher::new();
    key.update(tools.as_bytes());
    for file in sources() {
        key.update(file.as_os_str().as_encoded_bytes());
        key.update(&read(&example().join(&file)));
    }
    key.update(&read(&repo().join("wit/plugin.wit")));
    let (dir, _lock) = example_plugin::build_dir("c-plugin");
    let wasm = dir.join(format!("stats-{}.wasm", &key.finalize().to_hex()[..16]));
    if !wasm.exists() {
        let scratch = tempfile::tempdir_in(&dir).unwrap();
        let out_file = scratch.path().join("stats.wasm");
        let start = Instant::now();
        let out = Command::new(example().join("build.sh"))
            .env("OUT", &out_file)
            .env("BUILD", scratch.path().join("build"))
            // The adapter's small cargo build, kept between builds.
            .env("CARGO_TARGET_DIR", dir.join("cargo"))
            .output()
            .unwrap();
        assert!(out.status.success(), "build.sh failed ({}):\n{}{}", out.status, stdout(&out), stderr(&out));
        let size = std::fs::metadata(&out_file).unwrap().len();
        eprintln!("built stats.wasm ({size} bytes) in {:.1?}:\n{}", start.elapsed(), stdout(&out));
        std::fs::rename(&out_file, &wasm).unwrap();
        // Builds of earlier versions of the sources are of no more use.
        remove_others(&dir, "stats-", &wasm);
    }
    wasm
}

fn env() -> Env {
    Env::new(&stats_wasm(), "stats")
}

/// Latencies in milliseconds, in no order.
const LATENCIES: &str = "[41, 12, 800, 15, 18, 21, 25, 30, 34, 1200, 55, 62, 75, 88, 120, 180, 240, 310, 450, 620]";

const LATENCY_CONFIG: &str =
    r#"{"metric": "latency_ms", "warn": 200, "critical": 500, "unit": "ms", "resource": "https://shop.example/"}"#;

#[test]
fn c_plugin_is_inspected_and_called_through_the_cli() {
    let env = env();

    // describe(), by path and by name from the plugins directory.
    let info = env.inspect_installed("stats");
    assert_eq!(info["version"], "0.1.0");
    assert_eq!(info["capabilities"], json!([]));
    assert!(info["description"].as_str().unwrap().starts_with("Summarizes a numeric series"), "{info}");
    assert_eq!(info["config_schema"]["required"], json!(["metric"]));
    // Installing compiled it: every later load comes from the compile cache.
    let out = env.tend_logged(&["plugins", "inspect", "stats"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("stats.wasm from the compile cache in"), "{}", stderr(&out));

    // run(): the statistics (percentiles as numpy.percentile computes
    // them, to the last bit), a metric each, a finding for p95.
    let output = json_out(&env.tend(&["plugins", "call", "stats", "--config", LATENCY_CONFIG, "--input", LATENCIES]));
    assert_eq!(
        output["data"],
        json!({
            "metric": "latency_ms", "count": 20, "skipped": 0,
            "min": 12, "max": 1200, "mean": 219.8, "stddev": 310.39436206219983,
            "p50": 68.5, "p95": 820.0000000000002, "p99": 1123.9999999999995,
            "stat": "p95", "value": 820.0000000000002, "status": "critical",
            "warn": 200, "critical": 500, "below": false,
        })
    );
    let label = json!([["resource", "https://shop.example/"]]);
    let metrics: Vec<(String, f64)> = output["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["labels"], label, "{m}");
            (m["name"].as_str().unwrap().to_string(), m["value"].as_f64().unwrap())
        })
        .collect();
    let expected = [
        ("latency_ms_count", 20.0),
        ("latency_ms_min", 12.0),
        ("latency_ms_max", 1200.0),
        ("latency_ms_mean", 219.8),
        ("latency_ms_stddev", 310.39436206219983),
        ("latency_ms_p50", 68.5),
        ("latency_ms_p95", 820.0000000000002),
        ("latency_ms_p99", 1123.9999999999995),
    ];
    assert_eq!(metrics, expected.map(|(n, v)| (n.to_string(), v)));
    assert_eq!(
        output["findings"],
        json!([{
            "severity": "critical",
            "title": "latency_ms p95 is 820ms, at or over the critical threshold 500ms",
            "detail": "latency_ms at the input, 20 value(s): min 12ms, max 1200ms, mean 219.8ms, \
                       stddev 310.3943621ms, p50 68.5ms, p95 820ms, p99 1124ms. \
                       Thresholds of p95: warn 200ms, critical 500ms.",
            "resource": "https://shop.example/",
        }])
    );

    // The whole record: the host.log import reached the step's log; a C
    // step needs a few pages of linear memory, not megabytes.
    let record = json_out(&env.tend(&[
        "plugins",
        "call",
        "stats",
        "--config",
        LATENCY_CONFIG,
        "--input",
        LATENCIES,
        "--record",
    ]));
    assert_eq!(record["outcome"], json!({"status": "ok"}));
    assert_eq!(
        record["logs"],
        json!([{"level": "info", "message": "latency_ms: 20 value(s): min 12ms, max 1200ms, mean 219.8ms, \
                                            stddev 310.3943621ms, p50 68.5ms, p95 820ms, p99 1124ms"}])
    );
    let peak = record["peak_memory_bytes"].as_u64().unwrap();
    eprintln!("peak memory {peak} bytes, call {} ms", record["duration_ms"]);
    assert!(peak > 0 && peak <= 1 << 20, "a C step's peak memory: {peak}");
    let out =
        env.tend(&["plugins", "call", "stats", "--config", LATENCY_CONFIG, "--input", LATENCIES, "--memory", "1MiB"]);
    assert!(out.status.success(), "1 MiB is plenty for the C plugin: {}", stderr(&out));

    // 100,000 values (a permutation of 0.00 to 999.99): the work takes
    // memory in proportion, and the step's limit holds.
    let big: Vec<f64> = (0..100_000u64).map(|i| (i * 7919 % 100_000) as f64 / 100.0).collect();
    std::fs::write(env.path().join("big.json"), serde_json::to_string(&big).unwrap()).unwrap();
    let args = ["plugins", "call", "stats", "--config", r#"{"metric": "m"}"#, "--input", "@big.json"];
    let record = json_out(&env.tend(&[&args[..], &["--record"]].concat()));
    let data = &record["output"]["data"];
    assert_eq!((&data["count"], &data["min"], &data["max"]), (&json!(100_000), &json!(0), &json!(999.99)));
    assert!((data["p50"].as_f64().unwrap() - 499.995).abs() < 1e-9, "{data}");
    eprintln!("100,000 values: {} ms, peak memory {} bytes", record["duration_ms"], record["peak_memory_bytes"]);
    let out = env.tend(&[&args[..], &["--memory", "4MiB"]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "tend: stats: trap: out of memory (limit 4 MiB; raise it with the step's `memory:` or `--memory`)\n"
    );

    // A Prometheus range (as prometheus-query returns it) under a dotted
    // path with a list index: [time, value] pairs, values as numbers or
    // strings, NaN skipped; lower bounds on the minimum.
    let range = json!({"by_name": {"rps": {"series": [{"labels": {"job": "demo"}, "values": [
        [1700000000, 42.5], [1700000015, "40"], [1700000030, "NaN"], [1700000045, 38.5], [1700000060, 12],
        [1700000075, "35"],
    ]}]}}});
    let config = r#"{"metric": "rps", "path": "by_name.rps.series.0.values", "stat": "min", "below": true,
                     "warn": 20, "critical": 5, "percentiles": [50, 99.9]}"#;
    let output = json_out(&env.tend(&["plugins", "call", "stats", "--config", config, "--input", &range.to_string()]));
    assert_eq!(
        output["data"],
        json!({
            "metric": "rps", "count": 5, "skipped": 1, "min": 12, "max": 42.5, "mean": 33.6,
            "stddev": 11.069778678907722, "p50": 38.5, "p99.9": 42.49, "stat": "min", "value": 12,
            "status": "warn", "warn": 20, "critical": 5, "below": true,
        })
    );
    let names: Vec<&str> = output["metrics"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["rps_count", "rps_min", "rps_max", "rps_mean", "rps_stddev", "rps_p50", "rps_p99_9"]);
    assert_eq!(output["metrics"][0]["labels"], json!([]));
    assert_eq!(output["findings"][0]["severity"], "medium");
    assert_eq!(output["findings"][0]["title"], "rps min is 12, at or under the warn threshold 20");
    assert_eq!(output["findings"][0]["resource"], json!(null));
    assert!(
        output["findings"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("rps at path 'by_name.rps.series.0.values', 5 value(s) (1 skipped): min 12,"),
        "{output}"
    );

    // Errors travel back as the contract's step-error variants, naming
    // the field and quoting the value.
    let cases = [
        (r#"{"metric": "m", "warn": "high"}"#, "1", r#"invalid config: field `warn`: expected a number, got "high""#),
        (
            r#"{"metric": "m", "stat": "p90"}"#,
            "1",
            r#"invalid config: field `stat`: "p90" is not computed, expected one of count, min, max, mean, stddev, p50, p95, p99"#,
        ),
        (
            r#"{"metric": "m", "percentiles": [50, 101]}"#,
            "1",
            "invalid config: field `percentiles[1]`: 101 is out of range, expected over 0 and at most 100",
        ),
        (
            r#"{"metric": "m", "warn": 500, "critical": 200}"#,
            "1",
            "invalid config: field `critical`: 200 is under `warn` (500); upper bounds need critical at or over \
             warn (or set `below: true`)",
        ),
        (
            r#"{"metric": "m", "warm": 1}"#,
            "1",
            r#"invalid config: unknown field "warm", expected one of metric, path, value_field, percentiles, stat, warn, critical, below, unit, resource, warn_severity, critical_severity"#,
        ),
        (r#"{"metric": "m", "path": "a.x"}"#, r#"{"a": {"b": 1}}"#, "failed: input has no `a.x` (path 'a.x')"),
        (
            r#"{"metric": "m"}"#,
            r#"[1, "fast"]"#,
            r#"failed: item 1 of the series at the input is "fast", expected a number, a numeric string, null or a [time, value] pair"#,
        ),
        (
            r#"{"metric": "m", "value_field": "ms"}"#,
            r#"[{"ms": 1}, {"s": 2}]"#,
            "failed: item 1 of the series at the input has no `ms`",
        ),
        (
            r#"{"metric": "m"}"#,
            r#"[null, "NaN"]"#,
            "failed: no values in the series at the input (2 skipped: null, NaN or infinite)",
        ),
    ];
    for (config, input, error) in cases {
        let out = env.tend(&["plugins", "call", "stats", "--config", config, "--input", input]);
        assert_eq!(out.status.code(), Some(1), "{config} {input}: {}", stdout(&out));
        assert_eq!(stderr(&out), format!("tend: stats: {error}\n"), "{config} {input}");
    }
}

#[test]
fn the_c_plugin_is_installed_compiled_once_and_then_loaded_from_the_cache() {
    let env = Env::empty().own_cache();
    let wasm = stats_wasm();
    let digest = blake3::hash(&read(&wasm)).to_hex().to_string();
    let said = env.install(&wasm);
    let installed = env.plugins().join("stats.wasm");
    assert!(said.starts_with("installed stats 0.1.0 ("), "{said}");
    assert!(said.contains(&format!(", blake3 {}) as {}; compiled in ", &digest[..12], installed.display())), "{said}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&env.plugins().join("stats.manifest.json"))).unwrap();
    assert_eq!(manifest["contract"], "tend:plugin@0.1.0");
    assert_eq!(manifest["digest"], digest.as_str());
    let list = json_out(&env.tend(&["plugins", "list", "--json"]));
    let entry = list.as_array().unwrap().iter().find(|p| p["name"] == "stats").expect("listed");
    assert_eq!(entry["size_bytes"], read(&wasm).len());
    assert_eq!(entry["digest"], digest.as_str());

    // Every process after the install loads the code it compiled, and
    // compiles nothing more.
    let compiled = || -> Vec<(PathBuf, std::time::SystemTime)> {
        let mut files: Vec<_> = std::fs::read_dir(env.cache())
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .map(|e| (e.path(), e.metadata().unwrap().modified().unwrap()))
            .collect();
        files.sort();
        files
    };
    let before = compiled();
    for _ in 0..2 {
        let out = env.tend_logged(&["plugins", "call", "stats", "--config", r#"{"metric": "m"}"#, "--input", "[1, 2]"]);
        assert_eq!(json_out(&out)["data"]["p50"], 1.5);
        let log = stderr(&out);
        assert!(
            log.contains(&format!("loaded plugin file {} from the compile cache in", installed.display())),
            "{log}"
        );
        assert!(!log.contains("compiled plugin"), "{log}");
    }
    assert_eq!(compiled(), before);
}

/// The preview1 adapter inside every component built this way is Rust
/// code, and its producers section says so next to the C module's
/// ("language: C99", "processed-by: Debian clang 14.0.6", "processed-by:
/// wit-bindgen-c 0.60.0"); the module that exports `run` decides.
#[test]
fn the_installed_c_plugin_is_listed_as_written_in_c() {
    let env = Env::empty();
    let said = env.install(&stats_wasm());
    assert!(said.starts_with("installed stats 0.1.0 (C, "), "{said}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&env.plugins().join("stats.manifest.json"))).unwrap();
    assert_eq!(manifest["language"], "C");
    let list = json_out(&env.tend(&["plugins", "list", "--json"]));
    let entry = list.as_array().unwrap().iter().find(|p| p["name"] == "stats").expect("listed");
    assert_eq!(entry["language"], "C");
    let table = stdout(&env.tend(&["plugins", "list"]));
    let row = table.lines().find(|l| l.starts_with("stats ")).expect("a row for stats");
    assert!(row.contains(" installed ") && row.contains(" C "), "{row}");
}

#[test]
fn c_plugin_runs_as_a_runbook_step() {
    let env = env();
    let record = env.run_succeeds(
        "latency",
        r#"
name: latency
steps:
  - id: measure
    plugin: echo
    with:
      output:
        by_name:
          latency:
            series:
              - labels: {job: shop}
                values: [[1700000000, "41"], [1700000015, "12"], [1700000030, "800"], [1700000045, "NaN"],
                         [1700000060, "15"], [1700000075, "1200"]]
  - id: stats
    plugin: stats
    input: ${{ steps.measure.output }}
    with: {metric: latency_ms, path: by_name.latency.series.0.values, stat: p99, warn: 200, critical: 1000,
           unit: ms, resource: shop}
  - id: report
    plugin: echo
    when: steps.stats.output.status == "critical" && steps.stats.output.count == 5
    with: {output: "p50 ${{ steps.stats.output.p50 }}"}
escalate_findings: high
"#,
    );
    let steps = record["steps"].as_array().unwrap();
    let stats = &steps[1];
    assert_eq!(stats["status"], "succeeded", "{stats}");
    assert_eq!(stats["output"]["status"], "critical");
    assert_eq!(stats["output"]["skipped"], 1);
    assert_eq!(stats["findings"].as_array().unwrap().len(), 1, "{stats}");
    assert_eq!(stats["findings"][0]["severity"], "critical");
    assert_eq!(stats["findings"][0]["resource"], "shop");
    assert!(stats["logs"].to_string().contains("latency_ms: 5 value(s) (1 skipped): min 12ms, max 1200ms"), "{stats}");
    // The next step read the C step's output.
    assert_eq!(steps[2]["status"], "succeeded", "{}", steps[2]);
    assert_eq!(steps[2]["output"], "p50 41");
    // Its critical finding escalated.
    let escalations = record["escalations"].as_array().unwrap();
    assert_eq!(escalations.len(), 1, "{escalations:?}");
    assert!(escalations[0].to_string().contains("latency_ms p99 is 1184ms"), "{escalations:?}");

    // `tend validate` checks a step's config against the C plugin's schema.
    let out = env.validate_step("stats", "stats", "{metric: m, warn: high}");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "bad.yaml:5:29: step \"stats\": with.warn: \"high\" is not of type \"number\" \
         (config schema of plugin \"stats\")\n"
    );
}
