//! Sustained trigger load on `tend serve` over loopback
//! (`cargo build --release && cargo bench --bench serve_load`).
//!
//! For a one-step and a five-step runbook (`echo` steps), it starts a fresh
//! `tend serve` (the release binary, `target/release/tend`) in a scratch
//! directory, warms it up, then has N client tasks fire
//! `POST /v1/runbooks/{name}/runs` back to back for a fixed time, measuring
//! each request. It then waits until every accepted run is final, reads the
//! server's peak RSS and CPU time, stops it with SIGTERM, and opens its
//! `tend.db` with `tend::store::Store` to check that every accepted run is
//! recorded as succeeded with every step attempt succeeded.
//!
//! Reported per runbook: triggers accepted per second, runs completed per
//! second (measured runs / time from the first measured trigger to the last
//! measured run's `finished_at`), p50/p99/max trigger latency, peak RSS
//! (VmHWM) of the server, and CPU used by the server and by this client.
//! Also the latency of a 4 KiB write + fdatasync in the scratch directory,
//! since every SQLite commit under `synchronous = FULL` pays one.
//!
//! Knobs (environment): SERVE_LOAD_SECS (10), SERVE_LOAD_CLIENTS (32),
//! SERVE_LOAD_WARMUP (200), SERVE_LOAD_MAX_RUNS (`max_concurrent_runs`, 256).
//! TEND_LOG is passed through to the server (its log goes to a file).
//! SERVE_LOAD_BASELINE=/path/to/another/tend measures that binary too, side
//! by side: for each runbook the baseline runs first, then
//! `target/release/tend`, and the ratios of the two are printed.

mod support;

use ::tend::store::{AttemptStatus, RunFilter, RunStatus, Store};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Server, clock_ticks, cpu_seconds, env_num, epoch_ms, ms, percentile, tend_binary, vm_kib};

const TOKEN: &str = "serve-load-bench-token";

fn runbook_yaml(name: &str, steps: usize) -> String {
    let mut y = format!("name: {name}\ntriggers: [{{http: true}}]\nsteps:\n");
    for i in 0..steps {
        y.push_str(&format!("  - id: {}\n    plugin: echo\n", (b'a' + i as u8) as char));
    }
    y
}

/// p50 of 200 × (4 KiB write + fdatasync) in `dir`: what one durable commit costs at least.
fn fsync_p50(dir: &Path) -> (Duration, Duration) {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = [0x5au8; 4096];
    let mut v = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        f.write_all(&block).unwrap();
        f.sync_data().unwrap();
        v.push(t.elapsed());
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    v.sort();
    (percentile(&v, 50.0), percentile(&v, 99.0))
}

/// Per-request results of the clients.
#[derive(Default)]
struct Fired {
    latencies: Vec<Duration>,
    run_ids: Vec<String>,
    errors: BTreeMap<String, u64>,
}

/// Fires triggers from `clients` tasks until `until` passes or `count` are sent.
async fn fire(http: &reqwest::Client, url: &str, clients: usize, until: Option<Instant>, count: Option<u64>) -> Fired {
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, sent) = (http.clone(), url.to_string(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Fired::default();
            loop {
                if until.is_some_and(|u| Instant::now() >= u) {
                    break;
                }
                if let Some(c) = count
                    && sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= c
                {
                    break;
                }
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await;
                let r = match r {
                    Ok(resp) => {
                        let status = resp.status();
                        resp.bytes().await.map(|b| (status, b))
                    }
                    Err(e) => Err(e),
                };
                let took = t.elapsed();
                match r {
                    Ok((status, body)) if status.as_u16() == 202 => {
                        let v: serde_json::Value = serde_json::from_slice(&body).expect("202 body is JSON");
                        out.run_ids.push(v["run_id"].as_str().expect("run_id").to_string());
                        out.latencies.push(took);
                    }
                    Ok((status, body)) => {
                        let key = format!(
                            "HTTP {} {}",
                            status.as_u16(),
                            String::from_utf8_lossy(&body).chars().take(120).collect::<String>()
                        );
                        *out.errors.entry(key).or_default() += 1;
                    }
                    Err(e) => *out.errors.entry(format!("request: {e}")).or_default() += 1,
                }
            }
            out
        }));
    }
    let mut all = Fired::default();
    for t in tasks {
        let f = t.await.unwrap();
        all.latencies.extend(f.latencies);
        all.run_ids.extend(f.run_ids);
        for (k, v) in f.errors {
            *all.errors.entry(k).or_default() += v;
        }
    }
    all
}

/// Waits until no run of `runbook` is queued or running.
async fn wait_all_final(http: &reqwest::Client, base: &str, runbook: &str) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let mut busy = false;
        for status in ["queued", "running"] {
            let url = format!("{base}/v1/runs?runbook={runbook}&status={status}&limit=1");
            let v: serde_json::Value = http
                .get(&url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap()
                .json()
                .await
                .unwrap();
            if !v["runs"].as_array().map(|a| a.is_empty()).unwrap_or(false) {
                busy = true;
                break;
            }
        }
        if !busy {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "runs of {runbook} still not final after 15 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Row {
    /// Which binary: "tend" or "baseline".
    server: &'static str,
    runbook: String,
    steps: usize,
    window: f64,
    accepted: usize,
    errors: BTreeMap<String, u64>,
    accepted_per_s: f64,
    completed_per_s: f64,
    span: f64,
    drain: f64,
    wall: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    hwm_kib: u64,
    rss_kib: u64,
    server_cpu: f64,
    client_cpu: f64,
    /// Writes per database commit over the server's life (tend_store_* counters).
    writes_per_commit: Option<f64>,
    durable: String,
}

async fn scenario(label: &'static str, bin: &Path, runbook: &str, steps: usize) -> Row {
    let secs = env_num("SERVE_LOAD_SECS", 10);
    let clients = env_num("SERVE_LOAD_CLIENTS", 32) as usize;
    let warmup = env_num("SERVE_LOAD_WARMUP", 200);
    let max_runs = env_num("SERVE_LOAD_MAX_RUNS", 256);
    let tick = clock_ticks();

    let scratch = tempfile::Builder::new().prefix("tend-serve-load-").tempdir().unwrap();
    let dir = scratch.path();
    std::fs::create_dir(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks").join(format!("{runbook}.yaml")), runbook_yaml(runbook, steps)).unwrap();
    std::fs::write(
        dir.join("tend.toml"),
        format!("rate_limit = 1000000\nmax_concurrent_runs = {max_runs}\nretention = \"forever\"\n"),
    )
    .unwrap();

    let server = Server::start(bin, dir, TOKEN).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients * 2).build().unwrap();
    let url = format!("{}/v1/runbooks/{runbook}/runs", server.base);

    // Warm-up: connections, plugin instance pools, SQLite pages; then let it settle.
    let warm = fire(&http, &url, clients, None, Some(warmup)).await;
    assert!(warm.errors.is_empty(), "warm-up errors: {:?}", warm.errors);
    wait_all_final(&http, &server.base, runbook).await;

    let server_pid = server.pid.to_string();
    let (cpu0, self0) = (cpu_seconds(&server_pid, tick), cpu_seconds("self", tick));
    let start_ms = epoch_ms();
    let start = Instant::now();
    let fired = fire(&http, &url, clients, Some(start + Duration::from_secs(secs)), None).await;
    let fired_end = Instant::now();
    let all_final = wait_all_final(&http, &server.base, runbook).await;
    let (cpu1, self1) = (cpu_seconds(&server_pid, tick), cpu_seconds("self", tick));
    let (hwm_kib, rss_kib) = (vm_kib(server.pid, "VmHWM:"), vm_kib(server.pid, "VmRSS:"));
    let metrics = http.get(format!("{}/metrics", server.base)).bearer_auth(TOKEN).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    let counter =
        |name: &str| -> Option<f64> { metrics.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok()) };
    // Servers without the counters (older binaries) show no figure.
    let writes_per_commit = match (counter("tend_store_writes_total "), counter("tend_store_commits_total ")) {
        (Some(w), Some(c)) if c > 0.0 => Some(w / c),
        _ => None,
    };
    server.stop().await;

    // Durability: every accepted run (warm-up included) is in the database,
    // succeeded, with one succeeded attempt per step.
    let store = Store::open(dir.join("tend.db").to_str().unwrap()).await.unwrap();
    let rows = store
        .list_runs(&RunFilter { runbook: Some(runbook.to_string()), limit: Some(u32::MAX), ..RunFilter::default() })
        .await
        .unwrap();
    let by_id: BTreeMap<&str, &::tend::store::RunRow> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let measured: HashSet<&str> = fired.run_ids.iter().map(String::as_str).collect();
    let mut bad = Vec::new();
    let mut last_finished = 0i64;
    for id in warm.run_ids.iter().chain(&fired.run_ids) {
        match by_id.get(id.as_str()) {
            Some(r) if r.status == RunStatus::Succeeded => {
                if measured.contains(id.as_str()) {
                    last_finished = last_finished.max(r.finished_at.unwrap_or(0));
                }
                let attempts = store.attempts(id).await.unwrap();
                let ok = attempts.iter().filter(|a| a.status == AttemptStatus::Succeeded).count();
                if attempts.len() != steps || ok != steps {
                    bad.push(format!("{id}: {ok} of {} attempts succeeded, {steps} expected", attempts.len()));
                }
            }
            Some(r) => bad.push(format!("{id}: {}", r.status)),
            None => bad.push(format!("{id}: not recorded")),
        }
    }
    let expected = warm.run_ids.len() + fired.run_ids.len();
    let durable = if bad.is_empty() && rows.len() == expected {
        format!("all {expected} runs and {} step attempts succeeded", expected * steps)
    } else {
        for b in bad.iter().take(10) {
            eprintln!("serve_load: {b}");
        }
        format!(
            "PROBLEM: {} of {expected} runs not recorded as succeeded; {} rows in the database",
            bad.len(),
            rows.len()
        )
    };

    let mut lat = fired.latencies.clone();
    lat.sort();
    let window = fired_end.duration_since(start).as_secs_f64();
    let span = (last_finished - start_ms) as f64 / 1000.0;
    Row {
        server: label,
        runbook: runbook.to_string(),
        steps,
        window,
        accepted: fired.run_ids.len(),
        errors: fired.errors,
        accepted_per_s: fired.run_ids.len() as f64 / window,
        completed_per_s: fired.run_ids.len() as f64 / span,
        span,
        drain: all_final.duration_since(fired_end).as_secs_f64(),
        wall: all_final.duration_since(start).as_secs_f64(),
        p50: percentile(&lat, 50.0),
        p99: percentile(&lat, 99.0),
        max: lat.last().copied().unwrap_or_default(),
        hwm_kib,
        rss_kib,
        server_cpu: cpu1 - cpu0,
        client_cpu: self1 - self0,
        writes_per_commit,
        durable,
    }
}

fn main() {
    let bin = tend_binary("serve_load");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let secs = env_num("SERVE_LOAD_SECS", 10);
    let clients = env_num("SERVE_LOAD_CLIENTS", 32);
    let max_runs = env_num("SERVE_LOAD_MAX_RUNS", 256);
    let (f50, f99) = fsync_p50(&std::env::temp_dir());
    println!(
        "serve_load: {} · {secs} s of triggers from {clients} clients per runbook · max_concurrent_runs = {max_runs} · nproc = {}",
        bin.display(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("4 KiB write + fdatasync in {}: p50 {}, p99 {}", std::env::temp_dir().display(), ms(f50), ms(f99));
    let baseline = std::env::var_os("SERVE_LOAD_BASELINE").map(PathBuf::from);
    if let Some(b) = &baseline {
        println!("baseline: {}", b.display());
    }
    let mut servers: Vec<(&'static str, PathBuf)> = Vec::new();
    servers.extend(baseline.map(|b| ("baseline", b)));
    servers.push(("tend", bin));
    let rows: Vec<Row> = rt.block_on(async {
        let mut rows = Vec::new();
        for (name, steps) in [("one", 1), ("five", 5)] {
            for (server, bin) in &servers {
                let row = scenario(server, bin, name, steps).await;
                eprintln!("serve_load: {name} on {server} done");
                rows.push(row);
            }
        }
        rows
    });

    println!();
    println!(
        "| server | runbook | triggers accepted | accepted/s | runs completed/s | trigger p50 | trigger p99 | trigger max | peak RSS (VmHWM) | server CPU | client CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} ({} step{}) | {} in {:.1} s | {:.0} | {:.1} | {} | {} | {} | {:.1} MiB | {:.0}% of a core | {:.0}% of a core |",
            r.server,
            r.runbook,
            r.steps,
            if r.steps == 1 { "" } else { "s" },
            r.accepted,
            r.window,
            r.accepted_per_s,
            r.completed_per_s,
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            r.hwm_kib as f64 / 1024.0,
            100.0 * r.server_cpu / r.wall,
            100.0 * r.client_cpu / r.wall,
        );
    }
    println!();
    for r in &rows {
        println!(
            "- {} on {}: last run final {:.1} s after the first measured trigger ({:.1} s after the last); RSS at the end {:.1} MiB; writes per commit: {}; errors: {}; durability: {}",
            r.runbook,
            r.server,
            r.span,
            r.drain,
            r.rss_kib as f64 / 1024.0,
            r.writes_per_commit.map(|w| format!("{w:.1}")).unwrap_or_else(|| "n/a".into()),
            if r.errors.is_empty() { "none".to_string() } else { format!("{:?}", r.errors) },
            r.durable
        );
    }
    for pair in rows.chunks(2).filter(|p| p.len() == 2 && p[0].server == "baseline") {
        let (b, t) = (&pair[0], &pair[1]);
        println!(
            "- {} ratio tend/baseline: runs completed/s {:.2}, trigger p50 {:.3}, p99 {:.3}, server CPU per run {:.3}",
            t.runbook,
            t.completed_per_s / b.completed_per_s,
            t.p50.as_secs_f64() / b.p50.as_secs_f64(),
            t.p99.as_secs_f64() / b.p99.as_secs_f64(),
            (t.server_cpu / t.accepted as f64) / (b.server_cpu / b.accepted as f64),
        );
    }
    let one = rows.iter().find(|r| r.server == "tend" && r.steps == 1).expect("the one-step row");
    println!();
    println!(
        "Target (>= 2000 one-step runs/s, trigger p99 < 20 ms): runs/s {:.1} -> {}; p99 {} -> {}",
        one.completed_per_s,
        if one.completed_per_s >= 2000.0 { "met" } else { "missed" },
        ms(one.p99),
        if one.p99 < Duration::from_millis(20) { "met" } else { "missed" },
    );
}
