//! End-to-end tests of the fault switches against the real binary: each
//! fault moves the metric (or health) it should, each admin action cures
//! exactly the faults the README says, and the bad release survives them
//! all. The service runs 200 synthetic requests a second and restarts in
//! 200 ms, so every condition shows within a second or two; each wait is a
//! poll with a deadline, never a fixed sleep that a slow machine could miss.

mod common;

use common::{Service, quantile, share};
use serde_json::{Value, json};

const ALL_FAULTS: &str = r#"{"latency_ms": 300, "error_rate": 0.5, "high_cpu": true, "memory_growth": true,
                             "cache_misses": true, "down": true, "bad_release": true}"#;

fn switches(on: &[&str]) -> Value {
    let mut faults = json!({"latency_ms": 0, "error_rate": 0.0, "high_cpu": false, "memory_growth": false,
                            "cache_misses": false, "down": false, "bad_release": false});
    for name in on {
        faults[*name] = match *name {
            "latency_ms" => json!(300),
            "error_rate" => json!(0.5),
            _ => json!(true),
        };
    }
    faults
}

#[test]
fn faults_update_partially_show_in_get_and_delete_switches_them_all_off() {
    let service = Service::start(&["--traffic-rps", "0"]);
    assert_eq!(service.admin_ok("GET", "/admin/faults", None), switches(&[]));
    assert_eq!(service.faults(r#"{"latency_ms": 300}"#), switches(&["latency_ms"]));
    assert_eq!(service.faults(r#"{"bad_release": true}"#), switches(&["latency_ms", "bad_release"]));
    assert_eq!(service.faults("{}"), switches(&["latency_ms", "bad_release"]));
    assert_eq!(service.faults(r#"{"latency_ms": 0}"#), switches(&["bad_release"]));
    assert_eq!(service.admin_ok("GET", "/admin/faults", None), switches(&["bad_release"]));
    service.faults(ALL_FAULTS);
    assert_eq!(service.admin_ok("DELETE", "/admin/faults", None), switches(&[]));
    assert_eq!(service.admin_ok("GET", "/admin/faults", None), switches(&[]));
}

#[test]
fn each_admin_action_switches_off_exactly_the_faults_it_cures() {
    let service = Service::start(&[]);
    service.faults(ALL_FAULTS);
    service.restart_and_wait();
    assert_eq!(
        service.admin_ok("GET", "/admin/faults", None),
        switches(&["high_cpu", "cache_misses", "bad_release"]),
        "a restart cures latency, errors, the leak and down"
    );
    service.faults(ALL_FAULTS);
    service.scale(5);
    assert_eq!(
        service.admin_ok("GET", "/admin/faults", None),
        switches(&["latency_ms", "error_rate", "high_cpu", "memory_growth", "cache_misses", "down", "bad_release"]),
        "scaling switches nothing off"
    );
    let cleared = service.admin_ok("POST", "/admin/cache/clear", None);
    assert!(cleared["cleared_entries"].as_u64().unwrap() > 0, "{cleared}");
    assert_eq!(
        service.admin_ok("GET", "/admin/faults", None),
        switches(&["latency_ms", "error_rate", "high_cpu", "memory_growth", "down", "bad_release"]),
        "a cache clear cures only the poisoned cache"
    );
}

#[test]
fn down_answers_503_everywhere_until_a_restart_which_answers_503_while_it_runs() {
    // Long enough that the checks made while it restarts never see it done,
    // however busy the machine.
    let service = Service::start(&["--restart-ms", "6000"]);
    service.faults(r#"{"down": true}"#);
    let health = service.get("/healthz");
    assert_eq!((health.status, health.json()), (503, json!({"status": "down"})));
    let item = service.get("/api/items/1");
    assert_eq!((item.status, item.error()), (503, "service unavailable: down".to_string()));
    assert_eq!(service.value("demo_up"), 0.0);
    service.settle();
    let from = service.metrics();
    let to = service.after_requests(&from, 100.0);
    assert_eq!(share(&from, &to, "503"), 1.0);

    let reply = service.admin("POST", "/admin/restart", None);
    assert_eq!((reply.status, reply.json()), (202, json!({"status": "restarting", "restart_ms": 6000})));
    let health = service.get("/healthz");
    assert_eq!((health.status, health.json()), (503, json!({"status": "restarting"})));
    let again = service.admin("POST", "/admin/restart", None);
    assert_eq!(
        (again.status, again.error()),
        (409, "a restart is already in progress: wait until /healthz answers 200".to_string())
    );
    assert_eq!(service.value("demo_restarts_total"), 0.0, "counted when it completes");
    service.eventually("the restart completes", || service.get("/healthz").status == 200);
    assert_eq!(service.get("/healthz").json(), json!({"status": "ok"}));
    let metrics = service.metrics();
    assert_eq!(metrics.value("demo_up"), Some(1.0));
    assert_eq!(metrics.value("demo_restarts_total"), Some(1.0));
    service.settle();
    let from = service.metrics();
    let to = service.after_requests(&from, 100.0);
    assert_eq!(share(&from, &to, "200"), 1.0);
}

#[test]
fn extra_latency_raises_p95_and_a_restart_brings_it_back() {
    let service = Service::start(&[]);
    let from = service.metrics();
    let to = service.after_requests(&from, 100.0);
    let healthy = quantile(0.95, &from, &to);
    assert!(healthy < 0.1, "healthy p95 {healthy}");

    service.faults(r#"{"latency_ms": 300}"#);
    service.settle();
    let from = service.metrics();
    let to = service.after_requests(&from, 100.0);
    let slow = quantile(0.95, &from, &to);
    assert!(slow >= 0.25, "p95 with 300 ms added: {slow}");
    let start = std::time::Instant::now();
    assert_eq!(service.get("/healthz").status, 200);
    assert!(start.elapsed().as_millis() >= 300, "health checks wait too");

    service.restart_and_wait();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let from = service.metrics();
    let to = service.after_requests(&from, 100.0);
    let cured = quantile(0.95, &from, &to);
    assert!(cured < 0.1, "p95 after the restart {cured}");
}

#[test]
fn an_error_rate_fails_that_share_of_requests_and_a_restart_stops_it() {
    let service = Service::start(&[]);
    service.faults(r#"{"error_rate": 0.5}"#);
    service.settle();
    let from = service.metrics();
    let to = service.after_requests(&from, 400.0);
    let failed = share(&from, &to, "500");
    assert!((0.4..0.6).contains(&failed), "{failed} failed");
    let item = service.get("/api/items/1");
    assert!([200, 500].contains(&item.status));

    service.scale(4);
    service.clear_cache();
    service.settle();
    let from = service.metrics();
    let to = service.after_requests(&from, 400.0);
    assert!(share(&from, &to, "500") > 0.4, "scale and cache clear leave the errors");

    service.restart_and_wait();
    service.settle();
    let from = service.metrics();
    let to = service.after_requests(&from, 400.0);
    assert_eq!(share(&from, &to, "500"), 0.0);
}

#[test]
fn high_cpu_saturates_the_cpu_and_only_more_replicas_bring_it_down() {
    let service = Service::start(&[]);
    service.eventually("a full rate window", || service.metrics().requests() > 200.0);
    let idle = service.value("demo_cpu_usage_ratio");
    assert!(idle < 0.5, "cpu at 200 requests a second {idle}");

    service.faults(r#"{"high_cpu": true}"#);
    assert_eq!(service.value("demo_cpu_usage_ratio"), 1.0);
    service.restart_and_wait();
    service.clear_cache();
    assert_eq!(service.value("demo_cpu_usage_ratio"), 1.0, "restart and cache clear leave it");

    service.scale(2);
    let two = service.value("demo_cpu_usage_ratio");
    assert!(two < 0.8, "cpu with 2 replicas {two}");
    service.scale(4);
    let four = service.value("demo_cpu_usage_ratio");
    assert!(four < two, "cpu with 4 replicas {four}");
    service.scale(1);
    assert_eq!(service.value("demo_cpu_usage_ratio"), 1.0, "scaling back down brings it back");
}

#[test]
fn memory_grows_with_the_leak_and_only_a_restart_frees_it() {
    let service = Service::start(&[]);
    assert_eq!(service.value("demo_memory_usage_ratio"), 0.3);
    service.faults(r#"{"memory_growth": true}"#);
    service.eventually("memory grows", || service.value("demo_memory_usage_ratio") > 0.4);
    service.scale(5);
    service.clear_cache();
    let after_cures = service.value("demo_memory_usage_ratio");
    assert!(after_cures > 0.4, "scale and cache clear free nothing: {after_cures}");
    service.eventually("memory keeps growing", || service.value("demo_memory_usage_ratio") > after_cures + 0.02);

    service.restart_and_wait();
    assert_eq!(service.value("demo_memory_usage_ratio"), 0.3);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(service.value("demo_memory_usage_ratio"), 0.3, "the leak is gone");
}

#[test]
fn a_poisoned_cache_drops_the_hit_ratio_and_only_a_cache_clear_restores_it() {
    let service = Service::start(&[]);
    service.eventually("the cache warms up", || service.metrics().value("demo_cache_hit_ratio") > Some(0.7));

    service.faults(r#"{"cache_misses": true}"#);
    service.eventually("every lookup misses", || service.value("demo_cache_hit_ratio") == 0.0);
    service.restart_and_wait();
    service.scale(3);
    let from = service.metrics();
    service.after_requests(&from, 250.0);
    assert_eq!(service.value("demo_cache_hit_ratio"), 0.0, "restart and scale leave the poison");

    let cleared = service.admin_ok("POST", "/admin/cache/clear", None);
    assert!(cleared["cleared_entries"].as_u64().unwrap() > 0);
    assert_eq!(service.admin_ok("GET", "/admin/faults", None)["cache_misses"], false);
    service.eventually("the hit ratio recovers", || service.value("demo_cache_hit_ratio") > 0.7);
}

#[test]
fn a_bad_release_survives_restart_scale_and_cache_clear_and_only_an_operator_ends_it() {
    let service = Service::start(&[]);
    service.faults(r#"{"bad_release": true}"#);
    service.settle();
    let from = service.metrics();
    let to = service.after_requests(&from, 500.0);
    let failed = share(&from, &to, "500");
    assert!((0.2..0.4).contains(&failed), "{failed} failed");
    assert_eq!(service.get("/healthz").status, 200, "health checks pass");

    service.restart_and_wait();
    service.scale(10);
    service.clear_cache();
    service.settle();
    assert_eq!(service.admin_ok("GET", "/admin/faults", None), switches(&["bad_release"]));
    let from = service.metrics();
    let to = service.after_requests(&from, 500.0);
    let failed = share(&from, &to, "500");
    assert!((0.2..0.4).contains(&failed), "{failed} failed after every cure");

    service.admin_ok("DELETE", "/admin/faults", None);
    service.settle();
    let from = service.metrics();
    let to = service.after_requests(&from, 400.0);
    assert_eq!(share(&from, &to, "500"), 0.0);
}
