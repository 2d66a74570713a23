//! `host.secret`: named secrets, readable only when the step's grant lists
//! the name. Values read are remembered so the record can redact them.

use super::Denials;
use std::sync::Arc;

/// Where secret values come from.
pub trait SecretSource: Send + Sync {
    fn get(&self, name: &str) -> Option<String>;
}

/// Secrets from environment variables: secret `slack-webhook` is read from
/// `TEND_SECRET_SLACK_WEBHOOK` (upper case, `-` and `.` become `_`).
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvSecrets;

impl EnvSecrets {
    /// The variable a secret name maps to.
    pub fn var_name(name: &str) -> String {
        let mut var = String::from("TEND_SECRET_");
        var.extend(name.chars().map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        }));
        var
    }
}

impl SecretSource for EnvSecrets {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(Self::var_name(name)).ok()
    }
}

/// Per-step secrets access.
pub struct SecretsCap {
    source: Arc<dyn SecretSource>,
    granted: Vec<String>,
    denials: Denials,
    /// Values handed to the guest, for redaction.
    pub revealed: Vec<String>,
}

impl SecretsCap {
    /// Part two: per-step state from the `secrets` grant.
    pub fn new(source: Arc<dyn SecretSource>, granted: &[String], denials: Denials) -> Self {
        SecretsCap { source, granted: granted.to_vec(), denials, revealed: Vec::new() }
    }

    /// Part three: `host.secret`.
    pub fn secret(&mut self, name: String) -> Option<String> {
        if !self.granted.contains(&name) {
            self.denials.push(format!("secrets: secret {name:?} is not granted to this step"));
            return None;
        }
        let value = self.source.get(&name)?;
        if !value.is_empty() && !self.revealed.contains(&value) {
            self.revealed.push(value.clone());
        }
        Some(value)
    }
}

/// Replaces every revealed secret value in `text` with `***`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_names() {
        assert_eq!(EnvSecrets::var_name("slack-webhook"), "TEND_SECRET_SLACK_WEBHOOK");
        assert_eq!(EnvSecrets::var_name("db.pass"), "TEND_SECRET_DB_PASS");
    }

    #[test]
    fn denied_secret_is_recorded_and_not_read() {
        struct All;
        impl SecretSource for All {
            fn get(&self, _: &str) -> Option<String> {
                Some("hunter2".into())
            }
        }
        let denials = Denials::default();
        let mut cap = SecretsCap::new(Arc::new(All), &["ok".into()], denials.clone());
        assert_eq!(cap.secret("other".into()), None);
        assert_eq!(denials.list(), vec!["secrets: secret \"other\" is not granted to this step".to_string()]);
        assert_eq!(cap.secret("ok".into()).as_deref(), Some("hunter2"));
        assert_eq!(redact("pw=hunter2!", &cap.revealed), "pw=***!");
    }
}
