//! The simulated service: items served through a [`Cache`] in front of a
//! slow backend, the CPU and memory it reports, its replicas and restarts,
//! and the [`Faults`] that bend all of these. Every method takes the current
//! instant, so tests move time by hand; nothing here sleeps, spawns or does
//! I/O (the caller sleeps for the [`Served::delay`] a request is given).
//! Imports `cache`, `faults`, `metrics` and `rng`; never `api` or `traffic`.

use crate::cache::{Cache, CacheOutcome};
use crate::faults::{Cure, FaultPatch, Faults};
use crate::metrics::{Histogram, RequestCounts, Snapshot, Status};
use crate::rng::Rng;
use serde::Serialize;
use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Fewest replicas `POST /admin/scale` accepts. By default 1.
pub const MIN_REPLICAS: u32 = 1;
/// Most replicas `POST /admin/scale` accepts. By default 20.
pub const MAX_REPLICAS: u32 = 20;
/// Replicas at start (`--replicas`). By default 1.
pub const DEFAULT_REPLICAS: Replicas = Replicas(1);
/// What a replica count must be, as error messages say it.
pub const REPLICAS_EXPECTED: &str = "a whole number from 1 to 20";

/// How long a restart takes (`--restart-ms`): /healthz answers 503 meanwhile.
/// By default 500 ms.
pub const DEFAULT_RESTART_MS: u64 = 500;
/// Longest restart `--restart-ms` accepts. By default 60 000 ms.
pub const MAX_RESTART_MS: u64 = 60_000;

/// Requests per second one replica serves at full CPU. By default 1000.
pub const REPLICA_CAPACITY_RPS: f64 = 1000.0;
/// CPU a replica uses with no requests, from 0 to 1. By default 0.05.
pub const IDLE_CPU: f64 = 0.05;
/// CPU load of the high_cpu fault, in replicas' worth. By default 1.0: one
/// replica at 100 %, two at about 55 % each under the default traffic.
pub const HIGH_CPU_LOAD: f64 = 1.0;
/// The request rate behind the CPU figure is measured over this window.
/// By default 5 seconds.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Memory in use with no leak, as a share of the limit. By default 0.30.
pub const BASE_MEMORY: f64 = 0.30;
/// How fast the memory_growth fault leaks, in shares of the limit per
/// second. By default 0.05: from 0.30 past 0.85 in 11 seconds.
pub const LEAK_PER_SECOND: f64 = 0.05;
/// Highest memory usage a leak reaches. By default 0.99.
pub const MEMORY_CEILING: f64 = 0.99;

/// Items most requests ask for (ids 0 to 49). By default 50.
pub const HOT_ITEMS: u32 = 50;
/// Share of built-in requests that ask for a hot item. By default 0.9; the
/// rest ask for one of [`COLD_ITEMS`] others, which nearly always miss.
pub const HOT_SHARE: f64 = 0.9;
/// Items besides the hot ones (ids from 50). By default 1 000 000.
pub const COLD_ITEMS: u32 = 1_000_000;
/// Time a cache hit takes: this plus up to [`HIT_JITTER`]. By default 1 ms.
pub const HIT_TIME: Duration = Duration::from_millis(1);
/// By default 2 ms.
pub const HIT_JITTER: Duration = Duration::from_millis(2);
/// Time a miss takes (a backend fetch): this plus up to [`MISS_JITTER`].
/// By default 15 ms.
pub const MISS_TIME: Duration = Duration::from_millis(15);
/// By default 10 ms.
pub const MISS_JITTER: Duration = Duration::from_millis(10);

/// A replica count from [`MIN_REPLICAS`] to [`MAX_REPLICAS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Replicas(u32);

impl Replicas {
    /// None when `n` is out of range.
    pub fn new(n: u64) -> Option<Replicas> {
        (u64::from(MIN_REPLICAS)..=u64::from(MAX_REPLICAS)).contains(&n).then_some(Replicas(n as u32))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Replicas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Replicas {
    type Err = String;

    fn from_str(s: &str) -> Result<Replicas, String> {
        s.trim().parse::<u64>().ok().and_then(Replicas::new).ok_or_else(|| format!("expected {REPLICAS_EXPECTED}"))
    }
}

/// What /healthz reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Ok,
    /// The down fault is on.
    Down,
    /// A restart is in progress.
    Restarting,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Down => "down",
            Health::Restarting => "restarting",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the simulation starts.
#[derive(Debug, Clone)]
pub struct Config {
    pub replicas: Replicas,
    pub restart_time: Duration,
    /// Seed of every random draw.
    pub seed: u64,
}

/// What to do with one request of the request path.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Answer 503 at once.
    Unavailable(Health),
    Serve(Served),
}

/// A request the service serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub id: u32,
    pub cache: CacheOutcome,
    /// Answer 500 (an error rate or a bad release) after the delay.
    pub fail: bool,
    /// How long the request takes: the cache or backend time plus any
    /// latency fault.
    pub delay: Duration,
}

/// A restart was asked for while one is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartInProgress;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Restarting { until: Instant },
}

#[derive(Debug, Clone)]
pub struct Sim {
    restart_time: Duration,
    faults: Faults,
    replicas: Replicas,
    phase: Phase,
    /// Memory leaked since the last restart, as a share of the limit.
    leaked: f64,
    /// The instant the simulation was last brought up to.
    now: Instant,
    started: Instant,
    restarts: u64,
    cache: Cache,
    /// Start instants of the requests within [`RATE_WINDOW`].
    recent: VecDeque<Instant>,
    rng: Rng,
    requests: RequestCounts,
    latency: Histogram,
}

impl Sim {
    pub fn new(config: Config, now: Instant) -> Sim {
        Sim {
            restart_time: config.restart_time,
            faults: Faults::default(),
            replicas: config.replicas,
            phase: Phase::Running,
            leaked: 0.0,
            now,
            started: now,
            restarts: 0,
            cache: Cache::default(),
            recent: VecDeque::new(),
            rng: Rng::new(config.seed),
            requests: RequestCounts::default(),
            latency: Histogram::default(),
        }
    }

    /// Brings the simulation up to `now`: a leak grows, a restart whose time
    /// is up completes. An instant before the last one (callers read the
    /// clock before they lock) counts as the last one.
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.now);
        self.now = self.now.max(now);
        match self.phase {
            Phase::Restarting { until } if self.now >= until => self.complete_restart(),
            Phase::Restarting { .. } => {}
            Phase::Running if self.faults.memory_growth => {
                self.leaked = (self.leaked + LEAK_PER_SECOND * elapsed.as_secs_f64()).min(MEMORY_CEILING - BASE_MEMORY);
            }
            Phase::Running => {}
        }
    }

    /// The new process is up: the leak is gone, and so is every fault a
    /// restart cures.
    fn complete_restart(&mut self) {
        self.phase = Phase::Running;
        self.leaked = 0.0;
        self.faults.cure(Cure::Restart);
        self.restarts += 1;
    }

    fn health_now(&self) -> Health {
        match self.phase {
            Phase::Restarting { .. } => Health::Restarting,
            Phase::Running if self.faults.down => Health::Down,
            Phase::Running => Health::Ok,
        }
    }

    /// What /healthz answers, and the latency fault it waits for first.
    pub fn health(&mut self, now: Instant) -> (Health, Duration) {
        self.advance(now);
        (self.health_now(), Duration::from_millis(self.faults.latency_ms))
    }

    /// Starts a request of the request path, for item `id` or, if None, for
    /// one drawn like the built-in traffic draws them. The caller waits for
    /// the plan's delay and then calls [`Sim::finish`].
    pub fn begin(&mut self, now: Instant, id: Option<u32>) -> Plan {
        self.advance(now);
        self.recent.push_back(now);
        let health = self.health_now();
        if health != Health::Ok {
            return Plan::Unavailable(health);
        }
        let id = id.unwrap_or_else(|| self.draw_item());
        let cache = self.cache.lookup(id, self.faults.cache_misses, &mut self.rng);
        let fail = self.rng.chance(self.faults.failure_rate());
        let work = match cache {
            CacheOutcome::Hit => HIT_TIME + self.jitter(HIT_JITTER),
            CacheOutcome::Miss => MISS_TIME + self.jitter(MISS_JITTER),
        };
        Plan::Serve(Served { id, cache, fail, delay: work + Duration::from_millis(self.faults.latency_ms) })
    }

    /// Counts a finished request and its duration.
    pub fn finish(&mut self, status: Status, took: Duration) {
        self.requests.add(status);
        self.latency.observe(took);
    }

    fn draw_item(&mut self) -> u32 {
        if self.rng.chance(HOT_SHARE) {
            self.rng.below(u64::from(HOT_ITEMS)) as u32
        } else {
            HOT_ITEMS + self.rng.below(u64::from(COLD_ITEMS)) as u32
        }
    }

    fn jitter(&mut self, most: Duration) -> Duration {
        Duration::from_micros(self.rng.below(most.as_micros() as u64 + 1))
    }

    /// Starts a restart; returns how long it takes. Until it completes the
    /// service is unavailable; then memory is back to its base, the faults a
    /// restart cures are off and the restart is counted.
    pub fn restart(&mut self, now: Instant) -> Result<Duration, RestartInProgress> {
        self.advance(now);
        if let Phase::Restarting { .. } = self.phase {
            return Err(RestartInProgress);
        }
        self.phase = Phase::Restarting { until: self.now + self.restart_time };
        self.advance(self.now);
        Ok(self.restart_time)
    }

    /// Sets the replica count; returns the previous one.
    pub fn scale(&mut self, now: Instant, replicas: Replicas) -> Replicas {
        self.advance(now);
        std::mem::replace(&mut self.replicas, replicas)
    }

    /// Empties the cache and cures a poisoned one; returns how many items
    /// it held.
    pub fn clear_cache(&mut self, now: Instant) -> usize {
        self.advance(now);
        self.faults.cure(Cure::CacheClear);
        self.cache.clear()
    }

    pub fn faults(&mut self, now: Instant) -> Faults {
        self.advance(now);
        self.faults
    }

    /// Applies a partial update of the faults; returns them all.
    pub fn update_faults(&mut self, now: Instant, patch: &FaultPatch) -> Faults {
        self.advance(now);
        self.faults.apply(patch);
        self.faults
    }

    /// Switches every fault off; memory already leaked stays until a restart.
    pub fn clear_faults(&mut self, now: Instant) -> Faults {
        self.advance(now);
        self.faults = Faults::default();
        self.faults
    }

    /// Requests per second over the last [`RATE_WINDOW`] (or since start,
    /// and at least over one second).
    fn request_rate(&mut self) -> f64 {
        let cutoff = self.now.checked_sub(RATE_WINDOW);
        while let (Some(first), Some(cutoff)) = (self.recent.front(), cutoff) {
            if *first >= cutoff {
                break;
            }
            self.recent.pop_front();
        }
        let span = self.now.saturating_duration_since(self.started).clamp(Duration::from_secs(1), RATE_WINDOW);
        self.recent.len() as f64 / span.as_secs_f64()
    }

    /// CPU usage per replica, from 0 to 1: idle use, plus the request load
    /// and any high_cpu workload divided across the replicas.
    pub fn cpu_usage_ratio(&mut self, now: Instant) -> f64 {
        self.advance(now);
        let extra = if self.faults.high_cpu { HIGH_CPU_LOAD } else { 0.0 };
        let load = self.request_rate() / REPLICA_CAPACITY_RPS + extra;
        (IDLE_CPU + load / f64::from(self.replicas.get())).min(1.0)
    }

    /// Memory in use as a share of the limit.
    pub fn memory_usage_ratio(&mut self, now: Instant) -> f64 {
        self.advance(now);
        (BASE_MEMORY + self.leaked).min(MEMORY_CEILING)
    }

    pub fn replicas(&self) -> Replicas {
        self.replicas
    }

    /// Everything /metrics reports, at `now`.
    pub fn snapshot(&mut self, now: Instant) -> Snapshot {
        let cpu_usage_ratio = self.cpu_usage_ratio(now);
        let memory_usage_ratio = self.memory_usage_ratio(now);
        Snapshot {
            up: self.health_now() == Health::Ok,
            requests: self.requests,
            latency: self.latency.clone(),
            cpu_usage_ratio,
            memory_usage_ratio,
            cache_hit_ratio: self.cache.hit_ratio(),
            cache_hits: self.cache.hits(),
            cache_misses: self.cache.misses(),
            cache_entries: self.cache.len(),
            replicas: self.replicas.get(),
            restarts: self.restarts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::BAD_RELEASE_ERROR_RATE;

    const RESTART: Duration = Duration::from_millis(500);
    const TICK: Duration = Duration::from_millis(20);

    /// A simulation at `t0` with one replica and a fixed seed.
    fn sim() -> (Sim, Instant) {
        let t0 = Instant::now();
        (Sim::new(Config { replicas: Replicas(1), restart_time: RESTART, seed: 42 }, t0), t0)
    }

    fn patch(json: &str) -> FaultPatch {
        FaultPatch::parse(json.as_bytes()).unwrap()
    }

    /// Runs `n` built-in requests 20 ms apart from `from` (50 per second),
    /// finishing each after its delay; returns the instant after the last
    /// and how many failed.
    fn traffic(sim: &mut Sim, from: Instant, n: u32) -> (Instant, u32) {
        let mut at = from;
        let mut failed = 0;
        for _ in 0..n {
            match sim.begin(at, None) {
                Plan::Unavailable(_) => sim.finish(Status::Unavailable, Duration::ZERO),
                Plan::Serve(s) if s.fail => {
                    failed += 1;
                    sim.finish(Status::Error, s.delay)
                }
                Plan::Serve(s) => sim.finish(Status::Ok, s.delay),
            }
            at += TICK;
        }
        (at, failed)
    }

    #[test]
    fn a_healthy_service_serves_most_requests_from_the_cache_quickly() {
        let (mut sim, t0) = sim();
        let (t, failed) = traffic(&mut sim, t0, 2_000);
        let s = sim.snapshot(t);
        assert_eq!(failed, 0);
        assert!(s.up);
        assert_eq!(s.requests.get(Status::Ok), 2_000);
        let ratio = s.cache_hit_ratio.unwrap();
        assert!(ratio > 0.8, "hit ratio {ratio}");
        assert_eq!(s.latency.cumulative()[11].1, 2_000);
        assert_eq!(s.latency.cumulative()[3].1, 2_000, "every request within 50 ms");
        assert!((0.05..0.2).contains(&s.cpu_usage_ratio), "cpu {}", s.cpu_usage_ratio);
        assert_eq!(s.memory_usage_ratio, BASE_MEMORY);
        assert_eq!(sim.health(t), (Health::Ok, Duration::ZERO));
    }

    #[test]
    fn the_latency_fault_adds_its_milliseconds_to_requests_and_health_checks() {
        let (mut sim, t0) = sim();
        sim.update_faults(t0, &patch(r#"{"latency_ms": 300}"#));
        let Plan::Serve(s) = sim.begin(t0, Some(1)) else { panic!("not served") };
        assert!(s.delay >= Duration::from_millis(315) && s.delay <= Duration::from_millis(325), "{:?}", s.delay);
        assert_eq!(sim.health(t0), (Health::Ok, Duration::from_millis(300)));
    }

    #[test]
    fn the_error_rate_fault_fails_about_that_share_of_requests() {
        let (mut sim, t0) = sim();
        sim.update_faults(t0, &patch(r#"{"error_rate": 0.5}"#));
        let (_, failed) = traffic(&mut sim, t0, 2_000);
        assert!((900..1_100).contains(&failed), "{failed} of 2000 failed");
    }

    #[test]
    fn high_cpu_saturates_one_replica_and_more_replicas_absorb_it() {
        let (mut sim, t0) = sim();
        let (t, _) = traffic(&mut sim, t0, 500);
        sim.update_faults(t, &patch(r#"{"high_cpu": true}"#));
        assert_eq!(sim.cpu_usage_ratio(t), 1.0);
        assert_eq!(sim.scale(t, Replicas(2)), Replicas(1));
        let two = sim.cpu_usage_ratio(t);
        assert!((0.5..0.6).contains(&two), "cpu with 2 replicas {two}");
        sim.scale(t, Replicas(4));
        let four = sim.cpu_usage_ratio(t);
        assert!((0.3..0.35).contains(&four), "cpu with 4 replicas {four}");
        assert!(sim.faults(t).high_cpu, "scaling absorbs the load, the switch stays on");
        sim.scale(t, Replicas(1));
        assert_eq!(sim.cpu_usage_ratio(t), 1.0);
    }

    #[test]
    fn a_restart_and_a_cache_clear_leave_high_cpu_alone() {
        let (mut sim, t0) = sim();
        sim.update_faults(t0, &patch(r#"{"high_cpu": true}"#));
        sim.restart(t0).unwrap();
        sim.clear_cache(t0);
        let t = t0 + RESTART;
        assert_eq!(sim.health(t).0, Health::Ok);
        assert!(sim.faults(t).high_cpu);
        assert_eq!(sim.cpu_usage_ratio(t), 1.0);
    }

    #[test]
    fn the_request_rate_moves_cpu_usage() {
        let (mut sim, t0) = sim();
        let mut t = t0;
        for _ in 0..5_000 {
            sim.begin(t, Some(1));
            t += Duration::from_millis(1);
        }
        let busy = sim.cpu_usage_ratio(t);
        assert!((1.0 - busy).abs() < 0.06, "1000 requests a second on one replica: cpu {busy}");
        sim.scale(t, Replicas(2));
        assert!((sim.cpu_usage_ratio(t) - 0.55).abs() < 0.03);
        assert_eq!(sim.cpu_usage_ratio(t + RATE_WINDOW + TICK), IDLE_CPU, "no requests in the window");
    }

    #[test]
    fn memory_grows_with_the_leak_and_only_a_restart_frees_it() {
        let (mut sim, t0) = sim();
        sim.update_faults(t0, &patch(r#"{"memory_growth": true}"#));
        let t = t0 + Duration::from_secs(10);
        assert!((sim.memory_usage_ratio(t) - 0.80).abs() < 1e-9);
        sim.scale(t, Replicas(5));
        sim.clear_cache(t);
        let t = t + Duration::from_secs(2);
        assert!((sim.memory_usage_ratio(t) - 0.90).abs() < 1e-9, "scale and cache clear free nothing");
        assert!((sim.memory_usage_ratio(t + Duration::from_secs(60)) - MEMORY_CEILING).abs() < 1e-9);
        let t = t + Duration::from_secs(60);
        sim.restart(t).unwrap();
        assert_eq!(sim.memory_usage_ratio(t + RESTART), BASE_MEMORY);
        assert!(!sim.faults(t + RESTART).memory_growth);
        assert_eq!(sim.memory_usage_ratio(t + RESTART + Duration::from_secs(10)), BASE_MEMORY);
    }

    #[test]
    fn switching_the_leak_off_stops_it_but_keeps_what_leaked() {
        let (mut sim, t0) = sim();
        sim.update_faults(t0, &patch(r#"{"memory_growth": true}"#));
        sim.clear_faults(t0 + Duration::from_secs(4));
        assert!((sim.memory_usage_ratio(t0 + Duration::from_secs(30)) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_restart_is_unavailable_until_its_time_is_up_then_counts_once() {
        let (mut sim, t0) = sim();
        assert_eq!(sim.restart(t0), Ok(RESTART));
        assert_eq!(sim.health(t0 + RESTART - TICK).0, Health::Restarting);
        assert_eq!(sim.begin(t0 + TICK, None), Plan::Unavailable(Health::Restarting));
        assert_eq!(sim.restart(t0 + TICK), Err(RestartInProgress));
        assert!(!sim.snapshot(t0 + TICK).up);
        assert_eq!(sim.snapshot(t0 + TICK).restarts, 0);
        assert_eq!(sim.health(t0 + RESTART).0, Health::Ok);
        let s = sim.snapshot(t0 + RESTART);
        assert!(s.up);
        assert_eq!(s.restarts, 1);
        assert_eq!(sim.restart(t0 + RESTART), Ok(RESTART));
    }

    #[test]
    fn a_restart_that_takes_no_time_completes_at_once() {
        let t0 = Instant::now();
        let mut sim = Sim::new(Config { replicas: Replicas(1), restart_time: Duration::ZERO, seed: 1 }, t0);
        sim.update_faults(t0, &patch(r#"{"down": true}"#));
        sim.restart(t0).unwrap();
        assert_eq!(sim.health(t0).0, Health::Ok);
        assert_eq!(sim.snapshot(t0).restarts, 1);
    }

    #[test]
    fn a_restart_cures_latency_errors_a_leak_and_down_but_not_the_rest() {
        let (mut sim, t0) = sim();
        let all = r#"{"latency_ms": 300, "error_rate": 0.5, "high_cpu": true, "memory_growth": true,
                      "cache_misses": true, "down": true, "bad_release": true}"#;
        sim.update_faults(t0, &patch(all));
        assert_eq!(sim.begin(t0, None), Plan::Unavailable(Health::Down));
        assert_eq!(sim.health(t0).0, Health::Down);
        sim.restart(t0 + Duration::from_secs(1)).unwrap();
        let after = sim.faults(t0 + Duration::from_secs(1) + RESTART);
        assert_eq!(after, Faults { high_cpu: true, cache_misses: true, bad_release: true, ..Faults::default() });
    }

    #[test]
    fn a_poisoned_cache_misses_every_lookup_until_the_cache_is_cleared() {
        let (mut sim, t0) = sim();
        let (t, _) = traffic(&mut sim, t0, 1_000);
        sim.update_faults(t, &patch(r#"{"cache_misses": true}"#));
        let (t, _) = traffic(&mut sim, t, 300);
        assert_eq!(sim.snapshot(t).cache_hit_ratio, Some(0.0));
        sim.restart(t).unwrap();
        sim.scale(t, Replicas(3));
        let (t, _) = traffic(&mut sim, t + RESTART, 300);
        assert_eq!(sim.snapshot(t).cache_hit_ratio, Some(0.0), "restart and scale leave the poison");
        assert!(sim.clear_cache(t) > 0);
        assert!(!sim.faults(t).cache_misses);
        assert_eq!(sim.snapshot(t).cache_entries, 0);
        let (t, _) = traffic(&mut sim, t, 400);
        let ratio = sim.snapshot(t).cache_hit_ratio.unwrap();
        assert!(ratio > 0.75, "hit ratio {ratio} after the cache warmed up again");
    }

    #[test]
    fn a_bad_release_survives_restart_scale_and_cache_clear() {
        let (mut sim, t0) = sim();
        sim.update_faults(t0, &patch(r#"{"bad_release": true}"#));
        sim.restart(t0).unwrap();
        sim.scale(t0, Replicas(10));
        sim.clear_cache(t0);
        let t = t0 + RESTART;
        assert_eq!(sim.health(t).0, Health::Ok, "health checks pass");
        let (t, failed) = traffic(&mut sim, t, 2_000);
        let share = f64::from(failed) / 2_000.0;
        assert!((share - BAD_RELEASE_ERROR_RATE).abs() < 0.04, "{share} failed");
        assert!(sim.faults(t).bad_release);
        sim.clear_faults(t);
        let (_, failed) = traffic(&mut sim, t, 500);
        assert_eq!(failed, 0);
    }

    #[test]
    fn a_replica_count_parses_only_within_its_range() {
        assert_eq!("3".parse::<Replicas>(), Ok(Replicas(3)));
        assert_eq!("20".parse::<Replicas>(), Ok(Replicas(20)));
        assert_eq!("0".parse::<Replicas>(), Err("expected a whole number from 1 to 20".to_string()));
        assert_eq!("21".parse::<Replicas>(), Err("expected a whole number from 1 to 20".to_string()));
        assert_eq!("two".parse::<Replicas>(), Err("expected a whole number from 1 to 20".to_string()));
    }
}
