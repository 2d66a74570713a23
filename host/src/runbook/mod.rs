//! Runbooks: the YAML format users write ([`spec`]), its checking
//! ([`check`]) and the checked model the engine runs (this module's types).
//! Reads runbook files; nothing else here does I/O.

pub mod check;
pub mod expr;
pub mod spec;
pub mod view;
pub mod yaml;

pub use crate::notify::{Webhook, WebhookUrl};
use crate::runtime::grants::Grants;
use crate::runtime::limits::Limits;
use crate::runtime::record::Severity;
pub use check::{Catalog, Diagnostic};
use expr::{Expr, Text, Tmpl};
use serde_json::Value;
pub use spec::{Backoff, ParamType, RetryOn};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A checked runbook, ready to run.
#[derive(Debug, Clone)]
pub struct Runbook {
    pub name: String,
    pub description: Option<String>,
    /// The file it was read from.
    pub file: PathBuf,
    /// blake3 of the file's text, recorded with every run.
    pub hash: String,
    pub source: String,
    pub params: Vec<Param>,
    pub triggers: Vec<Trigger>,
    /// Wall-clock limit of a whole run. By default none.
    pub timeout: Option<Duration>,
    /// Most runs at once. By default no cap.
    pub concurrency: Option<u32>,
    pub items: Vec<Item>,
    /// Steps run only when an `on_failure` names them.
    pub handlers: Vec<Step>,
    pub escalations: Vec<Rule>,
    /// Findings at or above this severity escalate; None turns that off.
    /// By default `high`.
    pub escalate_findings: Option<Severity>,
    pub notify: Notify,
    /// Whether any expression reads `history`: only then does a run load
    /// the runbook's earlier metrics.
    pub reads_history: bool,
    /// The report written when a run finishes (`report`). By default none.
    pub report: Option<ReportKind>,
}

/// A report a runbook asks for when a run finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// A Markdown post-mortem: severity, status, impact, timeline, actions
    /// with before/after, root cause (for people to write), prevention.
    Postmortem,
}

impl ReportKind {
    pub const ALL: [ReportKind; 1] = [ReportKind::Postmortem];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Postmortem => "postmortem",
        }
    }
}

impl std::str::FromStr for ReportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ReportKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<String> = ReportKind::ALL.iter().map(|k| format!("{:?}", k.as_str())).collect();
            format!("{s:?} is not a known report; expected {}", names.join(" or "))
        })
    }
}

impl std::fmt::Display for ReportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parameter of a runbook.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub kind: ParamType,
    pub required: bool,
    pub default: Option<Value>,
    pub allowed: Option<Vec<Value>>,
    pub description: Option<String>,
}

/// What starts a runbook besides `tend run`.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A schedule: a 5-field crontab line or macro in an IANA time zone.
    Cron(CronTrigger),
    /// `POST /v1/runbooks/{name}/runs`.
    Http,
    /// Alertmanager alerts whose labels match.
    Alert(AlertTrigger),
}

/// An alert trigger: which alerts start the runbook, and the params their
/// runs get.
#[derive(Debug, Clone)]
pub struct AlertTrigger {
    /// Labels that must equal a value.
    pub exact: BTreeMap<String, String>,
    /// Labels that must fully match a regular expression.
    pub regex: Vec<(String, regex::Regex)>,
    /// Params of the runs it starts: each string a template over `alert`
    /// (`{{ alert.labels.instance }}`), other values as written.
    pub params: Vec<(String, AlertParam)>,
}

/// One param of an alert trigger's runs.
#[derive(Debug, Clone)]
pub enum AlertParam {
    Literal(Value),
    Template(Text),
}

impl AlertTrigger {
    /// The params of a run this trigger starts for `alert` (the object
    /// the runbook's `alert` param receives). `Err` names the param and
    /// says what went wrong rendering it.
    pub fn params(&self, alert: &Value) -> Result<serde_json::Map<String, Value>, String> {
        let context = serde_json::json!({ "alert": alert });
        let mut out = serde_json::Map::new();
        for (name, p) in &self.params {
            let value = match p {
                AlertParam::Literal(v) => v.clone(),
                AlertParam::Template(t) => {
                    Value::String(t.render_json(&context).map_err(|e| format!("alert trigger param {name:?}: {e}"))?)
                }
            };
            out.insert(name.clone(), value);
        }
        Ok(out)
    }
}

impl Trigger {
    /// Whether an alert with these labels matches this (alert) trigger:
    /// every `match` label equal, every `match_re` label fully matching.
    pub fn matches_alert(&self, labels: &serde_json::Map<String, Value>) -> bool {
        let Trigger::Alert(AlertTrigger { exact, regex, .. }) = self else { return false };
        let label = |k: &str| labels.get(k).and_then(Value::as_str);
        exact.iter().all(|(k, v)| label(k) == Some(v.as_str()))
            && regex.iter().all(|(k, re)| label(k).is_some_and(|v| re.is_match(v)))
    }
}

/// A cron trigger with its policies.
#[derive(Debug, Clone, PartialEq)]
pub struct CronTrigger {
    /// e.g. `*/5 * * * *` or `@daily`.
    pub expr: String,
    /// IANA zone, e.g. `Europe/Paris`. By default `UTC`.
    pub timezone: String,
    /// `expr` in `timezone`, parsed once when the runbook is checked.
    pub schedule: crate::cron::Schedule,
    /// Params of scheduled runs.
    pub params: Value,
    pub overlap: Overlap,
    pub missed: Missed,
    /// How far back `missed: all` reaches. By default 24 hours.
    pub missed_window: Duration,
    /// Random delay added to each fire, up to this. By default none.
    pub jitter: Duration,
}

/// What a fire does while a run of the runbook is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// Record the fire as skipped (the default).
    Skip,
    /// Let one run wait for the running one; further fires are skipped.
    Queue,
    /// Start anyway.
    Allow,
}

/// What happens to fires missed while tend was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Missed {
    /// Drop them.
    None,
    /// Run once for the latest (the default).
    Last,
    /// Run each one within `missed_window` (at most 100).
    All,
}

/// An item of a runbook's steps.
#[derive(Debug, Clone)]
pub enum Item {
    Step(Box<Step>),
    Repeat(Repeat),
}

/// A loop: its steps run until `until` holds or `max_iterations` is reached.
#[derive(Debug, Clone)]
pub struct Repeat {
    pub id: String,
    pub until: Expr,
    pub max_iterations: u32,
    /// Pause between iterations. By default none.
    pub interval: Option<Pause>,
    /// Fail the run when the iterations run out. By default false: go on.
    pub fail_when_exhausted: bool,
    pub steps: Vec<Step>,
}

/// One step, with its defaults applied.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub plugin: String,
    pub config: Tmpl,
    pub input: Tmpl,
    pub when: Option<Expr>,
    pub limits: Limits,
    pub retry: RetryPolicy,
    pub on_failure: OnFailure,
    pub grants: Grants,
    pub approval: Option<Approval>,
    pub idempotent: bool,
    /// Metric names recorded before and after the step (`compare`). By default none.
    pub compare: Vec<String>,
    /// Wait before running (after `when` holds), e.g. to let an action
    /// settle before re-measuring. By default none.
    pub delay: Option<Pause>,
}

/// A pause written in a runbook: a fixed duration (`30s`), or `${{ CEL }}`
/// evaluated when the pause starts, e.g. `${{ params.interval }}`, which
/// must give a duration text or a number of seconds.
#[derive(Debug, Clone)]
pub enum Pause {
    Fixed(Duration),
    Expr(Expr),
}

impl Pause {
    /// How long to pause in `scope`. `Err` names the expression, quotes
    /// what it gave and says what was expected.
    pub fn resolve(&self, scope: &expr::Scope) -> Result<Duration, String> {
        let e = match self {
            Pause::Fixed(d) => return Ok(*d),
            Pause::Expr(e) => e,
        };
        let value = e.eval(scope)?;
        let bad = |why: String| format!("`${{{{ {} }}}}` gave {}: {why}", e.source, expr::describe(&value));
        let d = match &value {
            Value::String(s) => crate::units::parse_duration(s).map_err(bad)?,
            Value::Number(n) => match n.as_f64() {
                Some(secs) if secs.is_finite() && (0.0..=1e9).contains(&secs) => Duration::from_secs_f64(secs),
                _ => return Err(bad("expected a number of seconds from 0 to 1e9".into())),
            },
            _ => return Err(bad("expected a duration such as \"30s\" or a number of seconds".into())),
        };
        Ok(d)
    }
}

/// How a step is retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. By default 1.
    pub attempts: u32,
    /// By default exponential.
    pub backoff: Backoff,
    /// Pause before the first retry. By default 1s.
    pub delay: Duration,
    /// Longest pause. By default 1m.
    pub max_delay: Duration,
    /// Randomize each pause between half and all of it. By default true.
    pub jitter: bool,
    /// What is retried. By default retryable errors and timeouts.
    pub retry_on: Vec<RetryOn>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            backoff: Backoff::Exponential,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            jitter: true,
            retry_on: vec![RetryOn::Retryable, RetryOn::Timeout],
        }
    }
}

impl RetryPolicy {
    /// The pause after failed attempt `attempt` (1-based), before jitter:
    /// `delay`, then doubling when exponential, never over `max_delay`.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let d = match self.backoff {
            Backoff::Constant => self.delay,
            Backoff::Exponential => {
                let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
                self.delay.saturating_mul(factor)
            }
        };
        d.min(self.max_delay)
    }

    /// The pause after failed attempt `attempt`, with jitter drawn from
    /// `unit` (a number in [0, 1)): between half and all of the base delay.
    pub fn delay_for(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.base_delay(attempt);
        if self.jitter { base.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0)) } else { base }
    }
}

/// What a step's failure does to the run.
#[derive(Debug, Clone, PartialEq)]
pub enum OnFailure {
    /// The run fails (the default).
    Fail,
    /// The run goes on; the step stays failed in the record.
    Continue,
    /// These handlers run, then the run fails.
    Run(Vec<String>),
}

/// A pause for a decision before a step runs.
#[derive(Debug, Clone)]
pub struct Approval {
    pub message: Option<Text>,
    /// By default 1 hour.
    pub timeout: Duration,
    /// By default false: an unanswered request rejects.
    pub approve_on_timeout: bool,
}

/// An escalation rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its place in `escalations`, for the default dedup key.
    pub index: usize,
    pub when: Expr,
    pub severity: Severity,
    pub message: Text,
    pub dedup_key: Option<Text>,
    /// Resolve the escalations a run raised from this rule when `when` no
    /// longer holds at the end of the run. By default false.
    pub auto_resolve: bool,
}

/// Where escalations go.
#[derive(Debug, Clone)]
pub struct Notify {
    pub webhooks: Vec<Webhook>,
    /// By default 1 hour.
    pub dedup_window: Duration,
    /// By default true.
    pub log: bool,
}

impl Runbook {
    /// Every step (loop steps and handlers included) by id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.all_steps().find(|s| s.id == id)
    }

    /// Every step: main steps and loop steps in order, then handlers.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.items
            .iter()
            .flat_map(|i| match i {
                Item::Step(s) => std::slice::from_ref(&**s).iter(),
                Item::Repeat(r) => r.steps.iter(),
            })
            .chain(self.handlers.iter())
    }

    /// Checks and fills run parameters: required ones given, types and
    /// enums respected, no unknown names; defaults added. Every problem is
    /// reported, each naming the param.
    pub fn resolve_params(
        &self,
        given: &serde_json::Map<String, Value>,
    ) -> Result<serde_json::Map<String, Value>, Vec<String>> {
        let mut errors = Vec::new();
        let mut out = serde_json::Map::new();
        for name in given.keys() {
            if !self.params.iter().any(|p| &p.name == name) {
                let names: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
                let hint = yaml::did_you_mean(name, names.iter().copied())
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                let known = if names.is_empty() {
                    "it takes none".to_string()
                } else {
                    format!("it takes {}", names.join(", "))
                };
                errors.push(format!("param {name:?} is not a param of runbook {:?}{hint}; {known}", self.name));
            }
        }
        for p in &self.params {
            match given.get(&p.name) {
                Some(v) => {
                    if !p.kind.accepts(v) {
                        errors.push(format!(
                            "param {:?}: expected a {}, got {}",
                            p.name,
                            p.kind.as_str(),
                            expr::describe(v)
                        ));
                    } else if let Some(allowed) = &p.allowed
                        && !allowed.contains(v)
                    {
                        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
                        errors.push(format!("param {:?}: {v} is not one of {}", p.name, list.join(", ")));
                    } else {
                        out.insert(p.name.clone(), v.clone());
                    }
                }
                None if p.required => errors.push(format!("param {:?} is required", p.name)),
                None => {
                    out.insert(p.name.clone(), p.default.clone().unwrap_or(Value::Null));
                }
            }
        }
        if errors.is_empty() { Ok(out) } else { Err(errors) }
    }

    /// Parses `key=value` pairs from the command line into params, using
    /// each param's type (`-p threshold=7`, `-p tags='["a"]'`).
    pub fn params_from_pairs(&self, pairs: &[String]) -> Result<serde_json::Map<String, Value>, Vec<String>> {
        let mut out = serde_json::Map::new();
        let mut errors = Vec::new();
        for pair in pairs {
            let Some((key, text)) = pair.split_once('=') else {
                errors.push(format!("-p {pair:?}: expected key=value"));
                continue;
            };
            let kind = self.params.iter().find(|p| p.name == key).map(|p| p.kind);
            let value = match kind {
                Some(ParamType::String) | None => Ok(Value::String(text.to_string())),
                Some(ParamType::Number) => serde_json::from_str::<serde_json::Number>(text)
                    .map(Value::Number)
                    .map_err(|_| format!("-p {key}: {text:?} is not a number")),
                Some(ParamType::Bool) => match text {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    _ => Err(format!("-p {key}: {text:?} is not true or false")),
                },
                Some(ParamType::Array) | Some(ParamType::Object) => serde_json::from_str::<Value>(text)
                    .map_err(|e| format!("-p {key}: {text:?} is not valid JSON: {e}")),
            };
            match value {
                Ok(v) => {
                    out.insert(key.to_string(), v);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() { Ok(out) } else { Err(errors) }
    }
}

/// A problem with one file: where, and what. Displays as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiagnostic {
    pub file: PathBuf,
    pub diagnostic: Diagnostic,
}

impl std::fmt::Display for FileDiagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.diagnostic.pos, self.diagnostic.message)
    }
}

/// Reads and checks one runbook file.
pub fn load_file(path: &Path, catalog: &Catalog) -> Result<Runbook, Vec<FileDiagnostic>> {
    let wrap = |diags: Vec<Diagnostic>| {
        diags.into_iter().map(|d| FileDiagnostic { file: path.to_path_buf(), diagnostic: d }).collect()
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        wrap(vec![Diagnostic { pos: yaml::Pos { line: 1, col: 1 }, message: format!("cannot read the file: {e}") }])
    })?;
    check::check(path, &text, catalog).map_err(wrap)
}

/// The runbook files of a directory (`*.yaml`, `*.yml`), sorted.
pub fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    Ok(files_with_metadata(dir)?.into_iter().map(|(p, _)| p).collect())
}

/// The runbook files of a directory, sorted, each with its metadata (one
/// `stat` per file, following symlinks).
pub fn files_with_metadata(dir: &Path) -> std::io::Result<Vec<(PathBuf, std::fs::Metadata)>> {
    let mut files: Vec<(PathBuf, std::fs::Metadata)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter_map(|p| std::fs::metadata(&p).ok().filter(|m| m.is_file()).map(|m| (p, m)))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// The `notify` section of the runbook named `name` in `dir`, checked on
/// its own (the rest of the file is not: a runbook that no longer loads
/// still has sinks to tell). None when no file of `dir` has that name.
/// For the CLI, which resolves escalations without loading plugins.
pub fn notify_in(dir: &Path, name: &str) -> Option<Result<Notify, Vec<FileDiagnostic>>> {
    for file in files_in(dir).unwrap_or_default() {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let Ok(root) = yaml::parse(&text) else { continue };
        if root.get("name").and_then(yaml::Node::as_str) != Some(name) {
            continue;
        }
        let wrap = |diags: Vec<Diagnostic>| {
            diags.into_iter().map(|d| FileDiagnostic { file: file.clone(), diagnostic: d }).collect()
        };
        return Some(check::notify_section(&root).map_err(wrap));
    }
    None
}

/// Loads every runbook of a directory. Runbooks that fail their checks are
/// left out and their problems returned; two files with one name are an
/// error on the second.
pub fn load_dir(dir: &Path, catalog: &Catalog) -> (Vec<Runbook>, Vec<FileDiagnostic>) {
    let mut runbooks: Vec<Runbook> = Vec::new();
    let mut problems = Vec::new();
    let files = match files_in(dir) {
        Ok(f) => f,
        Err(e) => {
            problems.push(FileDiagnostic {
                file: dir.to_path_buf(),
                diagnostic: Diagnostic {
                    pos: yaml::Pos { line: 1, col: 1 },
                    message: format!("cannot read the directory: {e}"),
                },
            });
            return (runbooks, problems);
        }
    };
    for file in files {
        match load_file(&file, catalog) {
            Ok(rb) => {
                if let Some(other) = runbooks.iter().find(|r| r.name == rb.name) {
                    problems.push(FileDiagnostic {
                        file: file.clone(),
                        diagnostic: Diagnostic {
                            pos: yaml::Pos { line: 1, col: 1 },
                            message: format!("runbook name {:?} is already used by {}", rb.name, other.file.display()),
                        },
                    });
                } else {
                    runbooks.push(rb);
                }
            }
            Err(diags) => problems.extend(diags),
        }
    }
    (runbooks, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
            jitter: false,
            ..RetryPolicy::default()
        };
        let delays: Vec<u64> = (1..=5).map(|a| p.delay_for(a, 0.9).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 5, 5]);
        let c = RetryPolicy { backoff: Backoff::Constant, ..p.clone() };
        assert_eq!(c.delay_for(4, 0.0), Duration::from_secs(1));
        // Jitter stays between half and all of the base delay.
        let j = RetryPolicy { jitter: true, ..p };
        assert_eq!(j.delay_for(2, 0.0), Duration::from_secs(1));
        assert_eq!(j.delay_for(2, 1.0), Duration::from_secs(2));
        // Huge attempt numbers saturate instead of overflowing.
        assert_eq!(j.base_delay(10_000), Duration::from_secs(5));
    }

    #[test]
    fn alert_trigger_params_name_runbook_params_and_read_only_the_alert() {
        let catalog = Catalog { plugins: BTreeMap::from([("echo".to_string(), None)]) };
        let yaml = "name: a\nparams:\n  url: {type: string}\ntriggers:\n  - alert: {match: {alertname: X}}\n    params:\n      url: \"{{ params.url }}\"\n      urll: x\n  - http: true\n    params: {url: y}\nsteps:\n  - id: s\n    plugin: echo\n";
        let errors: Vec<String> = match check::check(Path::new("a.yaml"), yaml, &catalog) {
            Ok(_) => panic!("should not check"),
            Err(diags) => diags.iter().map(|d| format!("{}: {}", d.pos, d.message)).collect(),
        };
        assert_eq!(
            errors,
            [
                "7:7: triggers[0]: params.url: unknown variable \"params.url\"; an alert trigger's params can use `alert` ({{ alert.labels.instance }}, alert.annotations, alert.status, alert.starts_at, alert.fingerprint)",
                "7:7: triggers[0]: params: \"urll\" is not a param of the runbook (did you mean \"url\"?)",
                "9:5: triggers[1]: timezone, params, overlap, missed, missed_window and jitter only apply to a cron trigger (params also to an alert trigger)",
            ]
        );
    }
}
