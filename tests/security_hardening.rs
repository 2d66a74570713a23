//! End-to-end test of the shipped `runbooks/security-hardening.yaml` on a
//! real `tend serve`: a directory with planted problems and the demo service
//! (whose responses carry no security headers) are audited; the safe fixes
//! wait for approval, are applied once approved, and the re-audit finds them
//! resolved; a second run raises nothing again. Only 127.0.0.1 is contacted.

mod demo_support;
mod serve_support;

use demo_support::DemoService;
use reqwest::StatusCode;
use serde_json::{Value, json};
use serve_support::{ADMIN, Server, TRIGGER};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The shipped runbook, scanning `dir` instead of /var/lib/tend/scan.
fn hardening_runbook(dir: &Path) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/security-hardening.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("/var/lib/tend/scan:/scan:rw"), "the runbook's grants changed; update this test");
    text.replace("/var/lib/tend/scan", dir.to_str().unwrap())
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The attempts of `step` in a run record.
fn step<'a>(run: &'a Value, id: &str) -> Vec<&'a Value> {
    run["steps"].as_array().unwrap().iter().filter(|a| a["step_id"] == id).collect()
}

#[tokio::test]
async fn the_audit_finds_the_planted_problems_and_fixes_the_safe_ones_after_approval() {
    let scan = tempfile::tempdir().unwrap();
    let key = scan.path().join("keys/id_rsa");
    let script = scan.path().join("shared/upload.sh");
    write(&key, "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAplanted\n-----END RSA PRIVATE KEY-----\n", 0o644);
    write(&script, "#!/bin/sh\necho upload\n", 0o666);
    write(&scan.path().join("app/.env"), "DB_PASSWORD=hunter2-planted-value\n", 0o600);
    let demo = DemoService::start();

    let mut s = Server::new();
    s.runbook("security-hardening", &hardening_runbook(scan.path()));
    s.start();
    let params = json!({"params": {"endpoints": [format!("{}/", demo.url())]}});
    let (status, body) =
        s.call("POST", "/v1/runbooks/security-hardening/runs", Some(TRIGGER), Some(&params.to_string())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["run_id"].as_str().unwrap().to_string();

    // Audited; the fix waits for a person, nothing changed yet.
    s.wait_status(&id, "waiting_approval").await;
    assert_eq!((mode(&key), mode(&script)), (0o644, 0o666));
    let (_, run) = s.call("GET", &format!("/v1/runs/{id}"), Some(ADMIN), None).await;
    let files = &step(&run, "files")[0]["output"];
    let kinds: Vec<&str> = files["new"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    for kind in ["private_key_readable", "world_writable", "env_secret"] {
        assert!(kinds.contains(&kind), "{kind} not found: {kinds:?}");
    }
    let headers = &step(&run, "headers")[0]["output"];
    assert!(headers["summary"]["problems"].as_u64().unwrap() > 0, "{headers:#}");
    // The private key readable by others is critical: escalated at once.
    let escalations = run["escalations"].as_array().unwrap();
    assert!(
        escalations.iter().any(|e| e["severity"] == "critical" && e["message"].as_str().unwrap().contains("id_rsa")),
        "{escalations:#?}"
    );
    // No secret in the record.
    assert!(!run.to_string().contains("hunter2-planted-value"), "a secret leaked into the run record");

    let (status, body) = s.call("POST", &format!("/v1/runs/{id}/approve"), Some(ADMIN), Some("{}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = s.wait_final(&id).await;
    assert_eq!(run["run"]["status"], "succeeded", "{run:#}");
    // Fixed: no write for others, the key for its owner only.
    assert_eq!((mode(&key), mode(&script)), (0o600, 0o664));
    let fixed = &step(&run, "fix_files")[0]["output"]["fixed"];
    assert_eq!(fixed.as_array().unwrap().len(), 2, "{fixed:#}");
    // Re-audited: both resolved, the .env password still open.
    let reaudit = &step(&run, "reaudit")[0]["output"];
    let resolved: Vec<&str> =
        reaudit["resolved"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(resolved.len(), 2, "{reaudit:#}");
    assert!(reaudit["still_open"].to_string().contains("env_secret"), "{reaudit:#}");

    // Two weeks later: nothing new, nothing to fix, nothing raised again.
    let (_, body) =
        s.call("POST", "/v1/runbooks/security-hardening/runs", Some(TRIGGER), Some(&params.to_string())).await;
    let second = s.wait_final(body["run_id"].as_str().unwrap()).await;
    assert_eq!(second["run"]["status"], "succeeded", "{second:#}");
    assert_eq!(step(&second, "files")[0]["output"]["counts"]["new"], 0);
    assert_eq!(step(&second, "headers")[0]["output"]["counts"]["new"], 0, "header problems are not raised again");
    assert!(step(&second, "headers")[0]["findings"].as_array().unwrap().is_empty());
    assert_eq!(step(&second, "fix_files")[0]["status"], "skipped");
    assert!(second["approvals"].as_array().unwrap().is_empty());
    assert!(
        !second["escalations"].as_array().unwrap().iter().any(|e| e["severity"] == "critical"),
        "{:#}",
        second["escalations"]
    );
}
