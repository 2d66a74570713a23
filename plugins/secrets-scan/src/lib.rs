//! `secrets-scan`: finds secrets and unsafe permissions in the directories
//! a runbook grants, and compares them with the previous run.
//!
//! Walks each configured path (guest paths of the step's `dirs` grant)
//! through `host.list-metadata` (mode bits WASI does not show), never
//! following symlinks, and reads each regular file through WASI to look
//! for private keys, cloud and service credentials and passwords (see
//! [`detect`]). Files over `max_file_bytes` and binary files are skipped
//! and counted. Each finding has a fingerprint (kind, path and the
//! secret's hash); the fingerprints of the previous run live in the
//! runbook's state, so each finding is `new`, `still_open`, or — gone
//! since — `resolved`. Only new ones are returned as findings (which
//! escalate and notify); still-open and resolved ones are in the data.
//!
//! In `fix` mode it removes the world-writable bit and group/other access
//! to private keys through `host.file-set-mode` (needs `:rw` grants), and
//! leaves the state to the next scan.
//!
//! It must never output, log or store a secret: findings carry at most a
//! token's type prefix and a SHA-256 prefix. No HTTP, no secrets, no
//! environment; no writes except `file-set-mode` in fix mode.

mod detect;

use detect::{Hit, Kind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tend_plugin_sdk::{
    FileKind, FileMeta, Finding, Guest, PluginInfo, SeverityLevel, StepContext, StepError, StepOutput, export, failed,
    finding, host, invalid_config, log, metric, parse_config, schema,
};

/// Largest file read, by default 1 MiB; bigger ones are skipped and counted.
const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 20;
/// Most files examined, by default 100 000; the walk stops there and says so.
const DEFAULT_MAX_FILES: u64 = 100_000;
/// Prefix of the default state key, followed by the scanned paths.
const STATE_KEY_PREFIX: &str = "secrets-scan:";
/// Version of the state value's layout.
const STATE_VERSION: u32 = 1;

/// The plugin; see the crate docs.
struct SecretsScan;

/// What the step does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Find and compare with the previous run.
    #[default]
    Scan,
    /// Remove world-writable bits and group/other access to private keys.
    Fix,
}

/// The step's `with:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Guest paths to scan (directories or files).
    paths: Vec<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default = "default_max_file_bytes")]
    max_file_bytes: u64,
    #[serde(default = "default_max_files")]
    max_files: u64,
    /// Directory names not descended into, e.g. `node_modules`.
    #[serde(default)]
    exclude: Vec<String>,
    /// Key of the runbook state holding the previous run's fingerprints.
    #[serde(default)]
    state_key: Option<String>,
}

fn default_max_file_bytes() -> u64 {
    DEFAULT_MAX_FILE_BYTES
}

fn default_max_files() -> u64 {
    DEFAULT_MAX_FILES
}

/// Where a finding stands against the previous run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    New,
    StillOpen,
    Resolved,
}

/// One finding as it appears in the output data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    fingerprint: String,
    kind: Kind,
    severity: SeverityLevel,
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    title: String,
    #[serde(default)]
    detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    status: Status,
}

/// What a walk skipped, by reason.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
struct Skipped {
    /// Files over `max_file_bytes` (their mode bits are still checked).
    too_large: u64,
    /// Files with a NUL byte in their first 8 KiB.
    binary: u64,
    /// Files or directories that could not be read.
    unreadable: u64,
    /// Symlinks (never followed) and devices, sockets, pipes.
    not_regular: u64,
    /// Directories named in `exclude`.
    excluded: u64,
}

/// The result of walking the paths.
#[derive(Debug, Default)]
struct Scan {
    files: u64,
    bytes: u64,
    dirs: u64,
    skipped: Skipped,
    /// The walk stopped at `max_files`.
    truncated: bool,
    /// Findings with the mode of their file, by fingerprint.
    found: BTreeMap<String, (Item, u32)>,
}

/// What the state keeps: the open findings of the previous scan.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    version: u32,
    open: BTreeMap<String, SavedItem>,
}

/// Enough of a finding to list it as resolved.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedItem {
    kind: Kind,
    severity: SeverityLevel,
    path: String,
    title: String,
}

impl Guest for SecretsScan {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "secrets-scan".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Scans the directories a runbook grants for private keys (PEM, OpenSSH, PuTTY), cloud and \
                          service credentials (AWS key ids and secret keys, Google service-account keys, GitHub, \
                          GitLab and Slack tokens), passwords in .env files and connection strings, world-writable \
                          and setuid/setgid files, and private keys readable by group or others. A finding never \
                          holds the secret: a type prefix and a SHA-256 prefix at most. Compares with the previous \
                          run through the runbook state: each finding is new, still_open or resolved, and only new \
                          ones are returned as findings. Bounded: big and binary files are skipped and counted. In \
                          fix mode, removes world-writable bits and group/other access to private keys (:rw grants)."
                .into(),
            config_schema: schema::to_text(&config_schema()),
            capabilities: vec!["fs".into(), "state".into()],
        }
    }

    fn run(_ctx: StepContext, config: String, _input: String) -> Result<StepOutput, StepError> {
        let config: Config = parse_config(&config)?;
        if config.paths.is_empty() {
            return Err(invalid_config("field `paths`: expected at least one path to scan, e.g. [\"/scan\"]"));
        }
        let scan = walk(&config, host::list_metadata, host::file_metadata, read_file)?;
        match config.mode {
            Mode::Scan => scan_output(&config, scan),
            Mode::Fix => {
                let out = fix_output(&config, &scan, host::file_set_mode)?;
                log::info(&format!("fixed: {}", out.data));
                Ok(out)
            }
        }
    }
}

/// Reads a file through WASI.
fn read_file(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| e.to_string())
}

/// Walks every configured path, depth first, without following symlinks.
/// A configured path that cannot be read fails the step (with the host's
/// message, e.g. a denial); anything below it is skipped and counted.
fn walk(
    config: &Config,
    list: impl Fn(&str) -> Result<Vec<FileMeta>, String>,
    stat: impl Fn(&str) -> Result<FileMeta, String>,
    read: impl Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<Scan, StepError> {
    let mut scan = Scan::default();
    for root in &config.paths {
        let meta = stat(root).map_err(|e| failed(format!("path {root:?}: {e}")))?;
        let mut stack = vec![meta];
        let mut first = true;
        while let Some(meta) = stack.pop() {
            if scan.files >= config.max_files {
                scan.truncated = true;
                break;
            }
            match meta.kind {
                FileKind::Dir => {
                    scan.dirs += 1;
                    add(&mut scan, &meta, detect::mode_hits(&meta.path, meta.mode, meta.uid, true));
                    let entries = match list(&meta.path) {
                        Ok(entries) => entries,
                        Err(e) if first => return Err(failed(format!("path {root:?}: {e}"))),
                        Err(e) => {
                            log::warn(&format!("skipped {}: {e}", meta.path));
                            scan.skipped.unreadable += 1;
                            continue;
                        }
                    };
                    // Reversed so the walk pops them in name order.
                    for entry in entries.into_iter().rev() {
                        if entry.kind == FileKind::Dir && config.exclude.iter().any(|x| *x == name_of(&entry.path)) {
                            scan.skipped.excluded += 1;
                        } else {
                            stack.push(entry);
                        }
                    }
                }
                FileKind::File => scan_file(config, &mut scan, &meta, &read),
                FileKind::Symlink | FileKind::Other => scan.skipped.not_regular += 1,
            }
            first = false;
        }
    }
    Ok(scan)
}

fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Mode bits and content of one regular file.
fn scan_file(config: &Config, scan: &mut Scan, meta: &FileMeta, read: &impl Fn(&str) -> Result<Vec<u8>, String>) {
    scan.files += 1;
    add(scan, meta, detect::mode_hits(&meta.path, meta.mode, meta.uid, false));
    if meta.size > config.max_file_bytes {
        scan.skipped.too_large += 1;
        return;
    }
    let bytes = match read(&meta.path) {
        Ok(bytes) => bytes,
        Err(e) => {
            log::warn(&format!("skipped {}: {e}", meta.path));
            scan.skipped.unreadable += 1;
            return;
        }
    };
    if detect::is_binary(&bytes) {
        scan.skipped.binary += 1;
        return;
    }
    scan.bytes += bytes.len() as u64;
    let text = String::from_utf8_lossy(&bytes);
    let hits = detect::scan_text(&meta.path, name_of(&meta.path), &text);
    let holds_key = hits.iter().any(|h| matches!(h.kind, Kind::PrivateKey | Kind::GcpServiceAccountKey));
    let readable = if holds_key { detect::key_readable_hit(&meta.path, meta.mode) } else { None };
    add(scan, meta, hits.into_iter().chain(readable).collect());
}

/// Adds hits about `meta`, keyed by fingerprint (a secret repeated in one
/// file is one finding, at its first line).
fn add(scan: &mut Scan, meta: &FileMeta, hits: Vec<Hit>) {
    for hit in hits {
        let fingerprint = fingerprint(hit.kind, &meta.path, hit.sha256.as_deref());
        let item = Item {
            fingerprint: fingerprint.clone(),
            kind: hit.kind,
            severity: hit.severity(),
            path: meta.path.clone(),
            line: hit.line,
            title: hit.title,
            detail: hit.detail,
            prefix: hit.prefix,
            sha256: hit.sha256,
            mode: Some(format!("{:04o}", meta.mode)),
            status: Status::New,
        };
        scan.found.entry(fingerprint).or_insert((item, meta.mode));
    }
}

/// A finding's identity across runs: its kind, path and secret hash (not
/// its line, so moving a line keeps it).
fn fingerprint(kind: Kind, path: &str, sha: Option<&str>) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{kind}\n{path}\n{}", sha.unwrap_or("")).as_bytes());
    detect::hex(&digest)[..16].to_string()
}

/// The state key: `state_key`, or `secrets-scan:` and the paths.
fn state_key(config: &Config) -> String {
    config.state_key.clone().unwrap_or_else(|| {
        let key = format!("{STATE_KEY_PREFIX}{}", config.paths.join(","));
        if key.len() <= 256 { key } else { format!("{STATE_KEY_PREFIX}{}", detect::hash(&key)) }
    })
}

/// Marks each finding against the previous run, saves the open ones, and
/// returns new ones as findings.
fn scan_output(config: &Config, scan: Scan) -> Result<StepOutput, StepError> {
    let key = state_key(config);
    let previous: Saved = match host::state_get(&key) {
        Some(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
            log::warn(&format!("state key {key:?} is not a previous scan ({e}); every finding counts as new"));
            Saved::default()
        }),
        None => Saved::default(),
    };
    let (data, saved) = compare(config, scan, &previous);
    let text = serde_json::to_string(&saved).map_err(|e| failed(format!("cannot encode the state: {e}")))?;
    host::state_set(&key, &text).map_err(|e| failed(format!("state key {key:?}: {e}")))?;
    let findings = new_findings(&data);
    let c = &data["counts"];
    log::info(&format!(
        "{} files scanned: {} new, {} still open, {} resolved",
        data["files_scanned"], c["new"], c["still_open"], c["resolved"]
    ));
    let metrics = ["new", "still_open", "resolved"]
        .iter()
        .map(|s| metric(&format!("secrets_scan_{s}"), c[s].as_f64().unwrap_or(0.0), &[]))
        .chain([metric("secrets_scan_files", data["files_scanned"].as_f64().unwrap_or(0.0), &[])])
        .collect();
    tend_plugin_sdk::output(&data, metrics, findings)
}

/// The output data and the state to save, from this scan and the last.
fn compare(config: &Config, scan: Scan, previous: &Saved) -> (Value, Saved) {
    let mut saved = Saved { version: STATE_VERSION, open: BTreeMap::new() };
    let (mut new, mut still_open) = (Vec::new(), Vec::new());
    for (fp, (mut item, _)) in scan.found {
        saved.open.insert(
            fp.clone(),
            SavedItem { kind: item.kind, severity: item.severity, path: item.path.clone(), title: item.title.clone() },
        );
        if previous.open.contains_key(&fp) {
            item.status = Status::StillOpen;
            still_open.push(item);
        } else {
            new.push(item);
        }
    }
    let resolved: Vec<Item> = previous
        .open
        .iter()
        .filter(|(fp, _)| !saved.open.contains_key(*fp))
        .map(|(fp, s)| Item {
            fingerprint: fp.clone(),
            kind: s.kind,
            severity: s.severity,
            path: s.path.clone(),
            line: None,
            title: s.title.clone(),
            detail: String::new(),
            prefix: None,
            sha256: None,
            mode: None,
            status: Status::Resolved,
        })
        .collect();
    let order = |a: &Item, b: &Item| b.severity.cmp(&a.severity).then(a.path.cmp(&b.path)).then(a.title.cmp(&b.title));
    new.sort_by(order);
    still_open.sort_by(order);
    let mut by_severity = BTreeMap::new();
    for item in new.iter().chain(&still_open) {
        *by_severity.entry(SeverityLevel::NAMES[item.severity as usize]).or_insert(0u64) += 1;
    }
    let data = json!({
        "mode": Mode::Scan,
        "paths": config.paths,
        "files_scanned": scan.files,
        "bytes_scanned": scan.bytes,
        "dirs_scanned": scan.dirs,
        "skipped": scan.skipped,
        "truncated": scan.truncated,
        "counts": {"new": new.len(), "still_open": still_open.len(), "resolved": resolved.len(), "open": new.len() + still_open.len()},
        "open_by_severity": by_severity,
        "new": new,
        "still_open": still_open,
        "resolved": resolved,
    });
    (data, saved)
}

/// The `new` items of the data as findings.
fn new_findings(data: &Value) -> Vec<Finding> {
    let items: Vec<Item> = serde_json::from_value(data["new"].clone()).unwrap_or_default();
    items.into_iter().map(|i| finding(i.severity, i.title, i.detail, Some(&i.path))).collect()
}

/// Fixes what is safe to fix: world-writable files and directories lose
/// `o+w`; files holding a private key lose every group and other bit.
/// Setuid, setgid and secrets in files are left to a person.
fn fix_output(
    config: &Config,
    scan: &Scan,
    set_mode: impl Fn(&str, u32) -> Result<(), String>,
) -> Result<StepOutput, StepError> {
    let mut modes: BTreeMap<String, u32> = BTreeMap::new();
    for (item, mode) in scan.found.values() {
        let fixed = match item.kind {
            Kind::WorldWritable => mode & !0o002,
            Kind::PrivateKeyReadable => mode & !0o077,
            _ => continue,
        };
        let entry = modes.entry(item.path.clone()).or_insert(*mode);
        *entry &= fixed;
    }
    let (mut fixed, mut errors, mut findings) = (Vec::new(), Vec::new(), Vec::new());
    for (path, to) in modes {
        let from = scan.found.values().find(|(i, _)| i.path == path).map_or(0, |(_, m)| *m);
        match set_mode(&path, to) {
            Ok(()) => {
                fixed.push(json!({"path": path, "from": format!("{from:04o}"), "to": format!("{to:04o}")}));
            }
            Err(e) => {
                let title = format!("could not fix the mode of {path}");
                findings.push(finding(SeverityLevel::High, title, e.clone(), Some(&path)));
                errors.push(json!({"path": path, "error": e}));
            }
        }
    }
    let data = json!({
        "mode": Mode::Fix,
        "paths": config.paths,
        "files_scanned": scan.files,
        "fixed": fixed,
        "failed": errors,
        "left": scan.found.values().filter(|(i, _)| !matches!(i.kind, Kind::WorldWritable | Kind::PrivateKeyReadable)).count(),
    });
    let metrics = vec![metric("secrets_scan_fixed", fixed_len(&data), &[])];
    tend_plugin_sdk::output(&data, metrics, findings)
}

fn fixed_len(data: &Value) -> f64 {
    data["fixed"].as_array().map_or(0.0, |a| a.len() as f64)
}

/// JSON Schema of the config.
fn config_schema() -> Value {
    schema::config(
        "secrets-scan config",
        "What to scan, how far, and what to do.",
        json!({
            "paths": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "minLength": 1},
                "description": "Guest paths to scan, directories or files, inside the step's `dirs` grant, e.g. [\"/scan\"]."
            },
            "mode": {
                "enum": ["scan", "fix"],
                "description": "scan (default): find and compare with the previous run. fix: remove world-writable bits and group/other access to private keys (needs :rw grants); the state is left to the next scan."
            },
            "max_file_bytes": {
                "type": "integer",
                "minimum": 1,
                "description": "Files larger than this many bytes are not read (their mode bits are still checked) and are counted as skipped; by default 1048576 (1 MiB)."
            },
            "max_files": {
                "type": "integer",
                "minimum": 1,
                "description": "The walk stops after this many files and says so (`truncated`); by default 100000."
            },
            "exclude": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "description": "Directory names not descended into, e.g. [\"node_modules\", \".git\"]; by default none."
            },
            "state_key": {
                "type": "string",
                "minLength": 1,
                "maxLength": 256,
                "description": "Key of the runbook state holding the previous scan's findings; by default `secrets-scan:` followed by the paths, so steps scanning the same paths compare with each other."
            }
        }),
        &["paths"],
    )
}

export!(SecretsScan);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A fake tree: path -> (meta, content).
    struct Tree(HashMap<String, (FileMeta, Vec<u8>)>);

    fn meta(path: &str, kind: FileKind, mode: u32, size: u64) -> FileMeta {
        FileMeta {
            path: path.into(),
            kind,
            size,
            mode,
            uid: 1000,
            gid: 1000,
            setuid: mode & 0o4000 != 0,
            setgid: mode & 0o2000 != 0,
            world_writable: mode & 0o002 != 0,
            modified: 0,
        }
    }

    impl Tree {
        fn new() -> Tree {
            let mut t = Tree(HashMap::new());
            t.dir("/scan", 0o755);
            t
        }
        fn dir(&mut self, path: &str, mode: u32) {
            self.0.insert(path.into(), (meta(path, FileKind::Dir, mode, 0), Vec::new()));
        }
        fn file(&mut self, path: &str, mode: u32, content: &str) {
            let m = meta(path, FileKind::File, mode, content.len() as u64);
            self.0.insert(path.into(), (m, content.as_bytes().to_vec()));
        }
        fn scan(&self, config: &Config) -> Result<Scan, StepError> {
            let list = |dir: &str| -> Result<Vec<FileMeta>, String> {
                let mut v: Vec<FileMeta> = self
                    .0
                    .values()
                    .filter(|(m, _)| m.path.rsplit_once('/').map(|(p, _)| p) == Some(dir))
                    .map(|(m, _)| m.clone())
                    .collect();
                v.sort_by(|a, b| a.path.cmp(&b.path));
                Ok(v)
            };
            let stat = |p: &str| self.0.get(p).map(|(m, _)| m.clone()).ok_or(format!("dirs: {p} is not granted"));
            let read = |p: &str| self.0.get(p).map(|(_, c)| c.clone()).ok_or("gone".to_string());
            walk(config, list, stat, read)
        }
    }

    fn config(extra: Value) -> Config {
        let mut c = json!({"paths": ["/scan"]});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(c).unwrap()
    }

    fn kinds(scan: &Scan) -> Vec<(String, Kind)> {
        let mut v: Vec<_> = scan.found.values().map(|(i, _)| (i.path.clone(), i.kind)).collect();
        v.sort();
        v
    }

    #[test]
    fn the_walk_finds_modes_and_secrets_and_counts_what_it_skips() {
        let mut t = Tree::new();
        t.file("/scan/id_rsa", 0o644, "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----\n");
        t.file("/scan/run", 0o4755, "#!/bin/sh\n");
        t.dir("/scan/shared", 0o777);
        t.file("/scan/shared/notes", 0o666, "nothing\n");
        t.file("/scan/big", 0o644, &"AKIAIOSFODNN7EXAMPLE\n".repeat(10));
        t.file("/scan/bin", 0o644, "AKIAIOSFODNN7EXAMPLE\0");
        t.dir("/scan/node_modules", 0o755);
        t.file("/scan/node_modules/t", 0o644, "ghp_0123456789abcdefghijABCDEFGHIJ012345");
        let scan = t.scan(&config(json!({"max_file_bytes": 100, "exclude": ["node_modules"]}))).unwrap();
        assert_eq!(
            kinds(&scan),
            [
                ("/scan/id_rsa".into(), Kind::PrivateKey),
                ("/scan/id_rsa".into(), Kind::PrivateKeyReadable),
                ("/scan/run".into(), Kind::Setuid),
                ("/scan/shared".into(), Kind::WorldWritable),
                ("/scan/shared/notes".into(), Kind::WorldWritable),
            ]
        );
        assert_eq!(scan.files, 5);
        assert_eq!(scan.skipped, Skipped { too_large: 1, binary: 1, unreadable: 0, not_regular: 0, excluded: 1 });
        match t.scan(&config(json!({"paths": ["/etc"]}))) {
            Err(StepError::Failed(e)) => assert_eq!(e, "path \"/etc\": dirs: /etc is not granted"),
            other => panic!("{:?}", other.map(|s| s.files)),
        }
        let few = t.scan(&config(json!({"max_files": 2}))).unwrap();
        assert!(few.truncated);
        assert_eq!(few.files, 2);
    }

    #[test]
    fn findings_are_new_then_still_open_then_resolved() {
        let mut t = Tree::new();
        t.file("/scan/a", 0o666, "x");
        t.file("/scan/.env", 0o600, "DB_PASSWORD=hunter2\n");
        let c = config(json!({}));
        let (first, saved) = compare(&c, t.scan(&c).unwrap(), &Saved::default());
        assert_eq!(first["counts"], json!({"new": 2, "still_open": 0, "resolved": 0, "open": 2}));
        assert_eq!(first["new"][0]["title"], "DB_PASSWORD set in /scan/.env:1");
        assert_eq!(first["new"][1]["title"], "/scan/a is world-writable");
        assert_eq!(first["new"][1]["status"], "new");
        assert_eq!(first["new"][1]["mode"], "0666");
        assert_eq!(new_findings(&first).len(), 2);

        t.file("/scan/a", 0o644, "x");
        let (second, saved) = compare(&c, t.scan(&c).unwrap(), &saved);
        assert_eq!(second["counts"], json!({"new": 0, "still_open": 1, "resolved": 1, "open": 1}));
        assert_eq!(second["still_open"][0]["title"], "DB_PASSWORD set in /scan/.env:1");
        assert_eq!(second["resolved"][0]["title"], "/scan/a is world-writable");
        assert_eq!(second["resolved"][0]["status"], "resolved");
        assert!(new_findings(&second).is_empty(), "still-open ones are not raised again");

        // A changed password is a new finding; the old one is resolved.
        t.file("/scan/.env", 0o600, "DB_PASSWORD=hunter3\n");
        let (third, _) = compare(&c, t.scan(&c).unwrap(), &saved);
        assert_eq!(third["counts"], json!({"new": 1, "still_open": 0, "resolved": 1, "open": 1}));
        assert!(!third.to_string().contains("hunter"));
    }

    #[test]
    fn fix_mode_removes_only_the_unsafe_bits() {
        let mut t = Tree::new();
        t.file("/scan/key.pem", 0o666, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
        t.file("/scan/run", 0o4757, "x");
        let c = config(json!({"mode": "fix"}));
        let scan = t.scan(&c).unwrap();
        let calls = std::cell::RefCell::new(Vec::new());
        let out = fix_output(&c, &scan, |p, m| {
            calls.borrow_mut().push((p.to_string(), m));
            if p == "/scan/run" { Err("dirs: /scan/run is in a read-only grant".into()) } else { Ok(()) }
        })
        .unwrap();
        assert_eq!(calls.into_inner(), [("/scan/key.pem".to_string(), 0o600), ("/scan/run".to_string(), 0o4755)]);
        let data: Value = serde_json::from_str(&out.data).unwrap();
        assert_eq!(data["fixed"], json!([{"path": "/scan/key.pem", "from": "0666", "to": "0600"}]));
        assert_eq!(data["failed"], json!([{"path": "/scan/run", "error": "dirs: /scan/run is in a read-only grant"}]));
        assert_eq!(data["left"], 2, "the key itself and the setuid bit are left to a person");
        assert_eq!(out.findings[0].title, "could not fix the mode of /scan/run");
    }

    #[test]
    fn the_default_state_key_names_the_paths() {
        assert_eq!(state_key(&config(json!({"paths": ["/a", "/b"]}))), "secrets-scan:/a,/b");
        assert_eq!(state_key(&config(json!({"state_key": "k"}))), "k");
        let long = state_key(&config(json!({"paths": ["/x".repeat(200)]})));
        assert_eq!(long.len(), "secrets-scan:".len() + detect::HASH_HEX);
    }
}
