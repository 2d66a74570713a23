//! The runbook file format: serde structs for exactly what a user writes,
//! read from the positioned YAML tree of [`super::yaml`]. Nothing here
//! checks meaning (references, expressions, plugins); [`super::check`]
//! does, and turns these into the engine's model.

use super::yaml::{At, Node};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;

/// A runbook file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookSpec {
    /// Unique name, lower case with `-` or `_`, e.g. `local-health`.
    pub name: At<String>,
    /// What the runbook is for, e.g. `Checks this machine and its web endpoint`.
    #[serde(default)]
    pub description: Option<String>,
    /// Parameters a trigger may pass, by name, e.g. `url: {type: string, default: "http://localhost"}`.
    #[serde(default)]
    pub params: BTreeMap<String, At<ParamSpec>>,
    /// What starts the runbook besides `tend run`, e.g. `[{cron: "*/5 * * * *"}]`.
    #[serde(default)]
    pub triggers: Vec<At<TriggerSpec>>,
    /// Settings every step starts from, e.g. `{timeout: 30s, grants: {hosts: [localhost]}}`.
    #[serde(default)]
    pub defaults: DefaultsSpec,
    /// Wall-clock limit of the whole run, e.g. `15m`. By default none.
    #[serde(default)]
    pub timeout: Option<At<String>>,
    /// Most runs of this runbook at once; more wait their turn, e.g. `1`. By default no cap.
    #[serde(default)]
    pub concurrency: Option<At<u32>>,
    /// The steps, run in order; an item is a step ([`StepSpec`]) or a
    /// `repeat` block ([`RepeatBlock`]). Each is read on its own so that
    /// errors in several steps are all reported.
    pub steps: Vec<Node>,
    /// Steps that run only when an `on_failure` list names them, e.g. a rollback.
    #[serde(default)]
    pub handlers: Vec<Node>,
    /// Escalation rules checked after every step and loop iteration.
    #[serde(default)]
    pub escalations: Vec<At<EscalationSpec>>,
    /// Plugin findings at or above this severity escalate by themselves, e.g.
    /// `critical`, or `off`. By default `high`.
    #[serde(default)]
    pub escalate_findings: Option<At<String>>,
    /// Where escalations are sent, e.g. `{webhooks: [{url: "https://hooks.slack.com/..."}]}`.
    #[serde(default)]
    pub notify: NotifySpec,
    /// A report written when a run finishes, e.g. `postmortem`. By default none.
    #[serde(default)]
    pub report: Option<At<String>>,
}

/// A parameter's definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// `string`, `number`, `bool`, `array` or `object`, e.g. `number`.
    #[serde(rename = "type")]
    pub kind: At<ParamType>,
    /// Whether a trigger must pass it, e.g. `true`. By default false.
    #[serde(default)]
    pub required: bool,
    /// Value when not passed, e.g. `8`. By default null.
    #[serde(default)]
    pub default: Option<At<serde_json::Value>>,
    /// The only values allowed, e.g. `[staging, production]`.
    #[serde(default, rename = "enum")]
    pub allowed: Option<At<Vec<serde_json::Value>>>,
    /// What it means, e.g. `URL of the service to probe`.
    #[serde(default)]
    pub description: Option<String>,
}

/// Type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Number,
    Bool,
    Array,
    Object,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Number => "number",
            ParamType::Bool => "bool",
            ParamType::Array => "array",
            ParamType::Object => "object",
        }
    }

    /// Whether a JSON value has this type (null never does).
    pub fn accepts(self, v: &serde_json::Value) -> bool {
        use serde_json::Value as J;
        matches!(
            (self, v),
            (ParamType::String, J::String(_))
                | (ParamType::Number, J::Number(_))
                | (ParamType::Bool, J::Bool(_))
                | (ParamType::Array, J::Array(_))
                | (ParamType::Object, J::Object(_))
        )
    }
}

/// One trigger: exactly one of `cron`, `http` or `alert`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// A 5-field crontab line or a macro, e.g. `"*/5 * * * *"` or `"@hourly"`.
    #[serde(default)]
    pub cron: Option<At<String>>,
    /// IANA time zone of `cron`, e.g. `Europe/Paris`. By default `UTC`.
    #[serde(default)]
    pub timezone: Option<At<String>>,
    /// Params a scheduled run gets, e.g. `{url: "https://example.com"}`.
    #[serde(default)]
    pub params: Option<At<serde_json::Value>>,
    /// A fire while a run of this runbook is still going: `skip` (the
    /// default; the skipped fire is recorded), `queue` (at most one waits)
    /// or `allow`.
    #[serde(default)]
    pub overlap: Option<At<String>>,
    /// Fires missed while tend was down: `none`, `last` (the default: run
    /// once for the latest) or `all` (each one within `missed_window`).
    #[serde(default)]
    pub missed: Option<At<String>>,
    /// How far back `missed: all` reaches, e.g. `6h`. By default `24h`.
    #[serde(default)]
    pub missed_window: Option<At<String>>,
    /// Delay each fire by a random time up to this, e.g. `30s`. By default none.
    #[serde(default)]
    pub jitter: Option<At<String>>,
    /// Allow starting over the HTTP API, e.g. `true`.
    #[serde(default)]
    pub http: Option<bool>,
    /// Start on Prometheus Alertmanager alerts matching labels, e.g. `{match: {alertname: HostDown}}`.
    #[serde(default)]
    pub alert: Option<AlertSpec>,
}

/// Label matchers of an alert trigger; all must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// Labels that must equal a value, e.g. `{alertname: HostDown}`.
    #[serde(default, rename = "match")]
    pub exact: BTreeMap<String, String>,
    /// Labels that must fully match a regular expression, e.g. `{severity: "critical|high"}`.
    #[serde(default)]
    pub match_re: BTreeMap<String, At<String>>,
}

/// Settings every step starts from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsSpec {
    /// Wall-clock limit of each attempt, e.g. `30s`. By default `30s`.
    #[serde(default)]
    pub timeout: Option<At<String>>,
    /// Memory limit of each step, e.g. `64MiB`. By default `128MiB`.
    #[serde(default)]
    pub memory: Option<At<String>>,
    /// Retry policy of each step, e.g. `{attempts: 3}`. By default one attempt.
    #[serde(default)]
    pub retry: Option<At<RetrySpec>>,
    /// Grants every step gets in addition to its own, e.g. `{hosts: [localhost]}`.
    #[serde(default)]
    pub grants: GrantsSpec,
}

/// An item of `steps` that is a loop: `{repeat: {...}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepeatBlock {
    /// The loop, e.g. `{until: "steps.score.output.healthy", max_iterations: 3, steps: [...]}`.
    pub repeat: At<RepeatSpec>,
}

/// A `repeat` block: its steps run again and again until `until` holds or
/// `max_iterations` is reached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepeatSpec {
    /// Name of the loop in records and messages, e.g. `heal`. By default `repeat`.
    #[serde(default)]
    pub id: Option<At<String>>,
    /// CEL condition checked after each iteration; true ends the loop, e.g. `steps.score.output.score >= 8`.
    pub until: At<String>,
    /// Most iterations, e.g. `5`.
    pub max_iterations: At<u32>,
    /// Pause between iterations, e.g. `10m` or `${{ params.interval }}`. By default none.
    #[serde(default)]
    pub interval: Option<At<String>>,
    /// When `max_iterations` pass without `until` holding: `continue` (the
    /// default) goes on with the next item, `fail` fails the run.
    #[serde(default)]
    pub on_exhausted: Option<At<String>>,
    /// The steps of one iteration ([`StepSpec`] each).
    pub steps: Vec<Node>,
}

/// One step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Unique id, letters, digits and `_`, e.g. `probe`.
    pub id: At<String>,
    /// Plugin to run, e.g. `http-probe`.
    pub plugin: At<String>,
    /// The plugin's config; any value may be `${{ CEL }}`, e.g. `{targets: ["${{ params.url }}"]}`.
    #[serde(default, rename = "with")]
    pub config: Option<At<Node>>,
    /// Data handed to the plugin; may be `${{ CEL }}`, e.g. `${{ steps.probe.output }}`. By default null.
    #[serde(default)]
    pub input: Option<At<Node>>,
    /// CEL condition; the step is skipped (and recorded so) when false, e.g. `params.deep`.
    #[serde(default)]
    pub when: Option<At<String>>,
    /// Wall-clock limit of each attempt, e.g. `10s`. By default `defaults.timeout`.
    #[serde(default)]
    pub timeout: Option<At<String>>,
    /// Memory limit, e.g. `64MiB`. By default `defaults.memory`.
    #[serde(default)]
    pub memory: Option<At<String>>,
    /// WebAssembly stack size, e.g. `1MiB`. By default 512 KiB.
    #[serde(default)]
    pub stack: Option<At<String>>,
    /// Retry policy, e.g. `{attempts: 3, backoff: exponential, delay: 1s}`. By default `defaults.retry`.
    #[serde(default)]
    pub retry: Option<At<RetrySpec>>,
    /// What a failure does: `fail` (the default), `continue`, or a list of handler ids to run, e.g. `[rollback]`.
    #[serde(default)]
    pub on_failure: Option<At<OnFailureSpec>>,
    /// What the plugin may use beyond computing, e.g. `{hosts: [api.example.com]}`. By default nothing.
    #[serde(default)]
    pub grants: GrantsSpec,
    /// Wait for a person to approve before running, e.g. `{message: "Restart web?", timeout: 1h}`.
    #[serde(default)]
    pub approval: Option<At<ApprovalSpec>>,
    /// Safe to run again after a crash (crash recovery resumes at it), e.g. `true`. By default false.
    #[serde(default)]
    pub idempotent: bool,
    /// Metrics compared before and after the step (an action), e.g.
    /// `[health_score, error_rate]`: the latest value measured in the run
    /// before it runs, and the first measured after it succeeds. By default none.
    #[serde(default)]
    pub compare: Option<At<Vec<At<String>>>>,
    /// Wait this long before running, once `when` holds, e.g. `30s` or
    /// `${{ params.settle }}` (let an action settle before re-measuring). By default none.
    #[serde(default)]
    pub delay: Option<At<String>>,
}

/// How a step is retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included, e.g. `3`. By default 1.
    #[serde(default)]
    pub attempts: Option<At<u32>>,
    /// `constant` or `exponential`, e.g. `exponential`. By default exponential.
    #[serde(default)]
    pub backoff: Option<At<Backoff>>,
    /// Pause before the first retry, e.g. `2s`. By default `1s`.
    #[serde(default)]
    pub delay: Option<At<String>>,
    /// Longest pause between attempts, e.g. `1m`. By default `1m`.
    #[serde(default)]
    pub max_delay: Option<At<String>>,
    /// Randomize each pause between half and all of it, e.g. `false`. By default true.
    #[serde(default)]
    pub jitter: Option<bool>,
    /// Outcomes that are retried: `retryable`, `timeout`, `failed`, `trap`,
    /// e.g. `[retryable, timeout]` (the default).
    #[serde(default, rename = "on")]
    pub retry_on: Option<Vec<At<RetryOn>>>,
}

/// Backoff between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    Constant,
    Exponential,
}

/// A kind of outcome a retry policy retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryOn {
    /// The plugin returned a retryable error.
    Retryable,
    /// The attempt ran past its timeout.
    Timeout,
    /// The plugin returned a permanent error.
    Failed,
    /// Any other trap (out of memory, panic, ...).
    Trap,
}

/// What a step's failure does.
#[derive(Debug, Clone, PartialEq)]
pub enum OnFailureSpec {
    Fail,
    Continue,
    Run(Vec<String>),
}

impl<'de> Deserialize<'de> for OnFailureSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OnFailureSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"fail\", \"continue\" or a list of handler step ids")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OnFailureSpec, E> {
                match v {
                    "fail" => Ok(OnFailureSpec::Fail),
                    "continue" => Ok(OnFailureSpec::Continue),
                    other => Err(E::custom(format_args!(
                        "{other:?} is not \"fail\", \"continue\" or a list of handler step ids"
                    ))),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OnFailureSpec, A::Error> {
                let mut ids = Vec::new();
                while let Some(id) = seq.next_element::<String>()? {
                    ids.push(id);
                }
                Ok(OnFailureSpec::Run(ids))
            }
        }
        d.deserialize_any(V)
    }
}

/// Grants of a step (added to `defaults.grants`). By default nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsSpec {
    /// Hosts reachable over HTTP(S), e.g. `[api.example.com, "*.internal", "localhost:8080"]`.
    #[serde(default)]
    pub hosts: Vec<At<String>>,
    /// Directories, `HOST:GUEST[:ro|:rw]`, e.g. `["/var/log:/logs:ro"]`.
    #[serde(default)]
    pub dirs: Vec<At<String>>,
    /// Environment variables, e.g. `{REGION: eu-west-1}`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Secret names the plugin may read, e.g. `[slack-webhook]`.
    #[serde(default)]
    pub secrets: Vec<At<String>>,
    /// Read CPU, memory, disk and load of this machine, e.g. `true`. By default false.
    #[serde(default)]
    pub system_metrics: bool,
}

/// A pause for a person's decision before a step runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSpec {
    /// What the approver is asked (a template), e.g. `Restart {{ params.service }}?`.
    #[serde(default)]
    pub message: Option<At<String>>,
    /// How long to wait, e.g. `1h`. By default `1h`.
    #[serde(default)]
    pub timeout: Option<At<String>>,
    /// What an unanswered request becomes: `reject` (the default) or `approve`.
    #[serde(default)]
    pub on_timeout: Option<At<String>>,
}

/// An escalation rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationSpec {
    /// CEL condition, e.g. `has(steps.score.output.score) && steps.score.output.score < 5`.
    pub when: At<String>,
    /// `critical`, `high`, `medium` or `low`.
    pub severity: At<String>,
    /// What happened (a template), e.g. `health score {{ steps.score.output.score }}`.
    pub message: At<String>,
    /// Escalations with the same key are grouped (a template), e.g.
    /// `{{ run.runbook }}-score`. By default the runbook name and the rule's index.
    #[serde(default)]
    pub dedup_key: Option<At<String>>,
    /// Resolve what this rule raised, and send the resolved notifications,
    /// when `when` no longer holds at the end of the run, e.g. `true`. By default false.
    #[serde(default)]
    pub auto_resolve: Option<bool>,
}

/// Where escalations go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// Webhooks that receive each escalation and its resolution, e.g.
    /// `[{url_secret: slack-hook, format: slack}, {format: pagerduty, routing_key_secret: pd-key}]`.
    #[serde(default)]
    pub webhooks: Vec<At<WebhookSpec>>,
    /// Escalations with one dedup key inside this window are sent once, e.g. `30m`. By default `1h`.
    #[serde(default)]
    pub dedup_window: Option<At<String>>,
    /// Also write escalations to tend's log, e.g. `false`. By default true.
    #[serde(default)]
    pub log: Option<bool>,
}

/// A webhook sink: its URL given directly or read from a secret, and the
/// format of what it is sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// URL to POST to, e.g. `http://alerts.internal/hook`. A `pagerduty`
    /// sink posts to `https://events.pagerduty.com/v2/enqueue` by default.
    #[serde(default)]
    pub url: Option<At<String>>,
    /// Name of a secret holding the URL (Slack URLs are credentials), e.g. `slack-webhook`.
    #[serde(default)]
    pub url_secret: Option<At<String>>,
    /// `json` (the default: tend's JSON with a Slack-compatible `text`),
    /// `slack` (Block Kit), `teams` (an Adaptive Card message) or
    /// `pagerduty` (Events API v2), e.g. `slack`.
    #[serde(default)]
    pub format: Option<At<String>>,
    /// For `pagerduty`: name of the secret holding the integration's routing key, e.g. `pd-routing-key`.
    #[serde(default)]
    pub routing_key_secret: Option<At<String>>,
}
