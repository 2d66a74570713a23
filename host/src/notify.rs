//! Sends escalation notifications to sinks: a webhook (JSON with a
//! Slack-compatible `text` field) or tend's log. Knows nothing of
//! dedup or storage: the engine decides what to send and records results.

use serde::Serialize;
use std::time::Duration;

/// How long one webhook delivery may take.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// POST the notification as JSON to this URL.
    Webhook { url: String },
    /// Write the notification to tend's log at warn level.
    Log,
}

impl Sink {
    /// Short name recorded with each notification: `webhook:<host>` or `log`.
    /// The URL's path is left out: webhook URLs often carry tokens.
    pub fn name(&self) -> String {
        match self {
            Sink::Webhook { url } => {
                let host = url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string));
                format!("webhook:{}", host.unwrap_or_else(|| "?".into()))
            }
            Sink::Log => "log".into(),
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

/// What is sent for one escalation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Notification {
    /// One line for chat tools (Slack, Mattermost, Teams workflows).
    pub text: String,
    pub severity: String,
    pub runbook: String,
    pub run_id: String,
    pub step_id: Option<String>,
    pub escalation_id: i64,
    pub dedup_key: String,
    pub message: String,
}

impl Notification {
    /// Builds the notification, with `text` like
    /// `[CRITICAL] local-health: score 3 (run 01J..., escalation 7)`.
    pub fn new(
        severity: &str,
        runbook: &str,
        run_id: &str,
        step_id: Option<&str>,
        escalation_id: i64,
        dedup_key: &str,
        message: &str,
    ) -> Self {
        Notification {
            text: format!(
                "[{}] {runbook}: {message} (run {run_id}, escalation {escalation_id})",
                severity.to_ascii_uppercase()
            ),
            severity: severity.into(),
            runbook: runbook.into(),
            run_id: run_id.into(),
            step_id: step_id.map(str::to_string),
            escalation_id,
            dedup_key: dedup_key.into(),
            message: message.into(),
        }
    }
}

/// Delivers one notification. `Err` carries a one-line reason to record.
pub async fn send(client: &reqwest::Client, sink: &Sink, n: &Notification) -> Result<(), String> {
    match sink {
        Sink::Log => {
            tracing::warn!(
                target: "tend::escalation",
                severity = %n.severity, runbook = %n.runbook, run_id = %n.run_id, escalation = n.escalation_id,
                "{}", n.text
            );
            Ok(())
        }
        Sink::Webhook { url } => {
            let resp = client
                .post(url)
                .timeout(WEBHOOK_TIMEOUT)
                .json(n)
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
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn text_is_one_line_with_severity_first() {
        let n = Notification::new("critical", "local-health", "01J", Some("score"), 7, "k", "score 3");
        assert_eq!(n.text, "[CRITICAL] local-health: score 3 (run 01J, escalation 7)");
    }

    #[test]
    fn sink_names_hide_url_paths() {
        let s = Sink::Webhook { url: "https://hooks.slack.com/services/T0/B0/secret".into() };
        assert_eq!(s.name(), "webhook:hooks.slack.com");
    }

    #[test]
    fn the_path_and_query_of_a_secret_webhook_url_are_its_secret_parts() {
        assert_eq!(secret_parts_of_url("https://hooks.slack.com/services/T0/B0/tok"), vec!["/services/T0/B0/tok"]);
        assert_eq!(secret_parts_of_url("https://h.example/in?key=abc"), vec!["/in", "key=abc", "/in?key=abc"]);
        assert!(secret_parts_of_url("https://h.example/").is_empty());
        assert!(secret_parts_of_url("not a url").is_empty());
    }

    #[tokio::test]
    async fn webhook_posts_json_with_text() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            // Read until the JSON body is complete.
            while !String::from_utf8_lossy(&got).ends_with('}') {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").unwrap();
            String::from_utf8(got).unwrap()
        });
        let n = Notification::new("high", "rb", "01J", None, 1, "k", "disk 95%");
        send(&reqwest::Client::new(), &Sink::Webhook { url }, &n).await.unwrap();
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /hook"), "{request}");
        let body = &request[request.find("\r\n\r\n").unwrap() + 4..];
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["text"], "[HIGH] rb: disk 95% (run 01J, escalation 1)");
        assert_eq!(json["severity"], "high");
    }

    #[tokio::test]
    async fn webhook_failure_is_a_one_line_reason() {
        let n = Notification::new("high", "rb", "01J", None, 1, "k", "m");
        let err =
            send(&reqwest::Client::new(), &Sink::Webhook { url: "http://127.0.0.1:9/x".into() }, &n).await.unwrap_err();
        assert!(err.starts_with("webhook:127.0.0.1: "), "{err}");
    }
}
