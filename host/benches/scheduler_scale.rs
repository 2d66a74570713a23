//! Cron triggers at scale on a real, otherwise idle `tend serve`
//! (`cargo build --release && cargo bench --bench scheduler_scale`).
//!
//! Writes SCHED_SCALE_RUNBOOKS (1,000) runbooks of one `echo` step, each
//! with SCHED_SCALE_TRIGGERS (10) hourly cron triggers: trigger i, counted
//! across all runbooks, fires at minute i % 60, so about 167 fire at the
//! start of every minute. Starts `tend serve` (the release binary,
//! `target/release/tend`) in a scratch directory, waits until its scheduler
//! has made a pass (`tend_scheduler_pass_timestamp_seconds` in /metrics),
//! then measures a window that starts at second 30 of a minute and lasts
//! SCHED_SCALE_SECS (120 s: two minute starts, about 333 fires):
//!
//! - the server's CPU (utime + stime from /proc/<pid>/stat) as a share of
//!   one core, over the whole window and over its quiet part (seconds 10 to
//!   50 of its first whole minute, with no fire in it);
//! - each fire's lateness: the run's `created_at` in the database (written
//!   in the transaction that records the fire) minus the scheduled instant
//!   at the end of its `trigger_source`; p50, p99, max and count of the
//!   runs created in the window.
//!
//! It also times, in this process, what `tend serve` does with the same
//! directory: one poll of the directory watcher (the runbook files and
//! their metadata, as `reload_on_change` reads them every 2 s) and one full
//! load (`runbook::load_dir`, what a reload costs). These use the library
//! this bench was built with, not the baseline's.
//!
//! SCHED_SCALE_BASELINE=/path/to/another/tend measures that binary too,
//! first, with the same runbooks in a directory of its own, and prints the
//! ratios. TEND_LOG is passed through to the server (its log goes to a
//! file).

mod support;

use ::tend::runbook::{Catalog, files_with_metadata, load_dir};
use ::tend::store::{RunFilter, RunStatus, Store, TriggerKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{Server, clock_ticks, cpu_seconds, env_num, epoch_ms, percentile, tend_binary, vm_kib};

const TOKEN: &str = "scheduler-scale-bench-token";

/// Writes the runbooks into `dir`.
fn write_runbooks(dir: &Path, runbooks: usize, triggers: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for r in 0..runbooks {
        let mut y = format!("name: rb{r:04}\ntriggers:\n");
        for t in 0..triggers {
            let i = r * triggers + t;
            y.push_str(&format!("  - cron: \"{} * * * *\"\n", i % 60));
        }
        y.push_str("steps:\n  - id: a\n    plugin: echo\n");
        std::fs::write(dir.join(format!("rb{r:04}.yaml")), y).unwrap();
    }
}

/// The server's `/metrics` text.
async fn metrics(http: &reqwest::Client, base: &str) -> String {
    match http.get(format!("{base}/metrics")).bearer_auth(TOKEN).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Sleeps until the wall clock reaches `at` (ms since the epoch).
async fn sleep_until_ms(at: i64) {
    let wait = at - epoch_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

struct Row {
    server: &'static str,
    listening_after: Duration,
    first_pass_after: Duration,
    window_s: f64,
    cpu_window: f64,
    cpu_quiet: f64,
    rss_kib: u64,
    fires: usize,
    queued: usize,
    skipped: usize,
    p50: i64,
    p99: i64,
    max: i64,
    min: i64,
    /// The server's own `tend_scheduler_lateness_seconds` over its life
    /// (taken after each fire's commit): count, sum, and the counts up to
    /// 5, 10 and 50 ms.
    histogram: (f64, f64, [f64; 3]),
}

async fn scenario(label: &'static str, bin: &Path, runbooks: usize, triggers: usize, secs: u64) -> Row {
    let tick = clock_ticks();
    let scratch = tempfile::Builder::new().prefix("tend-scheduler-scale-").tempdir().unwrap();
    let dir = scratch.path();
    write_runbooks(&dir.join("runbooks"), runbooks, triggers);
    std::fs::write(dir.join("tend.toml"), "retention = \"forever\"\n").unwrap();

    let started = Instant::now();
    let server = Server::start(bin, dir, TOKEN).await;
    let listening_after = started.elapsed();
    let http = reqwest::Client::new();
    let first_pass_after = loop {
        if metric(&metrics(&http, &server.base).await, "tend_scheduler_pass_timestamp_seconds").is_some() {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(300), "{label}: the scheduler made no pass in 5 minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // The window starts at second 30 of a minute, at least 5 s from now.
    let earliest = epoch_ms() + 5_000;
    let start = (earliest - 30_000 + 59_999).div_euclid(60_000) * 60_000 + 30_000;
    let end = start + secs as i64 * 1000;
    let pid = server.pid.to_string();
    sleep_until_ms(start).await;
    let cpu0 = cpu_seconds(&pid, tick);
    sleep_until_ms(start + 40_000).await;
    let cpu40 = cpu_seconds(&pid, tick);
    sleep_until_ms(start + 80_000).await;
    let cpu80 = cpu_seconds(&pid, tick);
    sleep_until_ms(end).await;
    let cpu1 = cpu_seconds(&pid, tick);
    let window_s = (epoch_ms() - start) as f64 / 1000.0;
    let rss_kib = vm_kib(server.pid, "VmRSS:");
    // Let the runs of the last fires finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = metrics(&http, &server.base).await;
    let bucket = |le: &str| metric(&text, &format!("tend_scheduler_lateness_seconds_bucket{{le=\"{le}\"}}"));
    let histogram = (
        metric(&text, "tend_scheduler_lateness_seconds_count").unwrap_or(0.0),
        metric(&text, "tend_scheduler_lateness_seconds_sum").unwrap_or(0.0),
        [bucket("0.005").unwrap_or(0.0), bucket("0.01").unwrap_or(0.0), bucket("0.05").unwrap_or(0.0)],
    );
    server.stop().await;

    let store = Store::open(dir.join("tend.db").to_str().unwrap()).await.unwrap();
    let rows = store.list_runs(&RunFilter { limit: Some(u32::MAX), ..RunFilter::default() }).await.unwrap();
    let mut late = Vec::new();
    let (mut queued, mut skipped) = (0, 0);
    for r in rows.iter().filter(|r| r.trigger_kind == TriggerKind::Cron && (start..end).contains(&r.created_at)) {
        let source = r.trigger_source.as_deref().unwrap_or_default();
        let at: jiff::Timestamp = source
            .rsplit(" at ")
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{label}: trigger_source {source:?} does not end with an instant"));
        late.push(r.created_at - at.as_millisecond());
        if r.status == RunStatus::Skipped {
            skipped += 1;
        } else {
            queued += 1;
        }
    }
    late.sort();
    Row {
        server: label,
        listening_after,
        first_pass_after,
        window_s,
        cpu_window: (cpu1 - cpu0) / window_s,
        cpu_quiet: (cpu80 - cpu40) / 40.0,
        rss_kib,
        fires: late.len(),
        queued,
        skipped,
        p50: percentile(&late, 50.0),
        p99: percentile(&late, 99.0),
        max: late.last().copied().unwrap_or_default(),
        min: late.first().copied().unwrap_or_default(),
        histogram,
    }
}

/// Median time of `n` calls of `f`.
fn median_of(n: usize, mut f: impl FnMut()) -> Duration {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    percentile(&v, 50.0)
}

fn main() {
    let bin = tend_binary("scheduler_scale");
    let runbooks = env_num("SCHED_SCALE_RUNBOOKS", 1000) as usize;
    let triggers = env_num("SCHED_SCALE_TRIGGERS", 10) as usize;
    let secs = env_num("SCHED_SCALE_SECS", 120);
    assert!(secs >= 80, "SCHED_SCALE_SECS must be at least 80 (the quiet part ends 80 s into the window)");
    println!(
        "scheduler_scale: {} · {runbooks} runbooks × {triggers} hourly cron triggers ({} in all) · window {secs} s · nproc = {}",
        bin.display(),
        runbooks * triggers,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );

    // What the directory watcher and a reload cost, in this process.
    let scratch = tempfile::Builder::new().prefix("tend-scheduler-scale-dir-").tempdir().unwrap();
    let dir = scratch.path().join("runbooks");
    write_runbooks(&dir, runbooks, triggers);
    let poll = median_of(50, || {
        for (p, m) in files_with_metadata(&dir).unwrap() {
            std::hint::black_box((p, m.modified().ok(), m.len()));
        }
    });
    let catalog = Catalog { plugins: BTreeMap::from([("echo".to_string(), None)]) };
    let load = median_of(3, || {
        let (loaded, problems) = load_dir(&dir, &catalog);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(loaded.len(), runbooks);
    });
    println!(
        "- one poll of the runbooks directory ({runbooks} files): {:.2} ms median, {:.2}% of a core at one poll per 2 s",
        poll.as_secs_f64() * 1000.0,
        poll.as_secs_f64() / 2.0 * 100.0
    );
    println!("- one full load of the directory (a reload): {:.0} ms median of 3", load.as_secs_f64() * 1000.0);
    drop(scratch);

    let baseline = std::env::var_os("SCHED_SCALE_BASELINE").map(PathBuf::from);
    let mut servers: Vec<(&'static str, PathBuf)> = Vec::new();
    if let Some(b) = baseline {
        println!("baseline: {}", b.display());
        servers.push(("baseline", b));
    }
    servers.push(("tend", bin));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let rows: Vec<Row> = rt.block_on(async {
        let mut rows = Vec::new();
        for (label, bin) in &servers {
            rows.push(scenario(label, bin, runbooks, triggers, secs).await);
            eprintln!("scheduler_scale: {label} done");
        }
        rows
    });

    println!();
    println!(
        "| server | listening after | first pass after | server CPU (window) | server CPU (quiet 40 s) | fires in window | lateness p50 | p99 | max | RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.1} s | {:.1} s | {:.2}% of a core | {:.2}% of a core | {} ({} queued, {} skipped) in {:.1} s | {} ms | {} ms | {} ms | {:.1} MiB |",
            r.server,
            r.listening_after.as_secs_f64(),
            r.first_pass_after.as_secs_f64(),
            100.0 * r.cpu_window,
            100.0 * r.cpu_quiet,
            r.fires,
            r.queued,
            r.skipped,
            r.window_s,
            r.p50,
            r.p99,
            r.max,
            r.rss_kib as f64 / 1024.0,
        );
    }
    println!();
    for r in &rows {
        let (count, sum, [le5, le10, le50]) = r.histogram;
        println!(
            "- {}: earliest fire {} ms after its time; the server's tend_scheduler_lateness_seconds (after commit, whole life): {count} fires, mean {:.1} ms, {le5} within 5 ms, {le10} within 10 ms, {le50} within 50 ms",
            r.server,
            r.min,
            if count > 0.0 { 1000.0 * sum / count } else { 0.0 },
        );
    }
    if let [b, t] = &rows[..] {
        println!(
            "- ratio tend/baseline: server CPU (window) {:.3}, lateness p50 {:.3}, p99 {:.3}",
            t.cpu_window / b.cpu_window,
            t.p50 as f64 / b.p50.max(1) as f64,
            t.p99 as f64 / b.p99.max(1) as f64,
        );
    }
    let t = rows.last().expect("the tend row");
    println!();
    println!(
        "Targets (idle CPU < 2% of a core, fire lateness p99 < 20 ms): CPU {:.2}% -> {}; p99 {} ms -> {}",
        100.0 * t.cpu_window,
        if t.cpu_window < 0.02 { "met" } else { "missed" },
        t.p99,
        if t.p99 < 20 && t.fires > 0 { "met" } else { "missed" },
    );
}
