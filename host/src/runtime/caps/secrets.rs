//! `host.secret`: named secrets, readable only when the step's grant lists
//! the name. The values of every granted secret make the step's
//! [`Redactor`]: whatever the guest returns or writes is redacted with it.

use super::Denials;
use crate::redact::Redactor;
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

/// The redactor for the values of the secrets named in `names` that are set.
pub fn redactor(source: &dyn SecretSource, names: &[String]) -> Redactor {
    Redactor::new(names.iter().filter_map(|n| source.get(n)))
}

/// Per-step secrets access.
pub struct SecretsCap {
    source: Arc<dyn SecretSource>,
    granted: Vec<String>,
    denials: Denials,
    /// Hides the value of every granted secret, whether the guest read it
    /// or not (it may have come another way, e.g. in its config).
    pub redactor: Redactor,
}

impl SecretsCap {
    /// Part two: per-step state from the `secrets` grant.
    pub fn new(source: Arc<dyn SecretSource>, granted: &[String], denials: Denials) -> Self {
        let redactor = redactor(source.as_ref(), granted);
        SecretsCap { source, granted: granted.to_vec(), denials, redactor }
    }

    /// Part three: `host.secret`.
    pub fn secret(&mut self, name: String) -> Option<String> {
        if !self.granted.contains(&name) {
            self.denials.push(format!("secrets: secret {name:?} is not granted to this step"));
            return None;
        }
        self.source.get(&name)
    }
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
        assert_eq!(cap.redactor.text("pw=hunter2!"), "pw=***!");
    }
}
