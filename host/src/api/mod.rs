//! The HTTP API of `tend serve` (axum, JSON, under `/v1`): triggers, runs,
//! runbooks, plugins, escalations, approvals; `/healthz` and `/readyz`.
//! Every endpoint but the two health checks needs a bearer token with the
//! right scope. Bad input always gets a 4xx with a JSON error; internal
//! errors are logged and answered with a bare 500.

pub mod alerts;
pub mod auth;
pub mod error;
pub mod escalations;
pub mod events;
pub mod reports;

use crate::engine::TriggerInfo;
use crate::runbook::{Runbook, Trigger};
use crate::serve::config::Scope;
use crate::serve::{Service, TriggerError};
use crate::store::{ApprovalStatus, RunFilter, RunStatus, StoreError, TriggerKind};
use auth::{Auth, Caller};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
pub use error::ApiError;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub auth: Arc<Auth>,
    /// Becomes true when the server shuts down: endless streams (the web
    /// view's live updates) end so the graceful shutdown is not held up.
    pub closing: tokio::sync::watch::Receiver<bool>,
}

/// The OpenAPI document's frame: title, version, bearer security. The
/// paths come from the handlers' `#[utoipa::path]` attributes.
#[derive(OpenApi)]
#[openapi(
    info(title = "tend", description = "Runbook automation where every step is a sandboxed WebAssembly component."),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(prometheus))
        .routes(routes!(list_runbooks))
        .routes(routes!(get_runbook))
        .routes(routes!(trigger_run))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(events::run_events))
        .routes(routes!(cancel_run))
        .routes(routes!(approve_run))
        .routes(routes!(reject_run))
        .routes(routes!(list_plugins))
        .routes(routes!(alerts::alertmanager))
        .merge(escalations::routes())
        .merge(reports::routes())
}

/// The API's routes, `/v1/openapi.json` included, and the web view's
/// ([`crate::web`]). `closing` becomes true when the server shuts down.
pub fn router(service: Arc<Service>, closing: tokio::sync::watch::Receiver<bool>) -> Router {
    let auth = Arc::new(Auth::new(&service.config.tokens, service.config.rate_limit));
    let body_limit = service.config.body_limit;
    let state = AppState { service, auth, closing };
    let (router, doc) = api_routes().split_for_parts();
    let doc = Arc::new(doc);
    router
        .merge(crate::web::routes())
        .route(
            "/v1/openapi.json",
            axum::routing::get(move |_: CanRead| {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|uri: axum::http::Uri, headers: HeaderMap| async move {
            crate::web::not_found(&uri, &headers)
                .unwrap_or_else(|| ApiError::NotFound("no such endpoint".into()).into_response())
        })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("method not allowed on this endpoint".into())
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// The body of every error response.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// e.g. `not_found`, `unprocessable`.
    pub code: String,
    /// What was wrong, for people.
    pub message: String,
}

/// The answer to a trigger.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RunAccepted {
    pub run_id: String,
    /// e.g. `/v1/runs/01J...`.
    pub status_url: String,
}

/// A page of runs.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RunPage {
    pub runs: Vec<crate::store::RunRow>,
    /// The next page, when there may be one.
    pub next: Option<String>,
}

pub use crate::store::RunRecord;

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
pub(crate) fn decision(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
        StoreError::Conflict(m) => ApiError::Conflict(m),
        StoreError::Backend(e) => ApiError::Internal(e),
    }
}

// ---- health ---------------------------------------------------------------

#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200, description = "The process is up", body = Object)))]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "health", security(()), responses((status = 200, description = "The database answers", body = Object), (status = 503, body = ErrorBody)))]
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
/// traps by kind, escalations by severity, scheduler lateness and the
/// scheduler's time at its last pass.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format", content_type = "text/plain"), (status = 401, body = ErrorBody)))]
async fn prometheus(_: CanRead, State(s): State<AppState>) -> Response {
    let body = s.service.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

// ---- runbooks -------------------------------------------------------------

/// A runbook as the API shows it. Each cron trigger lists its next five
/// fire times after the scheduler's clock (`next_fires`, before jitter)
/// and the stored time the scheduler will fire it next (`next_fire_at`,
/// jitter included; earlier than `next_fires` while a fire is due; null
/// until the scheduler has seen the trigger).
pub(crate) async fn runbook_json(service: &Service, rb: &Runbook) -> Result<Value, ApiError> {
    let now = jiff::Timestamp::from_millisecond(service.clock.now_ms()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let mut stored = Vec::new();
    for t in &rb.triggers {
        if let Trigger::Cron(c) = t {
            let at = service.store.schedule_next(&crate::scheduler::key(&rb.name, c)).await?;
            stored.push(at.map(crate::units::rfc3339));
        }
    }
    let mut stored = stored.into_iter();
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
                "next_fires": c.schedule.next_fires(now, 5)
                    .into_iter().map(|t| crate::units::rfc3339(t.as_millisecond())).collect::<Vec<_>>(),
                "next_fire_at": stored.next().flatten(),
            }),
            Trigger::Http => json!({"http": true}),
            Trigger::Alert(a) => {
                let re: Map<String, Value> = a.regex.iter().map(|(k, r)| (k.clone(), json!(r.as_str()))).collect();
                let params: Map<String, Value> = a
                    .params
                    .iter()
                    .map(|(k, p)| match p {
                        crate::runbook::AlertParam::Literal(v) => (k.clone(), v.clone()),
                        crate::runbook::AlertParam::Template(t) => (k.clone(), json!(t.source)),
                    })
                    .collect();
                json!({"alert": {"match": a.exact, "match_re": re}, "params": params})
            }
        })
        .collect();
    Ok(json!({
        "name": rb.name, "description": rb.description, "file": rb.file, "hash": rb.hash,
        "params": params, "triggers": triggers, "concurrency": rb.concurrency,
        "steps": rb.all_steps().map(|s| json!({"id": s.id, "plugin": s.plugin})).collect::<Vec<_>>(),
    }))
}

#[utoipa::path(get, path = "/v1/runbooks", tag = "runbooks", responses((status = 200, description = "Loaded runbooks and load problems", body = Object), (status = 401, body = ErrorBody)))]
async fn list_runbooks(_: CanRead, State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut list = Vec::new();
    for rb in s.service.runbooks() {
        list.push(runbook_json(&s.service, &rb).await?);
    }
    Ok(Json(json!({"runbooks": list, "problems": s.service.problems()})))
}

#[utoipa::path(get, path = "/v1/runbooks/{name}", tag = "runbooks", params(("name" = String, Path, description = "Runbook name")), responses((status = 200, description = "Params, triggers with next fire times, steps", body = Object), (status = 404, body = ErrorBody)))]
async fn get_runbook(
    _: CanRead,
    State(s): State<AppState>,
    name: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let name = path(name)?;
    let rb = s.service.runbook(&name).ok_or_else(|| ApiError::NotFound(format!("runbook {name:?} not found")))?;
    Ok(Json(runbook_json(&s.service, &rb).await?))
}

// ---- runs -------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// The run's params, e.g. `{"url": "https://example.com"}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    params: Map<String, Value>,
}

#[utoipa::path(post, path = "/v1/runbooks/{name}/runs", tag = "runs", params(("name" = String, Path, description = "Runbook name"), ("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first run")), request_body(content = TriggerBody, description = "Empty means no params"), responses((status = 202, body = RunAccepted), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
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
        return Err(ApiError::Forbidden(format!(
            "runbook {name:?} has no http trigger; add `- http: true` to its triggers"
        )));
    }
    let trigger = TriggerInfo { kind: TriggerKind::Http, source: Some(format!("token:{}", caller.name)) };
    let (id, created) = s.service.trigger(&name, &b.params, &trigger, key.as_deref()).await.map_err(|e| match e {
        TriggerError::UnknownRunbook(_) => ApiError::NotFound(e.to_string()),
        TriggerError::BadParams(_) => ApiError::Unprocessable(e.to_string()),
        TriggerError::Conflict(m) => ApiError::Conflict(m),
        TriggerError::Internal(e) => ApiError::Internal(e),
    })?;
    let mut response =
        (StatusCode::ACCEPTED, Json(RunAccepted { status_url: format!("/v1/runs/{id}"), run_id: id })).into_response();
    if !created {
        response.headers_mut().insert("idempotent-replayed", header::HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs of this runbook.
    runbook: Option<String>,
    /// queued, running, waiting_approval, succeeded, failed, cancelled, timed_out, interrupted or skipped.
    status: Option<String>,
    /// Page size, 1 to 500; by default 50.
    limit: Option<u32>,
    /// Only runs older than this run id (the `next` link sets it).
    before: Option<String>,
}

#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(RunsQuery), responses((status = 200, body = RunPage), (status = 400, body = ErrorBody)))]
async fn list_runs(
    _: CanRead,
    State(s): State<AppState>,
    q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let status = q.status.as_deref().map(str::parse::<RunStatus>).transpose().map_err(ApiError::BadRequest)?;
    let limit = q.limit.unwrap_or(RunFilter::DEFAULT_LIMIT);
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
    Ok(Json(serde_json::to_value(RunPage { runs, next }).map_err(anyhow::Error::from)?))
}

#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path, description = "Run id")), responses((status = 200, body = RunRecord), (status = 404, body = ErrorBody)))]
async fn get_run(
    _: CanRead,
    State(s): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path(id)?;
    let record = s.service.store.run_record(&id).await?;
    let record = record.ok_or_else(|| ApiError::NotFound(format!("run {id:?} not found")))?;
    Ok(Json(serde_json::to_value(record).map_err(anyhow::Error::from)?))
}

#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs", params(("id" = String, Path, description = "Run id")), responses((status = 202, description = "Cancellation requested", body = Object), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel_run(
    _: CanAdmin,
    State(s): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let id = path(id)?;
    let was = s.service.store.request_cancel(&id).await.map_err(decision)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"run_id": id, "status": was, "cancel_requested": true}))).into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Why, e.g. `"change 42 approved by the on-call"`.
    reason: Option<String>,
}

async fn decide(
    s: &AppState,
    caller: &Caller,
    id: String,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
    status: ApprovalStatus,
) -> Result<Json<Value>, ApiError> {
    let b: DecisionBody = parse_body(&body(raw)?)?;
    let row = s
        .service
        .store
        .decide_approval(&id, status, &format!("token:{}", caller.name), b.reason.as_deref())
        .await
        .map_err(decision)?;
    Ok(Json(serde_json::to_value(row).map_err(anyhow::Error::from)?))
}

#[utoipa::path(post, path = "/v1/runs/{id}/approve", tag = "runs", params(("id" = String, Path, description = "Run id")), request_body(content = DecisionBody), responses((status = 200, body = crate::store::ApprovalRow), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn approve_run(
    CanAdmin(caller): CanAdmin,
    State(s): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    decide(&s, &caller, path(id)?, raw, ApprovalStatus::Approved).await
}

#[utoipa::path(post, path = "/v1/runs/{id}/reject", tag = "runs", params(("id" = String, Path, description = "Run id")), request_body(content = DecisionBody), responses((status = 200, body = crate::store::ApprovalRow), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn reject_run(
    CanAdmin(caller): CanAdmin,
    State(s): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    decide(&s, &caller, path(id)?, raw, ApprovalStatus::Rejected).await
}

// ---- plugins ----------------------------------------------------------------

#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", responses((status = 200, description = "Each plugin's describe() record", body = Object)))]
async fn list_plugins(_: CanRead, State(s): State<AppState>) -> Json<Value> {
    Json(json!({"plugins": plugin_records(&s.service).await}))
}

/// Each plugin's describe() record with its origin and digest, or the
/// error describing it gave.
pub(crate) async fn plugin_records(service: &Service) -> Vec<Value> {
    let mut out = Vec::new();
    for source in service.runtime.plugins() {
        match service.runtime.describe(source).await {
            Ok(info) => out.push(json!({
                "name": info.name, "version": info.version, "description": info.description,
                "capabilities": info.capabilities, "config_schema": info.config_schema,
                "origin": source.origin, "digest": source.content().ok().map(|c| c.digest.as_str()),
            })),
            Err(e) => out.push(json!({"name": source.name, "origin": source.origin, "error": format!("{e:#}")})),
        }
    }
    out
}
