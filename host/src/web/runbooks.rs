//! Runbooks: the loaded ones and the problems of the last load at
//! `/runbooks`; one at `/runbooks/{name}` with its params, triggers (cron
//! ones with their next fire times, as `GET /v1/runbooks/{name}` shows
//! them), steps, and a form that starts a run; `POST
//! /runbooks/{name}/runs` starts it (trigger scope, an `http` trigger, and
//! the params checked by the same code as the API's, each error shown).

use super::session::Session;
use super::{Frame, WebError, bad_form, bad_path, render, render_status, see_other};
use crate::api::{ApiError, AppState};
use crate::engine::TriggerInfo;
use crate::runbook::{Param, ParamType, Runbook, Trigger};
use crate::serve::TriggerError;
use crate::serve::config::Scope;
use crate::store::TriggerKind;
use axum::Router;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The prefix of a param's field in the start form: `param.<name>`.
const PARAM_FIELD: &str = "param.";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/runbooks", get(list))
        .route("/runbooks/{name}", get(show))
        .route("/runbooks/{name}/runs", axum::routing::post(start))
}

#[derive(Serialize)]
struct ListPage {
    runbooks: Vec<Value>,
    problems: Vec<String>,
}

async fn list(session: Session, State(s): State<AppState>) -> Result<Response, WebError> {
    let mut runbooks = Vec::new();
    for rb in s.service.runbooks() {
        runbooks.push(crate::api::runbook_json(&s.service, &rb).await?);
    }
    let page = ListPage { runbooks, problems: s.service.problems() };
    render("runbooks.html", &Frame::new(&session, "runbooks", ""), page)
}

/// A param's field in the start form.
#[derive(Serialize)]
struct Field {
    name: String,
    /// `text`, `number`, `bool`, `json` (arrays and objects) or `choice` (an `enum`).
    input: &'static str,
    kind: &'static str,
    required: bool,
    description: Option<String>,
    /// What the field holds: the value sent, else the default.
    value: String,
    /// For `choice`: each allowed value as JSON (what the form sends) and
    /// as shown (strings without their quotes).
    choices: Vec<(String, String)>,
}

fn field(p: &Param, sent: Option<&String>) -> Field {
    let input = match (p.allowed.is_some(), p.kind) {
        (true, _) => "choice",
        (false, ParamType::String) => "text",
        (false, ParamType::Number) => "number",
        (false, ParamType::Bool) => "bool",
        (false, ParamType::Array | ParamType::Object) => "json",
    };
    let default = p.default.as_ref().map(|d| match (input, d) {
        ("text", Value::String(s)) => s.clone(),
        _ => d.to_string(),
    });
    Field {
        name: p.name.clone(),
        input,
        kind: p.kind.as_str(),
        required: p.required,
        description: p.description.clone(),
        value: sent.cloned().or(default).unwrap_or_default(),
        choices: p
            .allowed
            .iter()
            .flatten()
            .map(|v| (v.to_string(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect(),
    }
}

#[derive(Serialize)]
struct RunbookPage {
    runbook: Value,
    fields: Vec<Field>,
    /// Whether the runbook has an `http` trigger (the form needs one).
    startable: bool,
    errors: Vec<String>,
}

async fn page(
    session: &Session,
    s: &AppState,
    rb: &Runbook,
    sent: &BTreeMap<String, String>,
    errors: Vec<String>,
) -> Result<RunbookPage, WebError> {
    Ok(RunbookPage {
        runbook: crate::api::runbook_json(&s.service, rb).await?,
        fields: rb.params.iter().map(|p| field(p, sent.get(&p.name))).collect(),
        startable: rb.triggers.iter().any(|t| matches!(t, Trigger::Http)) && session.caller.may(Scope::Trigger),
        errors,
    })
}

fn loaded(s: &AppState, name: &str) -> Result<std::sync::Arc<Runbook>, WebError> {
    s.service.runbook(name).ok_or_else(|| WebError::Api(ApiError::NotFound(format!("runbook {name:?} not found"))))
}

async fn show(
    session: Session,
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, WebError> {
    let Path(name) = name.map_err(bad_path)?;
    let rb = loaded(&s, &name)?;
    let page = page(&session, &s, &rb, &BTreeMap::new(), Vec::new()).await?;
    render("runbook.html", &Frame::new(&session, "runbooks", ""), page)
}

/// The params of a start form as the API would receive them: empty fields
/// are not given (so defaults apply); numbers, booleans, choices, arrays
/// and objects are read as JSON, and text that does not read as the
/// param's type is passed as a string for the API's check to name.
fn params_of(rb: &Runbook, sent: &BTreeMap<String, String>) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, text) in sent {
        if text.trim().is_empty() {
            continue;
        }
        let kind = rb.params.iter().find(|p| &p.name == name).map(|p| (p.kind, p.allowed.is_some()));
        let value = match kind {
            Some((ParamType::String, false)) => Value::String(text.clone()),
            _ => serde_json::from_str(text.trim()).unwrap_or_else(|_| Value::String(text.clone())),
        };
        out.insert(name.clone(), value);
    }
    out
}

async fn start(
    session: Session,
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let Path(name) = name.map_err(bad_path)?;
    let Form(fields) = form.map_err(bad_form)?;
    let csrf = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
    session.check_csrf(csrf)?;
    session.caller.require(Scope::Trigger)?;
    let rb = loaded(&s, &name)?;
    if !rb.triggers.iter().any(|t| matches!(t, Trigger::Http)) {
        return Err(WebError::Api(ApiError::Forbidden(format!(
            "runbook {name:?} has no http trigger; add `- http: true` to its triggers"
        ))));
    }
    let mut sent = BTreeMap::new();
    let mut errors = Vec::new();
    for (key, value) in &fields {
        match key.strip_prefix(PARAM_FIELD) {
            Some(param) => {
                sent.insert(param.to_string(), value.clone());
            }
            None if key == "csrf" => {}
            None => errors.push(format!("the form has an unknown field {key:?}")),
        }
    }
    let trigger = TriggerInfo { kind: TriggerKind::Http, source: Some(session.by()) };
    if errors.is_empty() {
        match s.service.trigger(&name, &params_of(&rb, &sent), &trigger, None).await {
            Ok((id, _)) => return Ok(see_other(&format!("/runs/{id}"))),
            Err(TriggerError::BadParams(found)) => errors = found,
            Err(TriggerError::UnknownRunbook(_)) => {
                return Err(WebError::Api(ApiError::NotFound(format!("runbook {name:?} not found"))));
            }
            Err(TriggerError::Conflict(m)) => return Err(WebError::Api(ApiError::Conflict(m))),
            Err(TriggerError::Internal(e)) => return Err(e.into()),
        }
    }
    let page = page(&session, &s, &rb, &sent, errors).await?;
    render_status(StatusCode::UNPROCESSABLE_ENTITY, "runbook.html", &Frame::new(&session, "runbooks", ""), page)
}
