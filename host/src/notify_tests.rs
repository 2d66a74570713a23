//! Tests of the notification formats: every body is validated against the
//! JSON Schema written from its vendor's documentation
//! (`tests/fixtures/notify/`), and the schemas are shown to refuse what
//! the vendors refuse.

use super::*;
use std::io::{Read, Write};

/// The JSON Schema of a format, from `tests/fixtures/notify/`.
fn schema(file: &str) -> jsonschema::Validator {
    let path = format!("{}/../tests/fixtures/notify/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Every problem `schema` finds in `body`, one per line.
fn problems(schema: &jsonschema::Validator, body: &Value) -> Vec<String> {
    schema.iter_errors(body).map(|e| format!("{}: {e}", e.instance_path().as_str())).collect()
}

fn assert_valid(file: &str, body: &Value) {
    let found = problems(&schema(file), body);
    assert!(found.is_empty(), "{file}:\n{}\n{}", found.join("\n"), serde_json::to_string_pretty(body).unwrap());
}

/// A notification with everything set, and one with nothing optional.
fn samples() -> Vec<Notification> {
    let full = Notification::new(
        Severity::Critical,
        "incident-response",
        "01JRUN",
        Some("assess"),
        7,
        "incident-response:web",
        "web is down <500> & failing",
    )
    .with_run_url(Some("https://tend.example.com/v1/runs/01JRUN".into()));
    let bare = Notification::new(Severity::Low, "rb", "01J", None, 1, "k", "m");
    let long =
        Notification::new(Severity::Medium, &"r".repeat(200), "01J", Some("s"), 2, &"k".repeat(400), &"x".repeat(5000));
    let mut all = Vec::new();
    for n in [full, bare, long] {
        all.push(n.clone().decided(Status::Resolved, "tend", Some("condition no longer holds at the end of run 01J")));
        all.push(n.clone().decided(Status::Acknowledged, "ann", None));
        all.push(n);
    }
    all
}

#[test]
fn text_is_one_line_with_severity_first() {
    let n = Notification::new(Severity::Critical, "local-health", "01J", Some("score"), 7, "k", "score 3");
    assert_eq!(n.text, "[CRITICAL] local-health: score 3 (run 01J, escalation 7)");
    let r = n.decided(Status::Resolved, "tend", Some("condition no longer holds at the end of run 01K"));
    assert_eq!(
        r.text,
        "[RESOLVED] local-health: score 3 (run 01J, escalation 7) by tend: condition no longer holds at the end of run 01K"
    );
}

#[test]
fn the_json_body_is_the_notification_with_its_status() {
    let n = Notification::new(Severity::High, "rb", "01J", None, 1, "k", "disk 95%");
    let body = n.body(Format::Json, None);
    assert_eq!(
        body,
        json!({"text": "[HIGH] rb: disk 95% (run 01J, escalation 1)", "status": "triggered", "severity": "high",
               "runbook": "rb", "run_id": "01J", "step_id": null, "escalation_id": 1, "dedup_key": "k",
               "message": "disk 95%"})
    );
    let resolved = n.with_run_url(Some("http://t/v1/runs/01J".into())).decided(Status::Resolved, "ann", None);
    let body = resolved.body(Format::Json, None);
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["by"], "ann");
    assert_eq!(body["run_url"], "http://t/v1/runs/01J");
    assert_eq!(body["message"], "disk 95%");
}

#[test]
fn every_pagerduty_event_matches_the_events_api_v2_schema() {
    for n in samples() {
        assert_valid("pagerduty-events-v2.schema.json", &n.body(Format::PagerDuty, Some("R0UTINGKEY")));
    }
}

#[test]
fn a_pagerduty_trigger_maps_severity_and_links_the_run() {
    let n = &samples()[2];
    let body = n.body(Format::PagerDuty, Some("R0UTINGKEY"));
    assert_eq!(body["routing_key"], "R0UTINGKEY");
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(body["dedup_key"], "incident-response:web");
    assert_eq!(body["payload"]["severity"], "critical");
    assert_eq!(body["payload"]["source"], "incident-response");
    assert_eq!(body["payload"]["component"], "assess");
    assert_eq!(body["payload"]["summary"], n.text);
    assert_eq!(body["links"], json!([{"href": "https://tend.example.com/v1/runs/01JRUN", "text": "tend run 01JRUN"}]));
    let map = |s| Notification::new(s, "rb", "01J", None, 1, "k", "m").body(Format::PagerDuty, Some("x"));
    let severities: Vec<Value> = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low]
        .into_iter()
        .map(|s| map(s)["payload"]["severity"].clone())
        .collect();
    assert_eq!(severities, ["critical", "error", "warning", "info"]);
}

#[test]
fn a_pagerduty_resolve_carries_the_same_dedup_key_and_routing_key() {
    let n = samples()[2].clone();
    let trigger = n.body(Format::PagerDuty, Some("R0UTINGKEY"));
    let resolve = n.decided(Status::Resolved, "tend", None).body(Format::PagerDuty, Some("R0UTINGKEY"));
    assert_eq!(
        resolve,
        json!({"routing_key": "R0UTINGKEY", "event_action": "resolve", "dedup_key": trigger["dedup_key"]})
    );
}

#[test]
fn long_pagerduty_summaries_and_keys_are_cut_to_the_api_limits() {
    let long = &samples()[8];
    let body = long.body(Format::PagerDuty, Some("x"));
    assert_eq!(body["payload"]["summary"].as_str().unwrap().chars().count(), PAGERDUTY_SUMMARY_MAX);
    assert_eq!(body["dedup_key"].as_str().unwrap().chars().count(), PAGERDUTY_DEDUP_KEY_MAX);
}

#[test]
fn the_pagerduty_schema_refuses_what_the_api_refuses() {
    let pd = schema("pagerduty-events-v2.schema.json");
    let good = samples()[2].body(Format::PagerDuty, Some("x"));
    assert!(problems(&pd, &good).is_empty());
    let mut high = good.clone();
    high["payload"]["severity"] = json!("high");
    assert!(!problems(&pd, &high).is_empty(), "severity high is not a PagerDuty severity");
    let mut no_payload = good.clone();
    no_payload.as_object_mut().unwrap().remove("payload");
    assert!(!problems(&pd, &no_payload).is_empty(), "a trigger needs a payload");
    let mut no_key = good.clone();
    no_key.as_object_mut().unwrap().remove("routing_key");
    assert!(!problems(&pd, &no_key).is_empty());
    let mut long = good;
    long["payload"]["summary"] = json!("s".repeat(1025));
    assert!(!problems(&pd, &long).is_empty());
}

#[test]
fn every_slack_message_matches_the_block_kit_schema() {
    for n in samples() {
        assert_valid("slack-block-kit.schema.json", &n.body(Format::Slack, None));
    }
}

#[test]
fn a_slack_message_has_a_header_fields_a_button_to_the_run_and_a_context_line() {
    let body = samples()[2].body(Format::Slack, None);
    assert_eq!(body["text"], samples()[2].text);
    let blocks = body["blocks"].as_array().unwrap();
    let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["header", "section", "actions", "context"]);
    assert_eq!(blocks[0]["text"]["text"], "[CRITICAL] incident-response");
    assert_eq!(blocks[1]["text"]["text"], "web is down &lt;500&gt; &amp; failing");
    let fields: Vec<&str> =
        blocks[1]["fields"].as_array().unwrap().iter().map(|f| f["text"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "*Severity*\ncritical",
            "*Runbook*\nincident-response",
            "*Step*\nassess",
            "*Run*\n<https://tend.example.com/v1/runs/01JRUN|01JRUN>",
            "*Dedup key*\nincident-response:web"
        ]
    );
    assert_eq!(blocks[2]["elements"][0]["url"], "https://tend.example.com/v1/runs/01JRUN");
    assert_eq!(blocks[3]["elements"][0]["text"], "tend · escalation 7 · triggered");
    let resolved = samples()[0].body(Format::Slack, None);
    assert_eq!(resolved["blocks"][0]["text"]["text"], "[RESOLVED] incident-response");
    assert!(resolved["blocks"][1]["text"]["text"].as_str().unwrap().starts_with("Resolved: web is down"));
    assert_eq!(
        resolved["blocks"][3]["elements"][0]["text"],
        "tend · escalation 7 · resolved by tend: condition no longer holds at the end of run 01J"
    );
    // Without a public URL there is no button.
    let bare = samples()[5].body(Format::Slack, None);
    let types: Vec<&str> = bare["blocks"].as_array().unwrap().iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["header", "section", "context"]);
}

#[test]
fn the_slack_schema_refuses_what_slack_refuses() {
    let slack = schema("slack-block-kit.schema.json");
    let good = samples()[2].body(Format::Slack, None);
    let mut long_header = good.clone();
    long_header["blocks"][0]["text"]["text"] = json!("h".repeat(151));
    assert!(!problems(&slack, &long_header).is_empty());
    let mut mrkdwn_header = good.clone();
    mrkdwn_header["blocks"][0]["text"]["type"] = json!("mrkdwn");
    assert!(!problems(&slack, &mrkdwn_header).is_empty());
    let mut eleven = good.clone();
    eleven["blocks"][1]["fields"] = json!(vec![json!({"type": "mrkdwn", "text": "f"}); 11]);
    assert!(!problems(&slack, &eleven).is_empty());
    let mut unknown = good;
    unknown["blocks"][1]["type"] = json!("paragraph");
    assert!(!problems(&slack, &unknown).is_empty());
}

#[test]
fn every_teams_message_matches_the_adaptive_card_schema() {
    for n in samples() {
        assert_valid("teams-adaptive-card-message.schema.json", &n.body(Format::Teams, None));
    }
}

#[test]
fn a_teams_card_states_the_escalation_and_opens_the_run() {
    let body = samples()[2].body(Format::Teams, None);
    let card = &body["attachments"][0]["content"];
    assert_eq!(body["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][0]["text"], "[CRITICAL] incident-response");
    assert_eq!(card["body"][0]["color"], "Attention");
    assert_eq!(card["body"][1]["text"], "web is down <500> & failing");
    assert_eq!(card["body"][2]["facts"][2], json!({"title": "Step", "value": "assess"}));
    assert_eq!(
        card["actions"],
        json!([{"type": "Action.OpenUrl", "title": "Open run", "url": "https://tend.example.com/v1/runs/01JRUN"}])
    );
    let resolved = samples()[0].body(Format::Teams, None);
    assert_eq!(resolved["attachments"][0]["content"]["body"][0]["color"], "Good");
    assert!(samples()[5].body(Format::Teams, None)["attachments"][0]["content"].get("actions").is_none());
}

#[test]
fn the_teams_schema_refuses_what_teams_refuses() {
    let teams = schema("teams-adaptive-card-message.schema.json");
    let good = samples()[2].body(Format::Teams, None);
    let mut wrong_type = good.clone();
    wrong_type["attachments"][0]["contentType"] = json!("application/json");
    assert!(!problems(&teams, &wrong_type).is_empty());
    let mut no_version = good.clone();
    no_version["attachments"][0]["content"].as_object_mut().unwrap().remove("version");
    assert!(!problems(&teams, &no_version).is_empty());
    let mut bad_color = good.clone();
    bad_color["attachments"][0]["content"]["body"][0]["color"] = json!("Red");
    assert!(!problems(&teams, &bad_color).is_empty());
    let mut no_url = good;
    no_url["attachments"][0]["content"]["actions"][0].as_object_mut().unwrap().remove("url");
    assert!(!problems(&teams, &no_url).is_empty());
}

#[test]
fn sink_names_say_the_format_and_hide_url_paths() {
    let sink = |format| Sink::Webhook {
        url: "https://hooks.slack.com/services/T0/B0/secret".into(),
        format,
        routing_key: None,
    };
    assert_eq!(sink(Format::Json).name(), "webhook:hooks.slack.com");
    assert_eq!(sink(Format::Slack).name(), "slack:hooks.slack.com");
    assert_eq!(sink(Format::Teams).name(), "teams:hooks.slack.com");
    let pd = Sink::Webhook {
        url: PAGERDUTY_EVENTS_URL.into(),
        format: Format::PagerDuty,
        routing_key: Some(RoutingKey("R0UTINGKEY".into())),
    };
    assert_eq!(pd.name(), "pagerduty:events.pagerduty.com");
    assert!(!format!("{pd:?}").contains("R0UTINGKEY"), "{pd:?}");
}

#[test]
fn only_pagerduty_sinks_take_acknowledgements() {
    let sink = |format| Sink::Webhook { url: "http://h/".into(), format, routing_key: None };
    assert!(sink(Format::PagerDuty).takes(Status::Acknowledged));
    for f in [Format::Json, Format::Slack, Format::Teams] {
        assert!(!sink(f).takes(Status::Acknowledged));
        assert!(sink(f).takes(Status::Resolved));
    }
    assert!(!Sink::Log.takes(Status::Acknowledged));
}

#[test]
fn webhook_settings_are_checked_with_the_setting_at_fault() {
    let settings = |url, url_secret, format, routing_key_secret| {
        Webhook::from_settings(WebhookSettings { url, url_secret, format, routing_key_secret })
    };
    assert_eq!(
        settings(None, Some("hook"), None, None).unwrap(),
        Webhook { url: WebhookUrl::Secret("hook".into()), format: Format::Json, routing_key_secret: None }
    );
    assert_eq!(
        settings(None, None, Some("pagerduty"), Some("pd-key")).unwrap(),
        Webhook {
            url: WebhookUrl::Url(PAGERDUTY_EVENTS_URL.into()),
            format: Format::PagerDuty,
            routing_key_secret: Some("pd-key".into())
        }
    );
    assert_eq!(
        settings(None, Some("hook"), Some("slak"), None).unwrap_err(),
        vec![(
            Field::Format,
            "format \"slak\" is not one of \"json\", \"slack\", \"teams\" or \"pagerduty\" (did you mean \"slack\"?)"
                .to_string()
        )]
    );
    assert_eq!(
        settings(None, None, Some("pagerduty"), None).unwrap_err(),
        vec![(
            Field::Sink,
            "a pagerduty sink needs `routing_key_secret`, the secret holding the integration's routing key".to_string()
        )]
    );
    assert_eq!(
        settings(Some("https://h/x"), None, Some("teams"), Some("k")).unwrap_err(),
        vec![(
            Field::RoutingKeySecret,
            "routing_key_secret: only a pagerduty sink takes a routing key, and this one's format is \"teams\""
                .to_string()
        )]
    );
    assert_eq!(
        settings(None, None, Some("slack"), None).unwrap_err(),
        vec![(Field::Sink, "give exactly one of `url` or `url_secret`".to_string())]
    );
    assert_eq!(
        settings(Some("ftp://h/"), None, None, None).unwrap_err(),
        vec![(Field::Url, "url \"ftp://h/\" is not an http or https URL".to_string())]
    );
}

#[test]
fn the_path_and_query_of_a_secret_webhook_url_are_its_secret_parts() {
    assert_eq!(secret_parts_of_url("https://hooks.slack.com/services/T0/B0/tok"), vec!["/services/T0/B0/tok"]);
    assert_eq!(secret_parts_of_url("https://h.example/in?key=abc"), vec!["/in", "key=abc", "/in?key=abc"]);
    assert!(secret_parts_of_url("https://h.example/").is_empty());
    assert!(secret_parts_of_url("not a url").is_empty());
}

/// Serves one request on a loopback port; returns its URL and the request.
fn one_request() -> (String, std::thread::JoinHandle<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 16384];
        let mut got = Vec::new();
        // Read until the JSON body is complete.
        while !String::from_utf8_lossy(&got).ends_with('}') {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").unwrap();
        String::from_utf8(got).unwrap()
    });
    (url, server)
}

#[tokio::test]
async fn webhook_posts_json_with_text() {
    let (url, server) = one_request();
    let n = Notification::new(Severity::High, "rb", "01J", None, 1, "k", "disk 95%");
    send(&reqwest::Client::new(), &Sink::Webhook { url, format: Format::Json, routing_key: None }, &n).await.unwrap();
    let request = server.join().unwrap();
    assert!(request.starts_with("POST /hook"), "{request}");
    let body = &request[request.find("\r\n\r\n").unwrap() + 4..];
    let json: Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["text"], "[HIGH] rb: disk 95% (run 01J, escalation 1)");
    assert_eq!(json["severity"], "high");
}

#[tokio::test]
async fn a_pagerduty_sink_posts_the_event_with_its_routing_key() {
    let (url, server) = one_request();
    let n = Notification::new(Severity::Medium, "rb", "01J", None, 1, "k", "slow");
    let sink = Sink::Webhook { url, format: Format::PagerDuty, routing_key: Some(RoutingKey("R0UTINGKEY".into())) };
    send(&reqwest::Client::new(), &sink, &n).await.unwrap();
    let request = server.join().unwrap();
    let json: Value = serde_json::from_str(&request[request.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(json["routing_key"], "R0UTINGKEY");
    assert_eq!(json["payload"]["severity"], "warning");
}

#[tokio::test]
async fn webhook_failure_is_a_one_line_reason() {
    let n = Notification::new(Severity::High, "rb", "01J", None, 1, "k", "m");
    let sink = Sink::Webhook { url: "http://127.0.0.1:9/x".into(), format: Format::Slack, routing_key: None };
    let err = send(&reqwest::Client::new(), &sink, &n).await.unwrap_err();
    assert!(err.starts_with("slack:127.0.0.1: "), "{err}");
}
