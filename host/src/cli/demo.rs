//! `tend demo`: the first run. It starts the demo service
//! (examples/demo-service, embedded) on a free loopback port inside this
//! process, breaks it (`down`), runs the shipped `health-cycle` runbook
//! against it with intervals of a second, and tells what happened:
//! detected, remediated, verified, healthy, with the score and the
//! before/after. Everything is recorded in the database as for `tend run`.
//!
//! `tend demo service` runs the demo service alone, with the same options,
//! defaults and messages as its own binary: it prints `listening on ADDR`
//! on stdout once bound and serves until SIGINT or SIGTERM.
//!
//! Startup of the service lives in `demo_service::server`; running a
//! runbook in this process in `runbooks::run_here`. This file only
//! narrates; it must not talk to anything but the loopback service it
//! started.

use super::runbooks::{catalog, open_store, run_here};
use super::{Cli, EXIT_FAILED, fail};
use crate::engine::TriggerInfo;
use crate::runbook::check::check;
use crate::runtime::caps::secrets::{EnvSecrets, SecretSource};
use crate::store::{AttemptStatus, RunRecord, RunStatus, TriggerKind};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The runbook the demo runs, as shipped in `runbooks/` (built in, so the
/// demo works from any directory).
const HEALTH_CYCLE: &str = include_str!("../../../runbooks/health-cycle.yaml");

/// Where the built-in health-cycle says it comes from.
const HEALTH_CYCLE_FILE: &str = "runbooks/health-cycle.yaml";

/// The secret the runbook's actions read the service's admin token from.
const TOKEN_SECRET: &str = "service-token";

/// How long one of the demo service's restarts takes: by default 1 s.
const DEMO_RESTART_MS: u64 = 1000;

/// Requests a second of the demo service's own traffic: by default 50.
const DEMO_TRAFFIC_RPS: u32 = 50;

/// How long to wait for an HTTP answer of the demo service: by default 5 s.
const DEMO_HTTP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DemoArgs {
    #[command(subcommand)]
    pub command: Option<DemoCommand>,

    /// Pause between the health cycle's iterations.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub interval: String,

    /// Wait after an action before re-measuring.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub settle: String,
}

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Run the demo service: a small HTTP service to break on purpose, with
    /// Prometheus metrics, admin endpoints behind a bearer token and fault
    /// switches (see examples/demo-service/README.md).
    Service(demo_service::server::Options),
}

pub async fn run(cli: &Cli, args: &DemoArgs) -> ExitCode {
    match &args.command {
        Some(DemoCommand::Service(options)) => service(options.clone()).await,
        None => walkthrough(cli, args).await,
    }
}

async fn service(options: demo_service::server::Options) -> ExitCode {
    match demo_service::server::run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_FAILED, e),
    }
}

/// The admin token as the runbook's `service-token` secret; every other
/// secret from `TEND_SECRET_<NAME>` as usual.
struct DemoSecrets {
    token: String,
}

impl SecretSource for DemoSecrets {
    fn get(&self, name: &str) -> Option<String> {
        if name == TOKEN_SECRET { Some(self.token.clone()) } else { EnvSecrets.get(name) }
    }
}

async fn walkthrough(cli: &Cli, args: &DemoArgs) -> ExitCode {
    let store = match open_store(cli).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let token = ulid::Ulid::new().to_string();
    let secrets: Arc<dyn SecretSource> = Arc::new(DemoSecrets { token: token.clone() });
    let rt = match super::runtime(cli, Some(Arc::new(store.clone())), secrets.clone()) {
        Ok(rt) => Arc::new(rt),
        Err(e) => return fail(EXIT_FAILED, format!("{e:#}")),
    };
    let rb = match check(Path::new(HEALTH_CYCLE_FILE), HEALTH_CYCLE, &catalog(&rt).await) {
        Ok(rb) => Arc::new(rb),
        Err(diags) => {
            let first = diags.first().map(|d| format!("{}: {}", d.pos, d.message)).unwrap_or_default();
            return fail(EXIT_FAILED, format!("the built-in {HEALTH_CYCLE_FILE} does not load: {first}"));
        }
    };

    // 1. The service, on a free loopback port, until the demo ends.
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => return fail(EXIT_FAILED, format!("cannot listen on 127.0.0.1 for the demo service: {e}")),
    };
    let url = match listener.local_addr() {
        Ok(a) => format!("http://{a}"),
        Err(e) => return fail(EXIT_FAILED, format!("the demo service's address: {e}")),
    };
    let options = demo_service::server::Options {
        listen: ([127, 0, 0, 1], 0).into(),
        token: Some(token.clone()),
        replicas: demo_service::sim::DEFAULT_REPLICAS,
        traffic_rps: DEMO_TRAFFIC_RPS,
        restart_ms: DEMO_RESTART_MS,
        seed: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        demo_service::server::serve(listener, &options, async {
            let _ = stopped.await;
        })
        .await
    });
    let http = reqwest::Client::builder().timeout(DEMO_HTTP_TIMEOUT).build().unwrap_or_default();
    let health = |http: reqwest::Client, url: String| async move {
        http.get(format!("{url}/healthz")).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    };
    outln!("tend demo: watch the health-cycle runbook find a broken service and heal it.\n");
    outln!("1. The demo service is up at {url} (GET /healthz answers {}).", health(http.clone(), url.clone()).await);

    // 2. Break it.
    let broke = http
        .post(format!("{url}/admin/faults"))
        .bearer_auth(&token)
        .json(&json!({"down": true}))
        .send()
        .await
        .map(|r| r.status());
    if !broke.as_ref().is_ok_and(|s| s.is_success()) {
        let _ = stop.send(());
        return fail(EXIT_FAILED, format!("could not break the demo service: {broke:?}"));
    }
    outln!(
        "2. Broke it: POST /admin/faults {{\"down\": true}}; GET /healthz now answers {}.",
        health(http.clone(), url.clone()).await
    );
    outln!(
        "3. Running {HEALTH_CYCLE_FILE}: monitor, score 0-10, restart when under 6, wait {}, re-measure; \
         again every {} until healthy 3 times in a row.\n",
        args.settle,
        args.interval
    );

    // 3. The runbook.
    let mut params = Map::new();
    params.insert("service_url".into(), Value::String(url.clone()));
    params.insert("interval".into(), Value::String(args.interval.clone()));
    params.insert("settle".into(), Value::String(args.settle.clone()));
    let trigger = TriggerInfo { kind: TriggerKind::Cli, source: Some("tend demo".into()) };
    let (code, run_id) = run_here(&store, rt, secrets, &rb, &params, trigger, false).await;

    // 4. What happened.
    if let Some(id) = &run_id {
        match store.run_record(id).await {
            Ok(Some(record)) => {
                outln!("");
                for line in story(&record) {
                    outln!("{line}");
                }
                outln!(
                    "\nGET /healthz answers {} now. The whole record: tend runs show {id}",
                    health(http.clone(), url.clone()).await
                );
            }
            Ok(None) => {}
            Err(e) => eprintln!("tend: warning: cannot read run {id}: {e:#}"),
        }
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    code
}

/// What a health-cycle run did, a line per phase: detected, remediated,
/// verified, healthy (or not).
fn story(record: &RunRecord) -> Vec<String> {
    let steps =
        |id: &'static str| record.steps.iter().filter(move |a| a.step_id == id && a.status == AttemptStatus::Succeeded);
    let score_of = |a: &crate::store::AttemptRow| a.output.as_ref().and_then(|o| o["score"].as_f64());
    let mut lines = Vec::new();
    if let Some(first) = steps("score").next() {
        let output = first.output.clone().unwrap_or_default();
        let why = output["deductions"][0]["reason"].as_str().unwrap_or("no points lost");
        lines.push(format!("detected    score {}/10: {why}", score_of(first).unwrap_or(f64::NAN)));
    }
    for a in steps("restart").chain(steps("scale")).chain(steps("clear_cache")) {
        let summary = a.output.as_ref().and_then(|o| o["actions"][0]["summary"].as_str()).unwrap_or("done");
        lines.push(format!("remediated  iteration {}: {summary}", a.iteration));
    }
    for r in record.optimization_results.iter() {
        let after = match (r.after, r.change) {
            (Some(after), Some(change)) => format!("{after} ({change:+})"),
            _ => "not re-measured".to_string(),
        };
        lines.push(format!("verified    {} after {}: {} -> {after}", r.metric, r.step_id, r.before));
    }
    let last = steps("score").next_back();
    let iterations = steps("score").count();
    match last.and_then(|a| a.output.clone()) {
        Some(o) if record.run.status == RunStatus::Succeeded => lines.push(format!(
            "healthy     score {}/10, healthy {} measurements in a row, after {iterations} iteration{}",
            o["score"].as_f64().unwrap_or(f64::NAN),
            o["consecutive_healthy"],
            if iterations == 1 { "" } else { "s" }
        )),
        _ => lines.push(format!(
            "not healed  the run {}: {}",
            record.run.status,
            record.run.error.as_deref().unwrap_or("see its escalations")
        )),
    }
    lines.push(format!("run {}  {}", record.run.id, record.run.status));
    lines
}
