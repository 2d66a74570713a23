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
//!
//! Several hosts on one database: SERVE_LOAD_HOSTS (e.g. `1,2,3`) and/or
//! SERVE_LOAD_DB (`sqlite`, `postgres` or `sqlite,postgres`) switch to that
//! mode. For each host count, and for each backend in turn, it starts that
//! many `tend serve` processes sharing one database (SQLite: one `tend.db`
//! in the scratch directory, given to each through `TEND_DB`; PostgreSQL: a
//! fresh database of a throw-away cluster of `tests/support/postgres.rs`,
//! which needs Debian's `postgresql` server binaries), spreads the client
//! tasks round-robin over the processes, and measures the one-step runbook
//! only. Every accepted run in the shared database must be succeeded. One
//! Markdown row per (backend, hosts): runs completed/s, trigger latency, the
//! CPU of all the tend processes, of the PostgreSQL server (postmaster and
//! backends), of the client and of the whole machine, and the measured runs
//! each process finished (its `tend_runs_total`).

#[path = "../../tests/support/postgres.rs"]
mod pg;
mod support;

use ::tend::store::{AttemptStatus, RunFilter, RunStatus, Store};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    Server, clock_ticks, cpu_seconds, env_num, epoch_ms, machine_busy_seconds, ms, percentile, tend_binary,
    tree_cpu_seconds, vm_kib,
};

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
    /// Triggers accepted, by the index of the URL they went to.
    accepted_by: Vec<usize>,
}

/// Fires triggers from `clients` tasks until `until` passes or `count` are
/// sent; task `i` sends to `urls[i % urls.len()]` (round-robin over servers).
async fn fire(
    http: &reqwest::Client,
    urls: &[String],
    clients: usize,
    until: Option<Instant>,
    count: Option<u64>,
) -> Fired {
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (http, url, sent) = (http.clone(), urls[i % urls.len()].clone(), sent.clone());
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
    let mut all = Fired { accepted_by: vec![0; urls.len()], ..Fired::default() };
    for (i, t) in tasks.into_iter().enumerate() {
        let f = t.await.unwrap();
        all.accepted_by[i % urls.len()] += f.run_ids.len();
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

/// Durability: every accepted run (warm-up included) is in the database at
/// `db` (a SQLite path or a postgres:// URL), succeeded, with one succeeded
/// attempt per step, and nothing else of `runbook` is. Returns the verdict
/// and the latest `finished_at` (epoch ms) of the measured runs.
async fn verify(db: &str, runbook: &str, steps: usize, warm: &Fired, fired: &Fired) -> (String, i64) {
    let store = Store::open(db).await.unwrap();
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
    (durable, last_finished)
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
    let urls = [url];
    let warm = fire(&http, &urls, clients, None, Some(warmup)).await;
    assert!(warm.errors.is_empty(), "warm-up errors: {:?}", warm.errors);
    wait_all_final(&http, &server.base, runbook).await;

    let server_pid = server.pid.to_string();
    let (cpu0, self0) = (cpu_seconds(&server_pid, tick), cpu_seconds("self", tick));
    let start_ms = epoch_ms();
    let start = Instant::now();
    let fired = fire(&http, &urls, clients, Some(start + Duration::from_secs(secs)), None).await;
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

    let (durable, last_finished) = verify(dir.join("tend.db").to_str().unwrap(), runbook, steps, &warm, &fired).await;

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

/// Where the processes of the several-hosts mode keep their shared record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    /// One `tend.db` file in the scratch directory, shared through `TEND_DB`.
    Sqlite,
    /// A fresh database of the bench's throw-away PostgreSQL cluster.
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// One (backend, host count) of the several-hosts mode.
struct HostsRow {
    backend: Backend,
    hosts: usize,
    window: f64,
    accepted: usize,
    errors: BTreeMap<String, u64>,
    completed_per_s: f64,
    span: f64,
    drain: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// CPU seconds of each `tend serve` over the measured span.
    host_cpu: Vec<f64>,
    /// CPU seconds of the PostgreSQL server (postmaster and backends).
    pg_cpu: Option<f64>,
    client_cpu: f64,
    /// Busy seconds of all the machine's CPUs (anything running on it).
    machine_busy: f64,
    wall: f64,
    /// Measured runs each process finished (its `tend_runs_total`).
    executed: Vec<u64>,
    /// Triggers each process accepted in the measured window.
    accepted_by: Vec<usize>,
    hwm_kib: Vec<u64>,
    durable: String,
}

/// Runs of `runbook` a server has finished (its `tend_runs_total`, any status).
async fn runs_finished(http: &reqwest::Client, base: &str, runbook: &str) -> u64 {
    let text = http
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    let label = format!("runbook=\"{runbook}\"");
    text.lines()
        .filter(|l| l.starts_with("tend_runs_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The postmaster's pid, from `postmaster.pid` in the cluster's data directory.
fn postmaster_pid(cluster: &pg::Postgres) -> u32 {
    let file = cluster.socket_dir().join("data").join("postmaster.pid");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    text.lines().next().and_then(|l| l.trim().parse().ok()).expect("a pid in postmaster.pid")
}

/// `hosts` processes of `tend serve` on one database of `backend`, the
/// clients spread round-robin over them, the one-step runbook only.
async fn hosts_scenario(bin: &Path, backend: Backend, hosts: usize, cluster: Option<&pg::Postgres>) -> HostsRow {
    let secs = env_num("SERVE_LOAD_SECS", 10);
    let clients = env_num("SERVE_LOAD_CLIENTS", 32) as usize;
    let warmup = env_num("SERVE_LOAD_WARMUP", 200);
    let max_runs = env_num("SERVE_LOAD_MAX_RUNS", 256);
    let tick = clock_ticks();
    let (runbook, steps) = ("one", 1);

    let scratch = tempfile::Builder::new().prefix("tend-serve-load-hosts-").tempdir().unwrap();
    let db = match backend {
        Backend::Sqlite => scratch.path().join("tend.db").to_str().unwrap().to_string(),
        Backend::Postgres => {
            let cluster = cluster.expect("a PostgreSQL cluster");
            cluster.unique_database("serve_load").unwrap_or_else(|e| panic!("creating a database: {e}")).1
        }
    };
    let mut servers = Vec::new();
    for i in 0..hosts {
        // Each process its own directory (config, runbooks, log); the database is shared.
        let dir = scratch.path().join(format!("host-{i}"));
        std::fs::create_dir_all(dir.join("runbooks")).unwrap();
        std::fs::write(dir.join("runbooks").join(format!("{runbook}.yaml")), runbook_yaml(runbook, steps)).unwrap();
        std::fs::write(
            dir.join("tend.toml"),
            format!("rate_limit = 1000000\nmax_concurrent_runs = {max_runs}\nretention = \"forever\"\n"),
        )
        .unwrap();
        // One after another: the first applies the migrations.
        servers.push(Server::start_with_env(bin, &dir, TOKEN, &[("TEND_DB", &db)]).await);
    }
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients * 2).build().unwrap();
    let urls: Vec<String> = servers.iter().map(|s| format!("{}/v1/runbooks/{runbook}/runs", s.base)).collect();
    let base0 = servers[0].base.clone();

    let warm = fire(&http, &urls, clients, None, Some(warmup)).await;
    assert!(warm.errors.is_empty(), "warm-up errors: {:?}", warm.errors);
    wait_all_final(&http, &base0, runbook).await;

    let mut finished0 = Vec::new();
    for s in &servers {
        finished0.push(runs_finished(&http, &s.base, runbook).await);
    }
    let pids: Vec<String> = servers.iter().map(|s| s.pid.to_string()).collect();
    let postmaster = cluster.filter(|_| backend == Backend::Postgres).map(postmaster_pid);
    let host_cpu0: Vec<f64> = pids.iter().map(|p| cpu_seconds(p, tick)).collect();
    let pg_cpu0 = postmaster.map(|p| tree_cpu_seconds(p, tick));
    let (self0, busy0) = (cpu_seconds("self", tick), machine_busy_seconds(tick));
    let start_ms = epoch_ms();
    let start = Instant::now();
    let fired = fire(&http, &urls, clients, Some(start + Duration::from_secs(secs)), None).await;
    let fired_end = Instant::now();
    let all_final = wait_all_final(&http, &base0, runbook).await;
    let host_cpu: Vec<f64> = pids.iter().zip(&host_cpu0).map(|(p, c0)| cpu_seconds(p, tick) - c0).collect();
    let pg_cpu = postmaster.zip(pg_cpu0).map(|(p, c0)| tree_cpu_seconds(p, tick) - c0);
    let (client_cpu, machine_busy) = (cpu_seconds("self", tick) - self0, machine_busy_seconds(tick) - busy0);
    let hwm_kib: Vec<u64> = servers.iter().map(|s| vm_kib(s.pid, "VmHWM:")).collect();
    let mut executed = Vec::new();
    for (s, f0) in servers.iter().zip(&finished0) {
        executed.push(runs_finished(&http, &s.base, runbook).await - f0);
    }
    for s in servers {
        s.stop().await;
    }
    // What the processes logged at WARN or ERROR (their logs go with the scratch dir).
    for i in 0..hosts {
        let log =
            std::fs::read_to_string(scratch.path().join(format!("host-{i}")).join("server.log")).unwrap_or_default();
        let noted: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
        if !noted.is_empty() {
            eprintln!(
                "serve_load: {} × {hosts}, process {i}: {} WARN/ERROR lines in its log, first ones:",
                backend.name(),
                noted.len()
            );
            for l in noted.iter().take(8) {
                eprintln!("  {}", l.chars().take(400).collect::<String>());
            }
        }
    }

    let (durable, last_finished) = verify(&db, runbook, steps, &warm, &fired).await;
    let mut lat = fired.latencies.clone();
    lat.sort();
    let window = fired_end.duration_since(start).as_secs_f64();
    let span = (last_finished - start_ms) as f64 / 1000.0;
    HostsRow {
        backend,
        hosts,
        window,
        accepted: fired.run_ids.len(),
        errors: fired.errors,
        completed_per_s: fired.run_ids.len() as f64 / span,
        span,
        drain: all_final.duration_since(fired_end).as_secs_f64(),
        p50: percentile(&lat, 50.0),
        p99: percentile(&lat, 99.0),
        max: lat.last().copied().unwrap_or_default(),
        host_cpu,
        pg_cpu,
        client_cpu,
        machine_busy,
        wall: all_final.duration_since(start).as_secs_f64(),
        executed,
        accepted_by: fired.accepted_by,
        hwm_kib,
        durable,
    }
}

/// A comma-separated list from the environment, or `default`.
fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// SERVE_LOAD_HOSTS / SERVE_LOAD_DB: several `tend serve` on one database,
/// every (host count, backend) one after another in this one invocation.
fn several_hosts(bin: &Path, rt: &tokio::runtime::Runtime) {
    let hosts: Vec<usize> = env_list("SERVE_LOAD_HOSTS", "1")
        .iter()
        .map(|h| h.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| panic!("SERVE_LOAD_HOSTS: {h:?} is not a count")))
        .collect();
    let backends: Vec<Backend> = env_list("SERVE_LOAD_DB", "sqlite")
        .iter()
        .map(|b| match b.as_str() {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            other => panic!("SERVE_LOAD_DB: {other:?} is neither sqlite nor postgres"),
        })
        .collect();
    let secs = env_num("SERVE_LOAD_SECS", 10);
    let clients = env_num("SERVE_LOAD_CLIENTS", 32);
    let max_runs = env_num("SERVE_LOAD_MAX_RUNS", 256);
    let cluster = backends
        .contains(&Backend::Postgres)
        .then(|| pg::Postgres::start().unwrap_or_else(|e| panic!("starting a PostgreSQL cluster: {e}")));
    let (f50, f99) = fsync_p50(&std::env::temp_dir());
    println!(
        "serve_load, several hosts: {} · runbook `one` (1 step) · {secs} s of triggers from {clients} clients spread round-robin over the processes · max_concurrent_runs = {max_runs} per process · nproc = {}",
        bin.display(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("4 KiB write + fdatasync in {}: p50 {}, p99 {}", std::env::temp_dir().display(), ms(f50), ms(f99));
    if let Some(c) = &cluster {
        let version = c.psql("postgres", "SHOW server_version").unwrap_or_default();
        let settings = c
            .psql("postgres", "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_connections')")
            .unwrap_or_default();
        println!("PostgreSQL {version} (tests/support/postgres.rs: data in {}; {settings})", c.socket_dir().display());
    }
    let rows: Vec<HostsRow> = rt.block_on(async {
        let mut rows = Vec::new();
        for &n in &hosts {
            for &backend in &backends {
                let row = hosts_scenario(bin, backend, n, cluster.as_ref()).await;
                eprintln!("serve_load: {} with {n} host(s) done", backend.name());
                rows.push(row);
            }
        }
        rows
    });

    println!();
    println!(
        "| database | hosts | triggers accepted | runs completed/s | trigger p50 | trigger p99 | trigger max | tend CPU (all processes) | PostgreSQL CPU | client CPU | machine busy | runs finished per process |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let cores = |secs: f64, wall: f64| format!("{:.2} cores", secs / wall);
    for r in &rows {
        println!(
            "| {} | {} | {} in {:.1} s | {:.1} | {} | {} | {} | {} | {} | {} | {} of {} | {} |",
            r.backend.name(),
            r.hosts,
            r.accepted,
            r.window,
            r.completed_per_s,
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            cores(r.host_cpu.iter().sum(), r.wall),
            r.pg_cpu.map(|c| cores(c, r.wall)).unwrap_or_else(|| "–".into()),
            cores(r.client_cpu, r.wall),
            cores(r.machine_busy, r.wall),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            r.executed.iter().map(u64::to_string).collect::<Vec<_>>().join(" + "),
        );
    }
    println!();
    for r in &rows {
        let tend_cpu: f64 = r.host_cpu.iter().sum();
        println!(
            "- {} × {}: triggers accepted per process {}; tend CPU per process {}; CPU per run: tend {:.3} ms{}; peak RSS per process {}; last run final {:.1} s after the first measured trigger ({:.1} s after the last); errors: {}; durability: {}",
            r.backend.name(),
            r.hosts,
            r.accepted_by.iter().map(usize::to_string).collect::<Vec<_>>().join(" + "),
            r.host_cpu.iter().map(|c| cores(*c, r.wall)).collect::<Vec<_>>().join(", "),
            1000.0 * tend_cpu / r.accepted as f64,
            r.pg_cpu.map(|c| format!(", PostgreSQL {:.3} ms", 1000.0 * c / r.accepted as f64)).unwrap_or_default(),
            r.hwm_kib.iter().map(|k| format!("{:.1} MiB", *k as f64 / 1024.0)).collect::<Vec<_>>().join(", "),
            r.span,
            r.drain,
            if r.errors.is_empty() { "none".to_string() } else { format!("{:?}", r.errors) },
            r.durable
        );
    }
    for &n in &hosts {
        let find = |b: Backend| rows.iter().find(|r| r.backend == b && r.hosts == n);
        if let (Some(s), Some(p)) = (find(Backend::Sqlite), find(Backend::Postgres)) {
            println!(
                "- {n} host(s), ratio PostgreSQL/SQLite: runs completed/s {:.2}, trigger p50 {:.2}, p99 {:.2}",
                p.completed_per_s / s.completed_per_s,
                p.p50.as_secs_f64() / s.p50.as_secs_f64(),
                p.p99.as_secs_f64() / s.p99.as_secs_f64(),
            );
        }
    }
    drop(cluster);
}

fn main() {
    let bin = tend_binary("serve_load");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if std::env::var_os("SERVE_LOAD_HOSTS").is_some() || std::env::var_os("SERVE_LOAD_DB").is_some() {
        several_hosts(&bin, &rt);
        return;
    }
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
