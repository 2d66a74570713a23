//! Escalation notifications: the sinks they go to (a webhook in one of
//! four formats — generic JSON, Slack Block Kit, a Microsoft Teams Adaptive
//! Card message, PagerDuty Events API v2 — or tend's log), the body each
//! format takes, and sending one.
//!
//! A leaf: knows nothing of dedup, storage, secrets or where sinks are
//! configured; [`crate::notifier`] decides what to send to whom and
//! records it.

use crate::runbook::yaml::{did_you_mean, quote_list};
use crate::runtime::record::Severity;
use serde::Serialize;
use serde_json::{Value, json};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long one webhook delivery may take. By default 10 seconds.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Where a `pagerduty` sink posts when it has no `url`: PagerDuty's Events API v2.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// Longest PagerDuty `payload.summary`: 1024 characters (the API's limit).
pub const PAGERDUTY_SUMMARY_MAX: usize = 1024;
/// Longest PagerDuty `dedup_key`: 255 characters (the API's limit).
pub const PAGERDUTY_DEDUP_KEY_MAX: usize = 255;
/// Longest text of a Slack `header` block: 150 characters.
pub const SLACK_HEADER_MAX: usize = 150;
/// Longest text of a Slack `section` block: 3000 characters.
pub const SLACK_SECTION_MAX: usize = 3000;
/// Longest text of one field of a Slack `section`: 2000 characters.
pub const SLACK_FIELD_MAX: usize = 2000;

/// The body a webhook sink is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// tend's own JSON ([`Notification`]), with a Slack-compatible `text`. The default.
    Json,
    /// Slack Block Kit: a `text` fallback and `blocks`.
    Slack,
    /// A Microsoft Teams message carrying an Adaptive Card.
    Teams,
    /// A PagerDuty Events API v2 event.
    PagerDuty,
}

impl Format {
    /// Every format, by its name in runbooks and tend.toml.
    pub const ALL: [Format; 4] = [Format::Json, Format::Slack, Format::Teams, Format::PagerDuty];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
            Format::Teams => "teams",
            Format::PagerDuty => "pagerduty",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown format name, with a did-you-mean.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("format {name:?} is not one of {}{}", quote_list(&Format::ALL.map(Format::as_str)), .hint.map(|h| format!(" (did you mean {h:?}?)")).unwrap_or_default())]
pub struct UnknownFormat {
    pub name: String,
    pub hint: Option<&'static str>,
}

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        Format::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| UnknownFormat {
            name: s.to_string(),
            hint: did_you_mean(s, Format::ALL.map(Format::as_str)),
        })
    }
}

/// What a notification announces about its escalation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The escalation was raised.
    Triggered,
    /// Someone acknowledged it (sent to PagerDuty sinks only).
    Acknowledged,
    /// It was resolved, by a person or by `auto_resolve`.
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Triggered => "triggered",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Status, String> {
        match s {
            "triggered" => Ok(Status::Triggered),
            "acknowledged" => Ok(Status::Acknowledged),
            "resolved" => Ok(Status::Resolved),
            other => Err(format!("{other:?} is not triggered, acknowledged or resolved")),
        }
    }
}

/// A webhook's URL, or the name of the secret that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookUrl {
    Url(String),
    Secret(String),
}

/// A webhook sink as configured (in a runbook's `notify` or tend.toml's
/// `[notify]`): where to post, in which format, and for PagerDuty the
/// secret holding the routing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: WebhookUrl,
    pub format: Format,
    /// Name of the secret holding a PagerDuty integration's routing key.
    pub routing_key_secret: Option<String>,
}

/// The setting of a webhook a problem is about, so callers can point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The sink as a whole (a missing or extra setting).
    Sink,
    Url,
    Format,
    RoutingKeySecret,
}

/// A webhook's settings as written.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookSettings<'a> {
    pub url: Option<&'a str>,
    pub url_secret: Option<&'a str>,
    pub format: Option<&'a str>,
    pub routing_key_secret: Option<&'a str>,
}

impl Webhook {
    /// Checks a webhook's settings: exactly one of `url` and `url_secret`
    /// (at most one for `pagerduty`, which posts to
    /// [`PAGERDUTY_EVENTS_URL`] by default), a known format, and a routing
    /// key secret exactly when the format is `pagerduty`. Every problem is
    /// returned with the setting it is about; messages start with the
    /// setting's name (`format "slak" is not one of ...`).
    pub fn from_settings(s: WebhookSettings<'_>) -> Result<Webhook, Vec<(Field, String)>> {
        let mut problems = Vec::new();
        let format = match s.format.map(str::parse::<Format>) {
            None => Some(Format::Json),
            Some(Ok(f)) => Some(f),
            Some(Err(e)) => {
                problems.push((Field::Format, e.to_string()));
                None
            }
        };
        let pagerduty = format == Some(Format::PagerDuty);
        let url = match (s.url, s.url_secret) {
            (Some(url), None) => match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Some(WebhookUrl::Url(url.to_string())),
                _ => {
                    problems.push((Field::Url, format!("url {url:?} is not an http or https URL")));
                    None
                }
            },
            (None, Some(secret)) => Some(WebhookUrl::Secret(secret.to_string())),
            (None, None) if pagerduty => Some(WebhookUrl::Url(PAGERDUTY_EVENTS_URL.to_string())),
            (Some(_), Some(_)) if pagerduty => {
                problems.push((
                    Field::Sink,
                    format!("give at most one of `url` or `url_secret` (by default {PAGERDUTY_EVENTS_URL})"),
                ));
                None
            }
            _ => {
                problems.push((Field::Sink, "give exactly one of `url` or `url_secret`".to_string()));
                None
            }
        };
        match (format, s.routing_key_secret) {
            (Some(Format::PagerDuty), None) => problems.push((
                Field::Sink,
                "a pagerduty sink needs `routing_key_secret`, the secret holding the integration's routing key"
                    .to_string(),
            )),
            (Some(f), Some(_)) if f != Format::PagerDuty => problems.push((
                Field::RoutingKeySecret,
                format!(
                    "routing_key_secret: only a pagerduty sink takes a routing key, and this one's format is {:?}",
                    f.as_str()
                ),
            )),
            _ => {}
        }
        match (url, format) {
            (Some(url), Some(format)) if problems.is_empty() => {
                Ok(Webhook { url, format, routing_key_secret: s.routing_key_secret.map(str::to_string) })
            }
            _ => Err(problems),
        }
    }
}

/// A PagerDuty routing key, read from its secret. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RoutingKey(pub String);

impl fmt::Debug for RoutingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoutingKey(***)")
    }
}

/// Where a notification goes, its secrets read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// POST the notification, in `format`, to this URL.
    Webhook { url: String, format: Format, routing_key: Option<RoutingKey> },
    /// Write the notification to tend's log.
    Log,
}

impl Sink {
    /// Short name recorded with each notification: `webhook:<host>` for
    /// the JSON format, `<format>:<host>` for the others
    /// (`pagerduty:events.pagerduty.com`), or `log`. The URL's path is left
    /// out: webhook URLs often carry tokens.
    pub fn name(&self) -> String {
        match self {
            Sink::Webhook { url, format, .. } => {
                let host = url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string));
                format!("{}:{}", Sink::kind(*format), host.unwrap_or_else(|| "?".into()))
            }
            Sink::Log => "log".into(),
        }
    }

    /// The first part of a webhook sink's name: `webhook` for JSON, else the format.
    pub fn kind(format: Format) -> &'static str {
        match format {
            Format::Json => "webhook",
            other => other.as_str(),
        }
    }

    /// Whether this sink is told of `status`: every sink of raised and
    /// resolved escalations, only PagerDuty of acknowledged ones (the other
    /// formats have nothing to do with an acknowledgement).
    pub fn takes(&self, status: Status) -> bool {
        match status {
            Status::Triggered | Status::Resolved => true,
            Status::Acknowledged => matches!(self, Sink::Webhook { format: Format::PagerDuty, .. }),
        }
    }
}

/// The parts of a webhook URL kept in a secret that may carry its token,
/// to redact on their own: the path, the query, and both together (a
/// Slack URL's token is its path). Empty for a URL with neither.
pub fn secret_parts_of_url(url: &str) -> Vec<String> {
    let Ok(u) = url::Url::parse(url) else { return Vec::new() };
    let mut parts = Vec::new();
    if u.path().len() > 1 {
        parts.push(u.path().to_string());
    }
    if let Some(q) = u.query().filter(|q| !q.is_empty()) {
        parts.push(q.to_string());
        if u.path().len() > 1 {
            parts.push(format!("{}?{q}", u.path()));
        }
    }
    parts
}

/// What is sent about one escalation; as is, the body of a `json` sink.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Notification {
    /// One line for chat tools (Slack, Mattermost, Teams workflows).
    pub text: String,
    pub status: Status,
    pub severity: Severity,
    pub runbook: String,
    pub run_id: String,
    pub step_id: Option<String>,
    pub escalation_id: i64,
    pub dedup_key: String,
    pub message: String,
    /// `<public_url>/v1/runs/<run_id>`, when tend knows its public URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
    /// Who acknowledged or resolved it (`tend` for `auto_resolve`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Why it was resolved, when a reason was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Notification {
    /// A raised escalation, with `text` like
    /// `[CRITICAL] local-health: score 3 (run 01J..., escalation 7)`.
    pub fn new(
        severity: Severity,
        runbook: &str,
        run_id: &str,
        step_id: Option<&str>,
        escalation_id: i64,
        dedup_key: &str,
        message: &str,
    ) -> Self {
        let mut n = Notification {
            text: String::new(),
            status: Status::Triggered,
            severity,
            runbook: runbook.into(),
            run_id: run_id.into(),
            step_id: step_id.map(str::to_string),
            escalation_id,
            dedup_key: dedup_key.into(),
            message: message.into(),
            run_url: None,
            by: None,
            reason: None,
        };
        n.text = n.line();
        n
    }

    /// With the link to its run.
    pub fn with_run_url(mut self, run_url: Option<String>) -> Self {
        self.run_url = run_url;
        self
    }

    /// The same escalation, acknowledged or resolved by `by`: `text` starts
    /// `[RESOLVED]` (or `[ACKNOWLEDGED]`) and ends with the reason.
    pub fn decided(mut self, status: Status, by: &str, reason: Option<&str>) -> Self {
        self.status = status;
        self.by = Some(by.to_string());
        self.reason = reason.map(str::to_string);
        self.text = self.line();
        self
    }

    /// The one-line `text`.
    fn line(&self) -> String {
        let mut line =
            format!("{}: {} (run {}, escalation {})", self.title(), self.message, self.run_id, self.escalation_id);
        if self.status != Status::Triggered {
            line.push_str(&format!(" by {}", self.by.as_deref().unwrap_or("someone")));
            if let Some(reason) = &self.reason {
                line.push_str(&format!(": {reason}"));
            }
        }
        line
    }

    /// The body a sink of `format` is sent. `routing_key` is a PagerDuty
    /// sink's (empty when missing: PagerDuty then refuses the event).
    pub fn body(&self, format: Format, routing_key: Option<&str>) -> Value {
        match format {
            Format::Json => serde_json::to_value(self).unwrap_or_default(),
            Format::Slack => self.slack(),
            Format::Teams => self.teams(),
            Format::PagerDuty => self.pagerduty(routing_key.unwrap_or_default()),
        }
    }

    /// The title line of chat formats: `[CRITICAL] local-health` or `[RESOLVED] local-health`.
    fn title(&self) -> String {
        let label = match self.status {
            Status::Triggered => self.severity.as_str(),
            other => other.as_str(),
        };
        format!("[{}] {}", label.to_ascii_uppercase(), self.runbook)
    }

    /// The small print: `tend · escalation 7 · resolved by ann: fixed`.
    fn context(&self) -> String {
        let mut line = format!("tend · escalation {} · {}", self.escalation_id, self.status.as_str());
        if let Some(by) = &self.by {
            line.push_str(&format!(" by {by}"));
        }
        if let Some(reason) = &self.reason {
            line.push_str(&format!(": {reason}"));
        }
        line
    }

    /// Slack Block Kit: the `text` fallback (notifications, old clients),
    /// a header, the message with fields, a button to the run, a context line.
    fn slack(&self) -> Value {
        let field = |name: &str, value: String| json!({"type": "mrkdwn", "text": truncate(&format!("*{name}*\n{value}"), SLACK_FIELD_MAX)});
        let run = match &self.run_url {
            Some(url) => format!("<{}|{}>", slack_escape(url), slack_escape(&self.run_id)),
            None => slack_escape(&self.run_id),
        };
        let mut fields =
            vec![field("Severity", self.severity.as_str().to_string()), field("Runbook", slack_escape(&self.runbook))];
        if let Some(step) = &self.step_id {
            fields.push(field("Step", slack_escape(step)));
        }
        fields.push(field("Run", run));
        fields.push(field("Dedup key", slack_escape(&self.dedup_key)));
        let message = match self.status {
            Status::Triggered => slack_escape(&self.message),
            Status::Acknowledged => format!("Acknowledged: {}", slack_escape(&self.message)),
            Status::Resolved => format!("Resolved: {}", slack_escape(&self.message)),
        };
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&self.title(), SLACK_HEADER_MAX)}}),
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&message, SLACK_SECTION_MAX)}, "fields": fields}),
        ];
        if let Some(url) = &self.run_url {
            blocks.push(json!({"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Open run"}, "url": url}
            ]}));
        }
        blocks.push(json!({"type": "context", "elements": [
            {"type": "mrkdwn", "text": truncate(&slack_escape(&self.context()), SLACK_SECTION_MAX)}
        ]}));
        json!({"text": self.text, "blocks": blocks})
    }

    /// A Microsoft Teams message with one Adaptive Card (version 1.4), as
    /// Teams workflows and incoming webhooks take it.
    fn teams(&self) -> Value {
        let color = match (self.status, self.severity) {
            (Status::Resolved, _) => "Good",
            (Status::Acknowledged, _) => "Accent",
            (_, Severity::Critical | Severity::High) => "Attention",
            (_, Severity::Medium) => "Warning",
            _ => "Default",
        };
        let mut facts = vec![
            json!({"title": "Severity", "value": self.severity.as_str()}),
            json!({"title": "Runbook", "value": self.runbook}),
        ];
        if let Some(step) = &self.step_id {
            facts.push(json!({"title": "Step", "value": step}));
        }
        facts.push(json!({"title": "Run", "value": self.run_id}));
        facts.push(json!({"title": "Dedup key", "value": self.dedup_key}));
        let message = match self.status {
            Status::Triggered => self.message.clone(),
            Status::Acknowledged => format!("Acknowledged: {}", self.message),
            Status::Resolved => format!("Resolved: {}", self.message),
        };
        let mut card = json!({
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": self.title(), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true},
                {"type": "TextBlock", "text": message, "wrap": true},
                {"type": "FactSet", "facts": facts},
                {"type": "TextBlock", "text": self.context(), "isSubtle": true, "size": "Small", "wrap": true},
            ],
        });
        if let Some(url) = &self.run_url {
            card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open run", "url": url}]);
        }
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": card,
            }],
        })
    }

    /// A PagerDuty Events API v2 event: `trigger` with the payload and a
    /// link to the run, or `resolve` / `acknowledge` of the same `dedup_key`.
    fn pagerduty(&self, routing_key: &str) -> Value {
        let dedup_key = truncate(&self.dedup_key, PAGERDUTY_DEDUP_KEY_MAX);
        let event = match self.status {
            Status::Triggered => PagerDutyEvent {
                routing_key,
                event_action: "trigger",
                dedup_key,
                payload: Some(PagerDutyPayload {
                    summary: truncate(&self.text, PAGERDUTY_SUMMARY_MAX),
                    source: self.runbook.clone(),
                    severity: match self.severity {
                        Severity::Critical => "critical",
                        Severity::High => "error",
                        Severity::Medium => "warning",
                        Severity::Low | Severity::Info => "info",
                    },
                    component: self.step_id.clone(),
                    group: self.runbook.clone(),
                    class: "escalation",
                    custom_details: json!({
                        "message": self.message,
                        "runbook": self.runbook,
                        "run_id": self.run_id,
                        "step_id": self.step_id,
                        "escalation_id": self.escalation_id,
                        "severity": self.severity.as_str(),
                    }),
                }),
                client: Some("tend"),
                client_url: self.run_url.as_deref(),
                links: self
                    .run_url
                    .iter()
                    .map(|href| PagerDutyLink { href, text: format!("tend run {}", self.run_id) })
                    .collect(),
            },
            Status::Acknowledged | Status::Resolved => PagerDutyEvent {
                routing_key,
                event_action: if self.status == Status::Resolved { "resolve" } else { "acknowledge" },
                dedup_key,
                payload: None,
                client: None,
                client_url: None,
                links: Vec::new(),
            },
        };
        serde_json::to_value(event).unwrap_or_default()
    }
}

/// A PagerDuty Events API v2 event.
#[derive(Serialize)]
struct PagerDutyEvent<'a> {
    routing_key: &'a str,
    /// trigger | acknowledge | resolve
    event_action: &'static str,
    dedup_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<PagerDutyPayload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<PagerDutyLink<'a>>,
}

#[derive(Serialize)]
struct PagerDutyPayload {
    summary: String,
    source: String,
    /// critical | error | warning | info
    severity: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<String>,
    group: String,
    class: &'static str,
    custom_details: Value,
}

#[derive(Serialize)]
struct PagerDutyLink<'a> {
    href: &'a str,
    text: String,
}

/// `text` cut to at most `max` characters, ending with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Text for Slack's mrkdwn: `&`, `<` and `>` escaped as Slack requires.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Delivers one notification. `Err` carries a one-line reason to record.
pub async fn send(client: &reqwest::Client, sink: &Sink, n: &Notification) -> Result<(), String> {
    match sink {
        Sink::Log => {
            match n.status {
                Status::Triggered => tracing::warn!(
                    target: "tend::escalation",
                    severity = %n.severity.as_str(), runbook = %n.runbook, run_id = %n.run_id, escalation = n.escalation_id,
                    "{}", n.text
                ),
                _ => tracing::info!(
                    target: "tend::escalation",
                    status = %n.status, runbook = %n.runbook, run_id = %n.run_id, escalation = n.escalation_id,
                    "{}", n.text
                ),
            }
            Ok(())
        }
        Sink::Webhook { url, format, routing_key } => {
            let body = n.body(*format, routing_key.as_ref().map(|k| k.0.as_str()));
            let resp = client
                .post(url)
                .timeout(WEBHOOK_TIMEOUT)
                .json(&body)
                .send()
                .await
                .map_err(|e| format!("{}: {}", sink.name(), e.without_url()))?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(format!("{}: answered {}", sink.name(), resp.status()))
            }
        }
    }
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
