//! Aggregates billing rows as they stream by (totals, drivers, daily costs
//! per resource, service and account; never the rows themselves) and turns
//! them into recommendations with their saving and evidence. Must not read
//! files: `lib.rs` feeds it.

use crate::formats::{Charge, Pricing, Row, format_day};
use crate::usage::{Usage, UsageMap, p95};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use tend_plugin_sdk::round;

/// A month, for monthly figures: 30 days.
pub const MONTH_DAYS: f64 = 30.0;
/// Share of an idle resource's monthly cost saved by removing it: 100 %.
pub const IDLE_SAVING: f64 = 1.0;
/// Share saved by rightsizing a resource under both the CPU and the memory level: half.
pub const RIGHTSIZE_BOTH_SAVING: f64 = 0.5;
/// Share saved by rightsizing a resource under one of the levels: a quarter.
pub const RIGHTSIZE_ONE_SAVING: f64 = 0.25;
/// Spot discount on on-demand cost: 70 %.
pub const SPOT_DISCOUNT: f64 = 0.7;
/// Commitment (reservation, savings plan) discount on on-demand cost: 30 %.
pub const COMMITMENT_DISCOUNT: f64 = 0.3;
/// Days in a week, for week-over-week comparisons.
const WEEK: i64 = 7;
/// Credits and refunds listed in the output; the rest are counted only.
pub const CREDITS_LISTED: usize = 50;

/// The levels recommendations use.
#[derive(Debug, Clone)]
pub struct Levels {
    /// Days of the window, ending on the latest billing day.
    pub window_days: i64,
    /// Rightsizing when the p95 CPU is under this, in percent.
    pub cpu_percent: f64,
    /// Rightsizing when the p95 memory is under this, in percent.
    pub memory_percent: f64,
    /// A commitment candidate's daily cost varies at most this much (coefficient of variation, in percent).
    pub max_variation_percent: f64,
    /// A week-over-week increase over this, in percent, is a high finding.
    pub week_over_week_percent: f64,
    /// Tags that make a resource fault-tolerant (a spot candidate): key to accepted values.
    pub spot_tags: BTreeMap<String, Vec<String>>,
    /// Drivers listed per currency.
    pub top: usize,
}

/// A cost per currency and a name: one cost driver.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Driver {
    /// Currency of `cost`.
    pub currency: String,
    /// Service, account, or `key=value` of a tag.
    pub name: String,
    /// Net cost over every row read.
    pub cost: f64,
}

/// What one currency adds up to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Total {
    /// The currency.
    pub currency: String,
    /// Net cost: charges plus credits (negative).
    pub cost: f64,
    /// Every positive line.
    pub charges: f64,
    /// Every negative line (credits, refunds, adjustments), a negative number.
    pub credits: f64,
    /// FOCUS `EffectiveCost`, summed where given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<f64>,
    /// FOCUS `ListCost`, summed where given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<f64>,
    /// Lines in this currency.
    pub rows: u64,
}

/// A negative line: never a saving, shown for what it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Credit {
    /// `path:line`.
    pub at: String,
    /// What the line says it is (credit, refund, adjustment, ...).
    pub kind: &'static str,
    /// The amount, negative.
    pub amount: f64,
    /// Its currency.
    pub currency: String,
    /// Its service.
    pub service: String,
}

/// Recommendation kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// No requests or connections over the window: remove it.
    Idle,
    /// CPU or memory low over the window: a smaller size.
    Rightsizing,
    /// Fault-tolerant on on-demand pricing: run it on spot.
    Spot,
    /// Steady on-demand use: cover it with a commitment.
    Commitment,
}

impl Kind {
    /// The name in the output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Idle => "idle",
            Kind::Rightsizing => "rightsizing",
            Kind::Spot => "spot",
            Kind::Commitment => "commitment",
        }
    }
}

/// One recommendation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// What to do.
    pub kind: Kind,
    /// The resource id.
    pub resource: String,
    /// Its service.
    pub service: String,
    /// Its account.
    pub account: String,
    /// Currency of the amounts.
    pub currency: String,
    /// Its cost per month (over the window, scaled to 30 days).
    pub monthly_cost: f64,
    /// Estimated saving per month.
    pub saving: f64,
    /// Why, with the numbers.
    pub evidence: String,
}

/// A service or account whose cost rose more than the level week over week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Increase {
    /// `service` or `account`.
    pub scope: &'static str,
    /// Its name.
    pub name: String,
    /// Currency of the amounts.
    pub currency: String,
    /// Cost of the 7 days before `current`.
    pub previous: f64,
    /// Cost of the latest 7 days.
    pub current: f64,
    /// The increase, in percent.
    pub change_percent: f64,
}

/// Per resource (id and currency): what it cost each day.
#[derive(Debug, Clone, Default)]
struct Resource {
    service: String,
    account: String,
    tags: BTreeMap<String, String>,
    /// Positive usage cost per day.
    daily: BTreeMap<i64, f64>,
    /// Positive on-demand usage cost per day.
    on_demand: BTreeMap<i64, f64>,
}

/// Everything kept while rows stream by.
#[derive(Debug, Default)]
pub struct Audit {
    totals: BTreeMap<String, Total>,
    services: HashMap<(String, String), f64>,
    accounts: HashMap<(String, String), f64>,
    tags: HashMap<(String, String), f64>,
    service_days: HashMap<(String, String), BTreeMap<i64, f64>>,
    account_days: HashMap<(String, String), BTreeMap<i64, f64>>,
    resources: HashMap<(String, String), Resource>,
    credits: Vec<Credit>,
    credit_count: u64,
    first_day: Option<i64>,
    last_day: Option<i64>,
    rows: u64,
}

fn add(map: &mut HashMap<(String, String), f64>, currency: &str, name: &str, cost: f64) {
    match map.get_mut(&(currency.to_string(), name.to_string())) {
        Some(v) => *v += cost,
        None => {
            map.insert((currency.to_string(), name.to_string()), cost);
        }
    }
}

fn add_day(map: &mut HashMap<(String, String), BTreeMap<i64, f64>>, currency: &str, name: &str, day: i64, cost: f64) {
    let key = (currency.to_string(), name.to_string());
    *map.entry(key).or_default().entry(day).or_default() += cost;
}

impl Audit {
    /// Adds one row read at `at` (`path:line`).
    pub fn add(&mut self, row: &Row<'_>, at: impl FnOnce() -> String) {
        self.rows += 1;
        self.first_day = Some(self.first_day.map_or(row.day, |d| d.min(row.day)));
        self.last_day = Some(self.last_day.map_or(row.day, |d| d.max(row.day)));
        let total = self
            .totals
            .entry(row.currency.to_string())
            .or_insert_with(|| Total { currency: row.currency.to_string(), ..Total::default() });
        total.rows += 1;
        total.cost += row.cost;
        if let Some(e) = row.effective {
            *total.effective.get_or_insert(0.0) += e;
        }
        if let Some(l) = row.list {
            *total.list.get_or_insert(0.0) += l;
        }
        add(&mut self.services, row.currency, row.service, row.cost);
        add(&mut self.accounts, row.currency, row.account, row.cost);
        for (k, v) in &row.tags {
            add(&mut self.tags, row.currency, &format!("{k}={v}"), row.cost);
        }
        if row.cost < 0.0 {
            total.credits += row.cost;
            self.credit_count += 1;
            if self.credits.len() < CREDITS_LISTED {
                let kind = if row.charge == Charge::Usage { "negative usage" } else { row.charge.as_str() };
                self.credits.push(Credit {
                    at: at(),
                    kind,
                    amount: row.cost,
                    currency: row.currency.to_string(),
                    service: row.service.to_string(),
                });
            }
            return;
        }
        total.charges += row.cost;
        add_day(&mut self.service_days, row.currency, row.service, row.day, row.cost);
        add_day(&mut self.account_days, row.currency, row.account, row.day, row.cost);
        let (Some(id), Charge::Usage) = (row.resource, row.charge) else { return };
        let key = (id.to_string(), row.currency.to_string());
        let resource = self.resources.entry(key).or_insert_with(|| Resource {
            service: row.service.to_string(),
            account: row.account.to_string(),
            ..Resource::default()
        });
        for (k, v) in &row.tags {
            if !resource.tags.contains_key(k) {
                resource.tags.insert(k.clone(), v.clone());
            }
        }
        *resource.daily.entry(row.day).or_default() += row.cost;
        if row.pricing == Pricing::OnDemand {
            *resource.on_demand.entry(row.day).or_default() += row.cost;
        }
    }

    /// The window: first and last day (the last billing day and `window_days`
    /// before it, not before the first billing day); none without rows.
    pub fn window(&self, window_days: i64) -> Option<(i64, i64)> {
        let (first, last) = (self.first_day?, self.last_day?);
        Some(((last - window_days + 1).max(first), last))
    }

    /// Everything the step reports.
    pub fn finish(self, levels: &Levels, usage: &UsageMap) -> Report {
        let window = self.window(levels.window_days);
        let mut recommendations = Vec::new();
        if let Some((start, end)) = window {
            for ((id, currency), resource) in &self.resources {
                if let Some(r) = recommend(id, currency, resource, usage.get(id), (start, end), levels) {
                    recommendations.push(r);
                }
            }
        }
        recommendations.sort_by(|a, b| {
            b.saving
                .total_cmp(&a.saving)
                .then_with(|| a.currency.cmp(&b.currency))
                .then_with(|| a.resource.cmp(&b.resource))
        });
        let mut savings: BTreeMap<String, f64> = BTreeMap::new();
        for r in &recommendations {
            *savings.entry(r.currency.clone()).or_default() += r.saving;
        }
        let week_over_week = self.week_over_week(levels);
        let totals = self
            .totals
            .into_values()
            .map(|t| Total {
                cost: round(t.cost, 2),
                charges: round(t.charges, 2),
                credits: round(t.credits, 2),
                effective: t.effective.map(|v| round(v, 2)),
                list: t.list.map(|v| round(v, 2)),
                ..t
            })
            .collect();
        Report {
            rows: self.rows,
            window: window.map(|(s, e)| Window { start: format_day(s), end: format_day(e), days: e - s + 1 }),
            totals,
            top: Top {
                services: drivers(self.services, levels.top),
                accounts: drivers(self.accounts, levels.top),
                tags: drivers(self.tags, levels.top),
            },
            savings: savings
                .into_iter()
                .map(|(currency, monthly)| Saving { currency, monthly: round(monthly, 2) })
                .collect(),
            recommendations,
            credits: Credits { count: self.credit_count, listed: self.credits },
            week_over_week,
        }
    }

    fn week_over_week(&self, levels: &Levels) -> WeekOverWeek {
        let (Some(first), Some(last)) = (self.first_day, self.last_day) else {
            return WeekOverWeek {
                level: levels.week_over_week_percent,
                compared: None,
                increases: Vec::new(),
                note: Some("no billing rows".into()),
            };
        };
        if last - first + 1 < 2 * WEEK {
            return WeekOverWeek {
                level: levels.week_over_week_percent,
                compared: None,
                increases: Vec::new(),
                note: Some(format!("{} days of billing data; 14 are needed", last - first + 1)),
            };
        }
        let current = (last - WEEK + 1, last);
        let previous = (last - 2 * WEEK + 1, last - WEEK);
        let sum = |days: &BTreeMap<i64, f64>, (a, b): (i64, i64)| days.range(a..=b).map(|(_, v)| v).sum::<f64>();
        let mut increases = Vec::new();
        for (scope, map) in [("service", &self.service_days), ("account", &self.account_days)] {
            for ((currency, name), days) in map {
                let (before, now) = (sum(days, previous), sum(days, current));
                if before <= 0.0 {
                    continue;
                }
                let change = (now - before) / before * 100.0;
                if change > levels.week_over_week_percent {
                    increases.push(Increase {
                        scope,
                        name: name.clone(),
                        currency: currency.clone(),
                        previous: round(before, 2),
                        current: round(now, 2),
                        change_percent: round(change, 1),
                    });
                }
            }
        }
        increases.sort_by(|a, b| {
            b.change_percent.total_cmp(&a.change_percent).then_with(|| (a.scope, &a.name).cmp(&(b.scope, &b.name)))
        });
        let span = |(a, b): (i64, i64)| Window { start: format_day(a), end: format_day(b), days: b - a + 1 };
        WeekOverWeek {
            level: levels.week_over_week_percent,
            compared: Some(Compared { previous: span(previous), current: span(current) }),
            increases,
            note: None,
        }
    }
}

fn drivers(map: HashMap<(String, String), f64>, top: usize) -> Vec<Driver> {
    let mut all: Vec<Driver> =
        map.into_iter().map(|((currency, name), cost)| Driver { currency, name, cost: round(cost, 2) }).collect();
    all.sort_by(|a, b| a.currency.cmp(&b.currency).then(b.cost.total_cmp(&a.cost)).then_with(|| a.name.cmp(&b.name)));
    let mut kept: Vec<Driver> = Vec::new();
    for d in all {
        if kept.iter().filter(|k| k.currency == d.currency).count() < top {
            kept.push(d);
        }
    }
    kept
}

/// At most one recommendation per resource, the first that applies:
/// idle, rightsizing, spot, commitment.
fn recommend(
    id: &str,
    currency: &str,
    resource: &Resource,
    usage: Option<&Usage>,
    (start, end): (i64, i64),
    levels: &Levels,
) -> Option<Recommendation> {
    let days = (end - start + 1) as f64;
    let cost: f64 = resource.daily.range(start..=end).map(|(_, v)| v).sum();
    if cost <= 0.0 {
        return None;
    }
    let monthly = cost * MONTH_DAYS / days;
    let on_demand: f64 = resource.on_demand.range(start..=end).map(|(_, v)| v).sum();
    let on_demand_monthly = on_demand * MONTH_DAYS / days;
    let (first, last) = (format_day(start), format_day(end));
    let money = |v: f64| format!("{currency} {v:.2}");
    let make = |kind, saving: f64, evidence: String| Recommendation {
        kind,
        resource: id.to_string(),
        service: resource.service.clone(),
        account: resource.account.clone(),
        currency: currency.to_string(),
        monthly_cost: round(monthly, 2),
        saving: round(saving, 2),
        evidence,
    };
    if let Some(u) = usage {
        let traffic_samples = u.request_samples + u.connection_samples;
        if traffic_samples > 0 && u.requests == 0.0 && u.connections == 0.0 {
            let what = if u.connection_samples > 0 { "no requests and no connections" } else { "no requests" };
            return Some(make(
                Kind::Idle,
                monthly * IDLE_SAVING,
                format!(
                    "{what} in {} samples from {first} to {last}; it cost {} over those {days} days ({}/month)",
                    u.request_samples.max(u.connection_samples),
                    money(cost),
                    money(monthly)
                ),
            ));
        }
        let (cpu, memory) = (p95(&u.cpu), p95(&u.memory));
        let cpu_low = cpu.filter(|v| *v < levels.cpu_percent);
        let memory_low = memory.filter(|v| *v < levels.memory_percent);
        if cpu_low.is_some() || memory_low.is_some() {
            let share =
                if cpu_low.is_some() && memory_low.is_some() { RIGHTSIZE_BOTH_SAVING } else { RIGHTSIZE_ONE_SAVING };
            let describe = |name: &str, v: Option<f64>, level: f64, n: usize| match v {
                Some(v) if v < level => format!("p95 {name} {v:.1}% is under {level}% ({n} samples)"),
                Some(v) => format!("p95 {name} {v:.1}% is not under {level}% ({n} samples)"),
                None => format!("no {name} samples"),
            };
            return Some(make(
                Kind::Rightsizing,
                monthly * share,
                format!(
                    "{}; {} from {first} to {last}; {}/month, {}% of it saved by a smaller size",
                    describe("CPU", cpu, levels.cpu_percent, u.cpu.len()),
                    describe("memory", memory, levels.memory_percent, u.memory.len()),
                    money(monthly),
                    share * 100.0
                ),
            ));
        }
    }
    if on_demand_monthly <= 0.0 {
        return None;
    }
    let tolerant = resource.tags.iter().find(|(k, v)| levels.spot_tags.get(*k).is_some_and(|vals| vals.contains(v)));
    if let Some((k, v)) = tolerant {
        return Some(make(
            Kind::Spot,
            on_demand_monthly * SPOT_DISCOUNT,
            format!(
                "tag {k}={v} marks it fault-tolerant, yet it runs on on-demand pricing: {}/month; spot saves {}%",
                money(on_demand_monthly),
                SPOT_DISCOUNT * 100.0
            ),
        ));
    }
    let daily: Vec<f64> = (start..=end).map(|d| resource.on_demand.get(&d).copied().unwrap_or(0.0)).collect();
    let mean = daily.iter().sum::<f64>() / days;
    let variance = daily.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / days;
    let variation = variance.sqrt() / mean * 100.0;
    if days >= WEEK as f64 && variation <= levels.max_variation_percent {
        return Some(make(
            Kind::Commitment,
            on_demand_monthly * COMMITMENT_DISCOUNT,
            format!(
                "steady on-demand use every day from {first} to {last}: {} a day on average, varying {variation:.1}% \
                 (at most {}%); {}/month, a commitment saves {}%",
                money(mean),
                levels.max_variation_percent,
                money(on_demand_monthly),
                COMMITMENT_DISCOUNT * 100.0
            ),
        ));
    }
    None
}

/// The days recommendations look at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    /// First day, `YYYY-MM-DD`.
    pub start: String,
    /// Last day.
    pub end: String,
    /// Days.
    pub days: i64,
}

/// The saving per month in one currency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Saving {
    /// The currency.
    pub currency: String,
    /// Sum of its recommendations' savings.
    pub monthly: f64,
}

/// Top cost drivers per currency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Top {
    /// By service.
    pub services: Vec<Driver>,
    /// By account.
    pub accounts: Vec<Driver>,
    /// By tag (`key=value`).
    pub tags: Vec<Driver>,
}

/// Negative lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Credits {
    /// How many.
    pub count: u64,
    /// The first ones.
    pub listed: Vec<Credit>,
}

/// The weeks compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compared {
    /// The 7 days before.
    pub previous: Window,
    /// The latest 7 days.
    pub current: Window,
}

/// Week-over-week increases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeekOverWeek {
    /// An increase over this, in percent, is listed.
    pub level: f64,
    /// The weeks compared, when there are 14 days of data.
    pub compared: Option<Compared>,
    /// Increases over the level, largest first.
    pub increases: Vec<Increase>,
    /// Why nothing was compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What the audit found (the step output, with `files`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Billing lines read.
    pub rows: u64,
    /// The window of the recommendations.
    pub window: Option<Window>,
    /// Per currency.
    pub totals: Vec<Total>,
    /// Top cost drivers.
    pub top: Top,
    /// Total saving per currency.
    pub savings: Vec<Saving>,
    /// Largest saving first.
    pub recommendations: Vec<Recommendation>,
    /// Credits, refunds, adjustments.
    pub credits: Credits,
    /// Week-over-week increases.
    pub week_over_week: WeekOverWeek,
}
