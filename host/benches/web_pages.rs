//! The web view's pages with 100,000 runs in the database
//! (`cargo bench --bench web_pages`; BENCHMARKS.md has the numbers and the
//! exact command).
//!
//! It opens a fresh database with `tend::store::Store` (so the migrations,
//! indexes included, are applied), fills it in one transaction with
//! WEB_PAGES_RUNS runs (100,000) of 10 runbooks, three step attempts each
//! (with metrics on the first), 10 % failed, 40 runs waiting for an
//! approval, and 3,000 escalations (1/3 open, 1/3 acknowledged, 1/3
//! resolved); starts `tend serve` (this build's binary) on it, signs in
//! through `/signin` like a browser, and requests each page
//! WEB_PAGES_REQUESTS times (50) one after another after 5 warm-up
//! requests, measuring each full answer (status 200 checked, body read).
//! Reported per page: p50, p99 and max; and, for comparison, the API's
//! `GET /v1/runs` with the same filters.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::{Server, env_num, epoch_ms, ms, percentile};

const TOKEN: &str = "web-pages-bench-token";
const RUNBOOKS: usize = 10;

fn runbook_yaml(i: usize) -> String {
    format!(
        "name: rb-{i}\ntriggers: [{{http: true}}]\nsteps:\n  - id: probe\n    plugin: echo\n  - id: act\n    plugin: echo\n  \
         - id: verify\n    plugin: echo\n"
    )
}

/// Fills the database: runs, attempts, metrics, approvals, escalations.
fn fill(db: &Path, runs: usize) -> (String, String) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    let tx = conn.transaction().unwrap();
    let now = epoch_ms();
    let start = now - runs as i64 * 1000;
    let (mut some_failed, mut middle) = (String::new(), String::new());
    {
        let mut run = tx
            .prepare(
                "INSERT INTO runs (id, runbook, runbook_hash, trigger_kind, trigger_source, params, status, error,
                                   created_at, started_at, finished_at)
                 VALUES (?, ?, 'h', 'http', 'token:ci', '{}', ?, ?, ?, ?, ?)",
            )
            .unwrap();
        let mut attempt = tx
            .prepare(
                "INSERT INTO step_attempts (run_id, step_id, iteration, attempt, plugin, status, outcome, error, output,
                                            findings, logs, duration_ms, started_at, finished_at)
                 VALUES (?, ?, 0, 1, 'echo', ?, 'ok', ?, '{\"ok\": true}', '[]', '[]', 1.5, ?, ?)",
            )
            .unwrap();
        let mut metric = tx
            .prepare(
                "INSERT INTO metrics (run_id, runbook, step_id, iteration, name, value, labels, recorded_at)
                 VALUES (?, ?, 'probe', 0, 'health_score', ?, '{}', ?)",
            )
            .unwrap();
        let mut approval = tx
            .prepare(
                "INSERT INTO approvals (run_id, step_id, iteration, message, status, requested_at, expires_at)
                 VALUES (?, 'act', 0, 'Restart?', 'pending', ?, ?)",
            )
            .unwrap();
        let mut escalation = tx
            .prepare(
                "INSERT INTO escalations (run_id, runbook, step_id, severity, message, dedup_key, status, created_at,
                                          last_seen_at)
                 VALUES (?, ?, 'probe', 'high', 'score low', ?, ?, ?, ?)",
            )
            .unwrap();
        for i in 0..runs {
            let at = start + i as i64 * 1000;
            let id = ulid::Ulid::from_parts(at as u64, i as u128).to_string();
            let runbook = format!("rb-{}", i % RUNBOOKS);
            let waiting = i >= runs - 40;
            let failed = !waiting && i % 10 == 3;
            let status = if waiting {
                "waiting_approval"
            } else if failed {
                "failed"
            } else {
                "succeeded"
            };
            let error = failed.then_some("step \"verify\" failed: score 3 under 5");
            let finished = (!waiting).then_some(at + 900);
            run.execute(rusqlite::params![id, runbook, status, error, at, at + 10, finished]).unwrap();
            for (k, step) in ["probe", "act", "verify"].iter().enumerate() {
                let st = if failed && *step == "verify" { "failed" } else { "succeeded" };
                let err = (st == "failed").then_some("score 3 under 5");
                let t = at + 10 + k as i64 * 200;
                attempt.execute(rusqlite::params![id, step, st, err, t, t + 150]).unwrap();
            }
            metric.execute(rusqlite::params![id, runbook, (i % 10) as f64, at + 100]).unwrap();
            if waiting {
                approval.execute(rusqlite::params![id, at + 700, at + 3_600_000]).unwrap();
            }
            if i % (runs / 3000).max(1) == 0 {
                let status = ["open", "acknowledged", "resolved"][i % 3];
                escalation.execute(rusqlite::params![id, runbook, format!("k{i}"), status, at, at]).unwrap();
            }
            if failed && some_failed.is_empty() && i > runs / 2 {
                some_failed = id.clone();
            }
            if i == runs / 2 {
                middle = id;
            }
        }
    }
    tx.commit().unwrap();
    (some_failed, middle)
}

/// Signs in like a browser; returns the session cookie.
async fn sign_in(http: &reqwest::Client, base: &str) -> String {
    let form = http.get(format!("{base}/signin")).send().await.unwrap();
    let cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("tend_signin="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .unwrap();
    let body = format!("token={TOKEN}&csrf={cookie}&next=%2F");
    let r = http
        .post(format!("{base}/signin"))
        .header("cookie", format!("tend_signin={cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sign-in refused: {}", r.text().await.unwrap());
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("tend_session="))
        .map(|v| format!("tend_session={}", v.split(';').next().unwrap()))
        .unwrap()
}

#[tokio::main]
async fn main() {
    let runs = env_num("WEB_PAGES_RUNS", 100_000) as usize;
    let requests = env_num("WEB_PAGES_REQUESTS", 50) as usize;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("runbooks")).unwrap();
    for i in 0..RUNBOOKS {
        std::fs::write(dir.path().join(format!("runbooks/rb-{i}.yaml")), runbook_yaml(i)).unwrap();
    }
    std::fs::write(dir.path().join("tend.toml"), "retention = \"forever\"\nrate_limit = 100000\n").unwrap();
    let db = dir.path().join("tend.db");
    drop(tend::store::Store::open(db.to_str().unwrap()).await.unwrap());
    let t = Instant::now();
    let (failed, middle) = fill(&db, runs);
    println!("filled {runs} runs ({} attempts) in {:.1?}", runs * 3, t.elapsed());

    let server = Server::start(Path::new(env!("CARGO_BIN_EXE_tend")), dir.path(), TOKEN).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let cookie = sign_in(&http, &server.base).await;
    let pages = [
        "/".to_string(),
        "/runs?status=failed".into(),
        "/runs?runbook=rb-3".into(),
        "/runs?runbook=rb-3&status=failed".into(),
        "/runs?status=waiting_approval".into(),
        format!("/runs?before={middle}"),
        format!("/runs/{failed}"),
        "/approvals".into(),
        "/escalations".into(),
        "/runbooks".into(),
        "/runbooks/rb-3".into(),
        // For comparison: the API's list, whose `?1 IS NULL OR ...` query
        // SQLite cannot answer from an index.
        "/v1/runs?status=waiting_approval".into(),
        "/v1/runs?runbook=rb-3&status=failed".into(),
    ];
    println!("\n| page | p50 | p99 | max | body |\n|---|---|---|---|---|");
    let mut worst = Duration::ZERO;
    for page in &pages {
        let mut times = Vec::new();
        let mut size = 0;
        for i in 0..requests + 5 {
            let t = Instant::now();
            let r = http
                .get(format!("{}{page}", server.base))
                .header("cookie", &cookie)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{page}");
            size = r.bytes().await.unwrap().len();
            if i >= 5 {
                times.push(t.elapsed());
            }
        }
        times.sort();
        let p50 = percentile(&times, 50.0);
        if !page.starts_with("/v1/") {
            worst = worst.max(p50);
        }
        println!(
            "| `{page}` | {} | {} | {} | {} KiB |",
            ms(p50),
            ms(percentile(&times, 99.0)),
            ms(*times.last().unwrap()),
            size / 1024
        );
    }
    println!("\nslowest web page p50: {}", ms(worst));
    server.stop().await;
}
