//! Escalations: `GET /v1/escalations`, `POST /v1/escalations/{id}/ack`
//! and `/resolve`. Acknowledging tells the PagerDuty sinks; resolving
//! sends the resolved notification to every sink of the escalation's
//! runbook (as loaded now) and the service-wide ones (see
//! [`crate::notifier`]).

use super::{ApiError, AppState, CanAdmin, CanRead, ErrorBody, body, parse_body, path, query};
use crate::store::{EscalationRow, EscalationStatus};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The escalation endpoints.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_escalations))
        .routes(routes!(ack_escalation))
        .routes(routes!(resolve_escalation))
}

/// Escalations, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EscalationList {
    pub escalations: Vec<EscalationRow>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EscalationsQuery {
    /// open, acknowledged or resolved.
    status: Option<String>,
    /// Only escalations of this run.
    run: Option<String>,
    /// At most this many, 1 to 500; by default 50.
    limit: Option<u32>,
}

/// The optional body of a resolution.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// Why, e.g. `"restarted the database"`; recorded and sent with the resolved notification.
    reason: Option<String>,
}

#[utoipa::path(get, path = "/v1/escalations", tag = "escalations", params(EscalationsQuery), responses((status = 200, body = EscalationList), (status = 400, body = ErrorBody)))]
async fn list_escalations(
    _: CanRead,
    State(s): State<AppState>,
    q: Result<Query<EscalationsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EscalationList>, ApiError> {
    let q = query(q)?;
    let status = match &q.status {
        Some(st) => Some(
            st.parse::<EscalationStatus>()
                .map_err(|_| ApiError::BadRequest(format!("status {st:?} is not open, acknowledged or resolved")))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let list = s.service.store.list_escalations(status, q.run.as_deref(), limit).await?;
    Ok(Json(EscalationList { escalations: list }))
}

#[utoipa::path(post, path = "/v1/escalations/{id}/ack", tag = "escalations", params(("id" = i64, Path, description = "Escalation id")), responses((status = 200, body = EscalationRow), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn ack_escalation(
    CanAdmin(caller): CanAdmin,
    State(s): State<AppState>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<EscalationRow>, ApiError> {
    let id = path(id)?;
    let by = format!("token:{}", caller.name);
    let notify_of = |runbook: &str| s.service.notify_of(runbook);
    Ok(Json(s.service.engine.notifier().acknowledge(id, &by, notify_of).await.map_err(super::decision)?))
}

#[utoipa::path(post, path = "/v1/escalations/{id}/resolve", tag = "escalations", params(("id" = i64, Path, description = "Escalation id")), request_body(content = ResolveBody), responses((status = 200, body = EscalationRow), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn resolve_escalation(
    CanAdmin(caller): CanAdmin,
    State(s): State<AppState>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<EscalationRow>, ApiError> {
    let id = path(id)?;
    let b: ResolveBody = parse_body(&body(raw)?)?;
    let by = format!("token:{}", caller.name);
    let notify_of = |runbook: &str| s.service.notify_of(runbook);
    let notifier = s.service.engine.notifier();
    Ok(Json(notifier.resolve(id, &by, b.reason.as_deref(), notify_of).await.map_err(super::decision)?))
}
