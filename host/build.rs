//! Builds the plugins in `plugins/` for `wasm32-wasip2` and embeds the
//! built-in ones in the `tend` binary.
//!
//! Runs `cargo build --release --target wasm32-wasip2` on the separate
//! plugins workspace into its own target directory (`target/wasm-plugins`),
//! the way wasmtime's test-programs crate does, then writes
//! `$OUT_DIR/builtin_plugins.rs` with an `include_bytes!` per built-in
//! plugin. The test-only `hostile` plugin is built too and its path exported
//! as `TEND_HOSTILE_WASM` for the sandbox tests; it is never embedded.
//!
//! Touches nothing outside `plugins/`, `wit/` and the target directory.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Built-in plugins: (name runbooks use, cdylib file stem).
const BUILTIN: &[(&str, &str)] = &[
    ("echo", "echo"),
    ("http-probe", "http_probe"),
    ("host-metrics", "host_metrics"),
    ("health-score", "health_score"),
];

/// Test-only plugins: (environment variable, cdylib file stem).
const TEST_ONLY: &[(&str, &str)] = &[("TEND_HOSTILE_WASM", "hostile")];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let plugins = root.join("plugins");
    println!("cargo:rerun-if-changed={}", plugins.display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = plugins_target_dir(&out_dir);
    build_plugins(&plugins, &target_dir);

    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    let mut code = String::from("/// Built-in plugins: (name, component bytes).\n");
    code.push_str("pub const BUILTIN_PLUGINS: &[(&str, &[u8])] = &[\n");
    for (name, stem) in BUILTIN {
        let path = wasm_file(&wasm_dir, stem);
        writeln!(code, "    ({name:?}, include_bytes!({:?})),", path.display().to_string()).unwrap();
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("builtin_plugins.rs"), code).unwrap();

    for (var, stem) in TEST_ONLY {
        println!("cargo:rustc-env={var}={}", wasm_file(&wasm_dir, stem).display());
    }
}

/// `<target>/wasm-plugins`, found from `<target>/<profile>/build/<pkg>/out`,
/// so debug and release builds share one plugin build.
fn plugins_target_dir(out_dir: &Path) -> PathBuf {
    let profile_dir = out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent)
        .expect("OUT_DIR is inside <target>/<profile>/build");
    profile_dir.parent().unwrap_or(profile_dir).join("wasm-plugins")
}

fn build_plugins(plugins: &Path, target_dir: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(plugins)
        .args(["build", "--release", "--locked", "--target", "wasm32-wasip2"])
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // Flags meant for the host build must not leak into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("failed to run cargo for plugins/");
    if !status.success() {
        panic!(
            "building plugins/ for wasm32-wasip2 failed ({status}); is the target installed? \
             run `rustup target add wasm32-wasip2`"
        );
    }
}

fn wasm_file(wasm_dir: &Path, stem: &str) -> PathBuf {
    let path = wasm_dir.join(format!("{stem}.wasm"));
    assert!(path.exists(), "plugin build did not produce {}", path.display());
    path
}
