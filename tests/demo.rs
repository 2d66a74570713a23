//! End-to-end tests of `tend demo` (the first run: break the embedded demo
//! service, watch health-cycle heal it) and of `tend demo service`: the demo
//! service embedded in the `tend` binary takes the options of
//! `demo-service` with the same messages, serves, and stops on SIGTERM.
//! Only 127.0.0.1 is contacted.

mod demo_support;

use demo_support::DemoService;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn demo_service(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tend"));
    cmd.args(["demo", "service"]).args(args).env_remove("DEMO_TOKEN").env_remove("TEND_LOG");
    cmd
}

#[test]
fn tend_demo_breaks_the_service_and_health_cycle_heals_it_on_a_fresh_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tend"))
        .arg("demo")
        .current_dir(dir.path())
        .env("TEND_CACHE_DIR", std::env::temp_dir().join("tend-test-cache"))
        .env_remove("TEND_DB")
        .env_remove("TEND_RUNBOOKS")
        .env_remove("TEND_PLUGINS")
        .env_remove("TEND_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tend demo failed ({}):\n{stdout}\n{stderr}", out.status);
    // The story, phase by phase, from what was recorded.
    assert!(stdout.contains("GET /healthz now answers 503."), "{stdout}");
    let detected = stdout.lines().find(|l| l.starts_with("detected    score ")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(detected.contains("/healthz is down") || detected.contains("held at 3"), "{detected}");
    assert!(stdout.contains("remediated  iteration 1: restart: POST http://127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("answered 202 Accepted"), "{stdout}");
    assert!(stdout.contains("verified    health_score after restart: "), "{stdout}");
    assert!(stdout.contains(", healthy 3 measurements in a row, after "), "{stdout}");
    // It did get better by a point and more: nothing escalated.
    assert!(!stdout.contains("escalation"), "{stdout}");
    assert!(stdout.contains("GET /healthz answers 200 now."), "{stdout}");
    // Live progress went to stderr; the run is in ./tend.db.
    assert!(stderr.contains("restart"), "{stderr}");
    let id = stdout.lines().find_map(|l| l.strip_prefix("run ")?.split_whitespace().next()).unwrap().to_string();
    let show = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["runs", "show", &id, "--json"])
        .current_dir(dir.path())
        .env_remove("TEND_DB")
        .output()
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&show.stdout).expect("tend runs show --json");
    assert_eq!(
        (record["run"]["runbook"].as_str(), record["run"]["status"].as_str()),
        (Some("health-cycle"), Some("succeeded"))
    );
}

#[test]
fn the_service_serves_health_metrics_and_admin_actions() {
    let demo = DemoService::start_with(&["--replicas", "2"]);
    assert_eq!(demo.get("/healthz").json(), json!({"status": "ok"}));
    assert_eq!(demo.metric("demo_replicas"), Some(2.0));
    demo.eventually("the built-in traffic is counted", || {
        demo.metric("demo_requests_total{status=\"200\"}").is_some_and(|n| n > 0.0)
    });
    assert!(demo.metrics_text().contains("# TYPE demo_request_duration_seconds histogram"));

    let faults = demo.set_faults(&json!({"latency_ms": 5, "down": true}));
    assert_eq!((faults["latency_ms"].clone(), faults["down"].clone()), (json!(5), json!(true)));
    assert_eq!(demo.faults(), faults);
    assert_eq!(demo.get("/healthz").status, 503);
    assert_eq!(demo.admin("POST", "/admin/restart", None).status, 202);
    demo.eventually("the restart completes", || demo.get("/healthz").status == 200);
    assert_eq!(demo.faults()["down"], false);

    let refused = demo_support::request(demo.addr(), "POST", "/admin/restart", Some("wrong"), None);
    assert_eq!((refused.status, refused.json()), (401, json!({"error": "the admin token is not valid"})));
}

#[test]
fn bad_options_are_refused_with_demo_services_messages() {
    for (args, message) in [
        (["--replicas", "0"], "error: invalid value '0' for '--replicas <N>': expected a whole number from 1 to 20"),
        (
            ["--traffic-rps", "10001"],
            "error: invalid value '10001' for '--traffic-rps <RPS>': 10001 is not in 0..=10000",
        ),
        (["--restart-ms", "60001"], "error: invalid value '60001' for '--restart-ms <MS>': 60001 is not in 0..=60000"),
        (
            ["--listen", "nowhere"],
            "error: invalid value 'nowhere' for '--listen <ADDR>': invalid socket address syntax",
        ),
    ] {
        let out = demo_service(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with(message), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_port_in_use_is_reported_and_tend_exits() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = demo_service(&["--listen", &addr, "--token", "t"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&format!("tend: cannot listen on {addr}: ")), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn the_token_can_come_from_demo_token_and_sigterm_stops_the_service() {
    let mut child = demo_service(&["--listen", "127.0.0.1:0", "--traffic-rps", "0"])
        .env("DEMO_TOKEN", demo_support::TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("{line:?}")).to_string();
    let faults = demo_support::request(&addr, "GET", "/admin/faults", Some(demo_support::TOKEN), None);
    assert_eq!(faults.status, 200, "{}", faults.body);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "tend demo service did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(0));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "", "one line on stdout");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains(demo_support::TOKEN), "{stderr}");
}

#[test]
fn without_a_token_it_says_the_admin_endpoints_refuse_everything() {
    let mut child = demo_service(&["--listen", "127.0.0.1:0", "--traffic-rps", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("{line:?}")).to_string();
    let refused = demo_support::request(&addr, "POST", "/admin/restart", Some("anything"), None);
    assert_eq!(refused.status, 403);
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        stderr,
        "demo-service: no admin token is configured: the admin endpoints refuse every request (set one with --token \
         TOKEN or DEMO_TOKEN)\n"
    );
}
