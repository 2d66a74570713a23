//! What the end-to-end tests of the example plugins in other languages
//! (`python_plugin.rs`, `js_plugin.rs`) share: finding and checking a build
//! tool, keeping one build per version of an example's sources, and a
//! scratch directory with the built plugin installed where `tend` runs.

// Each test crate uses only some of these.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `<tool> --version`, or a failure that names the tool and says how to
/// get it (`hint`).
pub fn tool_version(tool: &str, hint: &str) -> String {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Ok(out) => panic!("`{tool} --version` failed ({}): {}\n{hint}", out.status, stderr(&out)),
        Err(e) => panic!("cannot run {tool} ({e}): it is not on PATH\n{hint}"),
    }
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The build directory of an example under the target's tmp directory,
/// locked: test processes building at the same time wait for each other
/// until the returned file is dropped.
pub fn build_dir(name: &str) -> (PathBuf, std::fs::File) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(dir.join(".lock")).unwrap();
    lock.lock().unwrap();
    (dir, lock)
}

/// Removes the entries of `dir` whose name starts with `prefix`, except
/// `keep`: builds of earlier versions of the sources are of no more use.
pub fn remove_others(dir: &Path, prefix: &str, keep: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) && entry.path() != keep {
            let path = entry.path();
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
    }
}

/// A scratch directory with one plugin installed in `plugins/`, its own
/// database and runbooks.
pub struct Env {
    dir: tempfile::TempDir,
    /// The compile cache: shared by the tests unless [`Env::own_cache`].
    cache: PathBuf,
}

impl Env {
    /// Installs the component at `wasm` with `tend plugins install`, which
    /// checks it describes itself as `name` (it is installed as
    /// `plugins/<name>.wasm`).
    pub fn new(wasm: &Path, name: &str) -> Env {
        let env = Env::empty();
        let said = env.install(wasm);
        assert!(said.starts_with(&format!("installed {name} ")), "{said}");
        assert!(env.plugins().join(format!("{name}.wasm")).is_file(), "{said}");
        env
    }

    /// No plugins installed yet.
    pub fn empty() -> Env {
        Env { dir: tempfile::tempdir().unwrap(), cache: std::env::temp_dir().join("tend-test-cache") }
    }

    /// Uses a compile cache of its own, empty at first (`<dir>/cache`).
    pub fn own_cache(mut self) -> Env {
        self.cache = self.path().join("cache");
        self
    }

    pub fn cache(&self) -> &Path {
        &self.cache
    }

    /// `tend plugins install <wasm>`, checked to succeed; its stdout.
    pub fn install(&self, wasm: &Path) -> String {
        let out = self.tend(&["plugins", "install", wasm.to_str().unwrap()]);
        assert!(out.status.success(), "tend plugins install failed ({}):\n{}", out.status, stderr(&out));
        stdout(&out)
    }

    /// `tend <args>` with the runtime's log on stderr (`tend::runtime=info`):
    /// whether each plugin was compiled or loaded from the compile cache.
    pub fn tend_logged(&self, args: &[&str]) -> Output {
        self.command(args).env("TEND_LOG", "warn,tend::runtime=info").output().expect("tend runs")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn plugins(&self) -> PathBuf {
        self.path().join("plugins")
    }

    pub fn tend(&self, args: &[&str]) -> Output {
        let start = Instant::now();
        let out = self.command(args).output().expect("tend runs");
        eprintln!("tend {} ... took {:.1?}", args[..args.len().min(3)].join(" "), start.elapsed());
        out
    }

    /// The `tend <args>` command in this directory, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tend"));
        command
            .args(args)
            .current_dir(self.path())
            .env("TEND_CACHE_DIR", &self.cache)
            .env("TEND_DB", self.path().join("tend.db"))
            .env("TEND_RUNBOOKS", self.path())
            .env("TEND_PLUGINS", self.plugins())
            .env_remove("TEND_LOG");
        command
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn json_out(out: &Output) -> Value {
    assert!(out.status.success(), "tend failed ({}):\n{}", out.status, stderr(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", stdout(out), stderr(out)))
}
