//! `GET /live`: the engine's events as server-sent events for the web
//! view's script, each `{"event": "run_started", "run_id": "01J..."}`
//! (names as in `/v1/runs/{id}/events`). The script reloads a page's
//! `#live` region when an event concerns it; the page itself is the
//! truth, so a missed event only delays a refresh (a `lagged` event asks
//! for one). The stream ends when the server shuts down.

use super::WebError;
use super::session::Session;
use crate::api::AppState;
use crate::engine::Event;
use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures_util::stream::{self, Stream};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often an idle stream sends a comment to keep proxies from closing it: 15 seconds.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn routes() -> Router<AppState> {
    Router::new().route("/live", get(live))
}

#[derive(serde::Serialize)]
struct Change {
    event: String,
    run_id: Option<String>,
}

fn change(e: &Event) -> Change {
    let v = serde_json::to_value(e).unwrap_or_default();
    let text = |k: &str| v.get(k).and_then(|n| n.as_str()).map(str::to_string);
    Change { event: text("event").unwrap_or_else(|| "event".into()), run_id: text("run_id") }
}

async fn live(
    _: Session,
    State(s): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, WebError> {
    let rx = s.service.engine.subscribe();
    let closing = s.closing.clone();
    let stream = stream::unfold((rx, closing), |(mut rx, mut closing)| async move {
        if *closing.borrow() {
            return None;
        }
        let c = tokio::select! {
            received = rx.recv() => match received {
                Ok(e) => change(&e),
                Err(broadcast::error::RecvError::Lagged(_)) => Change { event: "lagged".into(), run_id: None },
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            _ = closing.changed() => return None,
        };
        let data = serde_json::to_string(&c).unwrap_or_else(|_| "{}".into());
        Some((Ok(SseEvent::default().data(data)), (rx, closing)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
