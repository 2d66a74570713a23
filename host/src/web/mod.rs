//! The web view of `tend serve`, at `/`: runs, one run, approvals,
//! escalations, runbooks (with a form to start a run) and plugins, as
//! server-rendered HTML (minijinja templates under `templates/`, a small
//! stylesheet and one small script under `assets/`, all embedded in the
//! binary). Pages read without JavaScript; the script only refreshes a
//! page's `#live` region when the engine reports a change (`/live`).
//!
//! Sign-in takes the API's tokens and scopes ([`session`]); every form
//! carries a CSRF token, and every action checks the scope the API's
//! endpoint checks, whatever buttons a page shows. Each page file owns one
//! resource and exports `routes()`. Reads go through the store's page
//! queries (indexed, paged); this module holds no SQL.

mod approvals;
mod assets;
mod escalations;
mod live;
mod plugins;
mod runbooks;
mod runs;
pub mod session;

use crate::api::{ApiError, AppState};
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use session::Session;
use std::sync::LazyLock;

/// Rows a list page shows at most: 50.
pub const PAGE_SIZE: u32 = 50;

/// The web view's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(session::routes())
        .merge(runs::routes())
        .merge(approvals::routes())
        .merge(escalations::routes())
        .merge(runbooks::routes())
        .merge(plugins::routes())
        .merge(live::routes())
        .merge(assets::routes())
}

/// The templates, parsed once.
static TEMPLATES: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    let files = [
        ("base.html", include_str!("templates/base.html")),
        ("signin.html", include_str!("templates/signin.html")),
        ("error.html", include_str!("templates/error.html")),
        ("runs.html", include_str!("templates/runs.html")),
        ("run.html", include_str!("templates/run.html")),
        ("approvals.html", include_str!("templates/approvals.html")),
        ("escalations.html", include_str!("templates/escalations.html")),
        ("runbooks.html", include_str!("templates/runbooks.html")),
        ("runbook.html", include_str!("templates/runbook.html")),
        ("plugins.html", include_str!("templates/plugins.html")),
        ("escalation_actions.html", include_str!("templates/escalation_actions.html")),
    ];
    for (name, source) in files {
        if let Err(e) = env.add_template(name, source) {
            // A broken template is a bug caught by every test that renders a page.
            tracing::error!("web template {name}: {e:#}");
        }
    }
    env.set_debug(false);
    env.add_filter("when", when);
    env.add_filter("urlencode", |s: String| session::encode_component(&s));
    env.add_filter("pretty", pretty);
    env
});

/// `2026-12-06T15:23:17.123Z` as `2026-12-06 15:23:17 UTC`.
fn when(rfc3339: String) -> String {
    match rfc3339.split_once('T') {
        Some((day, time)) => format!("{day} {} UTC", time.get(..8).unwrap_or(time)),
        None => rfc3339,
    }
}

/// A value as indented JSON (strings as they are).
fn pretty(v: minijinja::Value) -> String {
    if let Some(s) = v.as_str() {
        return s.to_string();
    }
    serde_json::to_value(&v).and_then(|j| serde_json::to_string_pretty(&j)).unwrap_or_else(|_| v.to_string())
}

/// What every page shows: who is signed in, the CSRF token for its
/// forms, which section is current, and what the live script follows.
#[derive(Serialize)]
pub struct Frame {
    pub user: Option<User>,
    pub csrf: String,
    /// The current section of the navigation, e.g. `runs`.
    pub section: &'static str,
    /// What the page's `#live` region follows: `runs`, `run:<id>`,
    /// `escalations`, `approvals`; empty for none.
    pub live: String,
}

/// The signed-in token as pages show it.
#[derive(Serialize)]
pub struct User {
    pub name: String,
    pub scopes: Vec<&'static str>,
    /// May approve, reject, cancel, acknowledge and resolve.
    pub admin: bool,
    /// May start runs.
    pub trigger: bool,
}

impl Frame {
    pub fn new(session: &Session, section: &'static str, live: impl Into<String>) -> Frame {
        use crate::serve::config::Scope;
        let c = &session.caller;
        Frame {
            user: Some(User {
                name: c.name.clone(),
                scopes: c.scopes.iter().map(|s| s.as_str()).collect(),
                admin: c.may(Scope::Admin),
                trigger: c.may(Scope::Trigger),
            }),
            csrf: session.csrf.clone(),
            section,
            live: live.into(),
        }
    }
}

/// Renders a template with the frame and the page's own values (`page`).
pub fn render(template: &str, frame: &Frame, page: impl Serialize) -> Result<Response, WebError> {
    render_status(StatusCode::OK, template, frame, page)
}

pub fn render_status(
    status: StatusCode,
    template: &str,
    frame: &Frame,
    page: impl Serialize,
) -> Result<Response, WebError> {
    let t = TEMPLATES.get_template(template).map_err(|e| anyhow::anyhow!("template {template}: {e:#}"))?;
    let html = t
        .render(minijinja::context! {
            frame => minijinja::value::Serde(frame),
            page => minijinja::value::Serde(page),
        })
        .map_err(|e| anyhow::anyhow!("rendering {template}: {e:#}"))?;
    Ok(html_response(status, html))
}

/// An HTML answer with the headers every page carries: no caching, no
/// framing, no sniffing, no referrer to other sites, and scripts and styles from this
/// server only.
pub fn html_response(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // `same-origin`, not `no-referrer`: with the latter, browsers send
    // `Origin: null` on the pages' own forms.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// Why a page or an action was not served.
#[derive(Debug)]
pub enum WebError {
    /// No valid session: to the sign-in page, then back to `next`.
    SignIn { next: String },
    /// Refused, with the status and message the API gives for the same
    /// request (401, 403, 404, 409, 422, ...), shown on an error page.
    Api(ApiError),
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        WebError::Api(e)
    }
}

/// A store failure is a 500, as in the API.
impl From<crate::store::StoreError> for WebError {
    fn from(e: crate::store::StoreError) -> Self {
        WebError::Api(e.into())
    }
}

impl From<anyhow::Error> for WebError {
    fn from(e: anyhow::Error) -> Self {
        WebError::Api(ApiError::Internal(e))
    }
}

#[derive(Serialize)]
struct ErrorPage {
    status: u16,
    title: &'static str,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let e = match self {
            WebError::SignIn { next } => {
                return Redirect::to(&format!("/signin?next={}", session::encode_component(&next))).into_response();
            }
            WebError::Api(e) => e,
        };
        let status = e.status();
        let message = match &e {
            ApiError::Internal(detail) => {
                tracing::error!("web view: internal error: {detail:#}");
                "internal error; the server's log has the detail".to_string()
            }
            other => other.to_string(),
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let frame = Frame { user: None, csrf: String::new(), section: "", live: String::new() };
        match render_status(status, "error.html", &frame, ErrorPage { status: status.as_u16(), title, message }) {
            Ok(r) => r,
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
        }
    }
}

/// The answer to a path nothing serves, for a browser (it asks for HTML
/// and the path is not the API's): the web view's 404 page. None otherwise,
/// so API clients keep their JSON error.
pub fn not_found(uri: &axum::http::Uri, headers: &axum::http::HeaderMap) -> Option<Response> {
    let html = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if !html || uri.path().starts_with("/v1/") {
        return None;
    }
    let message = format!("there is no page at {}; the runs are at /runs", uri.path());
    Some(WebError::Api(ApiError::NotFound(message)).into_response())
}

/// A form's fields failed to parse: 400 naming what was wrong.
pub fn bad_form(r: axum::extract::rejection::FormRejection) -> WebError {
    WebError::Api(ApiError::BadRequest(format!("the form is not valid: {}", r.body_text())))
}

/// A query string failed to parse: 400 naming what was wrong.
pub fn bad_query(r: axum::extract::rejection::QueryRejection) -> WebError {
    WebError::Api(ApiError::BadRequest(r.body_text()))
}

/// A path segment that failed to parse: 400.
pub fn bad_path(r: axum::extract::rejection::PathRejection) -> WebError {
    WebError::Api(ApiError::BadRequest(r.body_text()))
}

/// An optional text field: empty or blank means not given.
pub fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Milliseconds as `1.2s`, `350ms`, `2m 5s`.
pub fn took(ms: f64) -> String {
    crate::units::format_duration(std::time::Duration::from_secs_f64((ms / 1000.0).max(0.0)))
}

/// After an action: back to a page (303, so a reload does not repeat it).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}
