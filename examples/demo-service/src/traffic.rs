//! Built-in synthetic traffic: requests through the same request path as
//! `GET /api/items` ([`api::serve_item`]), so the request counter, error
//! rate, latency histogram, CPU and cache hit ratio move with no external
//! client. Imports `api`.

use crate::api::{self, App};
use std::sync::Arc;
use std::time::Duration;

/// Synthetic requests per second (`--traffic-rps`). By default 50.
pub const DEFAULT_TRAFFIC_RPS: u32 = 50;
/// Most synthetic requests per second `--traffic-rps` accepts. By default
/// 10 000.
pub const MAX_TRAFFIC_RPS: u32 = 10_000;

/// Sends `rps` requests a second, each in its own task so a slow request
/// (a latency fault) does not slow the rate; forever, or never when `rps`
/// is 0. Ticks the timer missed are made up at once, so the rate holds on
/// average even above the timer's 1 ms resolution.
pub async fn run(app: Arc<App>, rps: u32) {
    if rps == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rps)));
    loop {
        tick.tick().await;
        let app = app.clone();
        tokio::spawn(async move { api::serve_item(&app, None).await });
    }
}
