//! `GET /v1/runs/{id}/report`: the report a finished run's runbook asked
//! for (`report: postmortem`), as stored with the run, in Markdown.

use super::{ApiError, AppState, CanRead, ErrorBody, path};
use crate::report::NoReport;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The content type of a report.
pub const MARKDOWN: &str = "text/markdown; charset=utf-8";

/// This resource's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(run_report))
}

#[utoipa::path(get, path = "/v1/runs/{id}/report", tag = "runs", params(("id" = String, Path, description = "Run id")), responses((status = 200, description = "The run's report in Markdown", content_type = "text/markdown; charset=utf-8", body = String), (status = 404, description = "No such run, or the run has no report (the message says why)", body = ErrorBody), (status = 409, description = "The run is still going", body = ErrorBody)))]
async fn run_report(
    _: CanRead,
    State(s): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let id = path(id)?;
    let run = s.service.store.get_run(&id).await?;
    let report = s.service.store.report(&id).await?;
    match crate::report::stored(&id, run, report) {
        Ok(r) => Ok(([(header::CONTENT_TYPE, MARKDOWN)], r.markdown).into_response()),
        Err(e @ NoReport::Unfinished { .. }) => Err(ApiError::Conflict(e.to_string())),
        Err(e) => Err(ApiError::NotFound(e.to_string())),
    }
}
