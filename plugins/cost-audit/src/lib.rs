//! `cost-audit`: what the cloud bill pays for nothing, from billing exports
//! in a directory the runbook grants read-only.
//!
//! Config (`with:`):
//!
//! ```yaml
//! billing: ["/cost/billing"]          # files or directories (every *.csv directly inside, sorted)
//! utilization: ["/cost/usage"]        # optional, files or directories: resource_id,timestamp,cpu_percent,memory_percent,requests[,connections]
//! utilization_series: ${{ steps.prom.output }}   # optional: a prometheus-query output instead
//! resource_label: resource_id         # the series label naming the resource (utilization_series)
//! window_days: 30                     # the window ends on the latest billing day
//! week_over_week_percent: 30          # an increase over this is a high finding
//! top: 10                             # drivers listed per currency
//! rules:
//!   spot_tags: {workload: [batch, ci]}   # fault-tolerant by tag; by default interruptible=true or fault-tolerant=true
//!   cpu_percent: 30                   # rightsizing under this p95 CPU
//!   memory_percent: 40                # or under this p95 memory
//!   max_variation_percent: 20         # commitment: daily on-demand cost varies at most this much
//! ```
//!
//! Formats, detected from each file's header (see `formats.rs`): FOCUS
//! 1.0/1.1 (`BilledCost`, `BillingCurrency`, `ChargePeriodStart`,
//! `ChargeCategory`, `ServiceName`; optional `SubAccountId`, `ResourceId`,
//! `Tags` as JSON, `PricingCategory`, `CommitmentDiscountId`,
//! `EffectiveCost`, `ListCost`), AWS CUR (`lineItem/UnblendedCost`,
//! `lineItem/CurrencyCode`, `lineItem/UsageStartDate`,
//! `lineItem/LineItemType`, `lineItem/UsageAccountId`,
//! `product/ProductName`; optional `lineItem/ResourceId`, `pricing/term`,
//! `resourceTags/user:*`), AWS CUR 2.0 (`line_item_unblended_cost`,
//! `line_item_currency_code`, `line_item_usage_start_date`,
//! `line_item_line_item_type`, `line_item_usage_account_id`,
//! `line_item_product_code`; optional `product_product_name`,
//! `line_item_resource_id`, `pricing_term`, `resource_tags` as JSON) and the
//! generic CSV (`date`, `service`, `cost`, `currency`; optional `account`,
//! `resource_id`, `tags` as JSON, `pricing`: on_demand / spot / commitment,
//! `charge`: usage / purchase / tax / credit / refund / adjustment). Empty
//! and `NULL` values are null. Files are streamed line by line.
//!
//! Every amount stays in its currency; nothing is summed across currencies.
//! Negative lines (credits, refunds, adjustments) count in the net total
//! and are listed, never as savings. Each resource (a usage line with a
//! resource id) gets at most one recommendation, the first that applies,
//! its monthly cost being its positive usage cost over the window × 30 /
//! the window's days:
//!
//! | kind | when | saving per month |
//! |---|---|---|
//! | idle | utilization has requests (or connections) samples, all zero | `IDLE_SAVING` 100 % of its monthly cost |
//! | rightsizing | p95 CPU under 30 % or p95 memory under 40 % over the window | `RIGHTSIZE_BOTH_SAVING` 50 % of its monthly cost under both, `RIGHTSIZE_ONE_SAVING` 25 % under one |
//! | spot | a `spot_tags` tag, with on-demand cost | `SPOT_DISCOUNT` 70 % of its monthly on-demand cost |
//! | commitment | on-demand cost on every day of the window (at least 7), varying at most 20 % (standard deviation / mean of the daily on-demand cost) | `COMMITMENT_DISCOUNT` 30 % of its monthly on-demand cost |
//!
//! Week over week (with 14 days of data or more): the positive cost of the
//! latest 7 days against the 7 before, per service and per account; over
//! 30 % is a high finding.
//!
//! Output data: `files` (`path`, `format`, `rows`), `rows`, `window`,
//! `totals` (per currency: `cost` net, `charges`, `credits`, `effective`,
//! `list`, `rows`), `top` (`services`, `accounts`, `tags`: `currency`,
//! `name`, `cost`), `recommendations` (largest saving first: `kind`,
//! `resource`, `service`, `account`, `currency`, `monthly_cost`, `saving`,
//! `evidence`), `savings` (per currency: `monthly`), `credits` (`count`,
//! `listed`), `week_over_week` (`compared`, `increases`, `note`),
//! `utilization` (`files`, `resources`). Metrics: `cost_total`,
//! `cost_credits`, `cost_saving_monthly` (labelled by `currency`),
//! `cost_rows`, `cost_recommendations`. Findings: a low one per
//! recommendation, a high one per week-over-week increase.
//!
//! Reads only the files its config names, through WASI (the step's `dirs`
//! grant); no HTTP, state, secrets or environment.

mod audit;
mod formats;
mod usage;

use audit::{Audit, Levels, Report};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tend_plugin_sdk::{
    Guest, PluginInfo, Severity, StepContext, StepError, StepOutput, export, failed, finding, log, metric,
    parse_config, schema,
};

/// The plugin; see the crate docs.
struct CostAudit;

/// Days of the window: by default 30.
const WINDOW_DAYS: u32 = 30;
/// A week-over-week increase over this is high: by default 30 %.
const WEEK_OVER_WEEK_PERCENT: f64 = 30.0;
/// Rightsizing under this p95 CPU: by default 30 %.
const CPU_PERCENT: f64 = 30.0;
/// Rightsizing under this p95 memory: by default 40 %.
const MEMORY_PERCENT: f64 = 40.0;
/// A commitment candidate varies at most this much day to day: by default 20 %.
const MAX_VARIATION_PERCENT: f64 = 20.0;
/// Drivers listed per currency: by default 10.
const TOP: usize = 10;
/// The series label naming the resource in `utilization_series`: by default `resource_id`.
const RESOURCE_LABEL: &str = "resource_id";
/// Tags that mark a workload fault-tolerant, by default: `interruptible=true`, `fault-tolerant=true`.
const SPOT_TAGS: [&str; 2] = ["interruptible", "fault-tolerant"];

/// The step's `with:` block.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    billing: Vec<String>,
    #[serde(default)]
    utilization: Vec<String>,
    #[serde(default)]
    utilization_series: Option<Value>,
    #[serde(default = "resource_label")]
    resource_label: String,
    #[serde(default = "window_days")]
    window_days: u32,
    #[serde(default = "week_over_week_percent")]
    week_over_week_percent: f64,
    #[serde(default = "top")]
    top: usize,
    #[serde(default)]
    rules: Rules,
}

fn resource_label() -> String {
    RESOURCE_LABEL.to_string()
}
fn window_days() -> u32 {
    WINDOW_DAYS
}
fn week_over_week_percent() -> f64 {
    WEEK_OVER_WEEK_PERCENT
}
fn top() -> usize {
    TOP
}

/// The runbook-given rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Rules {
    spot_tags: BTreeMap<String, Vec<String>>,
    cpu_percent: f64,
    memory_percent: f64,
    max_variation_percent: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            spot_tags: SPOT_TAGS.iter().map(|k| (k.to_string(), vec!["true".to_string()])).collect(),
            cpu_percent: CPU_PERCENT,
            memory_percent: MEMORY_PERCENT,
            max_variation_percent: MAX_VARIATION_PERCENT,
        }
    }
}

impl Config {
    fn levels(&self) -> Levels {
        Levels {
            window_days: i64::from(self.window_days),
            cpu_percent: self.rules.cpu_percent,
            memory_percent: self.rules.memory_percent,
            max_variation_percent: self.rules.max_variation_percent,
            week_over_week_percent: self.week_over_week_percent,
            spot_tags: self.rules.spot_tags.clone(),
            top: self.top,
        }
    }
}

/// One file read.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct FileRead {
    path: String,
    format: &'static str,
    rows: u64,
}

/// Where the utilization came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct UtilizationRead {
    files: Vec<String>,
    from_series: bool,
    resources: usize,
}

/// The step's output data.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Data {
    files: Vec<FileRead>,
    #[serde(flatten)]
    report: Report,
    utilization: UtilizationRead,
}

/// The files of `paths` (a directory stands for its `*.csv` files, sorted).
fn files(field: &str, paths: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| format!("field `{field}`: cannot open {path:?}: {e}"))?;
        if !meta.is_dir() {
            out.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|e| format!("field `{field}`: cannot list {path:?}: {e}"))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| format!("field `{field}`: cannot list {path:?}: {e}"))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.to_ascii_lowercase().ends_with(".csv") && entry.file_type().is_ok_and(|t| t.is_file()) {
                found.push(format!("{}/{name}", path.trim_end_matches('/')));
            }
        }
        if found.is_empty() {
            return Err(format!("field `{field}`: {path:?} has no .csv files"));
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// Writes `message` to the step's log (only inside the sandbox: native unit tests have no host).
fn note(message: &str) {
    if cfg!(target_family = "wasm") {
        log::info(message);
    }
}

fn open(path: &str) -> Result<std::io::BufReader<std::fs::File>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: cannot open: {e}"))?;
    Ok(std::io::BufReader::with_capacity(1 << 16, file))
}

/// Reads every billing and utilization file and audits them.
fn audit(config: &Config) -> Result<Data, String> {
    let mut audit = Audit::default();
    let mut read = Vec::new();
    for path in files("billing", &config.billing)? {
        let mut reader = formats::BillingReader::new(&path, open(&path)?)?;
        let mut rows = 0;
        while reader.next(|row, line| {
            rows += 1;
            audit.add(row, || format!("{path}:{line}"));
        })? {}
        note(&format!("{path}: {} format, {rows} rows", reader.format()));
        read.push(FileRead { path, format: reader.format().as_str(), rows });
    }
    let levels = config.levels();
    let mut usage = usage::UsageMap::new();
    let utilization_files = files("utilization", &config.utilization)?;
    if let Some(window) = audit.window(levels.window_days) {
        for path in &utilization_files {
            usage::read_csv(path, open(path)?, window, &mut usage)?;
        }
    }
    if let Some(series) = config.utilization_series.as_ref().filter(|v| !v.is_null()) {
        usage::from_prometheus(series, &config.resource_label, &mut usage)?;
    }
    let utilization = UtilizationRead {
        files: utilization_files,
        from_series: config.utilization_series.as_ref().is_some_and(|v| !v.is_null()),
        resources: usage.len(),
    };
    Ok(Data { files: read, report: audit.finish(&levels, &usage), utilization })
}

fn metrics_and_findings(data: &Data) -> (Vec<tend_plugin_sdk::Metric>, Vec<tend_plugin_sdk::Finding>) {
    let report = &data.report;
    let mut metrics = vec![
        metric("cost_rows", report.rows as f64, &[]),
        metric("cost_recommendations", report.recommendations.len() as f64, &[]),
    ];
    for t in &report.totals {
        metrics.push(metric("cost_total", t.cost, &[("currency", &t.currency)]));
        metrics.push(metric("cost_credits", t.credits, &[("currency", &t.currency)]));
        let saving = report.savings.iter().find(|s| s.currency == t.currency).map_or(0.0, |s| s.monthly);
        metrics.push(metric("cost_saving_monthly", saving, &[("currency", &t.currency)]));
    }
    let mut findings = Vec::new();
    for i in &report.week_over_week.increases {
        findings.push(finding(
            Severity::High,
            format!("{} {} cost rose {}% week over week", i.scope, i.name, i.change_percent),
            format!(
                "{} {}: {} {:.2} in the latest 7 days against {} {:.2} the 7 days before (more than {}%)",
                i.scope,
                i.name,
                i.currency,
                i.current,
                i.currency,
                i.previous,
                data_level(data)
            ),
            Some(&format!("{} {}", i.scope, i.name)),
        ));
    }
    for r in &report.recommendations {
        findings.push(finding(
            Severity::Low,
            format!("{}: {} could save {} {:.2}/month", r.kind.as_str(), r.resource, r.currency, r.saving),
            r.evidence.clone(),
            Some(&r.resource),
        ));
    }
    (metrics, findings)
}

/// The week-over-week level, for finding details (the config's, kept in the report's increases).
fn data_level(data: &Data) -> f64 {
    data.report.week_over_week.level
}

impl Guest for CostAudit {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "cost-audit".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Audits cloud billing exports (FOCUS 1.0/1.1, AWS CUR, AWS CUR 2.0, a generic CSV) from a \
                          granted directory, streamed line by line: totals per currency, top cost drivers by \
                          service, account and tag, credits, and recommendations with their monthly saving and \
                          evidence (idle, rightsizing, spot, commitment); a week-over-week increase over 30% per \
                          service or account is a high finding."
                .into(),
            config_schema: schema::to_text(&config_schema()),
            capabilities: vec!["fs".into()],
        }
    }

    fn run(_ctx: StepContext, config: String, _input: String) -> Result<StepOutput, StepError> {
        let config: Config = parse_config(&config)?;
        let data = audit(&config).map_err(failed)?;
        let (metrics, findings) = metrics_and_findings(&data);
        tend_plugin_sdk::output(&data, metrics, findings)
    }
}

/// JSON Schema of [`Config`].
fn config_schema() -> Value {
    let paths = |description: &str| json!({"type": "array", "items": {"type": "string", "minLength": 1}, "description": description});
    let percent = |default: f64, description: &str| json!({"type": "number", "minimum": 0, "default": default, "description": description});
    schema::config(
        "cost-audit",
        "Configuration of the cost-audit plugin: the billing exports and utilization to read, and the rules.",
        json!({
            "billing": {
                "type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                "description": "Billing export files or directories (every *.csv directly inside, sorted), as the step sees them (its dirs grant)."
            },
            "utilization": paths("Utilization CSV files or directories: resource_id,timestamp,cpu_percent,memory_percent,requests[,connections]."),
            "utilization_series": {"type": ["object", "null"], "description": "The output of a prometheus-query step with queries named cpu_percent, memory_percent, requests, connections; each series names its resource by `resource_label`."},
            "resource_label": {"type": "string", "minLength": 1, "default": RESOURCE_LABEL, "description": "The series label naming the resource in utilization_series."},
            "window_days": {"type": "integer", "minimum": 1, "maximum": 366, "default": WINDOW_DAYS, "description": "Days of the window, ending on the latest billing day."},
            "week_over_week_percent": percent(WEEK_OVER_WEEK_PERCENT, "A service's or account's week-over-week increase over this, in percent, is a high finding."),
            "top": {"type": "integer", "minimum": 1, "default": TOP, "description": "Cost drivers listed per currency."},
            "rules": schema::object(
                "The rules of the recommendations.",
                json!({
                    "spot_tags": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                        "description": "Tags marking a workload fault-tolerant (a spot candidate): key to accepted values. By default {interruptible: [\"true\"], fault-tolerant: [\"true\"]}."
                    },
                    "cpu_percent": percent(CPU_PERCENT, "Rightsizing when the p95 CPU over the window is under this, in percent."),
                    "memory_percent": percent(MEMORY_PERCENT, "Rightsizing when the p95 memory over the window is under this, in percent."),
                    "max_variation_percent": percent(MAX_VARIATION_PERCENT, "A commitment candidate's daily on-demand cost varies at most this much (standard deviation over mean), in percent."),
                }),
                &[],
            ),
        }),
        &["billing"],
    )
}

export!(CostAudit);

#[cfg(test)]
mod tests;
