//! `tend plugins install | list | remove` on the real binary: a component
//! is checked against the contract before it is compiled, precompiled into
//! the cache (once, however many processes ask), recorded with its name,
//! version, language and digest, listed, called from the cache, removed.
//! The component is the test-only `hostile` plugin (Rust); the other
//! languages' examples go through the same commands in their own tests.

mod example_plugin;

use example_plugin::{Env, json_out, read, stderr, stdout};
use std::path::{Path, PathBuf};

fn hostile() -> PathBuf {
    PathBuf::from(env!("TEND_HOSTILE_WASM"))
}

/// `bytes` with every `from` replaced by `to` (same length: the component
/// stays well formed, names are length-prefixed).
fn patched(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let (from, to) = (from.as_bytes(), to.as_bytes());
    let mut out = bytes.to_vec();
    let mut i = 0;
    let mut count = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            count += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(count > 0, "{} not found", String::from_utf8_lossy(from));
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn an_installed_plugin_is_recorded_listed_called_from_the_cache_and_removed() {
    let env = Env::empty().own_cache();
    let digest = blake3::hash(&read(&hostile())).to_hex().to_string();
    let size = read(&hostile()).len();

    let said = env.install(&hostile());
    let installed = env.plugins().join("hostile.wasm");
    assert!(said.starts_with("installed hostile 0.1.0 (Rust, "), "install says what it installed: {said}");
    assert!(said.contains(&format!(", blake3 {}) as {}; compiled in ", &digest[..12], installed.display())), "{said}");
    assert_eq!(read(&installed), read(&hostile()));

    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&env.plugins().join("hostile.manifest.json"))).unwrap();
    assert_eq!(manifest["name"], "hostile");
    assert_eq!(manifest["version"], "0.1.0");
    assert_eq!(manifest["language"], "Rust");
    assert_eq!(manifest["contract"], "tend:plugin@0.1.0");
    assert_eq!(manifest["digest"], digest.as_str());
    assert_eq!(manifest["size_bytes"], size);
    assert_eq!(manifest["source"], hostile().display().to_string());

    let list = json_out(&env.tend(&["plugins", "list", "--json"]));
    let entry = list.as_array().unwrap().iter().find(|p| p["name"] == "hostile").expect("hostile is listed");
    assert_eq!(entry["language"], "Rust");
    assert_eq!(entry["size_bytes"], size);
    assert_eq!(entry["digest"], digest.as_str());
    assert_eq!(entry["installed"]["installed_at"], manifest["installed_at"]);
    let table = stdout(&env.tend(&["plugins", "list"]));
    let row = table.lines().find(|l| l.starts_with("hostile ")).expect("a row for hostile");
    assert!(row.contains(" installed ") && row.contains(" Rust ") && row.contains(&digest[..12]), "{row}");
    assert!(table.lines().next().unwrap().contains("LANGUAGE"), "{table}");

    // The call loads the code compiled at install time.
    let out = env.tend_logged(&["plugins", "call", "hostile", "--config", r#"{"mode": "env"}"#]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains(&format!("loaded plugin file {} from the compile cache in", installed.display())), "{log}");
    assert!(!log.contains("compiled plugin"), "{log}");

    let again = env.install(&hostile());
    assert!(
        again.contains("(the same component was installed already); compiled code loaded from the cache"),
        "{again}"
    );

    let cached = || -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(env.cache())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect();
        files.sort();
        files
    };
    let before = cached();
    let out = env.tend(&["plugins", "remove", "hostile"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("removed hostile 0.1.0 ({}) and its compiled code\n", installed.display()));
    assert!(!installed.exists() && !env.plugins().join("hostile.manifest.json").exists());
    let after = cached();
    let gone: Vec<&PathBuf> = before.iter().filter(|p| !after.contains(p)).collect();
    assert_eq!(gone.len(), 1, "hostile's compiled code, and only it, is gone: {before:?} -> {after:?}");
    let list = json_out(&env.tend(&["plugins", "list", "--json"]));
    assert!(list.as_array().unwrap().iter().all(|p| p["name"] != "hostile"));
}

#[test]
fn calling_one_plugin_reads_no_other_file_of_the_plugin_directory() {
    let env = Env::empty().own_cache();
    env.install(&hostile());
    // A 64 GiB file (sparse: it takes no disk) that a process reading every
    // plugin file up front could not even allocate (and would warn about).
    let huge = std::fs::File::create(env.plugins().join("huge.wasm")).unwrap();
    huge.set_len(64 << 30).unwrap();
    drop(huge);

    let out = env.tend(&["plugins", "call", "hostile", "--config", r#"{"mode": "env"}"#, "--record"]);
    let record = json_out(&out);
    assert_eq!(stderr(&out), "", "nothing to say about huge.wasm");
    assert_eq!(record["outcome"], serde_json::json!({"status": "ok"}), "{record}");
    assert_eq!(record["output"]["data"]["vars"], serde_json::json!({}), "no environment unless granted: {record}");
}

#[test]
fn two_processes_installing_the_same_uncached_component_compile_it_once() {
    let env = Env::empty().own_cache();
    let second = Env::empty();
    let children: Vec<_> = [&env, &second]
        .iter()
        .map(|e| {
            let mut command = e.command(&["plugins", "install", hostile().to_str().unwrap()]);
            command.env("TEND_CACHE_DIR", env.cache());
            command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let said: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            stdout(&out)
        })
        .collect();
    let compiled = said.iter().filter(|s| s.contains("; compiled in ")).count();
    let cached = said.iter().filter(|s| s.contains("; compiled code loaded from the cache in ")).count();
    assert_eq!((compiled, cached), (1, 1), "{said:#?}");
}

#[test]
fn a_component_built_against_another_contract_version_is_refused_naming_both_versions() {
    let env = Env::empty();
    let v2 = patched(&read(&hostile()), "tend:plugin/step@0.1.0", "tend:plugin/step@0.2.0");
    let v2 = patched(&v2, "tend:plugin/host@0.1.0", "tend:plugin/host@0.2.0");
    let file = write(env.path(), "hostile-v2.wasm", &v2);
    let out = env.tend(&["plugins", "install", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "tend: plugin file {} was built against tend:plugin@0.2.0; this tend provides tend:plugin@0.1.0: \
             rebuild it against the wit/plugin.wit of this tend\n",
            file.display()
        )
    );
    assert!(!env.plugins().exists(), "nothing is installed");
}

#[test]
fn a_component_importing_what_tend_does_not_provide_is_refused_naming_the_imports() {
    let env = Env::empty();
    let foreign = patched(&read(&hostile()), "tend:plugin/host@0.1.0", "acme:plugin/host@0.1.0");
    let file = write(env.path(), "foreign.wasm", &foreign);
    let out = env.tend(&["plugins", "install", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "tend: plugin file {} imports acme:plugin/host@0.1.0 that tend does not provide; \
             a plugin may import only tend:plugin@0.1.0 and WASI 0.2\n",
            file.display()
        )
    );
}

#[test]
fn install_refuses_a_core_module_junk_a_missing_file_and_a_built_in_name() {
    let env = Env::empty();
    let core = write(env.path(), "core.wasm", b"\0asm\x01\0\0\0");
    let out = env.tend(&["plugins", "install", core.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "tend: plugin file {} is a core WebAssembly module, not a component; make it one with \
             `wasm-tools component new` (see docs/writing-plugins.md)\n",
            core.display()
        )
    );

    let junk = write(env.path(), "junk.wasm", b"hello");
    let out = env.tend(&["plugins", "install", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(&format!(
            "tend: plugin file {} is not a WebAssembly component: magic header not detected",
            junk.display()
        )),
        "{}",
        stderr(&out)
    );

    let missing = env.path().join("missing.wasm");
    let out = env.tend(&["plugins", "install", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!("tend: cannot read plugin file {}: No such file or directory (os error 2)\n", missing.display())
    );

    let echo = tend::runtime::BUILTIN_PLUGINS.iter().find(|(n, _)| *n == "echo").unwrap().1;
    let copy = write(env.path(), "my-echo.wasm", echo);
    let out = env.tend(&["plugins", "install", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "tend: plugin file {} describes itself as \"echo\", the name of a built-in plugin; \
             rename it in describe()\n",
            copy.display()
        )
    );
    assert!(!env.plugins().exists(), "nothing is installed");
}

#[test]
fn remove_refuses_a_built_in_and_names_what_is_installed() {
    let env = Env::empty();
    env.install(&hostile());
    let out = env.tend(&["plugins", "remove", "echo"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "tend: plugin \"echo\" is built in; it cannot be removed\n");
    let out = env.tend(&["plugins", "remove", "hostle"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!("tend: plugin \"hostle\" is not installed in {} (installed: hostile)\n", env.plugins().display())
    );
}
