//! The HTTP API: health, metrics, items (the request path the built-in
//! traffic shares), and the admin endpoints behind a bearer token. Every
//! error is a JSON body `{"error": "..."}` with a 4xx status that says what
//! was wrong and what was expected; a 500 or 503 comes only from a fault
//! switch. Imports `sim`, `faults`, `metrics`, `cache` and `input`; the
//! simulation is locked only for short, non-async sections.

use crate::cache::CacheOutcome;
use crate::faults::{FaultPatch, Faults};
use crate::input;
use crate::metrics::{self, Status};
use crate::sim::{Health, Plan, REPLICAS_EXPECTED, Replicas, RestartInProgress, Sim};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Environment variable holding the admin token (same as `--token`).
pub const TOKEN_ENV: &str = "DEMO_TOKEN";

/// A body `POST /admin/scale` accepts, shown in its error messages.
pub const SCALE_EXAMPLE: &str = r#"{"replicas": 3}"#;

/// The service: the simulation and the admin token.
pub struct App {
    sim: Mutex<Sim>,
    /// None: admin endpoints are refused.
    token: Option<String>,
}

impl App {
    /// An empty token counts as none.
    pub fn new(sim: Sim, token: Option<String>) -> Arc<App> {
        Arc::new(App { sim: Mutex::new(sim), token: token.filter(|t| !t.trim().is_empty()) })
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The simulation, locked. A panic while locked cannot leave it half
    /// updated in a way that matters, so a poisoned lock is used as is.
    fn sim(&self) -> MutexGuard<'_, Sim> {
        self.sim.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A line on stderr about what the service did (stdout carries only the
/// `listening on` line).
pub fn note(message: &str) {
    let _ = writeln!(std::io::stderr(), "demo-service: {message}");
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/api/items", get(random_item))
        .route("/api/items/{id}", get(item))
        .route("/admin/restart", post(restart))
        .route("/admin/scale", post(scale))
        .route("/admin/cache/clear", post(clear_cache))
        .route("/admin/faults", get(faults).post(update_faults).delete(clear_faults))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// Every error body.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub error: String,
}

/// The errors the API answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The service was started without an admin token.
    NoTokenConfigured,
    /// An admin request without an Authorization header.
    MissingToken,
    /// An Authorization header that is not `Bearer TOKEN`.
    NotBearer,
    /// A bearer token that is not the admin token.
    WrongToken,
    BadRequest(String),
    NotFound(String),
    MethodNotAllowed(String),
    RestartInProgress,
    /// The body could not be read (too large, cut off).
    Body(StatusCode, String),
}

impl ApiError {
    fn body(rejection: BytesRejection) -> ApiError {
        ApiError::Body(rejection.status(), format!("cannot read the request body: {}", rejection.body_text()))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NoTokenConfigured => StatusCode::FORBIDDEN,
            ApiError::MissingToken | ApiError::NotBearer | ApiError::WrongToken => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RestartInProgress => StatusCode::CONFLICT,
            ApiError::Body(status, _) => *status,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::NoTokenConfigured => format!(
                "admin endpoints are disabled because no admin token is configured: \
                 start demo-service with --token TOKEN or set {TOKEN_ENV}"
            ),
            ApiError::MissingToken => {
                "missing admin token: send the header \"Authorization: Bearer TOKEN\"".to_string()
            }
            ApiError::NotBearer => "the Authorization header must be \"Bearer TOKEN\"".to_string(),
            ApiError::WrongToken => "the admin token is not valid".to_string(),
            ApiError::RestartInProgress => {
                "a restart is already in progress: wait until /healthz answers 200".to_string()
            }
            ApiError::BadRequest(m) | ApiError::NotFound(m) | ApiError::MethodNotAllowed(m) | ApiError::Body(_, m) => {
                m.clone()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(ErrorBody { error: self.message() })).into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<RestartInProgress> for ApiError {
    fn from(_: RestartInProgress) -> ApiError {
        ApiError::RestartInProgress
    }
}

/// Proof that a request carries the admin token. Extract it before the body
/// so an unauthorized request is refused before its body is looked at.
pub struct Admin;

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Admin, ApiError> {
        let expected = app.token.as_deref().ok_or(ApiError::NoTokenConfigured)?;
        let header = parts.headers.get(header::AUTHORIZATION).ok_or(ApiError::MissingToken)?;
        let value = header.to_str().map_err(|_| ApiError::NotBearer)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(ApiError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::NotBearer);
        }
        if same_bytes(token.trim().as_bytes(), expected.as_bytes()) { Ok(Admin) } else { Err(ApiError::WrongToken) }
    }
}

/// Compares in time that depends on the lengths only, not on where the
/// first difference is.
fn same_bytes(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for i in 0..given.len().max(expected.len()) {
        let (a, b) = (given.get(i).copied().unwrap_or(0), expected.get(i).copied().unwrap_or(0));
        diff |= usize::from(a ^ b);
    }
    diff == 0
}

/// One endpoint, as `GET /` lists it.
#[derive(Debug, Serialize)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    /// Needs the admin bearer token.
    pub admin: bool,
    pub description: &'static str,
}

/// Every endpoint.
pub const ENDPOINTS: [Endpoint; 11] = [
    Endpoint { method: "GET", path: "/", admin: false, description: "this list" },
    Endpoint {
        method: "GET",
        path: "/healthz",
        admin: false,
        description: "200 {\"status\":\"ok\"}, or 503 when down or restarting",
    },
    Endpoint { method: "GET", path: "/metrics", admin: false, description: "Prometheus metrics, text format 0.0.4" },
    Endpoint {
        method: "GET",
        path: "/api/items",
        admin: false,
        description: "an item drawn like the built-in traffic draws them",
    },
    Endpoint { method: "GET", path: "/api/items/{id}", admin: false, description: "item {id}, through the cache" },
    Endpoint {
        method: "POST",
        path: "/admin/restart",
        admin: true,
        description: "restart: 503 for --restart-ms, then memory freed and restart-cured faults off",
    },
    Endpoint {
        method: "POST",
        path: "/admin/scale",
        admin: true,
        description: "set the replica count: {\"replicas\": N}, N from 1 to 20",
    },
    Endpoint {
        method: "POST",
        path: "/admin/cache/clear",
        admin: true,
        description: "empty the cache, curing a poisoned one",
    },
    Endpoint { method: "GET", path: "/admin/faults", admin: true, description: "the fault switches" },
    Endpoint {
        method: "POST",
        path: "/admin/faults",
        admin: true,
        description: "change some fault switches, e.g. {\"latency_ms\": 300}",
    },
    Endpoint { method: "DELETE", path: "/admin/faults", admin: true, description: "switch every fault off" },
];

#[derive(Debug, Serialize)]
pub struct IndexBody {
    pub service: &'static str,
    pub endpoints: &'static [Endpoint],
}

async fn index() -> Json<IndexBody> {
    Json(IndexBody { service: "demo-service", endpoints: &ENDPOINTS })
}

#[derive(Debug, Serialize)]
pub struct HealthBody {
    pub status: Health,
}

async fn healthz(State(app): State<Arc<App>>) -> (StatusCode, Json<HealthBody>) {
    let (health, delay) = app.sim().health(Instant::now());
    let code = match health {
        Health::Ok => {
            tokio::time::sleep(delay).await;
            StatusCode::OK
        }
        Health::Down | Health::Restarting => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(HealthBody { status: health }))
}

async fn metrics_text(State(app): State<Arc<App>>) -> impl IntoResponse {
    let snapshot = app.sim().snapshot(Instant::now());
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics::render(&snapshot))
}

/// A served item.
#[derive(Debug, Serialize)]
pub struct Item {
    pub id: u32,
    pub value: String,
    pub cache: CacheOutcome,
}

/// How a request of the request path ended.
#[derive(Debug)]
pub enum ItemReply {
    Served(Item),
    /// 500: an error rate or a bad release failed it.
    Failed,
    /// 503: down or restarting.
    Unavailable(Health),
}

impl ItemReply {
    pub fn status(&self) -> Status {
        match self {
            ItemReply::Served(_) => Status::Ok,
            ItemReply::Failed => Status::Error,
            ItemReply::Unavailable(_) => Status::Unavailable,
        }
    }
}

impl IntoResponse for ItemReply {
    fn into_response(self) -> Response {
        match self {
            ItemReply::Served(item) => Json(item).into_response(),
            ItemReply::Failed => {
                let body = ErrorBody { error: "internal server error".to_string() };
                (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
            }
            ItemReply::Unavailable(health) => {
                let body = ErrorBody { error: format!("service unavailable: {health}") };
                (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
            }
        }
    }
}

/// The request path: `GET /api/items` and the built-in traffic both come
/// through here, so both move the request counter, the latency histogram
/// and the cache hit ratio. `id` None draws an item.
pub async fn serve_item(app: &App, id: Option<u32>) -> ItemReply {
    let start = Instant::now();
    let plan = app.sim().begin(start, id);
    let reply = match plan {
        Plan::Unavailable(health) => ItemReply::Unavailable(health),
        Plan::Serve(served) => {
            tokio::time::sleep(served.delay).await;
            if served.fail {
                ItemReply::Failed
            } else {
                ItemReply::Served(Item { id: served.id, value: format!("item {}", served.id), cache: served.cache })
            }
        }
    };
    app.sim().finish(reply.status(), start.elapsed());
    reply
}

async fn random_item(State(app): State<Arc<App>>) -> ItemReply {
    serve_item(&app, None).await
}

async fn item(State(app): State<Arc<App>>, id: Result<Path<String>, PathRejection>) -> Result<ItemReply, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest(format!("bad item path: {}", e.body_text())))?;
    let id = id.parse::<u32>().map_err(|_| {
        ApiError::BadRequest(format!(
            "item id must be a whole number from 0 to {}, got {}",
            u32::MAX,
            input::quote(&serde_json::Value::String(id.clone()))
        ))
    })?;
    Ok(serve_item(&app, Some(id)).await)
}

#[derive(Debug, Serialize)]
pub struct RestartBody {
    pub status: Health,
    pub restart_ms: u64,
}

async fn restart(_: Admin, State(app): State<Arc<App>>) -> Result<(StatusCode, Json<RestartBody>), ApiError> {
    let took = app.sim().restart(Instant::now())?;
    note(&format!("restarting (takes {} ms)", took.as_millis()));
    Ok((StatusCode::ACCEPTED, Json(RestartBody { status: Health::Restarting, restart_ms: took.as_millis() as u64 })))
}

#[derive(Debug, Serialize)]
pub struct ScaleBody {
    pub replicas: Replicas,
    pub previous: Replicas,
}

async fn scale(
    _: Admin,
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ScaleBody>, ApiError> {
    let body = body.map_err(ApiError::body)?;
    let replicas = parse_scale(&body).map_err(ApiError::BadRequest)?;
    let previous = app.sim().scale(Instant::now(), replicas);
    note(&format!("scaled from {previous} to {replicas} replicas"));
    Ok(Json(ScaleBody { replicas, previous }))
}

/// The body of `POST /admin/scale`: `{"replicas": N}`, N from 1 to 20.
fn parse_scale(body: &[u8]) -> Result<Replicas, String> {
    let mut replicas = None;
    let mut errors = Vec::new();
    for (name, value) in input::sorted(input::json_object(body, SCALE_EXAMPLE)?) {
        if name != "replicas" {
            errors.push(format!("unknown field \"{name}\": the only field is \"replicas\""));
            continue;
        }
        match value.as_u64().and_then(Replicas::new) {
            Some(n) => replicas = Some(n),
            None => {
                errors.push(format!("field \"replicas\" must be {REPLICAS_EXPECTED}, got {}", input::quote(&value)))
            }
        }
    }
    match replicas {
        Some(n) if errors.is_empty() => Ok(n),
        None if errors.is_empty() => Err(format!("field \"replicas\" is required: {REPLICAS_EXPECTED}")),
        _ => Err(errors.join("; ")),
    }
}

#[derive(Debug, Serialize)]
pub struct CacheClearBody {
    /// Items the cache held.
    pub cleared_entries: usize,
}

async fn clear_cache(_: Admin, State(app): State<Arc<App>>) -> Json<CacheClearBody> {
    let cleared = app.sim().clear_cache(Instant::now());
    note(&format!("cache cleared ({cleared} entries)"));
    Json(CacheClearBody { cleared_entries: cleared })
}

async fn faults(_: Admin, State(app): State<Arc<App>>) -> Json<Faults> {
    Json(app.sim().faults(Instant::now()))
}

async fn update_faults(
    _: Admin,
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Faults>, ApiError> {
    let body = body.map_err(ApiError::body)?;
    let patch = FaultPatch::parse(&body).map_err(ApiError::BadRequest)?;
    let faults = app.sim().update_faults(Instant::now(), &patch);
    note(&format!("faults now {}", serde_json::to_string(&faults).unwrap_or_default()));
    Ok(Json(faults))
}

async fn clear_faults(_: Admin, State(app): State<Arc<App>>) -> Json<Faults> {
    let faults = app.sim().clear_faults(Instant::now());
    note("every fault switched off");
    Json(faults)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no endpoint {method} {}: GET / lists the endpoints", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}: GET / lists the endpoints", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_body_names_the_field_and_its_range() {
        assert_eq!(parse_scale(br#"{"replicas": 3}"#), Ok("3".parse().unwrap()));
        let range = "field \"replicas\" must be a whole number from 1 to 20";
        assert_eq!(parse_scale(br#"{"replicas": 0}"#).unwrap_err(), format!("{range}, got 0"));
        assert_eq!(parse_scale(br#"{"replicas": 21}"#).unwrap_err(), format!("{range}, got 21"));
        assert_eq!(parse_scale(br#"{"replicas": 2.5}"#).unwrap_err(), format!("{range}, got 2.5"));
        assert_eq!(parse_scale(br#"{"replicas": "two"}"#).unwrap_err(), format!("{range}, got \"two\""));
        assert_eq!(parse_scale(b"{}").unwrap_err(), "field \"replicas\" is required: a whole number from 1 to 20");
        assert_eq!(
            parse_scale(br#"{"replica": 3}"#).unwrap_err(),
            "unknown field \"replica\": the only field is \"replicas\""
        );
        assert_eq!(
            parse_scale(b"3").unwrap_err(),
            "the request body must be a JSON object such as {\"replicas\": 3}, got a number"
        );
    }

    #[test]
    fn tokens_compare_equal_only_when_every_byte_matches() {
        assert!(same_bytes(b"secret", b"secret"));
        assert!(!same_bytes(b"secret", b"secreT"));
        assert!(!same_bytes(b"secret", b"secret\0"));
        assert!(!same_bytes(b"", b"secret"));
    }

    #[test]
    fn an_empty_token_counts_as_none() {
        let sim = Sim::new(
            crate::sim::Config {
                replicas: crate::sim::DEFAULT_REPLICAS,
                restart_time: std::time::Duration::ZERO,
                seed: 1,
            },
            Instant::now(),
        );
        assert!(!App::new(sim.clone(), Some("  ".to_string())).has_token());
        assert!(App::new(sim, Some("t".to_string())).has_token());
    }
}
