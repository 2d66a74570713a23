//! The HTTP API of `tend serve` (axum, JSON, under `/v1`): triggers, runs,
//! runbooks, plugins, escalations, approvals; `/healthz` and `/readyz`.
//! Every endpoint but the two health checks needs a bearer token with the
//! right scope. Bad input always gets a 4xx with a JSON error; internal
//! errors are logged and answered with a bare 500.

pub mod alerts;
pub mod auth;
pub mod error;
pub mod events;

use crate::engine::TriggerInfo;
use crate::runbook::{Runbook, Trigger};
use crate::serve::config::Scope;
use crate::serve::{Service, TriggerError};
use crate::store::{DecisionError, RunFilter, RunStatus};
use auth::{Auth, Caller};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
pub use error::ApiError;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub auth: Arc<Auth>,
}

/// The API's routes.
pub fn router(service: Arc<Service>) -> Router {
    let auth = Arc::new(Auth::new(&service.config.tokens, service.config.rate_limit));
    let body_limit = service.config.body_limit;
    let state = AppState { service, auth };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .route("/v1/runbooks", get(list_runbooks))
        .route("/v1/runbooks/{name}", get(get_runbook))
        .route("/v1/runbooks/{name}/runs", post(trigger_run))
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{id}", get(get_run))
        .route("/v1/runs/{id}/events", get(events::run_events))
        .route("/v1/runs/{id}/cancel", post(cancel_run))
        .route("/v1/runs/{id}/approve", post(approve_run))
        .route("/v1/runs/{id}/reject", post(reject_run))
        .route("/v1/plugins", get(list_plugins))
        .route("/v1/alerts/alertmanager", post(alerts::alertmanager))
        .route("/v1/escalations", get(list_escalations))
        .route("/v1/escalations/{id}/ack", post(ack_escalation))
        .route("/v1/escalations/{id}/resolve", post(resolve_escalation))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed("method not allowed on this endpoint".into()) })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

// ---- extractors -------------------------------------------------------------

/// A caller with a scope, checked before the handler runs.
macro_rules! scoped {
    ($name:ident, $scope:expr) => {
        pub struct $name(pub Caller);
        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;
            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
                let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                state.auth.check(header, $scope).map($name)
            }
        }
    };
}
scoped!(CanRead, Scope::Read);
scoped!(CanTrigger, Scope::Trigger);
scoped!(CanAdmin, Scope::Admin);

/// Reads a JSON body; empty means the type's default. Syntax errors are
/// 400, wrong shapes 422, oversized bodies 413 (from the body limit).
fn parse_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::BadRequest(format!("the body is not valid JSON: {e}"))
        } else {
            ApiError::Unprocessable(format!("the body does not have the expected shape: {e}"))
        }
    })
}

/// A body that may be too large: the limit's rejection becomes a 413.
fn body(body: Result<Bytes, axum::extract::rejection::BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(r.body_text()),
        _ => ApiError::BadRequest(r.body_text()),
    })
}

fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|r| ApiError::BadRequest(r.body_text()))
}

fn path<T>(p: Result<Path<T>, axum::extract::rejection::PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v).map_err(|r| ApiError::BadRequest(r.body_text()))
}

/// Store errors that are the client's fault become 404/409.
fn decision(e: anyhow::Error) -> ApiError {
    match e.downcast::<DecisionError>() {
        Ok(DecisionError::NotFound(what)) => ApiError::NotFound(format!("{what} not found")),
        Ok(DecisionError::Conflict(m)) => ApiError::Conflict(m),
        Err(e) => ApiError::Internal(e),
    }
}

// ---- health ---------------------------------------------------------------

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    match s.service.store.ping().await {
        Ok(()) => Ok(Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::error!("readiness: database unreachable: {e:#}");
            Err(ApiError::Unavailable("the database does not answer".into()))
        }
    }
}

/// Prometheus text: runs by runbook and status, step durations, plugin
/// traps by kind, escalations by severity, scheduler lateness.
async fn prometheus(_: CanRead, State(s): State<AppState>) -> Response {
    let body = s.service.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

// ---- runbooks -------------------------------------------------------------

fn runbook_json(rb: &Runbook) -> Value {
    let params: Vec<Value> = rb
        .params
        .iter()
        .map(|p| {
            json!({"name": p.name, "type": p.kind, "required": p.required, "default": p.default,
                   "enum": p.allowed, "description": p.description})
        })
        .collect();
    let triggers: Vec<Value> = rb
        .triggers
        .iter()
        .map(|t| match t {
            Trigger::Cron(c) => json!({
                "cron": c.expr, "timezone": c.timezone, "params": c.params, "overlap": c.overlap, "missed": c.missed,
                "missed_window_s": c.missed_window.as_secs(), "jitter_s": c.jitter.as_secs(),
                "next_fires": crate::scheduler::next_fires(c, jiff::Timestamp::now(), 5)
                    .into_iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            }),
            Trigger::Http => json!({"http": true}),
            Trigger::Alert { exact, regex } => {
                let re: Map<String, Value> = regex.iter().map(|(k, r)| (k.clone(), json!(r.as_str()))).collect();
                json!({"alert": {"match": exact, "match_re": re}})
            }
        })
        .collect();
    json!({
        "name": rb.name, "description": rb.description, "file": rb.file, "hash": rb.hash,
        "params": params, "triggers": triggers, "concurrency": rb.concurrency,
        "steps": rb.all_steps().map(|s| json!({"id": s.id, "plugin": s.plugin})).collect::<Vec<_>>(),
    })
}

async fn list_runbooks(_: CanRead, State(s): State<AppState>) -> Json<Value> {
    let list: Vec<Value> = s.service.runbooks().iter().map(|rb| runbook_json(rb)).collect();
    Json(json!({"runbooks": list, "problems": s.service.problems()}))
}

async fn get_runbook(_: CanRead, State(s): State<AppState>, name: Result<Path<String>, axum::extract::rejection::PathRejection>) -> Result<Json<Value>, ApiError> {
    let name = path(name)?;
    let rb = s.service.runbook(&name).ok_or_else(|| ApiError::NotFound(format!("runbook {name:?} not found")))?;
    Ok(Json(runbook_json(&rb)))
}

// ---- runs -------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    /// The run's params, e.g. `{"url": "https://example.com"}`.
    #[serde(default)]
    params: Map<String, Value>,
}

async fn trigger_run(
    CanTrigger(caller): CanTrigger,
    State(s): State<AppState>,
    name: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let name = path(name)?;
    let b: TriggerBody = parse_body(&body(raw)?)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v.to_str().map_err(|_| ApiError::BadRequest("Idempotency-Key must be text".into()))?;
            if k.is_empty() || k.len() > 255 {
                return Err(ApiError::BadRequest("Idempotency-Key must be 1 to 255 characters".into()));
            }
            Some(k.to_string())
        }
    };
    if let Some(rb) = s.service.runbook(&name)
        && !rb.triggers.iter().any(|t| matches!(t, Trigger::Http))
    {
        return Err(ApiError::Forbidden(format!("runbook {name:?} has no http trigger; add `- http: true` to its triggers")));
    }
    let trigger = TriggerInfo { kind: "http".into(), source: Some(format!("token:{}", caller.name)) };
    let (id, created) = s.service.trigger(&name, &b.params, &trigger, key.as_deref()).await.map_err(|e| match e {
        TriggerError::UnknownRunbook(_) => ApiError::NotFound(e.to_string()),
        TriggerError::BadParams(_) => ApiError::Unprocessable(e.to_string()),
        TriggerError::Conflict(m) => ApiError::Conflict(m),
        TriggerError::Internal(e) => ApiError::Internal(e),
    })?;
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({"run_id": id, "status_url": format!("/v1/runs/{id}")})),
    )
        .into_response();
    if !created {
        response.headers_mut().insert("idempotent-replayed", header::HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    runbook: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    before: Option<String>,
}

async fn list_runs(_: CanRead, State(s): State<AppState>, q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let status = q.status.as_deref().map(str::parse::<RunStatus>).transpose().map_err(ApiError::BadRequest)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit {limit} is out of range; expected 1 to 500")));
    }
    let runs = s
        .service
        .store
        .list_runs(&RunFilter { runbook: q.runbook.clone(), status, limit: Some(limit), before: q.before.clone() })
        .await?;
    let next = (runs.len() == limit as usize).then(|| {
        let mut url = format!("/v1/runs?limit={limit}&before={}", runs[runs.len() - 1].id);
        if let Some(r) = &q.runbook {
            url.push_str(&format!("&runbook={r}"));
        }
        if let Some(st) = status {
            url.push_str(&format!("&status={st}"));
        }
        url
    });
    Ok(Json(json!({"runs": runs, "next": next})))
}

async fn get_run(_: CanRead, State(s): State<AppState>, id: Result<Path<String>, axum::extract::rejection::PathRejection>) -> Result<Json<Value>, ApiError> {
    let id = path(id)?;
    let store = &s.service.store;
    let run = store.get_run(&id).await?.ok_or_else(|| ApiError::NotFound(format!("run {id:?} not found")))?;
    let steps = store.attempts(&id).await?;
    let escalations = store.list_escalations(None, Some(&id), 1000).await?;
    let approvals = store.approvals(&id).await?;
    Ok(Json(json!({"run": run, "steps": steps, "escalations": escalations, "approvals": approvals})))
}

async fn cancel_run(_: CanAdmin, State(s): State<AppState>, id: Result<Path<String>, axum::extract::rejection::PathRejection>) -> Result<Response, ApiError> {
    let id = path(id)?;
    let was = s.service.store.request_cancel(&id).await.map_err(decision)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"run_id": id, "status": was, "cancel_requested": true}))).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    /// Why, e.g. `"change 42 approved by the on-call"`.
    reason: Option<String>,
}

async fn decide(s: &AppState, caller: &Caller, id: String, raw: Result<Bytes, axum::extract::rejection::BytesRejection>, status: &str) -> Result<Json<Value>, ApiError> {
    let b: DecisionBody = parse_body(&body(raw)?)?;
    let row = s.service.store.decide_approval(&id, status, &format!("token:{}", caller.name), b.reason.as_deref()).await.map_err(decision)?;
    Ok(Json(serde_json::to_value(row).map_err(anyhow::Error::from)?))
}

async fn approve_run(
    CanAdmin(caller): CanAdmin,
    State(s): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    decide(&s, &caller, path(id)?, raw, "approved").await
}

async fn reject_run(
    CanAdmin(caller): CanAdmin,
    State(s): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    decide(&s, &caller, path(id)?, raw, "rejected").await
}

// ---- plugins ----------------------------------------------------------------

async fn list_plugins(_: CanRead, State(s): State<AppState>) -> Json<Value> {
    let mut out = Vec::new();
    for source in s.service.runtime.plugins() {
        match s.service.runtime.describe(source).await {
            Ok(info) => out.push(json!({
                "name": info.name, "version": info.version, "description": info.description,
                "capabilities": info.capabilities, "config_schema": info.config_schema,
                "origin": source.origin, "digest": source.digest,
            })),
            Err(e) => out.push(json!({"name": source.name, "origin": source.origin, "error": format!("{e:#}")})),
        }
    }
    Json(json!({"plugins": out}))
}

// ---- escalations ------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalationsQuery {
    status: Option<String>,
    run: Option<String>,
    limit: Option<u32>,
}

async fn list_escalations(_: CanRead, State(s): State<AppState>, q: Result<Query<EscalationsQuery>, axum::extract::rejection::QueryRejection>) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    if let Some(st) = &q.status
        && !["open", "acknowledged", "resolved"].contains(&st.as_str())
    {
        return Err(ApiError::BadRequest(format!("status {st:?} is not open, acknowledged or resolved")));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let list = s.service.store.list_escalations(q.status.as_deref(), q.run.as_deref(), limit).await?;
    Ok(Json(json!({"escalations": list})))
}

async fn ack_escalation(CanAdmin(caller): CanAdmin, State(s): State<AppState>, id: Result<Path<i64>, axum::extract::rejection::PathRejection>) -> Result<Json<Value>, ApiError> {
    let id = path(id)?;
    s.service.store.acknowledge_escalation(id, &format!("token:{}", caller.name)).await.map_err(decision)?;
    Ok(Json(json!({"id": id, "status": "acknowledged"})))
}

async fn resolve_escalation(CanAdmin(caller): CanAdmin, State(s): State<AppState>, id: Result<Path<i64>, axum::extract::rejection::PathRejection>) -> Result<Json<Value>, ApiError> {
    let id = path(id)?;
    s.service.store.resolve_escalation(id, &format!("token:{}", caller.name)).await.map_err(decision)?;
    Ok(Json(json!({"id": id, "status": "resolved"})))
}
