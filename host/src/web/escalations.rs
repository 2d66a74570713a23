//! Escalations at `/escalations`: open ones first, then acknowledged, then
//! the latest resolved (paged by id with `?resolved_before=`), and
//! `POST /escalations/{id}/ack` and `/resolve` with an optional reason
//! (admin scope, as the API; the notifier tells the sinks as it does for
//! the API).

use super::session::{CsrfField, Session};
use super::{Frame, PAGE_SIZE, WebError, bad_path, bad_query, given, render, see_other};
use crate::api::AppState;
use crate::serve::config::Scope;
use crate::store::{EscalationRow, EscalationStatus};
use axum::Router;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

/// Open and acknowledged escalations the page lists at most, each: 200.
const MAX_ACTIVE: u32 = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/escalations", get(list))
        .route("/escalations/{id}/ack", post(acknowledge))
        .route("/escalations/{id}/resolve", post(resolve))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    resolved_before: Option<i64>,
}

#[derive(Serialize)]
struct ListPage {
    open: Vec<EscalationRow>,
    acknowledged: Vec<EscalationRow>,
    resolved: Vec<EscalationRow>,
    /// The next page of resolved ones, when there may be one.
    next: Option<String>,
}

async fn list(
    session: Session,
    State(s): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, WebError> {
    let Query(q) = q.map_err(bad_query)?;
    let store = &s.service.store;
    let resolved = store.escalation_page(EscalationStatus::Resolved, q.resolved_before, PAGE_SIZE).await?;
    let next = (resolved.len() == PAGE_SIZE as usize)
        .then(|| format!("/escalations?resolved_before={}", resolved[resolved.len() - 1].id));
    let page = ListPage {
        open: store.escalation_page(EscalationStatus::Open, None, MAX_ACTIVE).await?,
        acknowledged: store.escalation_page(EscalationStatus::Acknowledged, None, MAX_ACTIVE).await?,
        resolved,
        next,
    };
    render("escalations.html", &Frame::new(&session, "escalations", "escalations"), page)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionForm {
    csrf: String,
    reason: Option<String>,
    /// Where to go afterwards: `run` for the escalation's run page, else the list.
    back: Option<String>,
}

impl CsrfField for DecisionForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

fn back(f: &DecisionForm, e: &EscalationRow) -> String {
    match f.back.as_deref() {
        Some("run") => format!("/runs/{}", e.run_id),
        _ => "/escalations".into(),
    }
}

/// What a person does to an escalation.
#[derive(Clone, Copy)]
enum Decision {
    Acknowledge,
    Resolve,
}

async fn decide(
    session: Session,
    s: AppState,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<DecisionForm>, FormRejection>,
    decision: Decision,
) -> Result<Response, WebError> {
    let Path(id) = id.map_err(bad_path)?;
    let f = session.action(form, Scope::Admin)?;
    let (by, notifier) = (session.by(), s.service.engine.notifier());
    let notify_of = |runbook: &str| s.service.notify_of(runbook);
    let decided = match decision {
        Decision::Acknowledge => notifier.acknowledge(id, &by, notify_of).await,
        Decision::Resolve => notifier.resolve(id, &by, given(&f.reason), notify_of).await,
    };
    let e = decided.map_err(crate::api::decision)?;
    Ok(see_other(&back(&f, &e)))
}

async fn acknowledge(
    session: Session,
    State(s): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Result<Response, WebError> {
    decide(session, s, id, form, Decision::Acknowledge).await
}

async fn resolve(
    session: Session,
    State(s): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Result<Response, WebError> {
    decide(session, s, id, form, Decision::Resolve).await
}
