//! `health-score`: turns probe results and machine metrics into a 0–10
//! score, with the reason for every point lost.
//!
//! It reads the data of an `http-probe` step (`probes`), of a
//! `host-metrics` step (`system`) and/or a service's own signals as
//! Prometheus reports them (`service`: error rate, p95 latency, CPU,
//! memory, cache hit rate), from its config or, when the config lacks
//! them, from its input (an object with keys `probes`, `system` and
//! `service`). Starting from 10 it deducts points for each down target,
//! each slow target, CPU, memory and disk use past a warn or bad level,
//! high load, and each service signal past its level; the score never
//! drops below 0, and while a probed target is down it stays at or under
//! `down_max_score` (3): a service that is down is never "fair".
//!
//! Given `history` (the earlier scores of this step, `${{ history.<id> }}`
//! in a runbook), it also reports the trend: the change from the last
//! earlier run and from their mean. The weights and levels are configurable
//! (see [`Config`] for the defaults). A score under `healthy_score` is
//! unhealthy and raises a finding listing every deduction.
//!
//! The scoring ([`score`]) is a pure function of its arguments. The plugin
//! must not call the host at all: no HTTP, metrics, state, secrets, files or
//! environment — everything it judges is handed to it.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tend_plugin_sdk::{
    Guest, PluginInfo, SeverityLevel, StepContext, StepError, StepOutput, export, finding, invalid_config, metric,
    parse_config, parse_input, round, schema,
};

/// The plugin; see the crate docs.
struct HealthScore;

/// The best score.
const MAX_SCORE: u32 = 10;

/// While a probed target is down the score is at most this: by default 3,
/// under the critical line of 4.
const DOWN_MAX_SCORE: f64 = 3.0;

/// At or over this service error rate (in percent) the service is failing
/// and the score is held at `down_max_score` or under, as for a down
/// target: by default 20 % of requests.
const FAILING_ERROR_RATE_PERCENT: f64 = 20.0;

/// A change of less than this many points from earlier runs is steady: by
/// default half a point.
const STEADY_POINTS: f64 = 0.5;

/// The step's `with:` block: the data to score, and how points are
/// deducted and what counts as healthy. Everything is optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// The data of an http-probe step; the input's `probes` when absent.
    probes: Option<Probes>,
    /// The data of a host-metrics step; the input's `system` when absent.
    system: Option<System>,
    /// The service's own signals; the input's `service` when absent.
    service: Option<Service>,
    /// Earlier scores, oldest first: a list of numbers, or this step's
    /// `history` object (its `health_score` list is read). By default none.
    history: Option<Value>,
    /// Earlier scores of this step in this run, oldest first: a list of
    /// numbers, or `${{ measured.<id> }}` (its `health_score` list is read).
    /// Gives `consecutive_healthy`. By default none.
    recent: Option<Value>,
    /// The score before an action, e.g. `${{ steps.score.output.score }}`
    /// in a step that re-measures after it: gives `improvement`. By default none.
    baseline: Option<f64>,
    /// Highest score while any probed target is down (default 3).
    down_max_score: f64,
    /// Service error rate levels, in percent (default warn 1, bad 5).
    error_rate_percent: Bounds,
    /// Service error rate, in percent, at or over which the score is held
    /// at `down_max_score` (default 20).
    failing_error_rate_percent: f64,
    /// Service p95 latency levels, in ms (default warn 500, bad 2000).
    p95_latency_ms: Bounds,
    /// Cache hit rate levels, in percent; lower is worse (default warn 70, bad 50).
    cache_hit_percent: Bounds,
    /// Points lost per down target (default 3).
    down_target_points: f64,
    /// Points lost per up target slower than `latency_threshold_ms` (default 1).
    slow_target_points: f64,
    /// Latency past which an up target is slow, in ms (default 1000).
    latency_threshold_ms: f64,
    /// CPU busy share levels (default warn 80, bad 95).
    cpu_percent: Levels,
    /// Memory used share levels (default warn 80, bad 95).
    memory_percent: Levels,
    /// Disk used share levels, per disk (default warn 80, bad 95).
    disk_percent: Levels,
    /// Points lost at a warn level (default 1).
    warn_points: f64,
    /// Points lost at a bad level, instead of `warn_points` (default 2).
    bad_points: f64,
    /// 1-minute load per CPU at or over which `load_points` are lost (default 1.5).
    load_per_cpu: f64,
    /// Points lost for high load (default 1).
    load_points: f64,
    /// Scores at or over this are healthy (default 8).
    healthy_score: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            probes: None,
            system: None,
            service: None,
            history: None,
            recent: None,
            baseline: None,
            down_max_score: DOWN_MAX_SCORE,
            error_rate_percent: Bounds { warn: 1.0, bad: 5.0 },
            failing_error_rate_percent: FAILING_ERROR_RATE_PERCENT,
            p95_latency_ms: Bounds { warn: 500.0, bad: 2000.0 },
            cache_hit_percent: Bounds { warn: 70.0, bad: 50.0 },
            down_target_points: 3.0,
            slow_target_points: 1.0,
            latency_threshold_ms: 1000.0,
            cpu_percent: Levels::default(),
            memory_percent: Levels::default(),
            disk_percent: Levels::default(),
            warn_points: 1.0,
            bad_points: 2.0,
            load_per_cpu: 1.5,
            load_points: 1.0,
            healthy_score: 8.0,
        }
    }
}

/// Two levels of a percentage: `warn` costs `warn_points`, `bad` costs
/// `bad_points`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "an object {warn, bad}")]
struct Levels {
    warn: f64,
    bad: f64,
}

impl Default for Levels {
    fn default() -> Self {
        Levels { warn: 80.0, bad: 95.0 }
    }
}

/// Two levels a user sets together (both are required when given):
/// `warn` costs `warn_points`, `bad` costs `bad_points`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object {warn, bad}")]
struct Bounds {
    warn: f64,
    bad: f64,
}

/// A service's own signals, each optional (a query with no data gives
/// null, which is not scored).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    default,
    expecting = "an object {error_rate_percent, p95_latency_ms, cpu_percent, memory_percent, cache_hit_percent}"
)]
struct Service {
    error_rate_percent: Option<f64>,
    p95_latency_ms: Option<f64>,
    cpu_percent: Option<f64>,
    memory_percent: Option<f64>,
    cache_hit_percent: Option<f64>,
}

/// The part of http-probe's data that is scored. Other fields (`summary`,
/// fields added later) are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(expecting = "the data of an http-probe step, an object {targets, summary}")]
struct Probes {
    targets: Vec<ProbeResult>,
}

/// One target of http-probe's data.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(expecting = "an object {url, ok, status, latency_ms, error, body_match}")]
struct ProbeResult {
    url: String,
    ok: bool,
    #[serde(default)]
    latency_ms: Option<f64>,
    #[serde(default)]
    error: Option<String>,
}

/// The part of host-metrics' data that is scored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(expecting = "the data of a host-metrics step, an object {hostname, cpu, memory, swap, disks, uptime_seconds}")]
struct System {
    cpu: SystemCpu,
    memory: SystemMemory,
    #[serde(default)]
    disks: Vec<SystemDisk>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(expecting = "an object {count, usage_percent, load_1, load_5, load_15, load_per_cpu}")]
struct SystemCpu {
    usage_percent: f64,
    #[serde(default)]
    load_per_cpu: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(expecting = "an object {total_bytes, available_bytes, used_percent}")]
struct SystemMemory {
    used_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(expecting = "an object {mount_point, filesystem, total_bytes, available_bytes, used_percent}")]
struct SystemDisk {
    mount_point: String,
    used_percent: f64,
}

/// The input, when the config does not carry the data: any object; only
/// the keys `probes` and `system` are read.
#[derive(Debug, Default, Deserialize)]
struct InputData {
    #[serde(default)]
    probes: Option<Probes>,
    #[serde(default)]
    system: Option<System>,
    #[serde(default)]
    service: Option<Service>,
}

/// The output data.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Score {
    score: f64,
    /// Always [`MAX_SCORE`].
    max: u32,
    healthy: bool,
    /// Largest first.
    deductions: Vec<Deduction>,
    /// Against earlier runs, when `history` was given and not empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    trend: Option<Trend>,
    /// How many measurements in a row, this one and the latest of
    /// `recent`, are healthy: 0 when this one is not.
    consecutive_healthy: u32,
    /// This score minus `baseline`, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    improvement: Option<f64>,
}

/// The score against earlier runs' scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Trend {
    /// How many earlier scores there were.
    earlier_runs: usize,
    /// The latest earlier score.
    previous: f64,
    /// Mean of the earlier scores.
    mean: f64,
    /// This score minus `previous`.
    change: f64,
    /// This score minus `mean`.
    change_from_mean: f64,
    direction: Direction,
}

/// Which way the score moved from the latest earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Direction {
    Improving,
    Steady,
    Worsening,
}

impl Direction {
    /// The name in output and messages, e.g. `improving`.
    fn as_str(self) -> &'static str {
        match self {
            Direction::Improving => "improving",
            Direction::Steady => "steady",
            Direction::Worsening => "worsening",
        }
    }
}

/// Points lost, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Deduction {
    points: f64,
    reason: String,
}

/// Parses and checks the config.
fn parse(text: &str) -> Result<Config, StepError> {
    let config: Config = parse_config(text)?;
    check_config(&config).map_err(invalid_config)?;
    Ok(config)
}

/// Rejects negative weights and levels out of order.
fn check_config(w: &Config) -> Result<(), String> {
    for (field, value) in [
        ("down_target_points", w.down_target_points),
        ("slow_target_points", w.slow_target_points),
        ("latency_threshold_ms", w.latency_threshold_ms),
        ("warn_points", w.warn_points),
        ("bad_points", w.bad_points),
        ("load_per_cpu", w.load_per_cpu),
        ("load_points", w.load_points),
        ("down_max_score", w.down_max_score),
        ("failing_error_rate_percent", w.failing_error_rate_percent),
    ] {
        if value < 0.0 {
            return Err(format!("field `{field}`: expected a non-negative number, found {value}"));
        }
    }
    if !(0.0..=f64::from(MAX_SCORE)).contains(&w.healthy_score) {
        return Err(format!("field `healthy_score`: expected a number from 0 to 10, found {}", w.healthy_score));
    }
    for (field, levels) in
        [("cpu_percent", w.cpu_percent), ("memory_percent", w.memory_percent), ("disk_percent", w.disk_percent)]
    {
        if levels.warn > levels.bad {
            return Err(format!(
                "field `{field}`: expected `warn` at most `bad`, found warn {} and bad {}",
                levels.warn, levels.bad
            ));
        }
    }
    for (field, b) in [("error_rate_percent", w.error_rate_percent), ("p95_latency_ms", w.p95_latency_ms)] {
        if b.warn > b.bad {
            return Err(format!(
                "field `{field}`: expected `warn` at most `bad`, found warn {} and bad {}",
                b.warn, b.bad
            ));
        }
    }
    let cache = w.cache_hit_percent;
    if cache.warn < cache.bad {
        return Err(format!(
            "field `cache_hit_percent`: expected `warn` at least `bad` (a lower hit rate is worse), found warn {} and bad {}",
            cache.warn, cache.bad
        ));
    }
    Ok(())
}

/// The earlier scores in `field` (`history` or `recent`): a list of
/// numbers, or an object whose `health_score` key is one (absent: none yet).
fn earlier_scores(field: &str, history: &Value) -> Result<Vec<f64>, String> {
    let list = match history {
        Value::Object(m) => match m.get("health_score") {
            None => return Ok(Vec::new()),
            Some(list) => list,
        },
        other => other,
    };
    let expected = match field {
        "history" => "expected a list of earlier scores or a step's history object `{health_score: [...]}`",
        _ => "expected a list of earlier scores or a step's measured object `{health_score: [...]}`",
    };
    let Value::Array(items) = list else {
        return Err(format!("field `{field}`: {expected}, found {list}"));
    };
    items
        .iter()
        .map(|v| v.as_f64().ok_or_else(|| format!("field `{field}`: {expected}, found {v} in the list")))
        .collect()
}

/// The trend of `score` against `earlier` scores (oldest first); none
/// without earlier scores.
fn trend(score: f64, earlier: &[f64]) -> Option<Trend> {
    let previous = *earlier.last()?;
    let mean = earlier.iter().sum::<f64>() / earlier.len() as f64;
    let change = score - previous;
    let direction = if change >= STEADY_POINTS {
        Direction::Improving
    } else if change <= -STEADY_POINTS {
        Direction::Worsening
    } else {
        Direction::Steady
    };
    Some(Trend {
        earlier_runs: earlier.len(),
        previous,
        mean: round(mean, 2),
        change: round(change, 2),
        change_from_mean: round(score - mean, 2),
        direction,
    })
}

/// The data to score: taken from the config, and for what it lacks from
/// the input.
fn data(config: &mut Config, input: &str) -> Result<Data, StepError> {
    let mut data = Data { probes: config.probes.take(), system: config.system.take(), service: config.service.take() };
    if data.probes.is_none() || data.system.is_none() || data.service.is_none() {
        let from_input = match parse_input::<Value>(input)? {
            value @ Value::Object(_) => parse_input_value(value)?,
            _ => InputData::default(),
        };
        data.probes = data.probes.or(from_input.probes);
        data.system = data.system.or(from_input.system);
        data.service = data.service.or(from_input.service);
    }
    if data.probes.is_none() && data.system.is_none() && data.service.is_none() {
        return Err(invalid_config(
            "nothing to score: give `probes` (the data of an http-probe step), `system` (the data of a \
             host-metrics step) and/or `service` (the service's signals) in the config, or as keys of the input \
             object",
        ));
    }
    Ok(data)
}

/// What is scored.
#[derive(Debug, Default)]
struct Data {
    probes: Option<Probes>,
    system: Option<System>,
    service: Option<Service>,
}

/// The `probes` and `system` keys of an input object.
fn parse_input_value(value: Value) -> Result<InputData, StepError> {
    tend_plugin_sdk::parse_value(value).map_err(|e| e.into_step_error("input"))
}

/// Scores `data` with `weights` (whose own data fields are not read),
/// against `earlier` scores of earlier runs and `recent` ones of this run.
/// Pure.
fn score(data: &Data, weights: &Config, earlier: &[f64], recent: &[f64]) -> Score {
    let mut deductions = Vec::new();
    let mut down = 0;
    if let Some(probes) = &data.probes {
        down = probes.targets.iter().filter(|t| !t.ok).count();
        deductions.extend(probes.targets.iter().filter_map(|t| probe_deduction(t, weights)));
    }
    if let Some(system) = &data.system {
        deductions.extend(system_deductions(system, weights));
    }
    if let Some(service) = &data.service {
        deductions.extend(service_deductions(service, weights));
    }
    deductions.retain(|d| d.points > 0.0);
    let mut lost: f64 = deductions.iter().map(|d| d.points).sum();
    let held = round(f64::from(MAX_SCORE) - lost - weights.down_max_score, 2);
    let failing = data
        .service
        .as_ref()
        .and_then(|s| s.error_rate_percent)
        .filter(|rate| *rate >= weights.failing_error_rate_percent);
    let why_held = match (down, failing) {
        (0, None) => None,
        (0, Some(rate)) => Some(format!(
            "service error rate {rate:.2}% is at or over {}%: the service is failing",
            weights.failing_error_rate_percent
        )),
        (1, _) => Some("a probed target is down".to_string()),
        _ => Some("probed targets are down".to_string()),
    };
    if let Some(why) = why_held
        && held > 0.0
    {
        lost += held;
        deductions.push(Deduction {
            points: held,
            reason: format!("{why}: the score is held at {} or under", weights.down_max_score),
        });
    }
    // Stable: equal deductions keep the order they were found in.
    deductions.sort_by(|a, b| b.points.total_cmp(&a.points));
    let score = round((f64::from(MAX_SCORE) - lost).max(0.0), 2);
    let healthy = score >= weights.healthy_score;
    let consecutive_healthy = match healthy {
        false => 0,
        true => 1 + recent.iter().rev().take_while(|s| **s >= weights.healthy_score).count() as u32,
    };
    let improvement = weights.baseline.map(|b| round(score - b, 2));
    Score { score, max: MAX_SCORE, healthy, deductions, trend: trend(score, earlier), consecutive_healthy, improvement }
}

/// Deductions for the service's signals past their levels.
fn service_deductions(s: &Service, w: &Config) -> Vec<Deduction> {
    let mut out = Vec::new();
    let higher = |b: Bounds| Levels { warn: b.warn, bad: b.bad };
    if let Some(rate) = s.error_rate_percent {
        out.extend(level_deduction(rate, higher(w.error_rate_percent), w, |level| {
            format!("service error rate {rate:.2}% is at or over {level}%")
        }));
    }
    if let Some(p95) = s.p95_latency_ms {
        out.extend(level_deduction(p95, higher(w.p95_latency_ms), w, |level| {
            format!("service p95 latency {p95:.0} ms is at or over {level} ms")
        }));
    }
    if let Some(cpu) = s.cpu_percent {
        out.extend(level_deduction(cpu, w.cpu_percent, w, |level| {
            format!("service CPU {cpu:.1}% is at or over {level}%")
        }));
    }
    if let Some(memory) = s.memory_percent {
        out.extend(level_deduction(memory, w.memory_percent, w, |level| {
            format!("service memory {memory:.1}% is at or over {level}%")
        }));
    }
    if let Some(hit) = s.cache_hit_percent {
        // Lower is worse: compare the miss share against the miss levels.
        let misses = Levels { warn: 100.0 - w.cache_hit_percent.warn, bad: 100.0 - w.cache_hit_percent.bad };
        out.extend(level_deduction(100.0 - hit, misses, w, |miss_level| {
            format!("cache hit rate {hit:.1}% is at or under {}%", 100.0 - miss_level)
        }));
    }
    out
}

/// The deduction for one probed target: down, slow, or none.
fn probe_deduction(target: &ProbeResult, w: &Config) -> Option<Deduction> {
    let url = &target.url;
    if !target.ok {
        let reason = match &target.error {
            Some(error) => format!("{url} is down: {error}"),
            None => format!("{url} is down"),
        };
        return Some(Deduction { points: w.down_target_points, reason });
    }
    let latency = target.latency_ms?;
    (latency > w.latency_threshold_ms).then(|| Deduction {
        points: w.slow_target_points,
        reason: format!("{url} is slow: {latency:.0} ms, over {} ms", w.latency_threshold_ms),
    })
}

/// Deductions for CPU, memory, each disk and load.
fn system_deductions(system: &System, w: &Config) -> Vec<Deduction> {
    let mut out = Vec::new();
    let cpu = system.cpu.usage_percent;
    out.extend(level_deduction(cpu, w.cpu_percent, w, |level| format!("CPU usage {cpu:.1}% is at or over {level}%")));
    let memory = system.memory.used_percent;
    out.extend(level_deduction(memory, w.memory_percent, w, |level| {
        format!("memory use {memory:.1}% is at or over {level}%")
    }));
    for disk in &system.disks {
        let (mount, used) = (&disk.mount_point, disk.used_percent);
        out.extend(level_deduction(used, w.disk_percent, w, |level| {
            format!("disk {mount} is {used:.1}% full, at or over {level}%")
        }));
    }
    if let Some(load) = system.cpu.load_per_cpu
        && load >= w.load_per_cpu
    {
        out.push(Deduction {
            points: w.load_points,
            reason: format!("load {load:.2} per CPU is at or over {}", w.load_per_cpu),
        });
    }
    out
}

/// `bad_points` at or over `levels.bad`, else `warn_points` at or over
/// `levels.warn`, else none; `reason` is given the level crossed.
fn level_deduction(value: f64, levels: Levels, w: &Config, reason: impl Fn(f64) -> String) -> Option<Deduction> {
    if value >= levels.bad {
        Some(Deduction { points: w.bad_points, reason: reason(levels.bad) })
    } else if value >= levels.warn {
        Some(Deduction { points: w.warn_points, reason: reason(levels.warn) })
    } else {
        None
    }
}

/// Severity of the finding for an unhealthy score.
fn severity(score: f64) -> SeverityLevel {
    if score <= 3.0 {
        SeverityLevel::Critical
    } else if score <= 5.0 {
        SeverityLevel::High
    } else {
        SeverityLevel::Medium
    }
}

/// "-3 https://a/health is down: ..." lines, one per deduction.
fn detail(result: &Score, healthy_score: f64) -> String {
    let mut text =
        format!("Score {}/{} is under the healthy score of {healthy_score}. Points lost:", result.score, result.max);
    for d in &result.deductions {
        text.push_str(&format!("\n- {}: {}", d.points, d.reason));
    }
    if let Some(t) = &result.trend {
        text.push_str(&format!(
            "\nTrend: {}, {:+} from the previous run's {} ({:+} from the mean {} of {} earlier runs).",
            t.direction.as_str(),
            t.change,
            t.previous,
            t.change_from_mean,
            t.mean,
            t.earlier_runs
        ));
    }
    text
}

impl Guest for HealthScore {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "health-score".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Turns the results of an http-probe step and/or the metrics of a host-metrics step into a \
                          score from 0 to 10, listing the reason for every point lost: down and slow targets, \
                          CPU, memory and disk use past warn and bad levels, high load, and a service's error \
                          rate, p95 latency, CPU, memory and cache hit rate past theirs, with configurable weights; \
                          a down target holds the score at 3 or under. The data comes from the config (`probes`, \
                          `system`, `service`) or from the input object's keys of the same names. Given `history` \
                          (earlier scores), it reports the trend. Emits a health_score metric, and a finding listing every \
                          deduction when the score is under the healthy score."
                .into(),
            config_schema: schema::to_text(&config_schema()),
            capabilities: Vec::new(),
        }
    }

    fn run(_ctx: StepContext, config: String, input: String) -> Result<StepOutput, StepError> {
        let mut weights = parse(&config)?;
        let data = data(&mut weights, &input)?;
        let earlier = match &weights.history {
            Some(h) => earlier_scores("history", h).map_err(invalid_config)?,
            None => Vec::new(),
        };
        let recent = match &weights.recent {
            Some(r) => earlier_scores("recent", r).map_err(invalid_config)?,
            None => Vec::new(),
        };
        let result = score(&data, &weights, &earlier, &recent);
        let metrics = vec![metric("health_score", result.score, &[])];
        let mut findings = Vec::new();
        if !result.healthy {
            findings.push(finding(
                severity(result.score),
                format!("health score is {}/{}, under {}", result.score, result.max, weights.healthy_score),
                detail(&result, weights.healthy_score),
                None,
            ));
        }
        tend_plugin_sdk::output(&result, metrics, findings)
    }
}

/// JSON Schema of [`Config`]. The data objects (`probes`, `system`) are
/// open: other plugins' outputs may gain fields.
fn config_schema() -> Value {
    let points = |what: &str, default: f64| json!({"type": "number", "minimum": 0, "default": default, "description": format!("Points lost {what}.")});
    let levels = |what: &str| {
        schema::object(
            &format!("{what}, in percent: at or over `warn` costs `warn_points`, at or over `bad` costs `bad_points`."),
            json!({
                "warn": {"type": "number", "default": 80, "description": "Warn level, in percent."},
                "bad": {"type": "number", "default": 95, "description": "Bad level, in percent."},
            }),
            &[],
        )
    };
    let bounds = |what: &str, warn: f64, bad: f64| {
        schema::object(
            &format!("{what}: `warn` costs `warn_points`, `bad` costs `bad_points`; give both."),
            json!({
                "warn": {"type": "number", "default": warn, "description": "Warn level."},
                "bad": {"type": "number", "default": bad, "description": "Bad level."},
            }),
            &["warn", "bad"],
        )
    };
    schema::config(
        "health-score",
        "Configuration of the health-score plugin: the data to score (or take it from the input) and the weights.",
        json!({
            "probes": {
                "type": "object",
                "required": ["targets"],
                "properties": {
                    "targets": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["url", "ok"],
                            "properties": {
                                "url": {"type": "string", "description": "The target's URL."},
                                "ok": {"type": "boolean", "description": "Whether it is up."},
                                "latency_ms": {"type": ["number", "null"], "description": "Its latency."},
                                "error": {"type": ["string", "null"], "description": "Why it is down."},
                            },
                        },
                        "description": "Per-target results.",
                    },
                },
                "description": "The data of an http-probe step; by default the input's `probes` key.",
            },
            "system": {
                "type": "object",
                "required": ["cpu", "memory"],
                "properties": {
                    "cpu": {
                        "type": "object",
                        "required": ["usage_percent"],
                        "description": "CPU busy share and load (`usage_percent`, `load_per_cpu`).",
                    },
                    "memory": {
                        "type": "object",
                        "required": ["used_percent"],
                        "description": "Memory use (`used_percent`).",
                    },
                    "disks": {
                        "type": "array",
                        "items": {"type": "object", "required": ["mount_point", "used_percent"]},
                        "description": "Disk use per mount point.",
                    },
                },
                "description": "The data of a host-metrics step; by default the input's `system` key.",
            },
            "service": {
                "type": "object",
                "properties": {
                    "error_rate_percent": {"type": ["number", "null"], "description": "Share of requests that failed, in percent."},
                    "p95_latency_ms": {"type": ["number", "null"], "description": "95th percentile latency, in ms."},
                    "cpu_percent": {"type": ["number", "null"], "description": "CPU use, in percent (scored with `cpu_percent`)."},
                    "memory_percent": {"type": ["number", "null"], "description": "Memory use, in percent (scored with `memory_percent`)."},
                    "cache_hit_percent": {"type": ["number", "null"], "description": "Cache hit rate, in percent."},
                },
                "description": "The service's own signals, e.g. from prometheus-query steps; null values are not scored. By default the input's `service` key.",
            },
            "history": {
                "type": ["array", "object"],
                "description": "Earlier scores, oldest first, or this step's `history` object (`${{ history.<step id> }}`): adds `trend` to the output.",
            },
            "recent": {
                "type": ["array", "object"],
                "description": "Earlier scores of this step in this run, oldest first, or its `measured` object (`${{ measured.<step id> }}`): gives `consecutive_healthy`.",
            },
            "baseline": {
                "type": ["number", "null"],
                "description": "The score before an action (`${{ steps.<id>.output.score }}`), in a step that re-measures after it: adds `improvement`.",
            },
            "down_max_score": {
                "type": "number",
                "minimum": 0,
                "default": 3,
                "description": "Highest score while any probed target is down or the service is failing.",
            },
            "failing_error_rate_percent": {
                "type": "number",
                "minimum": 0,
                "default": FAILING_ERROR_RATE_PERCENT,
                "description": "Service error rate, in percent, at or over which the service is failing: the score is held at `down_max_score` or under.",
            },
            "error_rate_percent": bounds("Service error rate, in percent", 1.0, 5.0),
            "p95_latency_ms": bounds("Service p95 latency, in ms", 500.0, 2000.0),
            "cache_hit_percent": bounds("Cache hit rate, in percent; lower is worse: at or under `warn`", 70.0, 50.0),
            "down_target_points": points("per down target (the score never drops below 0)", 3.0),
            "slow_target_points": points("per up target slower than `latency_threshold_ms`", 1.0),
            "latency_threshold_ms": {
                "type": "number",
                "minimum": 0,
                "default": 1000,
                "description": "Latency, in milliseconds, past which an up target is slow.",
            },
            "cpu_percent": levels("CPU busy share"),
            "memory_percent": levels("Memory used share"),
            "disk_percent": levels("Used share of each disk"),
            "warn_points": points("when a percentage reaches its warn level", 1.0),
            "bad_points": points("when a percentage reaches its bad level (instead of `warn_points`)", 2.0),
            "load_per_cpu": {
                "type": "number",
                "minimum": 0,
                "default": 1.5,
                "description": "1-minute load per CPU at or over which `load_points` are lost.",
            },
            "load_points": points("for load at or over `load_per_cpu`", 1.0),
            "healthy_score": {
                "type": "number",
                "minimum": 0,
                "maximum": 10,
                "default": 8,
                "description": "Scores at or over this are healthy; under it a finding lists every deduction.",
            },
        }),
        &[],
    )
}

export!(HealthScore);

#[cfg(test)]
mod tests {
    use super::*;

    fn probes() -> Value {
        json!({
            "targets": [
                {"url": "https://a/health", "ok": false, "status": 503, "latency_ms": 12.0, "error": "status 503, expected 2xx or 3xx", "body_match": null},
                {"url": "https://b/health", "ok": true, "status": 200, "latency_ms": 1500.0, "error": null, "body_match": null},
                {"url": "https://c/health", "ok": true, "status": 200, "latency_ms": 30.0, "error": null, "body_match": null}
            ],
            "summary": {"total": 3, "up": 2, "down": 1, "all_up": false, "avg_latency_ms": 21.0, "max_latency_ms": 30.0}
        })
    }

    fn system(cpu: f64, memory: f64, disk: f64, load: f64) -> Value {
        json!({
            "hostname": "web-1",
            "cpu": {"count": 2, "usage_percent": cpu, "load_1": load * 2.0, "load_5": 0, "load_15": 0, "load_per_cpu": load},
            "memory": {"total_bytes": 100, "available_bytes": 10, "used_percent": memory},
            "swap": {"total_bytes": 0, "used_bytes": 0, "used_percent": 0},
            "disks": [{"mount_point": "/", "filesystem": "ext4", "total_bytes": 1, "available_bytes": 0, "used_percent": disk}],
            "uptime_seconds": 5
        })
    }

    fn run(config: Value, input: &str) -> Result<Score, StepError> {
        let out = HealthScore::run(
            StepContext { run_id: "r".into(), step_id: "s".into(), runbook: "b".into(), attempt: 1, iteration: 0 },
            config.to_string(),
            input.into(),
        )?;
        let v: Value = serde_json::from_str(&out.data).expect("JSON");
        let deductions = v["deductions"].as_array().expect("list").iter().map(|d| Deduction {
            points: d["points"].as_f64().expect("points"),
            reason: d["reason"].as_str().expect("reason").into(),
        });
        Ok(Score {
            score: v["score"].as_f64().expect("score"),
            max: u32::try_from(v["max"].as_u64().expect("max")).expect("small"),
            healthy: v["healthy"].as_bool().expect("healthy"),
            deductions: deductions.collect(),
            trend: None,
            consecutive_healthy: u32::try_from(v["consecutive_healthy"].as_u64().expect("count")).expect("small"),
            improvement: v.get("improvement").and_then(Value::as_f64),
        })
    }

    #[test]
    fn probes_lose_points_for_down_and_slow_targets() {
        let s = run(json!({"probes": probes(), "down_max_score": 10}), "").unwrap();
        assert_eq!(s.score, 6.0);
        assert!(!s.healthy);
        assert_eq!(
            s.deductions[0],
            Deduction { points: 3.0, reason: "https://a/health is down: status 503, expected 2xx or 3xx".into() }
        );
        assert_eq!(
            s.deductions[1],
            Deduction { points: 1.0, reason: "https://b/health is slow: 1500 ms, over 1000 ms".into() }
        );
    }

    #[test]
    fn system_levels_and_load() {
        let s = run(json!({"system": system(96.0, 85.0, 50.0, 2.0)}), "").unwrap();
        let reasons: Vec<&str> = s.deductions.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "CPU usage 96.0% is at or over 95%",
                "memory use 85.0% is at or over 80%",
                "load 2.00 per CPU is at or over 1.5"
            ]
        );
        assert_eq!(s.score, 6.0);
        let s = run(json!({"system": system(10.0, 10.0, 10.0, 0.1)}), "").unwrap();
        assert_eq!((s.score, s.healthy, s.deductions.len()), (10.0, true, 0));
    }

    #[test]
    fn the_score_never_drops_below_zero() {
        let targets: Vec<Value> = (0..5).map(|i| json!({"url": format!("https://{i}/"), "ok": false})).collect();
        let s = run(json!({"probes": {"targets": targets}}), "").unwrap();
        assert_eq!(s.score, 0.0);
        assert_eq!(s.deductions.len(), 5);
        assert_eq!(severity(s.score), SeverityLevel::Critical);
    }

    #[test]
    fn data_comes_from_the_input_when_the_config_lacks_it() {
        let input = json!({"probes": probes(), "system": system(96.0, 10.0, 99.0, 0.0), "other": 1}).to_string();
        let s = run(json!({}), &input).unwrap();
        assert_eq!(s.score, 2.0, "{:?}", s.deductions);
        // The config's data wins over the input's.
        let s = run(json!({"system": system(0.0, 0.0, 0.0, 0.0), "down_max_score": 10}), &input).unwrap();
        assert_eq!(s.score, 6.0, "{:?}", s.deductions);
    }

    #[test]
    fn weights_are_configurable() {
        let config = json!({"probes": probes(), "down_target_points": 5, "slow_target_points": 0, "healthy_score": 5, "down_max_score": 10});
        let s = run(config, "").unwrap();
        assert_eq!((s.score, s.healthy, s.deductions.len()), (5.0, true, 1));
    }

    #[test]
    fn a_service_that_is_down_scores_under_4_whatever_else_is_fine() {
        let one_down =
            json!({"targets": [{"url": "http://127.0.0.1:9100/healthz", "ok": false, "error": "connection refused"}]});
        let s = run(json!({"probes": one_down}), "").unwrap();
        assert_eq!(s.score, 3.0);
        assert_eq!(
            s.deductions,
            [
                Deduction { points: 4.0, reason: "a probed target is down: the score is held at 3 or under".into() },
                Deduction { points: 3.0, reason: "http://127.0.0.1:9100/healthz is down: connection refused".into() },
            ]
        );
        assert_eq!(severity(s.score), SeverityLevel::Critical);
        // Already low for other reasons: no extra deduction.
        let s = run(json!({"probes": probes(), "system": system(99.0, 99.0, 99.0, 0.0)}), "").unwrap();
        assert_eq!(s.score, 0.0);
        assert!(s.deductions.iter().all(|d| !d.reason.contains("held at")), "{:?}", s.deductions);
    }

    #[test]
    fn service_signals_past_their_levels_lose_points_each_with_its_reason() {
        let service = json!({"error_rate_percent": 12.5, "p95_latency_ms": 800, "cpu_percent": 85, "memory_percent": null, "cache_hit_percent": 40});
        let s = run(json!({"service": service}), "").unwrap();
        let lost: Vec<(f64, &str)> = s.deductions.iter().map(|d| (d.points, d.reason.as_str())).collect();
        assert_eq!(
            lost,
            [
                (2.0, "service error rate 12.50% is at or over 5%"),
                (2.0, "cache hit rate 40.0% is at or under 50%"),
                (1.0, "service p95 latency 800 ms is at or over 500 ms"),
                (1.0, "service CPU 85.0% is at or over 80%"),
            ]
        );
        assert_eq!(s.score, 4.0);
        let healthy = json!({"error_rate_percent": 0.2, "p95_latency_ms": 40, "cpu_percent": 20, "memory_percent": 30, "cache_hit_percent": 95});
        let s = run(json!({}), &json!({"service": healthy}).to_string()).unwrap();
        assert_eq!((s.score, s.deductions.len()), (10.0, 0));
        let e = run(json!({"service": {"error_rate": 1}}), "").unwrap_err();
        assert!(
            matches!(&e, StepError::InvalidConfig(m) if m.starts_with("field `service.error_rate`: unknown field")),
            "{e:?}"
        );
        let e = run(json!({"service": {}, "cache_hit_percent": {"warn": 50, "bad": 70}}), "").unwrap_err();
        assert!(
            matches!(&e, StepError::InvalidConfig(m) if m == "field `cache_hit_percent`: expected `warn` at least `bad` (a lower hit rate is worse), found warn 50 and bad 70"),
            "{e:?}"
        );
    }

    #[test]
    fn the_trend_compares_the_score_with_earlier_runs() {
        let out = |history: Value| -> Value {
            let config = json!({"service": {"error_rate_percent": 12.5}, "history": history});
            let out = HealthScore::run(
                StepContext { run_id: "r".into(), step_id: "s".into(), runbook: "b".into(), attempt: 1, iteration: 0 },
                config.to_string(),
                String::new(),
            )
            .expect("scored");
            serde_json::from_str(&out.data).expect("JSON")
        };
        // Score 8 now; earlier 6 then 10.
        let v = out(json!({"health_score": [6.0, 10.0]}));
        assert_eq!(
            v["trend"],
            json!({"earlier_runs": 2, "previous": 10.0, "mean": 8.0, "change": -2.0, "change_from_mean": 0.0, "direction": "worsening"})
        );
        assert_eq!(out(json!([7.0]))["trend"]["direction"], "improving");
        assert_eq!(out(json!([8.2]))["trend"]["direction"], "steady");
        // A step with no history yet: no trend.
        assert!(out(json!({})).get("trend").is_none());
        let e = run(json!({"service": {}, "history": [1, "x"]}), "").unwrap_err();
        assert!(
            matches!(&e, StepError::InvalidConfig(m) if m == "field `history`: expected a list of earlier scores or a step's history object `{health_score: [...]}`, found \"x\" in the list"),
            "{e:?}"
        );
    }

    #[test]
    fn bad_config_and_missing_data() {
        let e = run(json!({}), "null").unwrap_err();
        assert!(matches!(&e, StepError::InvalidConfig(m) if m.starts_with("nothing to score")), "{e:?}");
        let e = run(json!({"probes": {"targets": [{"url": "x"}]}}), "").unwrap_err();
        assert!(
            matches!(&e, StepError::InvalidConfig(m) if m == "field `probes.targets[0].ok`: is required but missing"),
            "{e:?}"
        );
        let e = run(json!({"cpu_percent": {"warn": 90, "bad": 80}}), "").unwrap_err();
        assert!(
            matches!(&e, StepError::InvalidConfig(m) if m.starts_with("field `cpu_percent`: expected `warn` at most `bad`")),
            "{e:?}"
        );
        let e = run(json!({"weight": 1}), "").unwrap_err();
        assert!(matches!(&e, StepError::InvalidConfig(m) if m.starts_with("field `weight`: unknown field")), "{e:?}");
        let e = run(json!({}), r#"{"system": {"cpu": 1}}"#).unwrap_err();
        assert!(
            matches!(&e, StepError::InvalidConfig(m) if m.starts_with("input field `system.cpu`: expected an object")),
            "{e:?}"
        );
    }

    #[test]
    fn a_service_failing_a_fifth_of_its_requests_is_held_under_4_like_a_down_one() {
        let s = run(json!({"service": {"error_rate_percent": 30.0}}), "").unwrap();
        assert_eq!(s.score, 3.0);
        assert_eq!(
            s.deductions,
            [
                Deduction {
                    points: 5.0,
                    reason: "service error rate 30.00% is at or over 20%: the service is failing: the score is held at 3 or under"
                        .into()
                },
                Deduction { points: 2.0, reason: "service error rate 30.00% is at or over 5%".into() },
            ]
        );
        // Under the failing level only the bad level costs points.
        let s = run(json!({"service": {"error_rate_percent": 19.9}}), "").unwrap();
        assert_eq!(s.score, 8.0);
        let s = run(json!({"service": {"error_rate_percent": 12.0}, "failing_error_rate_percent": 10}), "").unwrap();
        assert_eq!(s.score, 3.0);
    }

    #[test]
    fn consecutive_healthy_counts_this_measurement_and_the_healthy_ones_just_before_it() {
        let healthy = json!({"service": {"error_rate_percent": 0.0}});
        let with = |recent: Value| {
            let mut config = healthy.clone();
            config["recent"] = recent;
            run(config, "").unwrap().consecutive_healthy
        };
        assert_eq!(run(healthy.clone(), "").unwrap().consecutive_healthy, 1);
        assert_eq!(with(json!([3.0, 9.0, 8.0])), 3);
        assert_eq!(with(json!({"health_score": [9.0, 3.0, 10.0]})), 2);
        assert_eq!(with(json!({})), 1);
        let after = run(json!({"service": {"error_rate_percent": 0.0}, "baseline": 3.0}), "").unwrap();
        assert_eq!(after.improvement, Some(7.0));
        assert_eq!(run(healthy.clone(), "").unwrap().improvement, None);
        let down = json!({"service": {"error_rate_percent": 50.0}, "recent": [9.0, 9.0]});
        assert_eq!(run(down, "").unwrap().consecutive_healthy, 0);
        let e = run(json!({"service": {}, "recent": "x"}), "").unwrap_err();
        assert!(
            matches!(&e, StepError::InvalidConfig(m) if m == "field `recent`: expected a list of earlier scores or a step's measured object `{health_score: [...]}`, found \"x\""),
            "{e:?}"
        );
    }
}
