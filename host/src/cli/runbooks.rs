//! `tend validate`, `tend run`, `tend runs ...` and `tend escalations ...`:
//! runbooks and their record from the shell. Output formats live here;
//! the work is done by the runbook checker, the engine and the store.

use super::{Cli, EXIT_FAILED, EXIT_USAGE, fail};
use crate::engine::{Engine, Event, SubmitError, TriggerInfo};
use crate::notify::Status;
use crate::runbook::{self, Catalog, FileDiagnostic, Runbook};
use crate::runtime::Runtime;
use crate::runtime::caps::secrets::{EnvSecrets, SecretSource};
use crate::store::{
    ApprovalStatus, AttemptStatus, EscalationStatus, RunFilter, RunRow, RunStatus, Store, StoreError, TriggerKind,
};
use crate::units::format_duration;
use clap::{Args, Subcommand};

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// A run whose owner is silent this long is declared interrupted.
const STALE_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Runbook files, or directories of them (*.yaml, *.yml).
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A runbook file, or the name of a runbook in the runbooks directory.
    #[arg(value_name = "FILE|NAME")]
    pub runbook: String,
    /// A parameter, key=value (typed by the runbook: numbers, true/false, JSON for arrays and objects).
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Print the run record as JSON instead of progress and a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        #[arg(long)]
        runbook: Option<String>,
        /// queued, running, waiting_approval, succeeded, failed, cancelled, timed_out or interrupted.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Show a run: steps, outputs, findings, escalations, before/after.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Print the report of a finished run (a runbook with `report: postmortem`), in Markdown.
    Report { id: String },
    /// Approve the step a run is waiting on.
    Approve(DecisionArgs),
    /// Reject the step a run is waiting on (the step fails).
    Reject(DecisionArgs),
    /// Ask the process running a run to cancel it.
    Cancel { id: String },
}

#[derive(Debug, Args)]
pub struct DecisionArgs {
    pub id: String,
    /// Why, recorded with the decision.
    #[arg(long)]
    pub reason: Option<String>,
    /// Who decides (default: $USER@host).
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum EscalationsCommand {
    /// List escalations, newest first.
    List {
        /// open, acknowledged or resolved.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        run: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an open escalation (PagerDuty sinks are told).
    Ack {
        id: i64,
        /// Who acknowledges (default: $USER@host).
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        sinks: SinkArgs,
    },
    /// Resolve an escalation: every sink of its runbook gets a resolved notification.
    Resolve {
        id: i64,
        /// Who resolves (default: $USER@host).
        #[arg(long)]
        by: Option<String>,
        /// Why, recorded and sent with the resolved notification.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        sinks: SinkArgs,
    },
}

/// Where the notifications of an acknowledgement or resolution go besides
/// the runbook's own sinks (read from the runbooks directory).
#[derive(Debug, Args)]
pub struct SinkArgs {
    /// tend.toml of `tend serve`: its `[notify]` sinks and `public_url` are used too.
    #[arg(long, env = "TEND_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

fn who(by: &Option<String>) -> String {
    by.clone().unwrap_or_else(|| {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        format!("{user}@{}", crate::process::hostname())
    })
}

/// Every installed plugin with its `describe()` record; plugins that do
/// not load are warned about and left without one.
pub(crate) async fn catalog(rt: &Runtime) -> Catalog {
    let (plugins, problems) = rt.describe_all().await;
    for p in problems {
        eprintln!("tend: warning: {p}");
    }
    Catalog { plugins }
}

pub(crate) async fn open_store(cli: &Cli) -> Result<Store, ExitCode> {
    let store = Store::open(cli.db()).await.map_err(|e| fail(EXIT_FAILED, format!("{e:#}")))?;
    match store.reap_interrupted(STALE_AFTER).await {
        Ok(ids) => {
            for id in ids {
                eprintln!("tend: run {id} was interrupted (its process exited mid-run); marked interrupted");
            }
        }
        Err(e) => eprintln!("tend: warning: could not check for interrupted runs: {e:#}"),
    }
    Ok(store)
}

// ---- validate -------------------------------------------------------------

pub async fn validate(cli: &Cli, args: &ValidateArgs) -> ExitCode {
    let rt = match super::runtime(cli, None, Arc::new(EnvSecrets)) {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_FAILED, format!("{e:#}")),
    };
    let catalog = catalog(&rt).await;
    let mut files = Vec::new();
    let mut problems: Vec<FileDiagnostic> = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            match runbook::files_in(path) {
                Ok(f) if f.is_empty() => eprintln!("tend: warning: {} holds no *.yaml or *.yml file", path.display()),
                Ok(f) => files.extend(f),
                Err(e) => return fail(EXIT_USAGE, format!("{}: cannot read the directory: {e}", path.display())),
            }
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return fail(EXIT_USAGE, format!("{}: no such file or directory", path.display()));
        }
    }
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    let mut valid = 0;
    for file in &files {
        match runbook::load_file(file, &catalog) {
            Ok(rb) => {
                if let Some((_, other)) = names.iter().find(|(n, _)| *n == rb.name) {
                    problems.push(FileDiagnostic {
                        file: file.clone(),
                        diagnostic: runbook::Diagnostic {
                            pos: runbook::yaml::Pos { line: 1, col: 1 },
                            message: format!("runbook name {:?} is already used by {}", rb.name, other.display()),
                        },
                    });
                } else {
                    valid += 1;
                    names.push((rb.name.clone(), file.clone()));
                }
            }
            Err(diags) => problems.extend(diags),
        }
    }
    for p in &problems {
        outln!("{p}");
    }
    let files_with_errors = files.len() - valid;
    if problems.is_empty() {
        eprintln!("tend: {} runbook{} valid", valid, if valid == 1 { "" } else { "s" });
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "tend: {} error{} in {files_with_errors} of {} file{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        );
        ExitCode::from(EXIT_FAILED)
    }
}

// ---- run ------------------------------------------------------------------

/// Finds a runbook by file path or by name in the runbooks directory.
fn find_runbook(cli: &Cli, what: &str, catalog: &Catalog) -> Result<Runbook, ExitCode> {
    let path = Path::new(what);
    let print = |diags: Vec<FileDiagnostic>| {
        for d in &diags {
            eprintln!("{d}");
        }
        fail(
            EXIT_USAGE,
            format!("{what}: the runbook has {} error{}", diags.len(), if diags.len() == 1 { "" } else { "s" }),
        )
    };
    if path.is_file() {
        return runbook::load_file(path, catalog).map_err(print);
    }
    let files = runbook::files_in(&cli.runbooks()).unwrap_or_default();
    let mut names = Vec::new();
    for file in files {
        // Find the file by its `name:` first, so one broken runbook does not hide the others.
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let name =
            runbook::yaml::parse(&text).ok().and_then(|n| n.get("name").and_then(|v| v.as_str().map(str::to_string)));
        if name.as_deref() == Some(what) {
            return runbook::load_file(&file, catalog).map_err(print);
        }
        names.extend(name);
    }
    let known = if names.is_empty() { "none".to_string() } else { names.join(", ") };
    Err(fail(
        EXIT_USAGE,
        format!(
            "runbook {what:?} is neither a file nor the name of a runbook in {} (runbooks: {known})",
            cli.runbooks().display()
        ),
    ))
}

pub async fn run(cli: &Cli, args: &RunArgs) -> ExitCode {
    let store = match open_store(cli).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let rt = match super::runtime(cli, Some(Arc::new(store.clone())), Arc::new(EnvSecrets)) {
        Ok(rt) => Arc::new(rt),
        Err(e) => return fail(EXIT_FAILED, format!("{e:#}")),
    };
    let catalog = catalog(&rt).await;
    let rb = match find_runbook(cli, &args.runbook, &catalog) {
        Ok(rb) => Arc::new(rb),
        Err(code) => return code,
    };
    let params = match rb.params_from_pairs(&args.params) {
        Ok(p) => p,
        Err(errors) => return fail(EXIT_USAGE, errors.join("; ")),
    };
    let secrets: Arc<dyn SecretSource> = Arc::new(EnvSecrets);
    let trigger = TriggerInfo { kind: TriggerKind::Cli, source: Some(who(&None)) };
    run_here(&store, rt, secrets, &rb, &params, trigger, args.json).await.0
}

/// Runs `rb` with `params` in this process: live progress on stderr (or,
/// when `json`, the run record on stdout at the end) and the summary. The
/// runtime `rt` must read secrets from `secrets` too. Returns the exit code
/// (0 only when the run succeeded) and the run's id once it was recorded.
pub(crate) async fn run_here(
    store: &Store,
    rt: Arc<Runtime>,
    secrets: Arc<dyn SecretSource>,
    rb: &Arc<Runbook>,
    params: &serde_json::Map<String, serde_json::Value>,
    trigger: TriggerInfo,
    json: bool,
) -> (ExitCode, Option<String>) {
    let public_url = std::env::var("TEND_PUBLIC_URL").ok().filter(|u| !u.is_empty());
    if let Some(u) = &public_url
        && !url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https"))
    {
        return (fail(EXIT_USAGE, format!("TEND_PUBLIC_URL {u:?} is not an http or https URL")), None);
    }
    let notifier = crate::notifier::Notifier::new(store.clone(), secrets.clone()).with_public_url(public_url);
    let engine = Arc::new(Engine::new(store.clone(), rt, secrets).with_notifier(notifier));
    let run_id = match engine.submit(rb, params, &trigger).await {
        Ok(id) => id,
        Err(e @ SubmitError::Params(_)) => return (fail(EXIT_USAGE, e.to_string()), None),
        Err(e @ SubmitError::Store(_)) => return (fail(EXIT_FAILED, format!("{:#}", anyhow::Error::from(e))), None),
    };

    let events = engine.subscribe();
    let printer = (!json).then(|| tokio::spawn(print_progress(events, rb.name.clone(), run_id.clone())));
    // Ctrl-C asks for cancellation through the store, like `tend runs cancel`.
    let cancel_store = store.clone();
    let cancel_id = run_id.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("tend: cancelling run {cancel_id}...");
            let _ = cancel_store.request_cancel(&cancel_id).await;
        }
    });
    let outcome = engine.execute(rb.clone(), &run_id).await;
    ctrl_c.abort();
    if let Some(p) = printer {
        // The printer stops at the RunFinished event.
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return (fail(EXIT_FAILED, format!("run {run_id}: {e:#}")), Some(run_id)),
    };
    if json {
        match run_record(store, &run_id).await {
            Ok(v) => outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
            Err(e) => return (fail(EXIT_FAILED, format!("{e:#}")), Some(run_id)),
        }
    } else if let Err(e) = print_summary(store, &run_id).await {
        return (fail(EXIT_FAILED, format!("{e:#}")), Some(run_id));
    }
    let code = match outcome.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Cancelled => ExitCode::from(130),
        _ => ExitCode::from(EXIT_FAILED),
    };
    (code, Some(run_id))
}

/// Prints live progress on stderr: a spinner on a terminal, plain lines otherwise.
async fn print_progress(mut events: tokio::sync::broadcast::Receiver<Event>, runbook: String, run_id: String) {
    let tty = std::io::stderr().is_terminal();
    let spinner = tty.then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        pb.enable_steady_tick(Duration::from_millis(100));
        pb
    });
    let line = |s: String| match &spinner {
        Some(pb) => pb.println(s),
        None => eprintln!("{s}"),
    };
    let at = |iteration: u32| if iteration > 0 { format!(" [iteration {iteration}]") } else { String::new() };
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => break,
        };
        match event {
            Event::Queued { run_id: id } if id == run_id => {
                line(format!("… run {id} is queued: the runbook's concurrency cap is reached"))
            }
            Event::RunStarted { run_id: id, .. } if id == run_id => line(format!("▶ {runbook} (run {id})")),
            Event::StepStarted { run_id: id, step, iteration, attempt, plugin } if id == run_id => {
                let retry = if attempt > 1 { format!(" attempt {attempt}") } else { String::new() };
                match &spinner {
                    Some(pb) => pb.set_message(format!("{step} ({plugin}){}{retry}", at(iteration))),
                    None => eprintln!("  … {step} ({plugin}){}{retry}", at(iteration)),
                }
            }
            Event::StepFinished { run_id: id, step, iteration, attempt, status, outcome, duration_ms, error }
                if id == run_id =>
            {
                let took = format_duration(Duration::from_secs_f64(duration_ms / 1000.0));
                let n = if attempt > 1 { format!(" attempt {attempt}") } else { String::new() };
                match status {
                    AttemptStatus::Succeeded => line(format!("  ✓ {step}{}{n} {took}", at(iteration))),
                    AttemptStatus::Skipped => {
                        line(format!("  - {step}{} skipped: {}", at(iteration), error.unwrap_or_default()))
                    }
                    _ => {
                        line(format!("  ✗ {step}{}{n} {outcome} {took}: {}", at(iteration), error.unwrap_or_default()))
                    }
                }
            }
            Event::Retrying { run_id: id, step, next_attempt, delay_ms, .. } if id == run_id => line(format!(
                "  ↻ {step}: attempt {next_attempt} in {}",
                format_duration(Duration::from_millis(delay_ms))
            )),
            Event::WaitingApproval { run_id: id, step, message, .. } if id == run_id => line(format!(
                "  ⏸ {step} waits for approval: {message}\n    tend runs approve {id}   |   tend runs reject {id}"
            )),
            Event::ApprovalDecided { run_id: id, step, status, by } if id == run_id => {
                line(format!("  {step}: {status} by {}", by.unwrap_or_else(|| "?".into())))
            }
            Event::IterationFinished { run_id: id, repeat, iteration, until_met } if id == run_id => line(format!(
                "  ⟳ {repeat} iteration {iteration}: {}",
                if until_met { "condition met" } else { "condition not met" }
            )),
            Event::Escalated { run_id: id, escalation_id, severity, message, grouped } if id == run_id => {
                line(format!(
                    "  ! escalation {escalation_id} [{}] {message}{}",
                    severity.as_str(),
                    if grouped { " (grouped with an open one; not sent again)" } else { "" }
                ))
            }
            Event::RunFinished { run_id: id, .. } if id == run_id => break,
            _ => {}
        }
    }
    if let Some(pb) = spinner {
        pb.finish_and_clear();
    }
}

/// The whole record of a run, as `GET /v1/runs/{id}` shows it.
async fn run_record(store: &Store, id: &str) -> anyhow::Result<crate::store::RunRecord> {
    store.run_record(id).await?.ok_or_else(|| anyhow::anyhow!("run {id:?} not found"))
}

fn took(run: &RunRow) -> String {
    match (run.started_at, run.finished_at) {
        (Some(s), Some(f)) => format_duration(Duration::from_millis((f - s).max(0) as u64)),
        _ => "-".into(),
    }
}

async fn print_summary(store: &Store, id: &str) -> anyhow::Result<()> {
    let run = store.get_run(id).await?.ok_or_else(|| anyhow::anyhow!("run {id:?} not found"))?;
    let attempts = store.attempts(id).await?;
    let escalations = store.list_escalations(None, Some(id), 1000).await?;
    outln!("run {}  {}  {}  {}", run.id, run.runbook, run.status, took(&run));
    if let Some(e) = &run.error {
        outln!("error: {e}");
    }
    outln!("{:<20} {:>4} {:>7} {:<10} {:<16} {:>9}", "STEP", "ITER", "ATTEMPT", "STATUS", "OUTCOME", "DURATION");
    for a in &attempts {
        let dur =
            a.duration_ms.map(|d| format_duration(Duration::from_secs_f64(d / 1000.0))).unwrap_or_else(|| "-".into());
        outln!(
            "{:<20} {:>4} {:>7} {:<10} {:<16} {:>9}",
            a.step_id,
            a.iteration,
            a.attempt,
            a.status,
            a.outcome.as_deref().unwrap_or("-"),
            dur
        );
    }
    for e in escalations.iter().rev() {
        outln!("escalation {} [{}] {} ({})", e.id, e.severity.as_str(), e.message, e.status);
    }
    Ok(())
}

/// One before/after line: `restart  health_score  3.0 -> 9.0  (+6.0, +200.0%)`.
fn before_after(o: &crate::store::OptimizationResult) -> String {
    use crate::report::number;
    let step = if o.iteration > 0 { format!("{} (iteration {})", o.step_id, o.iteration) } else { o.step_id.clone() };
    let after = match (o.after, o.change) {
        (Some(after), Some(change)) => {
            let sign = |v: f64| if v >= 0.0 { "+" } else { "" };
            let percent = o.change_percent.map(|p| format!(", {}{p:.1}%", sign(p))).unwrap_or_default();
            format!("{}  ({}{}{percent})", number(after), sign(change), number(change))
        }
        _ => "not re-measured".into(),
    };
    format!("{step}  {}  {} -> {after}", o.metric, number(o.before))
}

// ---- runs -----------------------------------------------------------------

pub async fn runs(cli: &Cli, cmd: &RunsCommand) -> ExitCode {
    let store = match open_store(cli).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let result: anyhow::Result<ExitCode> = async {
        match cmd {
            RunsCommand::List { runbook, status, limit, json } => {
                let status = match status.as_deref().map(str::parse::<RunStatus>).transpose() {
                    Ok(s) => s,
                    Err(e) => return Ok(fail(EXIT_USAGE, format!("--status: {e}"))),
                };
                let runs = store
                    .list_runs(&RunFilter {
                        runbook: runbook.clone(),
                        status,
                        limit: Some(*limit),
                        ..RunFilter::default()
                    })
                    .await?;
                if *json {
                    outln!("{}", serde_json::to_string_pretty(&runs)?);
                } else {
                    outln!("{:<26} {:<24} {:<16} {:<8} {:>9}  ERROR", "ID", "RUNBOOK", "STATUS", "TRIGGER", "DURATION");
                    for r in &runs {
                        outln!(
                            "{:<26} {:<24} {:<16} {:<8} {:>9}  {}",
                            r.id,
                            r.runbook,
                            r.status.as_str(),
                            r.trigger_kind,
                            took(r),
                            r.error.as_deref().unwrap_or("")
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            RunsCommand::Show { id, json } => {
                if store.get_run(id).await?.is_none() {
                    return Ok(fail(EXIT_USAGE, format!("run {id:?} not found")));
                }
                if *json {
                    outln!("{}", serde_json::to_string_pretty(&run_record(&store, id).await?)?);
                } else {
                    print_summary(&store, id).await?;
                    for a in store.attempts(id).await? {
                        if let Some(out) = &a.output {
                            outln!("\n{} output: {}", a.step_id, serde_json::to_string(out)?);
                        }
                        for f in &a.findings {
                            outln!("{} finding [{}] {}: {}", a.step_id, f.severity.as_str(), f.title, f.detail);
                        }
                    }
                    for ap in store.approvals(id).await? {
                        outln!("approval {} for {}: {} ({})", ap.id, ap.step_id, ap.status, ap.message);
                    }
                    for al in store.run_alerts(id).await? {
                        let ended = al.ends_at.as_deref().map(|e| format!(", ended {e}")).unwrap_or_default();
                        let name = al.alertname.as_deref().unwrap_or(&al.fingerprint);
                        outln!("alert {name}: {} (started {}{ended})", al.status, al.starts_at);
                    }
                    let compared = store.optimization_results(id).await?;
                    if !compared.is_empty() {
                        outln!("\nBefore/after");
                        for o in &compared {
                            outln!("{}", before_after(o));
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            RunsCommand::Report { id } => {
                let (run, report) = (store.get_run(id).await?, store.report(id).await?);
                match crate::report::stored(id, run, report) {
                    Ok(r) => {
                        crate::cli::write_out(format_args!("{}", r.markdown));
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => Ok(fail(EXIT_FAILED, e)),
                }
            }
            RunsCommand::Approve(d) | RunsCommand::Reject(d) => {
                let status = if matches!(cmd, RunsCommand::Approve(_)) {
                    ApprovalStatus::Approved
                } else {
                    ApprovalStatus::Rejected
                };
                match store.decide_approval(&d.id, status, &who(&d.by), d.reason.as_deref()).await {
                    Ok(row) => {
                        outln!("run {}: step {:?} {status}", d.id, row.step_id);
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e @ (StoreError::NotFound(_) | StoreError::Conflict(_))) => Ok(fail(EXIT_USAGE, e)),
                    Err(e) => Err(e.into()),
                }
            }
            RunsCommand::Cancel { id } => match store.request_cancel(id).await {
                Ok(status) => {
                    outln!("run {id}: cancellation requested (it was {status})");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ (StoreError::NotFound(_) | StoreError::Conflict(_))) => Ok(fail(EXIT_USAGE, e)),
                Err(e) => Err(e.into()),
            },
        }
    }
    .await;
    result.unwrap_or_else(|e| fail(EXIT_FAILED, format!("{e:#}")))
}

// ---- escalations ------------------------------------------------------------

/// The notifier of `tend escalations ack|resolve`: secrets from the
/// environment, the service-wide sinks and public URL of `--config`,
/// `TEND_PUBLIC_URL` over the config's.
fn notifier(store: &Store, args: &SinkArgs) -> Result<crate::notifier::Notifier, String> {
    let text = match &args.config {
        Some(path) => Some((
            path.clone(),
            std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read the config file: {e}", path.display()))?,
        )),
        None => None,
    };
    let overrides =
        crate::serve::config::Overrides { public_url: std::env::var("TEND_PUBLIC_URL").ok(), ..Default::default() };
    let config = crate::serve::ServeConfig::resolve(text.as_ref().map(|(p, t)| (p.as_path(), t.as_str())), &overrides)?;
    Ok(crate::notifier::Notifier::new(store.clone(), Arc::new(crate::runtime::caps::secrets::EnvSecrets))
        .with_webhooks(config.webhooks)
        .with_public_url(config.public_url))
}

pub async fn escalations(cli: &Cli, cmd: &EscalationsCommand) -> ExitCode {
    let store = match open_store(cli).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let result: anyhow::Result<ExitCode> = async {
        match cmd {
            EscalationsCommand::List { status, run, limit, json } => {
                let status = match status {
                    Some(s) => match s.parse::<EscalationStatus>() {
                        Ok(status) => Some(status),
                        Err(_) => {
                            return Ok(fail(EXIT_USAGE, format!("--status: {s:?} is not open, acknowledged or resolved")));
                        }
                    },
                    None => None,
                };
                let list = store.list_escalations(status, run.as_deref(), *limit).await?;
                if *json {
                    outln!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    outln!("{:>5} {:<9} {:<13} {:<24} {:>5}  MESSAGE", "ID", "SEVERITY", "STATUS", "RUNBOOK", "TIMES");
                    for e in &list {
                        outln!(
                            "{:>5} {:<9} {:<13} {:<24} {:>5}  {}",
                            e.id,
                            e.severity.as_str(),
                            e.status,
                            e.runbook,
                            e.occurrences,
                            e.message
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            EscalationsCommand::Ack { id, by, sinks } | EscalationsCommand::Resolve { id, by, sinks, .. } => {
                let notifier = match notifier(&store, sinks) {
                    Ok(n) => n,
                    Err(e) => return Ok(fail(EXIT_USAGE, e)),
                };
                let dir = cli.runbooks();
                let notify_of = |name: &str| match runbook::notify_in(&dir, name) {
                    Some(Ok(notify)) => Some(notify),
                    Some(Err(diags)) => {
                        for d in &diags {
                            eprintln!("{d}");
                        }
                        eprintln!("tend: runbook {name:?}: its notify section has errors; only the service-wide sinks are told");
                        None
                    }
                    None => {
                        eprintln!("tend: runbook {name:?} is not in {}; only the service-wide sinks are told", dir.display());
                        None
                    }
                };
                let (r, event) = match cmd {
                    EscalationsCommand::Resolve { reason, .. } => {
                        (notifier.resolve(*id, &who(by), reason.as_deref(), notify_of).await, Status::Resolved)
                    }
                    _ => (notifier.acknowledge(*id, &who(by), notify_of).await, Status::Acknowledged),
                };
                match r {
                    Ok(e) => {
                        outln!("escalation {id} {event}");
                        for n in e.notifications.iter().filter(|n| n.event == event) {
                            match &n.error {
                                None => outln!("  notified {}", n.sink),
                                Some(why) => outln!("  not notified {}: {why}", n.sink),
                            }
                        }
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(StoreError::Backend(e)) => Err(e),
                    Err(e) => Ok(fail(EXIT_USAGE, e)),
                }
            }
        }
    }
    .await;
    result.unwrap_or_else(|e| fail(EXIT_FAILED, format!("{e:#}")))
}
