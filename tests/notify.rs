//! End-to-end tests of notification formats on the real `tend serve`: an
//! escalation goes to a loopback receiver per format (JSON, Slack, Teams,
//! PagerDuty), each body matching its vendor's published shape
//! (`tests/fixtures/notify/*.schema.json`); resolving it over the API, from
//! the CLI, or by `auto_resolve` at the end of the run sends one resolved
//! notification per sink; the secrets involved never show.

mod loopback;
mod serve_support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use serve_support::{ADMIN, READER, Server, TRIGGER};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The PagerDuty routing key, kept in secret `pd-key`.
const ROUTING_KEY: &str = "R0UT1NG-k3y-b71e5c";
/// The token in the path of the Slack URL, kept in secret `slack-hook`.
const SLACK_TOKEN: &str = "SL4CK-t0ken-93ad";

/// A runbook whose rule 0 holds while the service's score is under 5:
/// `measure` scores 3, `remeasure` scores `params.after`.
const INCIDENT: &str = r#"
name: incident
params:
  after: {type: number, default: 9}
triggers:
  - http: true
steps:
  - id: measure
    plugin: echo
    with: {output: {score: 3}}
  - id: remeasure
    plugin: echo
    with: {output: {score: "${{ params.after }}"}}
escalations:
  - when: "(steps.remeasure.status == 'succeeded' ? steps.remeasure.output.score : steps.measure.output.score) < 5"
    severity: critical
    message: "web scores {{ steps.measure.output.score }}"
    dedup_key: "incident-web"
    auto_resolve: true
notify:
  log: false
  webhooks:
    - {url: "JSON_URL"}
    - {url_secret: slack-hook, format: slack}
    - {url: "TEAMS_URL", format: teams}
    - {url: "PD_URL", format: pagerduty, routing_key_secret: pd-key}
"#;

fn schema(file: &str) -> jsonschema::Validator {
    let path = format!("{}/../tests/fixtures/notify/{file}", env!("CARGO_MANIFEST_DIR"));
    jsonschema::validator_for(&serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()).unwrap()
}

/// The four loopback receivers and what each got.
struct Receivers {
    json: Arc<Mutex<Vec<String>>>,
    slack: Arc<Mutex<Vec<String>>>,
    teams: Arc<Mutex<Vec<String>>>,
    pagerduty: Arc<Mutex<Vec<String>>>,
    /// The Slack URL, kept in secret `slack-hook`.
    slack_url: String,
}

impl Receivers {
    /// The JSON bodies each receiver got, in format order: json, slack, teams, pagerduty.
    fn bodies(&self) -> [Vec<Value>; 4] {
        [&self.json, &self.slack, &self.teams, &self.pagerduty].map(|r| {
            r.lock().unwrap().iter().map(|req| serde_json::from_str(loopback::body_of(req)).unwrap()).collect()
        })
    }

    /// Waits until every receiver got `n` requests.
    async fn wait_for(&self, n: usize) -> [Vec<Value>; 4] {
        let start = Instant::now();
        loop {
            let bodies = self.bodies();
            if bodies.iter().all(|b| b.len() >= n) {
                return bodies;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "waited for {n} each: {bodies:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn start() -> (Server, Receivers) {
    let (json_addr, json) = loopback::recorder(200, "ok");
    let (slack_addr, slack) = loopback::recorder(200, "ok");
    let (teams_addr, teams) = loopback::recorder(202, "");
    let (pd_addr, pagerduty) =
        loopback::recorder(202, r#"{"status":"success","message":"Event processed","dedup_key":"incident-web"}"#);
    let mut s = Server::new();
    s.runbook(
        "incident",
        &INCIDENT
            .replace("JSON_URL", &format!("http://{json_addr}/hook"))
            .replace("TEAMS_URL", &format!("http://{teams_addr}/workflows/run"))
            .replace("PD_URL", &format!("http://{pd_addr}/v2/enqueue")),
    );
    let slack_url = format!("http://{slack_addr}/services/T0/B0/{SLACK_TOKEN}");
    s.env("TEND_SECRET_SLACK_HOOK", &slack_url);
    s.env("TEND_SECRET_PD_KEY", ROUTING_KEY);
    s.env("TEND_PUBLIC_URL", "https://tend.example.com/");
    s.env("TEND_LOG", "debug");
    s.start();
    (s, Receivers { json, slack, teams, pagerduty, slack_url })
}

async fn run(s: &Server, after: u32) -> (String, Value) {
    let body = json!({"params": {"after": after}}).to_string();
    let (status, accepted) = s.call("POST", "/v1/runbooks/incident/runs", Some(TRIGGER), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["run_id"].as_str().unwrap().to_string();
    let record = s.wait_final(&id).await;
    assert_eq!(record["run"]["status"], "succeeded", "{record}");
    let escalation = record["escalations"][0].clone();
    (id, escalation)
}

/// `(event, sink)` of each notification of an escalation, in order.
fn deliveries(escalation: &Value) -> Vec<(String, String, bool)> {
    escalation["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["event"].as_str().unwrap().into(), n["sink"].as_str().unwrap().into(), n["ok"].as_bool().unwrap()))
        .collect()
}

fn expected(event: &str) -> Vec<(String, String, bool)> {
    ["webhook", "slack", "teams", "pagerduty"].iter().map(|k| (event.into(), format!("{k}:127.0.0.1"), true)).collect()
}

/// Every body is valid for its format and the four say the same thing.
fn check_shapes(bodies: &[Value; 4]) {
    for (body, file) in bodies.iter().zip([
        None,
        Some("slack-block-kit.schema.json"),
        Some("teams-adaptive-card-message.schema.json"),
        Some("pagerduty-events-v2.schema.json"),
    ]) {
        if let Some(file) = file {
            let problems: Vec<String> =
                schema(file).iter_errors(body).map(|e| format!("{}: {e}", e.instance_path().as_str())).collect();
            assert!(problems.is_empty(), "{file}: {problems:?}\n{body:#}");
        }
    }
}

#[tokio::test]
async fn every_sink_gets_the_escalation_in_its_format_and_again_when_it_is_resolved() {
    let (s, got) = start();

    // The score stays under 5: one triggered notification per sink.
    let (run_id, escalation) = run(&s, 2).await;
    assert_eq!(escalation["status"], "open", "{escalation}");
    assert_eq!(deliveries(&escalation), expected("triggered"));
    let [json, slack, teams, pd] = got.wait_for(1).await;
    assert_eq!([json.len(), slack.len(), teams.len(), pd.len()], [1, 1, 1, 1]);
    let trigger = [json[0].clone(), slack[0].clone(), teams[0].clone(), pd[0].clone()];
    check_shapes(&trigger);
    let run_url = format!("https://tend.example.com/v1/runs/{run_id}");
    assert_eq!(json[0]["status"], "triggered");
    assert_eq!(json[0]["text"], format!("[CRITICAL] incident: web scores 3 (run {run_id}, escalation 1)"));
    assert_eq!(json[0]["run_url"], run_url.as_str());
    assert_eq!(slack[0]["blocks"][0]["text"]["text"], "[CRITICAL] incident");
    assert_eq!(slack[0]["blocks"][2]["elements"][0]["url"], run_url.as_str());
    assert_eq!(teams[0]["attachments"][0]["content"]["actions"][0]["url"], run_url.as_str());
    assert_eq!(pd[0]["event_action"], "trigger");
    assert_eq!(pd[0]["routing_key"], ROUTING_KEY);
    assert_eq!(pd[0]["dedup_key"], "incident-web");
    assert_eq!(pd[0]["payload"]["severity"], "critical");
    assert_eq!(pd[0]["links"][0]["href"], run_url.as_str());

    // Resolved over the API: one resolved notification per sink.
    let id = escalation["id"].as_i64().unwrap();
    let body = r#"{"reason": "restarted by hand"}"#;
    let (status, resolved) = s.call("POST", &format!("/v1/escalations/{id}/resolve"), Some(ADMIN), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolved_by"], "token:admin");
    assert_eq!(resolved["resolution"], "restarted by hand");
    assert_eq!(deliveries(&resolved), [expected("triggered"), expected("resolved")].concat());
    let [json, slack, teams, pd] = got.wait_for(2).await;
    assert_eq!([json.len(), slack.len(), teams.len(), pd.len()], [2, 2, 2, 2]);
    check_shapes(&[json[1].clone(), slack[1].clone(), teams[1].clone(), pd[1].clone()]);
    assert_eq!(json[1]["status"], "resolved");
    assert_eq!(json[1]["reason"], "restarted by hand");
    assert_eq!(json[1]["escalation_id"], id);
    assert_eq!(slack[1]["blocks"][0]["text"]["text"], "[RESOLVED] incident");
    assert_eq!(teams[1]["attachments"][0]["content"]["body"][0]["text"], "[RESOLVED] incident");
    assert_eq!(pd[1], json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": pd[0]["dedup_key"]}));
    let (status, again) = s.call("POST", &format!("/v1/escalations/{id}/resolve"), Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(got.bodies()[0].len(), 2, "a refused resolution sends nothing");

    // The score recovers by the end of the run: `auto_resolve` resolves it.
    let (run_id, escalation) = run(&s, 9).await;
    assert_eq!(escalation["status"], "resolved", "{escalation}");
    assert_eq!(escalation["resolved_by"], "tend");
    assert_eq!(escalation["resolution"], format!("condition no longer holds at the end of run {run_id}"));
    assert_eq!(deliveries(&escalation), [expected("triggered"), expected("resolved")].concat());
    let [json, slack, teams, pd] = got.wait_for(4).await;
    assert_eq!([json.len(), slack.len(), teams.len(), pd.len()], [4, 4, 4, 4]);
    check_shapes(&[json[3].clone(), slack[3].clone(), teams[3].clone(), pd[3].clone()]);
    assert_eq!((json[2]["status"].as_str(), json[3]["status"].as_str()), (Some("triggered"), Some("resolved")));
    assert_eq!(json[3]["by"], "tend");
    assert_eq!((pd[2]["event_action"].as_str(), pd[3]["event_action"].as_str()), (Some("trigger"), Some("resolve")));
    assert_eq!(pd[3]["dedup_key"], pd[2]["dedup_key"]);
    assert_eq!(pd[3]["routing_key"], ROUTING_KEY);

    // Resolved from the CLI, which reads the runbook's sinks from the runbooks directory.
    let (_, escalation) = run(&s, 1).await;
    let id = escalation["id"].as_i64().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["escalations", "resolve", &id, "--reason", "fixed from the shell", "--by", "ann"])
        .current_dir(s.path())
        .env("TEND_DB", s.path().join("tend.db"))
        .env("TEND_RUNBOOKS", s.path().join("runbooks"))
        .env_remove("TEND_CONFIG")
        .env("TEND_SECRET_SLACK_HOOK", &got.slack_url)
        .env("TEND_SECRET_PD_KEY", ROUTING_KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        stdout,
        format!(
            "escalation {id} resolved\n  notified webhook:127.0.0.1\n  notified slack:127.0.0.1\n  \
             notified teams:127.0.0.1\n  notified pagerduty:127.0.0.1\n"
        )
    );
    let [json, _, _, pd] = got.wait_for(6).await;
    assert_eq!((json[5]["status"].as_str(), json[5]["by"].as_str()), (Some("resolved"), Some("ann")));
    assert_eq!(pd[5], json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "incident-web"}));

    // Neither the routing key nor the Slack URL's token is stored, logged or answered.
    let mut found = Vec::new();
    for path in ["/v1/escalations".to_string(), format!("/v1/runs/{run_id}"), "/v1/runbooks/incident".into()] {
        let resp = s.http.get(format!("{}{path}", s.base)).bearer_auth(READER).send().await.unwrap();
        let text = resp.text().await.unwrap();
        found.extend(
            [ROUTING_KEY, SLACK_TOKEN].iter().filter(|k| text.contains(**k)).map(|k| format!("GET {path}: {k}")),
        );
    }
    found.extend([ROUTING_KEY, SLACK_TOKEN].iter().filter(|k| stdout.contains(**k)).map(|k| format!("CLI: {k}")));
    let mut s = s;
    s.kill9();
    for file in ["tend.db", "tend.db-wal", "serve.log"] {
        let bytes = std::fs::read(s.path().join(file)).unwrap_or_default();
        for k in [ROUTING_KEY, SLACK_TOKEN] {
            if bytes.windows(k.len()).any(|w| w == k.as_bytes()) {
                found.push(format!("{file}: {k}"));
            }
        }
    }
    assert!(found.is_empty(), "secrets found in clear: {found:?}");
}
