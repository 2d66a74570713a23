//! Compares a step's problems with the previous run's, through the runbook
//! state, so a problem is notified once: each is `new`, `still_open` or —
//! gone since — `resolved`, and only new ones become findings (which
//! escalate per the step's `escalate_findings`).
//!
//! A problem's identity across runs is its fingerprint, made of what it is
//! about (an endpoint, a target, a check, a kind), never of a value that
//! changes from run to run or of anything secret: fingerprints and titles
//! are stored in the runbook's state.
//!
//! [`compare`] is pure (tested natively); only [`load`] and [`save`] call
//! the host (`host.state-get` / `host.state-set`, always allowed, scoped to
//! the runbook).

use crate::{Finding, SeverityLevel, StepError, finding, host, log};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Version of the saved state's shape.
pub const STATE_VERSION: u32 = 1;
/// Longest state key the host accepts, in bytes; longer default keys are hashed.
pub const MAX_KEY_BYTES: usize = 256;

/// One problem of this run, or of a previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Identity across runs; see [`fingerprint`].
    pub fingerprint: String,
    /// The finding's severity.
    pub severity: SeverityLevel,
    /// What the problem is about (the finding's resource).
    pub resource: String,
    /// The finding's title.
    pub title: String,
    /// The finding's detail; not kept in the state.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// What the state keeps: the open problems of the previous run.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// [`STATE_VERSION`] when saved.
    pub version: u32,
    /// The open problems, by fingerprint, without their detail.
    pub open: BTreeMap<String, Problem>,
}

/// This run against the previous one.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Open now, not before: these become findings.
    pub new: Vec<Problem>,
    /// Open now and before: listed, not raised again.
    pub still_open: Vec<Problem>,
    /// Open before, gone now.
    pub resolved: Vec<Problem>,
    /// The state to save for the next run.
    pub saved: Saved,
}

/// A fingerprint from the parts naming a problem, e.g. endpoint, check and
/// kind: the parts joined with `|`.
pub fn fingerprint(parts: &[&str]) -> String {
    parts.join("|")
}

/// The default state key: `prefix:` and the names joined with `,`, or —
/// over [`MAX_KEY_BYTES`] — `prefix:` and a hash of them.
pub fn state_key(prefix: &str, names: &[String]) -> String {
    let key = format!("{prefix}:{}", names.join(","));
    if key.len() <= MAX_KEY_BYTES { key } else { format!("{prefix}:{:016x}", fnv1a(key.as_bytes())) }
}

/// 64-bit FNV-1a: stable across builds, unlike the std hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Marks each of `current` against `previous`. A fingerprint repeated in
/// `current` counts once (its first).
pub fn compare(current: Vec<Problem>, previous: &Saved) -> Comparison {
    let mut saved = Saved { version: STATE_VERSION, open: BTreeMap::new() };
    let (mut new, mut still_open) = (Vec::new(), Vec::new());
    for p in current {
        if saved.open.contains_key(&p.fingerprint) {
            continue;
        }
        saved.open.insert(p.fingerprint.clone(), Problem { detail: String::new(), ..p.clone() });
        if previous.open.contains_key(&p.fingerprint) { still_open.push(p) } else { new.push(p) }
    }
    let resolved =
        previous.open.iter().filter(|(fp, _)| !saved.open.contains_key(*fp)).map(|(_, p)| p.clone()).collect();
    Comparison { new, still_open, resolved, saved }
}

impl Comparison {
    /// `counts` and the three lists, for the step's output data.
    pub fn data(&self) -> Value {
        json!({
            "counts": {
                "new": self.new.len(),
                "still_open": self.still_open.len(),
                "resolved": self.resolved.len(),
                "open": self.new.len() + self.still_open.len(),
            },
            "new": self.new,
            "still_open": self.still_open,
            "resolved": self.resolved,
        })
    }

    /// The new problems as findings.
    pub fn findings(&self) -> Vec<Finding> {
        self.new.iter().map(|p| finding(p.severity, p.title.clone(), p.detail.clone(), Some(&p.resource))).collect()
    }
}

/// The previous run's problems under `key`; none when unset or unreadable
/// (then every problem counts as new, and the log says why).
pub fn load(key: &str) -> Saved {
    match host::state_get(key) {
        Some(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
            log::warn(&format!(
                "state key {key:?} is not a previous run's problems ({e}); every problem counts as new"
            ));
            Saved::default()
        }),
        None => Saved::default(),
    }
}

/// Saves `saved` under `key` for the next run.
pub fn save(key: &str, saved: &Saved) -> Result<(), StepError> {
    let text = serde_json::to_string(saved).map_err(|e| StepError::Failed(format!("cannot encode the state: {e}")))?;
    host::state_set(key, &text).map_err(|e| StepError::Failed(format!("state key {key:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(fp: &str, title: &str) -> Problem {
        Problem {
            fingerprint: fp.into(),
            severity: SeverityLevel::High,
            resource: "r".into(),
            title: title.into(),
            detail: "d".into(),
        }
    }

    #[test]
    fn problems_are_new_then_still_open_then_resolved() {
        let first = compare(vec![p("a", "A"), p("b", "B"), p("a", "A again")], &Saved::default());
        assert_eq!(first.new, [p("a", "A"), p("b", "B")]);
        assert_eq!(first.findings().len(), 2);
        assert_eq!(first.data()["counts"], json!({"new": 2, "still_open": 0, "resolved": 0, "open": 2}));
        assert_eq!(first.saved.open["a"].detail, "", "details are not kept");

        let second = compare(vec![p("b", "B, worse")], &first.saved);
        assert_eq!(second.data()["counts"], json!({"new": 0, "still_open": 1, "resolved": 1, "open": 1}));
        assert_eq!(second.still_open[0].title, "B, worse");
        assert_eq!(second.resolved[0].title, "A");
        assert!(second.findings().is_empty(), "still-open problems are not raised again");

        let third = compare(vec![p("a", "A")], &second.saved);
        assert_eq!((third.new.len(), third.resolved[0].title.as_str()), (1, "B, worse"));
    }

    #[test]
    fn the_default_state_key_names_the_resources_or_hashes_long_ones() {
        assert_eq!(state_key("tls-check", &["a:1".into(), "b:2".into()]), "tls-check:a:1,b:2");
        let long = state_key("x", &["y".repeat(300)]);
        assert_eq!(long.len(), 2 + 16);
        assert_eq!(long, state_key("x", &["y".repeat(300)]), "stable");
        assert_eq!(fingerprint(&["https://x/", "hsts", "missing"]), "https://x/|hsts|missing");
    }
}
