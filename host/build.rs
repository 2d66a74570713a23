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
    ("prometheus-query", "prometheus_query"),
    ("remediate", "remediate"),
    ("incident-triage", "incident_triage"),
    ("cost-audit", "cost_audit"),
    ("secrets-scan", "secrets_scan"),
    ("http-security", "http_security"),
    ("tls-check", "tls_check"),
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
    ensure_wasm_target();
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

/// The target the plugins compile to.
const WASM_TARGET: &str = "wasm32-wasip2";

/// Makes sure the toolchain has the `wasm32-wasip2` standard library.
///
/// `rust-toolchain.toml` lists the target, but rustup adds listed targets
/// only when it installs the toolchain itself (and never when
/// `RUSTUP_AUTO_INSTALL=0`): a machine whose rustup already had 1.95.0
/// failed with "can't find crate for `std`". So: look in the sysroot of the
/// rustc the plugins build with, and if the target is missing, add it with
/// rustup for that toolchain; without rustup, say what to install.
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let Some(sysroot) = sysroot else {
        // Let the plugin build report whatever is wrong with rustc.
        return;
    };
    let target_lib = sysroot.join("lib").join("rustlib").join(WASM_TARGET);
    if target_lib.is_dir() {
        return;
    }
    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok();
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", WASM_TARGET]);
    if let Some(toolchain) = &toolchain {
        cmd.args(["--toolchain", toolchain]);
    }
    println!(
        "cargo:warning=the {WASM_TARGET} target is not installed in {}; adding it with `rustup target add {WASM_TARGET}`",
        sysroot.display()
    );
    match cmd.status() {
        Ok(status) if status.success() && target_lib.is_dir() => {}
        Ok(status) => panic!(
            "`rustup target add {WASM_TARGET}`{} failed ({status}); the built-in plugins need \
             the {WASM_TARGET} standard library in {}",
            toolchain.map(|t| format!(" --toolchain {t}")).unwrap_or_default(),
            target_lib.display()
        ),
        Err(err) => panic!(
            "the built-in plugins compile to {WASM_TARGET}, but {} is missing and rustup could \
             not be run ({err}); install the {WASM_TARGET} standard library for this rustc \
             (with rustup: `rustup target add {WASM_TARGET}`)",
            target_lib.display()
        ),
    }
}

fn build_plugins(plugins: &Path, target_dir: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(plugins)
        .args(["build", "--release", "--locked", "--target", WASM_TARGET])
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
