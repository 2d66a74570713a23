//! Plugins at `/plugins`: each plugin's describe() record (name, version,
//! description, capabilities, config schema) with its origin and digest,
//! as `GET /v1/plugins` gives them.

use super::session::Session;
use super::{Frame, WebError, render};
use crate::api::AppState;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use serde_json::Value;

pub fn routes() -> Router<AppState> {
    Router::new().route("/plugins", get(list))
}

#[derive(Serialize)]
struct ListPage {
    plugins: Vec<Value>,
}

async fn list(session: Session, State(s): State<AppState>) -> Result<Response, WebError> {
    let plugins = crate::api::plugin_records(&s.service).await;
    render("plugins.html", &Frame::new(&session, "plugins", ""), ListPage { plugins })
}
