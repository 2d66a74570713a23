//! Approvals: the requests waiting for a person at `/approvals`, and
//! `POST /runs/{id}/approve` and `/reject` with an optional reason (admin
//! scope, as the API; recorded as decided by `token:<name>`).

use super::session::{CsrfField, Session};
use super::{Frame, WebError, bad_path, given, render, see_other};
use crate::api::AppState;
use crate::serve::config::Scope;
use crate::store::{ApprovalStatus, PendingApproval};
use axum::Router;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

/// Pending approvals the page lists at most: 200.
const MAX_PENDING: u32 = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/approvals", get(list))
        .route("/runs/{id}/approve", post(approve))
        .route("/runs/{id}/reject", post(reject))
}

#[derive(Serialize)]
struct ListPage {
    pending: Vec<PendingApproval>,
}

async fn list(session: Session, State(s): State<AppState>) -> Result<Response, WebError> {
    let pending = s.service.store.pending_approvals(MAX_PENDING).await?;
    render("approvals.html", &Frame::new(&session, "approvals", "approvals"), ListPage { pending })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionForm {
    csrf: String,
    reason: Option<String>,
}

impl CsrfField for DecisionForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn decide(
    session: Session,
    s: AppState,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<DecisionForm>, FormRejection>,
    status: ApprovalStatus,
) -> Result<Response, WebError> {
    let Path(id) = id.map_err(bad_path)?;
    let f = session.action(form, Scope::Admin)?;
    s.service
        .store
        .decide_approval(&id, status, &session.by(), given(&f.reason))
        .await
        .map_err(crate::api::decision)?;
    Ok(see_other(&format!("/runs/{id}")))
}

async fn approve(
    session: Session,
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Result<Response, WebError> {
    decide(session, s, id, form, ApprovalStatus::Approved).await
}

async fn reject(
    session: Session,
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Result<Response, WebError> {
    decide(session, s, id, form, ApprovalStatus::Rejected).await
}
