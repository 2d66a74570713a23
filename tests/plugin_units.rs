//! Runs the unit tests of the plugins workspace (`plugins/`, a cargo
//! workspace of its own that `cargo nextest run --workspace` does not
//! reach) natively, so the README's test command covers them too. Builds
//! into `target/wasm-plugins`, beside the plugins' wasm build.

use std::path::Path;
use std::process::Command;

#[test]
fn the_unit_tests_of_every_plugin_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let plugins = root.join("plugins");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let host = String::from_utf8(Command::new("rustc").arg("-vV").output().unwrap().stdout).unwrap();
    let host = host.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc -vV names the host").to_string();
    let out = Command::new(cargo)
        .current_dir(&plugins)
        .args(["test", "--locked", "--workspace", "--target", &host, "--target-dir"])
        .arg(&target_dir)
        // Flags meant for the host build must not leak into the plugins'.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo test in plugins/ failed:\n{stdout}\n{stderr}");
    let passed: usize = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(passed > 40, "only {passed} plugin unit tests ran:\n{stdout}");
}
