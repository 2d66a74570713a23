//! What the end-to-end tests of the example plugins in other languages
//! (`python_plugin.rs`, `js_plugin.rs`, `c_plugin.rs`, ...) share: finding and checking a build
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
        self.tend_with(args, &[])
    }

    /// `tend` with extra environment variables, e.g. `TEND_SECRET_<NAME>`.
    pub fn tend_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let start = Instant::now();
        let out = self.command(args).envs(vars.iter().copied()).output().expect("tend runs");
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

    /// `tend plugins inspect plugins/<name>.wasm`, checked for what every
    /// example shares: its name and origin, a closed config schema whose
    /// every property is described, and the same digest in `tend plugins
    /// list`. Returns the describe() record for the rest.
    pub fn inspect_installed(&self, name: &str) -> Value {
        let file = format!("plugins/{name}.wasm");
        let info = json_out(&self.tend(&["plugins", "inspect", &file]));
        assert_eq!(info["name"], name);
        assert_eq!(info["origin"], serde_json::json!({"file": file}));
        let schema = &info["config_schema"];
        assert_eq!(schema["type"], "object", "{schema}");
        assert_eq!(schema["additionalProperties"], false, "{schema}");
        assert!(schema["properties"].as_object().unwrap().values().all(|p| p["description"].is_string()), "{schema}");
        let list = json_out(&self.tend(&["plugins", "list", "--json"]));
        let listed = list.as_array().unwrap().iter().find(|p| p["name"] == name).expect("listed");
        assert_eq!(listed["digest"], info["digest"]);
        info
    }

    /// Writes the runbook `<name>.yaml`, runs it with `tend run <name>
    /// --json` and returns the record of a run that succeeded.
    pub fn run_succeeds(&self, name: &str, yaml: &str) -> Value {
        std::fs::write(self.path().join(format!("{name}.yaml")), yaml).unwrap();
        let out = self.tend(&["run", name, "--json"]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        let record = json_out(&out);
        assert_eq!(record["run"]["status"], "succeeded", "{record}");
        record
    }

    /// `tend validate` of `bad.yaml`, a runbook of one step `id` using
    /// `plugin` with `with` (a YAML flow mapping, at line 5 column 11).
    pub fn validate_step(&self, id: &str, plugin: &str, with: &str) -> Output {
        let runbook = format!("name: bad\nsteps:\n  - id: {id}\n    plugin: {plugin}\n    with: {with}\n");
        std::fs::write(self.path().join("bad.yaml"), runbook).unwrap();
        self.tend(&["validate", "bad.yaml"])
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

/// Builds the Python example in `example` (its `app.py` and other `*.py`)
/// into `<stem>.wasm` with the README's command, `componentize-py -d wit -w
/// plugin componentize app -o <stem>.wasm`, unless this version of its
/// sources (and of the WIT and componentize-py) was built already; returns
/// the path of the build, kept under the target's tmp directory.
/// componentize-py takes 6 s or more and its output is not reproducible, so
/// rebuilding every time would also miss tend's compile cache.
#[allow(dead_code)] // Used by the Python examples' tests only.
pub fn componentize_py(example: &Path, stem: &str) -> PathBuf {
    let hint = "componentize-py is needed to build the Python example plugins: install it with \
                `python3 -m pip install --user componentize-py==0.25.1` and put \
                \"$(python3 -m site --user-base)/bin\" on PATH (.ci/run does both)";
    let version = tool_version("componentize-py", hint);
    let mut sources: Vec<PathBuf> = std::fs::read_dir(example)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    sources.sort();
    let mut key = blake3::Hasher::new();
    key.update(version.as_bytes());
    for file in sources.iter().chain([&repo().join("wit/plugin.wit")]) {
        key.update(file.file_name().unwrap().as_encoded_bytes());
        key.update(&read(file));
    }
    let (dir, _lock) = build_dir(&format!("python-{stem}"));
    let wasm = dir.join(format!("{stem}-{}.wasm", &key.finalize().to_hex()[..16]));
    if !wasm.exists() {
        // On a copy of the sources: the build writes `__pycache__` next to them.
        let scratch = tempfile::tempdir_in(&dir).unwrap();
        for file in &sources {
            std::fs::copy(file, scratch.path().join(file.file_name().unwrap())).unwrap();
        }
        let out_file = scratch.path().join(format!("{stem}.wasm"));
        let start = Instant::now();
        let out = Command::new("componentize-py")
            .arg("-d")
            .arg(repo().join("wit"))
            .args(["-w", "plugin", "componentize", "app", "-o"])
            .arg(&out_file)
            .current_dir(scratch.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{version} failed to build {stem}:\n{}{}", stdout(&out), stderr(&out));
        let size = std::fs::metadata(&out_file).unwrap().len();
        eprintln!("{version}: built {stem}.wasm ({size} bytes) in {:.1?}", start.elapsed());
        std::fs::rename(&out_file, &wasm).unwrap();
        remove_others(&dir, &format!("{stem}-"), &wasm);
    }
    wasm
}

/// Builds the JavaScript example in `example` with its `package.json`'s
/// `build` script (componentize-js, which must write `<stem>.wasm`), run
/// from the example's pinned devDependencies: `npm ci` from its
/// `package-lock.json` installs them once per lock file into the target's
/// tmp directory (about 15 s and 385 MB), so a clean clone needs no
/// `node_modules`. Built once per version of `app.js`, the WIT, the lock
/// file and node; returns the path of the build.
#[allow(dead_code)] // Used by the JavaScript examples' tests only.
pub fn componentize_js(example: &Path, stem: &str) -> PathBuf {
    let hint = "Node.js (20 or later) and npm are needed to build the JavaScript example plugins: install \
                them (e.g. `apt-get install nodejs npm`, or from https://nodejs.org); the test runs `npm ci` \
                in a copy of the example itself";
    let node = tool_version("node", hint);
    let npm = tool_version("npm", hint);
    let manifest: Value = serde_json::from_slice(&read(&example.join("package.json"))).unwrap();
    let script = manifest["scripts"]["build"].as_str().expect("package.json has a build script").to_string();
    let mut args: Vec<String> = script.split(' ').map(String::from).collect();
    assert_eq!(args[0], "componentize-js", "the build script runs componentize-js: {script}");
    let out_arg = args.iter().position(|a| *a == format!("{stem}.wasm")).expect("the build script writes <stem>.wasm");
    let lock = read(&example.join("package-lock.json"));

    let (dir, _lock) = build_dir(&format!("js-{stem}"));
    let deps = dir.join(format!("npm-{}", &blake3::hash(&lock).to_hex()[..16]));
    let componentize_js = deps.join("node_modules/.bin/componentize-js");
    if !componentize_js.exists() {
        let _ = std::fs::remove_dir_all(&deps);
        std::fs::create_dir_all(&deps).unwrap();
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(example.join(file), deps.join(file)).unwrap();
        }
        let start = Instant::now();
        let out = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&deps).output().unwrap();
        assert!(out.status.success(), "npm {npm} ci failed:\n{}{}", stdout(&out), stderr(&out));
        eprintln!("npm {npm} ci (node {node}): {:.1?}", start.elapsed());
        assert!(componentize_js.exists(), "npm ci did not install {}", componentize_js.display());
    }

    let mut key = blake3::Hasher::new();
    key.update(node.as_bytes());
    key.update(&lock);
    key.update(script.as_bytes());
    for file in [example.join("app.js"), repo().join("wit/plugin.wit")] {
        key.update(file.file_name().unwrap().as_encoded_bytes());
        key.update(&read(&file));
    }
    let wasm = dir.join(format!("{stem}-{}.wasm", &key.finalize().to_hex()[..16]));
    if !wasm.exists() {
        // The build script, run where it is meant to run (it writes only its output).
        let scratch = tempfile::tempdir_in(&dir).unwrap();
        let out_file = scratch.path().join(format!("{stem}.wasm"));
        args[out_arg] = out_file.to_str().unwrap().to_string();
        let start = Instant::now();
        let out = Command::new(&componentize_js).args(&args[1..]).current_dir(example).output().unwrap();
        assert!(out.status.success(), "componentize-js failed to build {stem}:\n{}{}", stdout(&out), stderr(&out));
        let size = std::fs::metadata(&out_file).unwrap().len();
        eprintln!("componentize-js: built {stem}.wasm ({size} bytes) in {:.1?}", start.elapsed());
        std::fs::rename(&out_file, &wasm).unwrap();
        remove_others(&dir, &format!("{stem}-"), &wasm);
        remove_others(&dir, "npm-", &deps);
    }
    wasm
}
