//! `POST /v1/alerts/alertmanager`: Prometheus Alertmanager webhooks
//! (payload version 4). Each firing alert starts the runbooks whose alert
//! triggers match its labels, once per alert instance (fingerprint and
//! start time), however often Alertmanager repeats the notification; every
//! alert, firing or resolved, is recorded, and so is which runs each alert
//! instance started: a run's record shows its alerts as they are now, and
//! when one resolves after the run finished with a report, the report is
//! rendered again to include the resolution. A runbook that declares an
//! `alert` param (type object) receives `{status, labels, annotations,
//! starts_at, fingerprint}` in it.

use super::{ApiError, AppState, CanTrigger, body, parse_body};
use crate::engine::TriggerInfo;
use crate::runbook::Trigger;
use crate::serve::{Service, TriggerError};
use crate::store::{AlertRow, AlertStatus, TriggerKind};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The webhook body (fields tend does not use are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// Payload version, e.g. `"4"`.
    pub version: String,
    /// Identifies the alert group, e.g. `{}:{alertname="HostDown"}`.
    #[serde(default)]
    pub group_key: Option<String>,
    /// The alerts of the group.
    pub alerts: Vec<Alert>,
}

/// One alert of a notification.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: Map<String, Value>,
    #[serde(default)]
    pub annotations: Map<String, Value>,
    /// RFC 3339, e.g. `2026-11-24T10:00:00Z`.
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: Option<String>,
    /// Alertmanager's hash of the labels; computed from them when absent.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

fn fingerprint(a: &Alert) -> String {
    a.fingerprint.clone().filter(|f| !f.is_empty()).unwrap_or_else(|| {
        let sorted: std::collections::BTreeMap<_, _> = a.labels.iter().collect();
        crate::serve::config::token_hash(&serde_json::to_string(&sorted).unwrap_or_default())[..16].to_string()
    })
}

/// A run an alert started.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StartedRun {
    pub runbook: String,
    pub run_id: String,
    pub fingerprint: String,
}

/// What a delivery did.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Delivered {
    /// Runs started, one per matching runbook and new alert instance.
    pub started: Vec<StartedRun>,
    /// Firing alerts whose runs were started by an earlier delivery.
    pub repeated: u32,
    /// Resolved alerts recorded.
    pub resolved: u32,
}

#[utoipa::path(post, path = "/v1/alerts/alertmanager", tag = "alerts", request_body(content = Object, description = "Alertmanager webhook payload, version 4"), responses((status = 200, description = "Runs started, repeats ignored, resolved alerts recorded", body = Delivered), (status = 400, body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
pub async fn alertmanager(
    CanTrigger(caller): CanTrigger,
    State(s): State<AppState>,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Delivered>, ApiError> {
    let raw = body(raw)?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the body is empty; expected an Alertmanager webhook payload".into()));
    }
    let payload: Payload = parse_body(&raw)?;
    if payload.version != "4" {
        return Err(ApiError::Unprocessable(format!(
            "payload version {:?} is not supported; Alertmanager sends version \"4\"",
            payload.version
        )));
    }
    if let Some(alert) = payload.alerts.iter().find(|a| a.status.parse::<AlertStatus>().is_err()) {
        return Err(ApiError::Unprocessable(format!(
            "alert status {:?} is not \"firing\" or \"resolved\"",
            alert.status
        )));
    }
    // The delivery is recorded in a task of its own: an Alertmanager that
    // hangs up (a timeout, a restart) drops this future, and what was
    // recorded by then must still be complete and run.
    let delivery = tokio::spawn(deliver(s.service.clone(), payload, caller.name.clone()));
    let delivered =
        delivery.await.map_err(|e| ApiError::Internal(anyhow::anyhow!("the alert delivery stopped: {e}")))??;
    Ok(Json(delivered))
}

/// Records every alert of a checked payload and starts the runs of the
/// firing ones.
async fn deliver(service: Arc<Service>, payload: Payload, caller: String) -> Result<Delivered, ApiError> {
    let mut delivered = Delivered { started: Vec::new(), repeated: 0, resolved: 0 };
    for alert in &payload.alerts {
        let fp = fingerprint(alert);
        // Checked by the handler before this task started.
        let status: AlertStatus = alert.status.parse().map_err(ApiError::Unprocessable)?;
        service
            .store
            .record_alert(&AlertRow {
                fingerprint: fp.clone(),
                starts_at: alert.starts_at.clone(),
                status,
                labels: Value::Object(alert.labels.clone()),
                annotations: Value::Object(alert.annotations.clone()),
                ends_at: alert.ends_at.clone(),
                group_key: payload.group_key.clone(),
            })
            .await?;
        if status == AlertStatus::Resolved {
            delivered.resolved += 1;
            rerender_reports(&service, &fp, &alert.starts_at).await?;
            continue;
        }
        let alert_param = json!({"status": alert.status, "labels": alert.labels, "annotations": alert.annotations,
                                 "starts_at": alert.starts_at, "fingerprint": fp});
        for rb in service.runbooks() {
            let Some(Trigger::Alert(trigger)) = rb.triggers.iter().find(|t| t.matches_alert(&alert.labels)) else {
                continue;
            };
            // A template that cannot be rendered for this alert (a label it
            // lacks) skips this runbook; the alert stays recorded.
            let mut params = match trigger.params(&alert_param) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(runbook = %rb.name, fingerprint = %fp, "alert not run: {e}");
                    continue;
                }
            };
            if rb.params.iter().any(|p| p.name == "alert") {
                params.insert("alert".into(), alert_param.clone());
            }
            let name = alert.labels.get("alertname").and_then(Value::as_str).unwrap_or("?");
            let trigger = TriggerInfo {
                kind: TriggerKind::Alert,
                source: Some(format!("alertmanager:{name}:{fp} via token:{caller}")),
            };
            // One run per runbook and alert instance, however often it is re-sent.
            let key = format!("alert:{}:{fp}:{}", rb.name, alert.starts_at);
            match service.trigger(&rb.name, &params, &trigger, Some(&key)).await {
                Ok((id, true)) => {
                    service.store.link_alert(&id, &fp, &alert.starts_at).await?;
                    delivered.started.push(StartedRun { runbook: rb.name.clone(), run_id: id, fingerprint: fp.clone() })
                }
                Ok((id, false)) => {
                    // Links a run whose first delivery stopped before linking it.
                    service.store.link_alert(&id, &fp, &alert.starts_at).await?;
                    delivered.repeated += 1
                }
                Err(TriggerError::BadParams(errors)) => {
                    return Err(ApiError::Unprocessable(format!("runbook {:?}: {}", rb.name, errors.join("; "))));
                }
                Err(TriggerError::Internal(e)) => return Err(ApiError::Internal(e)),
                Err(e) => return Err(ApiError::Conflict(e.to_string())),
            }
        }
    }
    Ok(delivered)
}

/// Renders again the reports of the finished runs an alert instance
/// started, now that it resolved.
async fn rerender_reports(service: &Service, fingerprint: &str, starts_at: &str) -> Result<(), ApiError> {
    for run_id in service.store.alert_runs(fingerprint, starts_at).await? {
        let finished = service.store.get_run(&run_id).await?.is_some_and(|r| r.status.is_final());
        let Some(report) = service.store.report(&run_id).await? else { continue };
        match report.kind.parse::<crate::runbook::ReportKind>() {
            Ok(kind) if finished => service.engine.write_report(&run_id, kind).await,
            Ok(_) => {}
            Err(e) => tracing::warn!(run_id, "stored report not rendered again: {e}"),
        }
    }
    Ok(())
}
