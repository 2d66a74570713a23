//! End-to-end tests of the `secrets-scan` plugin and the file metadata
//! host calls: the real `tend` binary scanning a temporary tree with one
//! planted problem of each kind (modes set at test time), a clean tree, a
//! path outside the grant, a runbook run three times (new, then still open
//! and resolved), and fix mode. No secret may appear in any output, log or
//! the database.

use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const GITHUB: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
const GITLAB: &str = "glpat-Zx9Yw8Vu7Ts6Rq5Po4Nm";
const SLACK: &str = "xoxb-2048-4096-QwErTyUiOpAsDfGh";
const AWS_ID: &str = "AKIAQ3EGRPL7XN2VJ5WB";
const AWS_SECRET: &str = "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";
const ENV_PASSWORD: &str = "corr3ct-h0rse-battery";
const URL_PASSWORD: &str = "pgpa55w0rd-staple";
const RSA_BODY: &str = "MIIEowIBAAKCAQEAn7sRsaKeyBodyLine";
const SSH_BODY: &str = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUsshKeyBody";
const GCP_BODY: &str = "MIIEvQIBADANBgkqhkiG9w0BgcpKeyBody";

/// Every secret planted, as it must never be shown.
const SECRETS: [&str; 10] =
    [GITHUB, GITLAB, SLACK, AWS_ID, AWS_SECRET, ENV_PASSWORD, URL_PASSWORD, RSA_BODY, SSH_BODY, GCP_BODY];

fn tend(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(dir)
        .env("TEND_CACHE_DIR", std::env::temp_dir().join("tend-test-cache"))
        .env("TEND_PLUGINS", dir.join("plugins"))
        .env("TEND_DB", dir.join("tend.db"))
        .env("TEND_RUNBOOKS", dir)
        .env_remove("TEND_LOG")
        .output()
        .expect("tend runs")
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// One planted problem of each kind, modes set now.
fn plant(root: &Path) {
    std::fs::create_dir_all(root.join("keys")).unwrap();
    std::fs::create_dir_all(root.join("app/config")).unwrap();
    let rsa = format!("-----BEGIN RSA PRIVATE KEY-----\n{RSA_BODY}\n-----END RSA PRIVATE KEY-----\n");
    write(&root.join("keys/id_rsa"), &rsa, 0o644);
    let ssh = format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{SSH_BODY}\n-----END OPENSSH PRIVATE KEY-----\n");
    write(&root.join("keys/id_ed25519"), &ssh, 0o600);
    let gcp = json!({
        "type": "service_account",
        "client_email": "ci@proj.iam.gserviceaccount.com",
        "private_key": format!("-----BEGIN PRIVATE KEY-----\n{GCP_BODY}\n-----END PRIVATE KEY-----\n"),
    });
    write(&root.join("keys/sa.json"), &serde_json::to_string_pretty(&gcp).unwrap(), 0o600);
    let aws = format!("[default]\naws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\n");
    write(&root.join("app/config/credentials"), &aws, 0o600);
    write(&root.join("app/ci.yml"), &format!("github: {GITHUB}\ngitlab: {GITLAB}\nslack: \"{SLACK}\"\n"), 0o644);
    let env = format!("DB_PASSWORD={ENV_PASSWORD}\nDATABASE_URL=postgres://app:{URL_PASSWORD}@db.internal:5432/app\n");
    write(&root.join("app/.env"), &env, 0o600);
    write(&root.join("app/shared.log"), "nothing secret\n", 0o666);
    write(&root.join("app/helper"), "#!/bin/sh\n", 0o4755);
    write(&root.join("app/mailer"), "#!/bin/sh\n", 0o2755);
    // Bounded: a big file and a binary file are skipped, and counted.
    write(&root.join("app/big.txt"), &format!("{GITHUB}\n").repeat(30_000), 0o644);
    write(&root.join("app/blob.bin"), &format!("\0{GITHUB}"), 0o644);
    // A symlink out of the tree is described, never followed.
    std::os::unix::fs::symlink("/etc", root.join("app/etc")).unwrap();
}

/// (kind, path, status) of every item of `list` in the data.
fn items(data: &Value, list: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = data[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["kind"].as_str().unwrap().to_string(), i["path"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list.iter().map(|(k, p)| (k.to_string(), p.to_string())).collect();
    v.sort();
    v
}

const EVERY_KIND: [(&str, &str); 14] = [
    ("private_key", "/scan/keys/id_rsa"),
    ("private_key_readable", "/scan/keys/id_rsa"),
    ("private_key", "/scan/keys/id_ed25519"),
    ("gcp_service_account_key", "/scan/keys/sa.json"),
    ("aws_access_key_id", "/scan/app/config/credentials"),
    ("aws_secret_access_key", "/scan/app/config/credentials"),
    ("github_token", "/scan/app/ci.yml"),
    ("gitlab_token", "/scan/app/ci.yml"),
    ("slack_token", "/scan/app/ci.yml"),
    ("env_secret", "/scan/app/.env"),
    ("connection_string_password", "/scan/app/.env"),
    ("world_writable", "/scan/app/shared.log"),
    ("setuid", "/scan/app/helper"),
    ("setgid", "/scan/app/mailer"),
];

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} holds the secret {secret}:\n{text}");
    }
}

#[test]
fn every_planted_problem_is_found_and_no_secret_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    plant(&tree);
    // The big file is world-writable too: its mode is checked though its content is not read.
    std::fs::set_permissions(tree.join("app/big.txt"), std::fs::Permissions::from_mode(0o646)).unwrap();
    let grant = format!("{}:/scan:ro", tree.display());
    let config = r#"{"paths": ["/scan"]}"#;
    let out = tend(&["plugins", "call", "secrets-scan", "--dir", &grant, "--config", config, "--record"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_no_secret("the call record (output, logs, denials)", &stdout);
    let record: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(record["outcome"]["status"], "ok");
    let data = &record["output"]["data"];
    let big = ("world_writable", "/scan/app/big.txt");
    assert_eq!(items(data, "new"), pairs(&[&EVERY_KIND[..], &[big]].concat()), "{data:#}");
    assert_eq!(data["skipped"], json!({"too_large": 1, "binary": 1, "unreadable": 0, "not_regular": 1, "excluded": 0}));
    assert_eq!(data["files_scanned"], 11);
    let readable = data["new"].as_array().unwrap().iter().find(|i| i["kind"] == "private_key_readable").unwrap();
    assert_eq!(readable["severity"], "critical");
    assert_eq!(readable["title"], "private key /scan/keys/id_rsa is readable by any user");
    assert_eq!(readable["detail"], "mode 0644: only its owner should read a private key (chmod 600)");
    let token = data["new"].as_array().unwrap().iter().find(|i| i["kind"] == "github_token").unwrap();
    assert_eq!(token["title"], "GitHub token in /scan/app/ci.yml:1");
    assert_eq!(token["prefix"], "ghp_…");
    assert_eq!(token["sha256"].as_str().unwrap().len(), 12);
    assert_eq!(record["denials"], json!([]));
}

#[test]
fn a_clean_tree_yields_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("clean");
    std::fs::create_dir_all(tree.join("src")).unwrap();
    write(&tree.join("README.md"), "# app\nSee https://example.com/docs and postgres://app@db/app.\n", 0o644);
    write(&tree.join("src/main.rs"), "fn main() { let password = std::env::var(\"PW\"); }\n", 0o644);
    write(&tree.join("src/id_rsa.pub"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG user@host\n", 0o644);
    let grant = format!("{}:/scan", tree.display());
    let out =
        tend(&["plugins", "call", "secrets-scan", "--dir", &grant, "--config", r#"{"paths": ["/scan"]}"#], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let output: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(output["findings"], json!([]));
    assert_eq!(output["data"]["counts"], json!({"new": 0, "still_open": 0, "resolved": 0, "open": 0}));
    assert_eq!(output["data"]["files_scanned"], 3);
}

#[test]
fn a_path_outside_the_grant_is_denied_naming_the_grant() {
    let dir = tempfile::tempdir().unwrap();
    let grant = format!("{}:/scan:ro", dir.path().display());
    for (path, refused) in [
        ("/etc", "dirs: /etc is not inside a directory granted to this step (granted: /scan)"),
        ("/scan/../etc", "dirs: /etc is not inside a directory granted to this step (granted: /scan)"),
    ] {
        let config = json!({"paths": [path]}).to_string();
        let out = tend(&["plugins", "call", "secrets-scan", "--dir", &grant, "--config", &config], dir.path());
        assert!(!out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "tend: secrets-scan: trap: denied capability: dirs ({refused}; the plugin then failed: path {path:?}: \
                 {refused})\n"
            )
        );
    }
}

#[test]
fn a_runbook_run_again_reports_still_open_and_resolved_and_raises_only_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    plant(&tree);
    let runbook = format!(
        "name: hardening\nsteps:\n  - id: audit\n    plugin: secrets-scan\n    with: {{paths: [\"/scan\"]}}\n    \
         grants:\n      dirs: [\"{}:/scan:ro\"]\nescalate_findings: critical\n",
        tree.display()
    );
    std::fs::write(dir.path().join("hardening.yaml"), runbook).unwrap();
    let run = || {
        let out = tend(&["run", "hardening", "--json"], dir.path());
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert_no_secret("tend run --json", &stdout);
        serde_json::from_str::<Value>(&stdout).unwrap()
    };

    let first = run();
    let step = &first["steps"][0];
    assert_eq!(step["output"]["counts"]["new"], 14, "{:#}", step["output"]);
    assert_eq!(step["findings"].as_array().unwrap().len(), 14);
    let mut escalated: Vec<&str> =
        first["escalations"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap()).collect();
    escalated.sort();
    assert_eq!(
        escalated,
        [
            "audit: AWS secret access key in /scan/app/config/credentials:3",
            "audit: Google service-account key in /scan/keys/sa.json",
            "audit: private key /scan/keys/id_rsa is readable by any user",
        ]
    );

    // Fixed in between: the key made private, the shared log no longer writable.
    std::fs::set_permissions(tree.join("keys/id_rsa"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(tree.join("app/shared.log"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let second = run();
    let data = &second["steps"][0]["output"];
    assert_eq!(data["counts"], json!({"new": 0, "still_open": 12, "resolved": 2, "open": 12}));
    assert_eq!(
        items(data, "resolved"),
        pairs(&[("private_key_readable", "/scan/keys/id_rsa"), ("world_writable", "/scan/app/shared.log")])
    );
    assert_eq!(data["resolved"][0]["status"], "resolved");
    assert_eq!(data["still_open"][0]["status"], "still_open");
    assert_eq!(second["steps"][0]["findings"], json!([]), "still-open findings are not raised again");
    assert_eq!(second["escalations"], json!([]));

    // A new token is new; the rest stays open.
    write(&tree.join("app/deploy.sh"), &format!("TOKEN={GITLAB}\n"), 0o755);
    let third = run();
    let data = &third["steps"][0]["output"];
    assert_eq!(data["counts"], json!({"new": 1, "still_open": 12, "resolved": 0, "open": 13}));
    assert_eq!(items(data, "new"), pairs(&[("gitlab_token", "/scan/app/deploy.sh")]));

    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("tend.db") {
            stored.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!stored.is_empty());
    assert_no_secret("the database", &String::from_utf8_lossy(&stored));
}

#[test]
fn fix_mode_removes_unsafe_bits_only_in_a_writable_grant() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    plant(&tree);
    let config = r#"{"paths": ["/scan"], "mode": "fix"}"#;
    let ro = format!("{}:/scan:ro", tree.display());
    let out = tend(&["plugins", "call", "secrets-scan", "--dir", &ro, "--config", config], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let output: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(output["data"]["fixed"], json!([]));
    assert_eq!(
        output["data"]["failed"][0]["error"],
        format!("dirs: /scan/app/shared.log is in a read-only grant ({ro}); changing it needs :rw")
    );
    assert_eq!(mode_of(&tree.join("keys/id_rsa")), 0o644);

    let rw = format!("{}:/scan:rw", tree.display());
    let out = tend(&["plugins", "call", "secrets-scan", "--dir", &rw, "--config", config], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let output: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        output["data"]["fixed"],
        json!([
            {"path": "/scan/app/shared.log", "from": "0666", "to": "0664"},
            {"path": "/scan/keys/id_rsa", "from": "0644", "to": "0600"},
        ])
    );
    assert_eq!(output["data"]["failed"], json!([]));
    assert_eq!(mode_of(&tree.join("keys/id_rsa")), 0o600);
    assert_eq!(mode_of(&tree.join("app/shared.log")), 0o664);
    assert_eq!(mode_of(&tree.join("app/helper")), 0o4755, "setuid is left to a person");
}
