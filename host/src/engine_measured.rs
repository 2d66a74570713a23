//! What a run has measured so far, as the engine records metrics: the
//! `measured.<step>.<metric>` variable of expressions, the latest value of
//! each metric by any step (the "before" of an action with `compare`), and
//! the before/after comparisons still waiting for their "after".
//!
//! Pure data kept in the engine's run state: no I/O, no store (the engine
//! writes the comparisons), no query (every value comes from a step that
//! ran in this run).

use crate::runbook::Runbook;
use crate::runbook::view::first_values;
use crate::runtime::record::Metric;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

/// A comparison recorded with its "before", waiting for the first later
/// measurement of its metric.
#[derive(Debug, Clone, PartialEq)]
struct Awaiting {
    /// The stored comparison's id.
    id: i64,
    metric: String,
}

/// The measurements of one run.
#[derive(Debug, Default)]
pub(super) struct Measured {
    /// Step id, then metric name, then one value per attempt, latest last.
    by_step: BTreeMap<String, BTreeMap<String, Vec<f64>>>,
    /// The latest value of each metric, whichever step measured it.
    latest: HashMap<String, f64>,
    awaiting: Vec<Awaiting>,
}

impl Measured {
    /// Nothing measured yet: every step of `rb` is there, empty, so
    /// `measured.<id>` always resolves.
    pub(super) fn new(rb: &Runbook) -> Measured {
        let by_step = rb.all_steps().map(|s| (s.id.clone(), BTreeMap::new())).collect();
        Measured { by_step, ..Measured::default() }
    }

    /// Records what one attempt of `step` emitted (the value `metrics.<name>`
    /// shows of each name). Returns the comparisons this measurement
    /// completes: `(id, after)`, each once.
    pub(super) fn record(&mut self, step: &str, metrics: &[Metric]) -> Vec<(i64, f64)> {
        let values = first_values(metrics);
        let mut completed = Vec::new();
        for (name, value) in values {
            self.by_step.entry(step.to_string()).or_default().entry(name.to_string()).or_default().push(value);
            self.latest.insert(name.to_string(), value);
            self.awaiting.retain(|a| {
                if a.metric == name {
                    completed.push((a.id, value));
                    false
                } else {
                    true
                }
            });
        }
        completed
    }

    /// The latest value of each of `names` measured so far in the run, and
    /// the names never measured.
    pub(super) fn before(&self, names: &[String]) -> (Vec<(String, f64)>, Vec<String>) {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            match self.latest.get(name) {
                Some(v) => found.push((name.clone(), *v)),
                None => missing.push(name.clone()),
            }
        }
        (found, missing)
    }

    /// Waits for the next measurement of `metric` to complete comparison `id`.
    pub(super) fn await_after(&mut self, id: i64, metric: &str) {
        self.awaiting.push(Awaiting { id, metric: metric.to_string() });
    }

    /// `measured.<step>`: `{metric: [value, ...]}`.
    pub(super) fn step_json(&self, step: &str) -> Value {
        let metrics = self.by_step.get(step).into_iter().flatten();
        Value::Object(metrics.map(|(n, v)| (n.clone(), json!(v))).collect())
    }

    /// The `measured` variable: `{step: {metric: [value, ...]}}`.
    pub(super) fn to_json(&self) -> Value {
        let steps: Map<String, Value> = self.by_step.keys().map(|step| (step.clone(), self.step_json(step))).collect();
        Value::Object(steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(name: &str, value: f64, labels: &[(&str, &str)]) -> Metric {
        Metric {
            name: name.into(),
            value,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn each_attempt_adds_the_first_series_of_each_metric_latest_last() {
        let mut m = Measured::default();
        m.by_step.insert("probe".into(), BTreeMap::new());
        assert_eq!(m.to_json(), json!({"probe": {}}));
        m.record("score", &[metric("health_score", 3.0, &[])]);
        m.record(
            "score",
            &[metric("health_score", 9.0, &[]), metric("disk", 40.0, &[("mount", "/")]), metric("disk", 90.0, &[])],
        );
        assert_eq!(m.to_json(), json!({"probe": {}, "score": {"health_score": [3.0, 9.0], "disk": [40.0]}}));
        assert_eq!(
            m.before(&["disk".into(), "error_rate".into()]),
            (vec![("disk".into(), 40.0)], vec!["error_rate".into()])
        );
    }

    #[test]
    fn a_comparison_is_completed_by_the_next_measurement_of_its_metric_only() {
        let mut m = Measured::default();
        m.await_after(7, "health_score");
        m.await_after(8, "error_rate");
        assert_eq!(m.record("probe", &[metric("latency_ms", 12.0, &[])]), vec![]);
        assert_eq!(m.record("score", &[metric("health_score", 8.5, &[])]), vec![(7, 8.5)]);
        assert_eq!(m.record("score", &[metric("health_score", 9.0, &[])]), vec![], "completed once");
        assert_eq!(m.record("prom", &[metric("error_rate", 0.01, &[])]), vec![(8, 0.01)]);
    }
}
