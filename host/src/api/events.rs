//! `GET /v1/runs/{id}/events`: live progress of one run as server-sent
//! events. The stream starts with a `snapshot` event (the run as recorded,
//! so nothing before the connection is missed), then relays the engine's
//! events for that run, and ends after `run_finished`. For a run already
//! over it sends the snapshot and ends.

use super::{ApiError, AppState, CanRead, path};
use crate::engine::Event;
use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast;

fn sse(name: &str, data: &impl serde::Serialize) -> SseEvent {
    SseEvent::default().event(name).data(serde_json::to_string(data).unwrap_or_else(|_| "null".into()))
}

/// The SSE event name of an engine event, e.g. `step_finished`.
fn name(e: &Event) -> String {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| v.get("event").and_then(|n| n.as_str()).map(str::to_string))
        .unwrap_or_else(|| "event".into())
}

fn run_of(e: &Event) -> &str {
    match e {
        Event::Queued { run_id }
        | Event::RunStarted { run_id, .. }
        | Event::StepStarted { run_id, .. }
        | Event::StepFinished { run_id, .. }
        | Event::Retrying { run_id, .. }
        | Event::WaitingApproval { run_id, .. }
        | Event::ApprovalDecided { run_id, .. }
        | Event::IterationFinished { run_id, .. }
        | Event::Escalated { run_id, .. }
        | Event::RunFinished { run_id, .. } => run_id,
    }
}

enum Phase {
    Snapshot(SseEvent, bool),
    Live(broadcast::Receiver<Event>),
    Done,
}

#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "runs", params(("id" = String, Path, description = "Run id")), responses((status = 200, description = "Server-sent events: snapshot, then the run's progress to run_finished", content_type = "text/event-stream"), (status = 404, body = super::ErrorBody)))]
pub async fn run_events(
    _: CanRead,
    State(s): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let id = path(id)?;
    // Subscribe before reading the snapshot so no event falls in between.
    let rx = s.service.engine.subscribe();
    let run = s.service.store.get_run(&id).await?.ok_or_else(|| ApiError::NotFound(format!("run {id:?} not found")))?;
    let over = run.status.is_final();
    let snapshot = sse("snapshot", &run);
    let stream = stream::unfold((Phase::Snapshot(snapshot, over), Some(rx), id), |(phase, rx, id)| async move {
        match phase {
            Phase::Snapshot(event, true) => Some((Ok(event), (Phase::Done, None, id))),
            Phase::Snapshot(event, false) => {
                let rx = rx?;
                Some((Ok(event), (Phase::Live(rx), None, id)))
            }
            Phase::Live(mut rx) => loop {
                match rx.recv().await {
                    Ok(e) if run_of(&e) == id => {
                        let finished = matches!(e, Event::RunFinished { .. });
                        let out = sse(&name(&e), &e);
                        let next = if finished { Phase::Done } else { Phase::Live(rx) };
                        return Some((Ok(out), (next, None, id)));
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let out = sse("lagged", &serde_json::json!({"missed": n}));
                        return Some((Ok(out), (Phase::Live(rx), None, id)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            },
            Phase::Done => None,
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
