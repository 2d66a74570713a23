//! Reports of finished runs, rendered from the run's record: the Markdown
//! post-mortem of a runbook with `report: postmortem` (severity, status,
//! impact, timeline, actions with their before/after, root cause left for
//! the responders, prevention items).
//!
//! Pure: takes a [`RunRecord`] (plain data) and returns text. No SQL, no
//! engine, no clock: the same record always renders the same report, so the
//! engine can render it again when the record changes (an alert resolved
//! after the run ended).

use crate::runtime::record::Severity;
use crate::store::{
    AlertStatus, AttemptRow, AttemptStatus, OptimizationResult, RunRecord, RunRow, RunStatus, StoredReport,
};
use crate::units::format_duration;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

/// Params (and alert labels) that name what was affected, in the order
/// the Impact section lists them.
pub const AFFECTED_KEYS: &[&str] = &["service", "url", "target", "targets", "endpoint", "host", "instance"];

/// What the Root cause section says until people write it.
pub const ROOT_CAUSE_PLACEHOLDER: &str = "_To be written by the responders._";

/// Why a run has no report to show (`GET /v1/runs/{id}/report`, `tend
/// runs report`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoReport {
    #[error("run {0:?} not found")]
    NoRun(String),
    #[error("run {id} is still {status}; its report is written when it finishes")]
    Unfinished { id: String, status: RunStatus },
    #[error(
        "run {id} has no report: its runbook {runbook:?} did not ask for one when it ran (a runbook asks with `report: postmortem`)"
    )]
    NotAsked { id: String, runbook: String },
}

/// The stored report of run `id`, or why there is none.
pub fn stored(id: &str, run: Option<RunRow>, report: Option<StoredReport>) -> Result<StoredReport, NoReport> {
    let run = run.ok_or_else(|| NoReport::NoRun(id.to_string()))?;
    match report {
        Some(r) => Ok(r),
        None if !run.status.is_final() => Err(NoReport::Unfinished { id: run.id, status: run.status }),
        None => Err(NoReport::NotAsked { id: run.id, runbook: run.runbook }),
    }
}

/// The post-mortem of a run, in Markdown.
pub fn postmortem(r: &RunRecord) -> String {
    let run = &r.run;
    let mut md = String::new();
    let _ = writeln!(md, "# Post-mortem: {} run {}\n", inline(&run.runbook), run.id);

    // Severity and status.
    let severity = r
        .escalations
        .iter()
        .map(|e| e.severity)
        .max()
        .map(|s| s.as_str().to_string())
        .or_else(|| run.params.get("severity").and_then(Value::as_str).map(inline))
        .unwrap_or_else(|| "none".into());
    let _ = writeln!(md, "**Severity:** {severity}\n");
    let duration = match (run.started_at, run.finished_at) {
        (Some(s), Some(f)) => long_duration(f - s),
        _ => "-".into(),
    };
    let _ = writeln!(
        md,
        "**Status:** {} · trigger: {} · started {} · finished {} · duration {duration}",
        run.status,
        run.trigger_kind,
        run.started_at.map(utc).unwrap_or_else(|| "never".into()),
        run.finished_at.map(utc).unwrap_or_else(|| "not yet".into()),
    );
    if let Some(e) = &run.error {
        let _ = writeln!(md, "\n**Error:** {}", inline(e));
    }

    md.push_str("\n## Impact\n\n");
    let affected = affected(r);
    if !affected.is_empty() {
        let _ = writeln!(md, "- Affected: {}", affected.join(", "));
    }
    let mut impact = 0;
    for e in r.escalations.iter().filter(|e| e.severity >= Severity::Medium) {
        impact += 1;
        let step = e.step_id.as_deref().map(|s| format!(", step `{s}`")).unwrap_or_default();
        let _ = writeln!(md, "- **{}** escalation: {} ({}{step})", e.severity.as_str(), inline(&e.message), e.status);
    }
    for (a, f) in findings(r).filter(|(_, f)| f.severity >= Severity::Medium) {
        impact += 1;
        let resource = f.resource.as_deref().map(|x| format!(" on `{}`", inline(x))).unwrap_or_default();
        let detail = if f.detail.is_empty() { String::new() } else { format!(": {}", inline(&f.detail)) };
        let _ = writeln!(
            md,
            "- **{}** finding of `{}`{resource}: {}{detail}",
            f.severity.as_str(),
            a.step_id,
            inline(&f.title)
        );
    }
    if impact == 0 {
        md.push_str("- No escalations or findings of medium severity or higher.\n");
    }

    md.push_str("\n## Timeline (UTC)\n\n");
    for (_, line) in timeline(r) {
        let _ = writeln!(md, "{line}");
    }

    md.push_str("\n## Actions\n\n");
    let actions = actions(r);
    if actions.is_empty() && r.optimization_results.is_empty() {
        md.push_str("No step recorded a summary or a before/after.\n");
    }
    for line in &actions {
        let _ = writeln!(md, "{line}");
    }
    if !r.optimization_results.is_empty() {
        if !actions.is_empty() {
            md.push('\n');
        }
        md.push_str("| step | iteration | metric | before | after | change | re-measured by |\n");
        md.push_str("|---|---|---|---|---|---|---|\n");
        for o in &r.optimization_results {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                o.step_id,
                o.iteration,
                o.metric,
                number(o.before),
                o.after.map(number).unwrap_or_else(|| "—".into()),
                change(o),
                o.measured_by
                    .as_ref()
                    .map(|m| format!("{} (iteration {})", m.step_id, m.iteration))
                    .unwrap_or_else(|| "not re-measured before the run ended".into()),
            );
        }
    }

    md.push_str("\n## Root cause\n\n");
    md.push_str(ROOT_CAUSE_PLACEHOLDER);
    md.push('\n');

    md.push_str("\n## Prevention\n\n");
    let titles: BTreeSet<String> = findings(r).map(|(_, f)| inline(&f.title)).collect();
    for t in &titles {
        let _ = writeln!(md, "- [ ] {t}");
    }
    md.push_str("- [ ] _Add what would have prevented this or caught it sooner._\n");
    md
}

/// A run's duration: `250ms`, `42.5s`, `5m30s`, `2h5m0s`.
fn long_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 120_000 {
        return format_duration(Duration::from_millis(ms as u64));
    }
    let s = ms / 1000;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// `2026-12-06 10:00:00.123 UTC`.
fn utc(ms: i64) -> String {
    let t = crate::units::rfc3339(ms);
    format!("{} {} UTC", &t[..10], &t[11..t.len() - 1])
}

/// `10:00:00.123` with its date: the timeline's time column.
fn stamp(ms: i64) -> String {
    let t = crate::units::rfc3339(ms);
    format!("{} {}", &t[..10], &t[11..t.len() - 1])
}

/// One line of text safe inside Markdown text and table cells.
fn inline(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    one.replace('|', "\\|")
}

/// `3.0`, `0.25`, `1200.0`: at least one decimal, at most four.
pub fn number(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0');
    if s.ends_with('.') { format!("{s}0") } else { s.to_string() }
}

/// `+6.0 (+200.0%)`; `—` when there is no after.
fn change(o: &OptimizationResult) -> String {
    let Some(c) = o.change else { return "—".into() };
    let sign = if c >= 0.0 { "+" } else { "" };
    match o.change_percent {
        Some(p) => format!("{sign}{} ({}{:.1}%)", number(c), if p >= 0.0 { "+" } else { "" }, p),
        None => format!("{sign}{}", number(c)),
    }
}

/// What the run's params and alerts name as affected.
fn affected(r: &RunRecord) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |key: &str, v: &Value| {
        let shown = match v {
            Value::String(s) => format!("{key} `{}`", inline(s)),
            Value::Array(items) if !items.is_empty() => {
                let list: Vec<String> =
                    items.iter().map(|i| format!("`{}`", inline(i.as_str().unwrap_or(&i.to_string())))).collect();
                format!("{key} {}", list.join(", "))
            }
            _ => return,
        };
        if !out.contains(&shown) {
            out.push(shown);
        }
    };
    for key in AFFECTED_KEYS {
        if let Some(v) = r.run.params.get(*key) {
            add(key, v);
        }
        for a in &r.alerts {
            if let Some(v) = a.labels.get(*key) {
                add(key, v);
            }
        }
    }
    out
}

/// Every finding of every attempt, with its attempt.
fn findings(r: &RunRecord) -> impl Iterator<Item = (&AttemptRow, &crate::runtime::record::Finding)> {
    r.steps.iter().flat_map(|a| a.findings.iter().map(move |f| (a, f)))
}

/// The summary lines of the steps that acted or summarized: one per
/// successful attempt whose output has a `summary`, and one per step with
/// a before/after.
fn actions(r: &RunRecord) -> Vec<String> {
    let mut out = Vec::new();
    for a in r.steps.iter().filter(|a| a.status == AttemptStatus::Succeeded) {
        let summary = match a.output.as_ref().and_then(|o| o.get("summary")) {
            Some(Value::String(s)) => inline(s),
            Some(Value::Null) | None => {
                let compared =
                    r.optimization_results.iter().any(|o| o.step_id == a.step_id && o.iteration == a.iteration);
                if !compared {
                    continue;
                }
                "no summary".into()
            }
            Some(other) => inline(&other.to_string()),
        };
        let iteration = if a.iteration > 0 { format!(" (iteration {})", a.iteration) } else { String::new() };
        out.push(format!("- `{}`{iteration}: {summary}", a.step_id));
    }
    out
}

/// Every event of the record as `(time, "- time — what")`, in time order.
fn timeline(r: &RunRecord) -> Vec<(i64, String)> {
    let run = &r.run;
    let mut events: Vec<(i64, String)> = Vec::new();
    let mut at = |ms: i64, what: String| events.push((ms, format!("- {} — {what}", stamp(ms))));
    let source = run.trigger_source.as_deref().map(|s| format!(" ({})", inline(s))).unwrap_or_default();
    at(run.created_at, format!("Run created by its {} trigger{source}", run.trigger_kind));
    for a in &r.alerts {
        let labels: Vec<String> = match &a.labels {
            Value::Object(map) => map
                .iter()
                .filter(|(k, _)| k.as_str() != "alertname")
                .map(|(k, v)| format!("{k}={}", inline(v.as_str().unwrap_or(&v.to_string()))))
                .collect(),
            _ => Vec::new(),
        };
        let labels = if labels.is_empty() { String::new() } else { format!(" ({})", labels.join(", ")) };
        let name = a.alertname.as_deref().map(inline).unwrap_or_else(|| a.fingerprint.clone());
        at(a.received_at, format!("Alert `{name}` firing since {}{labels}", a.starts_at));
        if let (Some(resolved), AlertStatus::Resolved) = (a.resolved_at, a.status) {
            let ended = a.ends_at.as_deref().map(|e| format!(" (ended {e})")).unwrap_or_default();
            at(resolved, format!("Alert `{name}` resolved{ended}"));
        }
    }
    if let Some(s) = run.started_at {
        at(s, "Run started".into());
    }
    for a in &r.steps {
        let iteration = if a.iteration > 0 { format!(" (iteration {})", a.iteration) } else { String::new() };
        if a.status == AttemptStatus::Skipped {
            let why = a.error.as_deref().map(|e| format!(": {}", inline(e))).unwrap_or_default();
            at(a.started_at, format!("Step `{}`{iteration} skipped{why}", a.step_id));
            continue;
        }
        at(a.started_at, format!("Step `{}`{iteration} attempt {} started ({})", a.step_id, a.attempt, a.plugin));
        if let Some(f) = a.finished_at {
            let took = a
                .duration_ms
                .map(|d| format!(" in {}", format_duration(Duration::from_secs_f64(d.max(0.0) / 1000.0))))
                .unwrap_or_default();
            let why = match (&a.error, a.status) {
                (Some(e), s) if s != AttemptStatus::Succeeded => format!(": {}", inline(e)),
                _ => String::new(),
            };
            at(f, format!("Step `{}`{iteration} attempt {} {}{took}{why}", a.step_id, a.attempt, a.status));
        }
    }
    for ap in &r.approvals {
        at(ap.requested_at, format!("Approval requested for `{}`: {}", ap.step_id, inline(&ap.message)));
        if let Some(d) = ap.decided_at {
            let by = ap.decided_by.as_deref().map(|b| format!(" by {}", inline(b))).unwrap_or_default();
            let reason = ap.reason.as_deref().map(|r| format!(": {}", inline(r))).unwrap_or_default();
            at(d, format!("Approval for `{}` {}{by}{reason}", ap.step_id, ap.status));
        }
    }
    for e in &r.escalations {
        let step = e.step_id.as_deref().map(|s| format!(" by step `{s}`")).unwrap_or_default();
        at(e.created_at, format!("Escalation {} raised [{}]{step}: {}", e.id, e.severity.as_str(), inline(&e.message)));
        if let Some(t) = e.acknowledged_at {
            let by = e.acknowledged_by.as_deref().map(|b| format!(" by {}", inline(b))).unwrap_or_default();
            at(t, format!("Escalation {} acknowledged{by}", e.id));
        }
        if let Some(t) = e.resolved_at {
            let by = e.resolved_by.as_deref().map(|b| format!(" by {}", inline(b))).unwrap_or_default();
            let why = e.resolution.as_deref().map(|r| format!(": {}", inline(r))).unwrap_or_default();
            at(t, format!("Escalation {} resolved{by}{why}", e.id));
        }
    }
    if let Some(f) = run.finished_at {
        at(f, format!("Run finished: {}", run.status));
    }
    // Stable: events at the same millisecond keep the order above.
    events.sort_by_key(|(ms, _)| *ms);
    events
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
