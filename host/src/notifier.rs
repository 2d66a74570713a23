//! Delivers escalation notifications and records each delivery: when an
//! escalation is raised (to every sink), acknowledged (to PagerDuty sinks)
//! and resolved (to every sink). The sinks are those of the escalation's
//! runbook (its `notify` section) and the service-wide ones (tend.toml's
//! `[notify]`); the secrets they name (webhook URLs, PagerDuty routing
//! keys) are read here, at send time, and never stored.
//!
//! Does not load runbooks: callers hand over the `notify` section of the
//! runbook they hold (the service's loaded runbooks, the runbooks directory
//! for the CLI). No SQL (the store records), no formats (see [`crate::notify`]).

use crate::notify::{self, Format, Notification, RoutingKey, Sink, Status, Webhook, WebhookUrl};
use crate::runbook::Notify;
use crate::runtime::caps::secrets::SecretSource;
use crate::store::{EscalationRow, Store, StoreError};
use std::sync::Arc;

/// Who resolves the escalations `auto_resolve` resolves.
pub const AUTO_RESOLVER: &str = "tend";

/// Sends notifications. Cheap to share behind an `Arc`.
pub struct Notifier {
    store: Store,
    secrets: Arc<dyn SecretSource>,
    http: reqwest::Client,
    /// Sinks every escalation goes to, besides its runbook's.
    webhooks: Vec<Webhook>,
    /// Where tend's API is reached from outside, without a trailing `/`.
    public_url: Option<String>,
}

impl Notifier {
    /// A notifier with no service-wide sinks and no public URL.
    pub fn new(store: Store, secrets: Arc<dyn SecretSource>) -> Notifier {
        Notifier {
            store,
            secrets,
            http: reqwest::Client::builder().no_proxy().build().unwrap_or_default(),
            webhooks: Vec::new(),
            public_url: None,
        }
    }

    /// Sinks every escalation goes to, besides each runbook's own (the
    /// `[notify]` of tend.toml). By default none.
    pub fn with_webhooks(mut self, webhooks: Vec<Webhook>) -> Self {
        self.webhooks = webhooks;
        self
    }

    /// The URL tend's API is reached at (`public_url`, `TEND_PUBLIC_URL`):
    /// every notification then links to its run. By default none.
    pub fn with_public_url(mut self, public_url: Option<String>) -> Self {
        self.public_url = public_url.map(|u| u.trim_end_matches('/').to_string()).filter(|u| !u.is_empty());
        self
    }

    /// `<public_url>/v1/runs/<run_id>`, when the public URL is known.
    pub fn run_url(&self, run_id: &str) -> Option<String> {
        self.public_url.as_ref().map(|base| format!("{base}/v1/runs/{run_id}"))
    }

    /// The secret values the sinks of `notify` and the service-wide ones
    /// use (webhook URLs with their paths and queries, routing keys), for a
    /// run's redactor.
    pub fn secret_values(&self, notify: Option<&Notify>) -> Vec<String> {
        let mut values = Vec::new();
        for w in self.configured(notify) {
            if let WebhookUrl::Secret(name) = &w.url
                && let Some(url) = self.secrets.get(name)
            {
                values.extend(notify::secret_parts_of_url(&url));
                values.push(url);
            }
            if let Some(key) = w.routing_key_secret.as_ref().and_then(|name| self.secrets.get(name)) {
                values.push(key);
            }
        }
        values
    }

    /// The runbook's webhooks, then the service-wide ones.
    fn configured<'a>(&'a self, notify: Option<&'a Notify>) -> impl Iterator<Item = &'a Webhook> {
        notify.map(|n| n.webhooks.as_slice()).unwrap_or_default().iter().chain(self.webhooks.iter())
    }

    /// The sinks of `notify` (the log unless it says `log: false`; only the
    /// log and the service-wide sinks when the runbook is unknown) with
    /// their secrets read. A sink whose secret is not set is recorded as a
    /// failed delivery of `n` and left out.
    async fn sinks(&self, n: &Notification, notify: Option<&Notify>) -> Vec<Sink> {
        let mut sinks = Vec::new();
        if notify.is_none_or(|n| n.log) {
            sinks.push(Sink::Log);
        }
        for w in self.configured(notify) {
            let kind = Sink::kind(w.format);
            let url = match &w.url {
                WebhookUrl::Url(url) => Ok(url.clone()),
                WebhookUrl::Secret(name) => self
                    .secrets
                    .get(name)
                    .ok_or_else(|| (name, format!("secret {name:?} holding the webhook URL is not set"))),
            };
            let routing_key = match (&w.routing_key_secret, w.format) {
                (Some(name), Format::PagerDuty) => match self.secrets.get(name) {
                    Some(key) => Ok(Some(RoutingKey(key))),
                    None => Err((name, format!("secret {name:?} holding the PagerDuty routing key is not set"))),
                },
                _ => Ok(None),
            };
            let sink = match (url, routing_key) {
                (Ok(url), Ok(routing_key)) => Sink::Webhook { url, format: w.format, routing_key },
                (Err((name, why)), _) | (_, Err((name, why))) => {
                    tracing::warn!(run_id = %n.run_id, "notification of escalation {} not sent: {why}", n.escalation_id);
                    let _ = self
                        .store
                        .record_notification(n.escalation_id, n.status, &format!("{kind}:secret:{name}"), &Err(why))
                        .await;
                    continue;
                }
            };
            if !sinks.contains(&sink) {
                sinks.push(sink);
            }
        }
        sinks
    }

    /// Sends `n` to every sink of `notify` (see [`Notifier::sinks`]) that
    /// takes its status, and records each delivery. A failed delivery is
    /// recorded and logged; it never fails anything.
    pub async fn send(&self, n: &Notification, notify: Option<&Notify>) {
        for sink in self.sinks(n, notify).await.into_iter().filter(|s| s.takes(n.status)) {
            let result = notify::send(&self.http, &sink, n).await;
            if let Err(why) = &result {
                tracing::warn!(run_id = %n.run_id, "{} notification of escalation {} failed: {why}", n.status, n.escalation_id);
            }
            if let Err(e) = self.store.record_notification(n.escalation_id, n.status, &sink.name(), &result).await {
                tracing::error!("notification of escalation {} could not be recorded: {e:#}", n.escalation_id);
            }
        }
    }

    /// The notification of a recorded escalation, linking to its run.
    pub fn notification(&self, e: &EscalationRow) -> Notification {
        Notification::new(e.severity, &e.runbook, &e.run_id, e.step_id.as_deref(), e.id, &e.dedup_key, &e.message)
            .with_run_url(self.run_url(&e.run_id))
    }

    /// Resolves escalation `id` and sends the resolved notification to the
    /// sinks of its runbook (`notify_of` gives a runbook's `notify` by
    /// name; None when it is not known) and the service-wide ones.
    /// Returns the escalation as it now is, its notifications included.
    pub async fn resolve(
        &self,
        id: i64,
        by: &str,
        reason: Option<&str>,
        notify_of: impl FnOnce(&str) -> Option<Notify>,
    ) -> Result<EscalationRow, StoreError> {
        self.store.resolve_escalation(id, by, reason).await?;
        self.announce(id, Status::Resolved, by, reason, notify_of).await
    }

    /// Acknowledges escalation `id` and tells the PagerDuty sinks of its
    /// runbook and the service-wide ones. Returns the escalation as it now is.
    pub async fn acknowledge(
        &self,
        id: i64,
        by: &str,
        notify_of: impl FnOnce(&str) -> Option<Notify>,
    ) -> Result<EscalationRow, StoreError> {
        self.store.acknowledge_escalation(id, by).await?;
        self.announce(id, Status::Acknowledged, by, None, notify_of).await
    }

    async fn announce(
        &self,
        id: i64,
        status: Status,
        by: &str,
        reason: Option<&str>,
        notify_of: impl FnOnce(&str) -> Option<Notify>,
    ) -> Result<EscalationRow, StoreError> {
        let missing = || StoreError::NotFound(format!("escalation {id}"));
        let e = self.store.get_escalation(id).await?.ok_or_else(missing)?;
        let n = self.notification(&e).decided(status, by, reason);
        let notify = notify_of(&e.runbook);
        self.send(&n, notify.as_ref()).await;
        self.store.get_escalation(id).await?.ok_or_else(missing)
    }
}
