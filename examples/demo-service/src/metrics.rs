//! The request counters, the latency histogram, and the rendering of a
//! [`Snapshot`] of the service in the Prometheus text exposition format
//! 0.0.4. Imports nothing from the crate: the simulation fills the snapshot.

use std::fmt::Write;
use std::time::Duration;

/// Content type of `GET /metrics`: the text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency histogram's buckets, in seconds; a last
/// bucket, `+Inf`, counts everything. From 5 ms (a cache hit takes about
/// 2 ms, a miss about 20 ms) to 10 s, so `histogram_quantile(0.95, ...)` can
/// tell a healthy service from one with a few hundred milliseconds added.
pub const LATENCY_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How a request of the request path ended: its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200: served.
    Ok,
    /// 500: failed (an error rate or a bad release).
    Error,
    /// 503: the service is down or restarting.
    Unavailable,
}

impl Status {
    /// Every status, in the order `demo_requests_total` lists them.
    pub const ALL: [Status; 3] = [Status::Ok, Status::Error, Status::Unavailable];

    /// The `status` label: the HTTP status code.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "200",
            Status::Error => "500",
            Status::Unavailable => "503",
        }
    }

    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::Error => 500,
            Status::Unavailable => 503,
        }
    }

    fn index(self) -> usize {
        match self {
            Status::Ok => 0,
            Status::Error => 1,
            Status::Unavailable => 2,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Requests of the request path counted by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts([u64; 3]);

impl RequestCounts {
    pub fn add(&mut self, status: Status) {
        self.0[status.index()] += 1;
    }

    pub fn get(&self, status: Status) -> u64 {
        self.0[status.index()]
    }
}

/// A latency histogram over [`LATENCY_BUCKETS`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Per bucket, not cumulative; the last one is `+Inf`'s own.
    counts: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS.iter().position(|le| secs <= *le).unwrap_or(LATENCY_BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum += secs;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum of all observations, in seconds.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// `(le, cumulative count)` for every bucket, `+Inf` last.
    pub fn cumulative(&self) -> Vec<(String, u64)> {
        let mut total = 0;
        let bounds = LATENCY_BUCKETS.iter().map(|le| number(*le)).chain(["+Inf".to_string()]);
        bounds
            .zip(self.counts)
            .map(|(le, n)| {
                total += n;
                (le, total)
            })
            .collect()
    }
}

/// Everything `GET /metrics` reports, read at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub up: bool,
    pub requests: RequestCounts,
    pub latency: Histogram,
    pub cpu_usage_ratio: f64,
    pub memory_usage_ratio: f64,
    /// None until the first cache lookup.
    pub cache_hit_ratio: Option<f64>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_entries: usize,
    pub replicas: u32,
    pub restarts: u64,
}

/// The snapshot in the text exposition format 0.0.4: for every metric a
/// `# HELP` and a `# TYPE` line, then its samples.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (series, value) in samples {
            let _ = writeln!(out, "{series} {value}");
        }
    };
    let plain = |name: &str, value: String| vec![(name.to_string(), value)];

    family(
        "demo_up",
        "gauge",
        "Whether the service serves requests: 1 when it does, 0 when it is down or restarting.",
        &plain("demo_up", u8::from(s.up).to_string()),
    );
    let requests: Vec<_> = Status::ALL
        .iter()
        .map(|st| (format!("demo_requests_total{{status=\"{st}\"}}"), s.requests.get(*st).to_string()))
        .collect();
    family(
        "demo_requests_total",
        "counter",
        "Requests served through the request path (GET /api/items and the built-in traffic), by HTTP status.",
        &requests,
    );
    let mut latency: Vec<_> = s
        .latency
        .cumulative()
        .into_iter()
        .map(|(le, n)| (format!("demo_request_duration_seconds_bucket{{le=\"{le}\"}}"), n.to_string()))
        .collect();
    latency.push(("demo_request_duration_seconds_sum".to_string(), number(s.latency.sum())));
    latency.push(("demo_request_duration_seconds_count".to_string(), s.latency.count().to_string()));
    family(
        "demo_request_duration_seconds",
        "histogram",
        "Time taken by requests of the request path, in seconds.",
        &latency,
    );
    family(
        "demo_cpu_usage_ratio",
        "gauge",
        "CPU usage per replica, from 0 to 1 (simulated: the request load and any runaway workload, divided across the replicas).",
        &plain("demo_cpu_usage_ratio", number(s.cpu_usage_ratio)),
    );
    family(
        "demo_memory_usage_ratio",
        "gauge",
        "Memory in use, as a share of the memory limit, from 0 to 1 (simulated; a leak grows it until a restart).",
        &plain("demo_memory_usage_ratio", number(s.memory_usage_ratio)),
    );
    let ratio = s.cache_hit_ratio.map(|r| plain("demo_cache_hit_ratio", number(r))).unwrap_or_default();
    family(
        "demo_cache_hit_ratio",
        "gauge",
        "Share of the last 200 cache lookups that hit, from 0 to 1 (no sample before the first lookup).",
        &ratio,
    );
    family(
        "demo_cache_hits_total",
        "counter",
        "Cache lookups that found the item.",
        &plain("demo_cache_hits_total", s.cache_hits.to_string()),
    );
    family(
        "demo_cache_misses_total",
        "counter",
        "Cache lookups that did not find the item (or found it poisoned) and fetched it from the backend.",
        &plain("demo_cache_misses_total", s.cache_misses.to_string()),
    );
    family(
        "demo_cache_entries",
        "gauge",
        "Items in the cache.",
        &plain("demo_cache_entries", s.cache_entries.to_string()),
    );
    family(
        "demo_replicas",
        "gauge",
        "Replicas the service runs (set by POST /admin/scale).",
        &plain("demo_replicas", s.replicas.to_string()),
    );
    family(
        "demo_restarts_total",
        "counter",
        "Restarts completed (POST /admin/restart).",
        &plain("demo_restarts_total", s.restarts.to_string()),
    );
    out
}

/// A sample value or bucket bound: finite numbers as Rust prints them
/// (which Prometheus parses), infinities and NaN as Prometheus spells them.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let mut latency = Histogram::default();
        for ms in [2, 3, 20, 300, 20_000] {
            latency.observe(Duration::from_millis(ms));
        }
        let mut requests = RequestCounts::default();
        requests.add(Status::Ok);
        requests.add(Status::Ok);
        requests.add(Status::Unavailable);
        Snapshot {
            up: true,
            requests,
            latency,
            cpu_usage_ratio: 0.25,
            memory_usage_ratio: 0.3,
            cache_hit_ratio: Some(0.875),
            cache_hits: 7,
            cache_misses: 1,
            cache_entries: 1,
            replicas: 2,
            restarts: 0,
        }
    }

    #[test]
    fn the_histogram_is_cumulative_and_counts_every_observation_in_inf() {
        let s = snapshot();
        let buckets = s.latency.cumulative();
        assert_eq!(buckets[0], ("0.005".to_string(), 2));
        assert_eq!(buckets[2], ("0.025".to_string(), 3));
        assert_eq!(buckets[5], ("0.25".to_string(), 3));
        assert_eq!(buckets[6], ("0.5".to_string(), 4));
        assert_eq!(buckets[10], ("10".to_string(), 4));
        assert_eq!(buckets[11], ("+Inf".to_string(), 5));
        assert_eq!(s.latency.count(), 5);
        assert!((s.latency.sum() - 20.325).abs() < 1e-9);
    }

    #[test]
    fn an_observation_on_a_bound_falls_in_that_bucket() {
        let mut h = Histogram::default();
        h.observe(Duration::from_millis(100));
        assert_eq!(h.cumulative()[4], ("0.1".to_string(), 1));
        assert_eq!(h.cumulative()[3], ("0.05".to_string(), 0));
    }

    #[test]
    fn the_rendering_has_help_and_type_before_samples_of_every_metric() {
        let text = render(&snapshot());
        assert!(text.contains(
            "# HELP demo_up Whether the service serves requests: 1 when it does, 0 when it is down or restarting.\n\
             # TYPE demo_up gauge\ndemo_up 1\n"
        ));
        assert!(text.contains(
            "demo_requests_total{status=\"200\"} 2\ndemo_requests_total{status=\"500\"} 0\n\
             demo_requests_total{status=\"503\"} 1\n"
        ));
        assert!(text.contains(
            "demo_request_duration_seconds_bucket{le=\"+Inf\"} 5\n\
             demo_request_duration_seconds_sum 20.325\ndemo_request_duration_seconds_count 5\n"
        ));
        assert!(text.contains("\ndemo_cache_hit_ratio 0.875\n"));
        assert!(text.contains("\ndemo_replicas 2\n"));
        assert!(text.ends_with("# TYPE demo_restarts_total counter\ndemo_restarts_total 0\n"));
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!((types, helps), (11, 11));
    }

    #[test]
    fn the_hit_ratio_has_no_sample_before_the_first_lookup() {
        let text = render(&Snapshot { cache_hit_ratio: None, ..snapshot() });
        assert!(text.contains("# TYPE demo_cache_hit_ratio gauge\n# HELP demo_cache_hits_total"));
    }

    #[test]
    fn special_values_are_spelled_the_prometheus_way() {
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(0.005), "0.005");
        assert_eq!(number(1.0), "1");
    }
}
