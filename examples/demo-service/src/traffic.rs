//! Built-in synthetic traffic: requests through the same request path as
//! `GET /api/items` ([`api::serve_item`]), so the request counter, error
//! rate, latency histogram, CPU and cache hit ratio move with no external
//! client. Imports `api`.

use crate::api::{self, App};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Synthetic requests per second (`--traffic-rps`). By default 50.
pub const DEFAULT_TRAFFIC_RPS: u32 = 50;
/// Most synthetic requests per second `--traffic-rps` accepts. By default
/// 10 000.
pub const MAX_TRAFFIC_RPS: u32 = 10_000;
/// Most synthetic requests in flight at once; a tick finding this many
/// still waiting sends nothing, like a load generator out of connections.
/// By default 10 000 (a 1 s latency fault at 10 000 requests a second).
pub const MAX_IN_FLIGHT: usize = 10_000;

/// Sends `rps` requests a second, each in its own task so a slow request
/// (a latency fault) does not slow the rate, up to [`MAX_IN_FLIGHT`] at
/// once; forever, or never when `rps` is 0. Ticks the timer missed are made
/// up at once, so the rate holds on average even above the timer's 1 ms
/// resolution.
pub async fn run(app: Arc<App>, rps: u32) {
    if rps == 0 {
        return;
    }
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rps)));
    loop {
        tick.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else { continue };
        let app = app.clone();
        tokio::spawn(async move {
            api::serve_item(&app, None).await;
            drop(permit);
        });
    }
}
