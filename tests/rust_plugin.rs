//! The Rust template, `examples/rust-plugin` (`slo-budget`), as a plugin
//! author uses it: its own unit tests pass, `cargo build --release --target
//! wasm32-wasip2` builds it, `tend plugins install` installs it, `tend
//! plugins call` calls it from the compile cache, and it runs inside a
//! runbook, keeping its samples in the runbook's state from run to run.

mod example_plugin;

use example_plugin::{Env, json_out, read, remove_others, repo, stderr, stdout};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

fn example() -> PathBuf {
    repo().join("examples/rust-plugin")
}

/// `cargo <args>` in the example, as its author runs it: its own
/// workspace and lock file, into `target_dir`; nothing of this build's
/// flags or target directory leaks in.
fn cargo(args: &[&str], target_dir: &Path) -> std::process::Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .current_dir(example())
        .args(args)
        .arg("--locked")
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap()
}

/// The template's component, built once per version of its sources.
fn slo_budget_wasm() -> PathBuf {
    let mut key = blake3::Hasher::new();
    for file in ["Cargo.toml", "Cargo.lock", "src/lib.rs", "wit/plugin.wit"] {
        key.update(file.as_bytes());
        key.update(&read(&example().join(file)));
    }
    let (dir, _lock) = example_plugin::build_dir("rust-plugin");
    let wasm = dir.join(format!("slo-budget-{}.wasm", &key.finalize().to_hex()[..16]));
    if !wasm.exists() {
        let target = dir.join("target");
        let out = cargo(&["build", "--release", "--target", "wasm32-wasip2"], &target);
        assert!(out.status.success(), "building examples/rust-plugin failed:\n{}", stderr(&out));
        std::fs::copy(target.join("wasm32-wasip2/release/slo_budget.wasm"), &wasm).unwrap();
        remove_others(&dir, "slo-budget-", &wasm);
    }
    wasm
}

#[test]
fn the_templates_wit_is_tends_contract() {
    assert_eq!(
        read(&example().join("wit/plugin.wit")),
        read(&repo().join("wit/plugin.wit")),
        "examples/rust-plugin/wit/plugin.wit must be a copy of wit/plugin.wit: copy it again"
    );
}

#[test]
fn the_templates_own_unit_tests_pass() {
    let host = String::from_utf8(Command::new("rustc").arg("-vV").output().unwrap().stdout).unwrap();
    let host = host.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc -vV names the host").to_string();
    let (dir, _lock) = example_plugin::build_dir("rust-plugin");
    let out = cargo(&["test", "--target", &host], &dir.join("target"));
    let text = stdout(&out);
    assert!(out.status.success(), "cargo test in examples/rust-plugin failed:\n{text}\n{}", stderr(&out));
    assert!(text.contains("test result: ok. 5 passed"), "{text}");
}

#[test]
fn the_rust_template_is_installed_called_and_run_in_a_runbook() {
    let env = Env::empty();
    let said = env.install(&slo_budget_wasm());
    assert!(said.starts_with("installed slo-budget 0.1.0 (Rust, "), "{said}");

    let list = json_out(&env.tend(&["plugins", "list", "--json"]));
    let entry = list.as_array().unwrap().iter().find(|p| p["name"] == "slo-budget").expect("listed");
    assert_eq!(entry["language"], "Rust");
    assert_eq!(entry["capabilities"], json!(["state"]));

    // A call loads what install compiled.
    let out = env.tend_logged(&["plugins", "call", "slo-budget", "--input", "false", "--config", r#"{"window": 10}"#]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("slo-budget.wasm from the compile cache in"), "{}", stderr(&out));
    let output: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(output["data"]["status"], "exhausted");
    assert_eq!(output["findings"][0]["title"], "call has spent its error budget");

    let out = env.tend(&["plugins", "call", "slo-budget", "--config", r#"{"objective_percent": 100}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "tend: slo-budget: invalid config: objective_percent: 100 is out of range; expected more than 0 and less than 100\n"
    );

    // In a runbook, from http-probe-like output; the samples outlive the run.
    std::fs::write(
        env.path().join("slo.yaml"),
        r#"
name: slo
params:
  up: {type: bool, default: true}
steps:
  - id: probe
    plugin: echo
    with:
      output: {targets: [{url: "http://127.0.0.1:9/", up: "${{ params.up }}"}]}
  - id: budget
    plugin: slo-budget
    input: ${{ steps.probe.output }}
    with: {objective_percent: 90, window: 20, service: api}
"#,
    )
    .unwrap();
    let mut last = json!(null);
    for up in ["true", "true", "false"] {
        let out = env.tend(&["run", "slo", "--param", &format!("up={up}"), "--json"]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        last = json_out(&out);
    }
    let budget = &last["steps"][1];
    assert_eq!(budget["status"], "succeeded", "{budget}");
    assert_eq!(budget["output"]["samples"], 3);
    assert_eq!(budget["output"]["good"], 2);
    assert_eq!(budget["output"]["status"], "exhausted", "1 bad of 3 at 90 % spends more than 0.3 allowed");
    assert_eq!(budget["findings"][0]["severity"], "high");
    assert_eq!(budget["findings"][0]["title"], "api has spent its error budget");

    // A call naming the runbook shares its state; without it, state lasts one call.
    let config = r#"{"objective_percent": 90, "window": 20, "service": "api"}"#;
    let shared = json_out(&env.tend(&[
        "plugins",
        "call",
        "slo-budget",
        "--runbook",
        "slo",
        "--input",
        "true",
        "--config",
        config,
    ]));
    assert_eq!(shared["data"]["samples"], 4, "{shared}");
    let alone = json_out(&env.tend(&["plugins", "call", "slo-budget", "--input", "true", "--config", config]));
    assert_eq!(alone["data"]["samples"], 1, "{alone}");
}
