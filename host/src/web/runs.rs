//! Runs: the list at `/` and `/runs` (filtered by runbook and status,
//! newest first, paged by run id), one run at `/runs/{id}` (why it failed,
//! its steps as a timeline with durations, outputs, findings, metrics,
//! logs, before/after, approvals, escalations, the alerts that started it,
//! its report), and `POST /runs/{id}/cancel` (admin scope, as the API).

use super::session::{CsrfForm, Session};
use super::{Frame, PAGE_SIZE, WebError, bad_path, bad_query, given, render, see_other, took};
use crate::api::{ApiError, AppState};
use crate::serve::config::Scope;
use crate::store::{
    ApprovalRow, ApprovalStatus, AttemptRow, AttemptStatus, EscalationRow, EscalationStatus, OptimizationResult,
    RunAlert, RunFilter, RunRow, RunStatus,
};
use axum::Router;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(list))
        .route("/runs", get(list))
        .route("/runs/{id}", get(show))
        .route("/runs/{id}/cancel", post(cancel))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    runbook: Option<String>,
    status: Option<String>,
    before: Option<String>,
}

/// A run in a list, with how long it took (or has been going).
#[derive(Serialize)]
pub struct RunLine {
    run: RunRow,
    took: Option<String>,
}

impl RunLine {
    pub fn new(run: RunRow) -> RunLine {
        let took = run.started_at.map(|s| took((run.finished_at.unwrap_or_else(crate::clock::now_ms) - s) as f64));
        RunLine { run, took }
    }
}

#[derive(Serialize)]
struct ListPage {
    runs: Vec<RunLine>,
    runbooks: Vec<String>,
    statuses: Vec<&'static str>,
    runbook: String,
    status: String,
    /// The next (older) page, when there may be one.
    next: Option<String>,
    /// The first page of this filter, when this is not it.
    first: Option<String>,
    waiting: i64,
    open_escalations: i64,
}

/// `/runs?runbook=..&status=..` with the given filters only.
fn runs_url(runbook: Option<&str>, status: Option<RunStatus>, before: Option<&str>) -> String {
    let mut q = Vec::new();
    if let Some(r) = runbook {
        q.push(format!("runbook={}", super::session::encode_component(r)));
    }
    if let Some(s) = status {
        q.push(format!("status={s}"));
    }
    if let Some(b) = before {
        q.push(format!("before={}", super::session::encode_component(b)));
    }
    if q.is_empty() { "/runs".into() } else { format!("/runs?{}", q.join("&")) }
}

async fn list(
    session: Session,
    State(s): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, WebError> {
    let Query(q) = q.map_err(bad_query)?;
    let runbook = given(&q.runbook);
    let status = given(&q.status).map(str::parse::<RunStatus>).transpose().map_err(ApiError::BadRequest)?;
    let before = given(&q.before);
    let filter = RunFilter {
        runbook: runbook.map(str::to_string),
        status,
        before: before.map(str::to_string),
        limit: Some(PAGE_SIZE),
    };
    let runs = s.service.store.list_runs(&filter).await?;
    let next = (runs.len() == PAGE_SIZE as usize).then(|| runs_url(runbook, status, Some(&runs[runs.len() - 1].id)));
    let first = before.map(|_| runs_url(runbook, status, None));
    let mut runbooks: Vec<String> = s.service.runbooks().iter().map(|rb| rb.name.clone()).collect();
    if let Some(r) = runbook
        && !runbooks.iter().any(|n| n == r)
    {
        runbooks.push(r.to_string());
    }
    let page = ListPage {
        runs: runs.into_iter().map(RunLine::new).collect(),
        runbooks,
        statuses: RunStatus::ALL.iter().map(|s| s.as_str()).collect(),
        runbook: runbook.unwrap_or("").to_string(),
        status: status.map(|s| s.as_str()).unwrap_or("").to_string(),
        next,
        first,
        waiting: s.service.store.count_runs(RunStatus::WaitingApproval).await?,
        open_escalations: s.service.store.count_escalations(EscalationStatus::Open).await?,
    };
    render("runs.html", &Frame::new(&session, "runs", "runs"), page)
}

/// One attempt of a step on the run's timeline.
#[derive(Serialize)]
struct StepLine {
    attempt: AttemptRow,
    took: Option<String>,
    /// Where its bar starts and how wide it is, in % of the run's span.
    offset: String,
    width: String,
}

#[derive(Serialize)]
struct RunPage {
    run: RunRow,
    took: Option<String>,
    steps: Vec<StepLine>,
    /// The steps that failed, with why: what a person reads first.
    failures: Vec<(String, String)>,
    pending: Option<ApprovalRow>,
    approvals: Vec<ApprovalRow>,
    escalations: Vec<EscalationRow>,
    optimization_results: Vec<OptimizationResult>,
    alerts: Vec<RunAlert>,
    report: Option<String>,
    is_final: bool,
}

/// The timeline: each attempt's offset and width in % of the run's span
/// (from its start to its end, or to now while it runs).
fn timeline(run: &RunRow, attempts: Vec<AttemptRow>) -> Vec<StepLine> {
    let now = crate::clock::now_ms();
    let start = run.started_at.unwrap_or(run.created_at);
    let end = run.finished_at.unwrap_or(now).max(start + 1);
    let span = (end - start) as f64;
    attempts
        .into_iter()
        .map(|a| {
            let from = (a.started_at - start).max(0) as f64;
            let to = a.finished_at.map(|f| (f - start) as f64).unwrap_or(span);
            let offset = (from / span * 100.0).clamp(0.0, 99.5);
            let width = ((to - from) / span * 100.0).clamp(0.5, 100.0 - offset);
            StepLine {
                took: a.duration_ms.map(took),
                offset: format!("{offset:.1}"),
                width: format!("{width:.1}"),
                attempt: a,
            }
        })
        .collect()
}

async fn show(
    session: Session,
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, WebError> {
    let Path(id) = id.map_err(bad_path)?;
    let record = s.service.store.run_record(&id).await?;
    let r = record.ok_or_else(|| ApiError::NotFound(format!("run {id:?} not found")))?;
    let report = s.service.store.report(&id).await?.map(|r| r.markdown);
    let failures = r
        .steps
        .iter()
        .filter(|a| a.status == AttemptStatus::Failed)
        .map(|a| (a.step_id.clone(), a.error.clone().unwrap_or_else(|| "failed".into())))
        .collect();
    let pending = r.approvals.iter().rev().find(|a| a.status == ApprovalStatus::Pending).cloned();
    let page = RunPage {
        took: RunLine::new(r.run.clone()).took,
        is_final: r.run.status.is_final(),
        steps: timeline(&r.run, r.steps),
        run: r.run,
        failures,
        pending,
        approvals: r.approvals,
        escalations: r.escalations,
        optimization_results: r.optimization_results,
        alerts: r.alerts,
        report,
    };
    render("run.html", &Frame::new(&session, "runs", format!("run:{id}")), page)
}

async fn cancel(
    session: Session,
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, WebError> {
    let Path(id) = id.map_err(bad_path)?;
    session.action(form, Scope::Admin)?;
    s.service.store.request_cancel(&id).await.map_err(crate::api::decision)?;
    Ok(see_other(&format!("/runs/{id}")))
}
