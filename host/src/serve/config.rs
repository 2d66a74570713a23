//! `tend serve` settings: the `tend.toml` file, overridden by environment
//! variables, overridden by flags. Every default is documented on its
//! field. Parsing and checking only; reading the file is the caller's.

use crate::units::parse_bytes;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The config file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address the API listens on, e.g. `"0.0.0.0:8800"`. By default `127.0.0.1:8800`.
    pub listen: Option<String>,
    /// SQLite database: a file path or a `sqlite:` URL, e.g. `"/var/lib/tend/tend.db"` or
    /// `"sqlite:///var/lib/tend/tend.db"`. By default `tend.db`.
    pub database: Option<String>,
    /// Directory of runbooks, e.g. `"/etc/tend/runbooks"`. By default `runbooks`.
    pub runbooks: Option<PathBuf>,
    /// Directory of extra plugins (`*.wasm`), e.g. `"/etc/tend/plugins"`. By default `plugins`.
    pub plugins: Option<PathBuf>,
    /// `human` or `json`. By default `human`.
    pub log_format: Option<String>,
    /// Runs executing at once across all runbooks, e.g. `32`. By default 64.
    pub max_concurrent_runs: Option<usize>,
    /// Largest request body, e.g. `"256KiB"`. By default `1MiB`.
    pub body_limit: Option<String>,
    /// Requests per second each token may make (bursts of twice that), e.g. `100`. By default 50.
    pub rate_limit: Option<u32>,
    /// Finished runs older than this are deleted with all they own, e.g.
    /// `"90d"`, or `"forever"`. By default `30d`.
    pub retention: Option<String>,
    /// API tokens. By default none (only `TEND_TOKEN`, if set).
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Where every escalation goes besides each runbook's own sinks.
    #[serde(default)]
    pub notify: NotifyConfig,
}

/// Service-wide notification sinks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Webhook URLs, e.g. `["http://alerts.internal/hook"]`. By default none.
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// Names of secrets holding webhook URLs, e.g. `["slack-webhook"]`. By default none.
    #[serde(default)]
    pub webhook_secrets: Vec<String>,
}

/// One API token, stored as the SHA-256 of its value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it, e.g. `"ci"`; shown in logs and as the approver.
    pub name: String,
    /// Hex SHA-256 of the token, e.g. the output of `printf %s "$TOKEN" | sha256sum`.
    pub sha256: String,
    /// `read`, `trigger` and/or `admin`, e.g. `["trigger"]`.
    pub scopes: Vec<Scope>,
}

/// What a token may do. `trigger` includes `read`; `admin` includes both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// GET runs, runbooks, plugins, escalations, metrics.
    Read,
    /// Start runs, post alerts.
    Trigger,
    /// Cancel, approve, reject runs; acknowledge and resolve escalations.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Trigger => "trigger",
            Scope::Admin => "admin",
        }
    }
}

/// Settings after every source is applied.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub database: String,
    pub runbooks: PathBuf,
    pub plugins: PathBuf,
    pub json_logs: bool,
    pub max_concurrent_runs: usize,
    pub body_limit: usize,
    pub rate_limit: u32,
    /// None keeps runs forever.
    pub retention: Option<std::time::Duration>,
    pub tokens: Vec<TokenConfig>,
    /// Webhooks every escalation goes to.
    pub webhooks: Vec<crate::runbook::WebhookUrl>,
    /// `TEND_CLOCK_FILE`, a testing aid: cron triggers take the current
    /// time from this file (an RFC 3339 instant, read on every scheduler
    /// pass) instead of the system clock. None (the default) uses the
    /// system clock.
    pub clock_file: Option<PathBuf>,
}

/// Values given on the command line or in the environment (through clap).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub database: Option<String>,
    pub runbooks: Option<PathBuf>,
    pub plugins: Option<PathBuf>,
    pub log_format: Option<String>,
    /// `TEND_TOKEN`: one admin token for quick setups.
    pub admin_token: Option<String>,
    /// `TEND_CLOCK_FILE`: the scheduler's time comes from this file (tests).
    pub clock_file: Option<PathBuf>,
}

/// Hex SHA-256 of a token's value.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl ServeConfig {
    /// Applies the file (if any), then the overrides, then the defaults.
    /// Errors name the file and the setting.
    pub fn resolve(file: Option<(&Path, &str)>, o: &Overrides) -> Result<ServeConfig, String> {
        let (origin, f) = match file {
            Some((path, text)) => {
                let f: FileConfig = toml::from_str(text).map_err(|e| {
                    let msg = e.message().to_string();
                    match e.span() {
                        Some(span) => {
                            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                            format!("{}:{line}: {msg}", path.display())
                        }
                        None => format!("{}: {msg}", path.display()),
                    }
                })?;
                (format!("{}: ", path.display()), f)
            }
            None => (String::new(), FileConfig::default()),
        };
        let listen_text = o.listen.clone().or(f.listen).unwrap_or_else(|| "127.0.0.1:8800".into());
        let listen = listen_text
            .parse()
            .map_err(|_| format!("{origin}listen {listen_text:?} is not an address; expected e.g. 127.0.0.1:8800"))?;
        let log_format = o.log_format.clone().or(f.log_format).unwrap_or_else(|| "human".into());
        let json_logs = match log_format.as_str() {
            "human" => false,
            "json" => true,
            other => return Err(format!("{origin}log_format {other:?} is not \"human\" or \"json\"")),
        };
        let body_limit = match f.body_limit {
            Some(b) => parse_bytes(&b).map_err(|e| format!("{origin}body_limit: {e}"))? as usize,
            None => 1 << 20,
        };
        let max_concurrent_runs = f.max_concurrent_runs.unwrap_or(64);
        if max_concurrent_runs == 0 {
            return Err(format!("{origin}max_concurrent_runs must be at least 1"));
        }
        let rate_limit = f.rate_limit.unwrap_or(50);
        if rate_limit == 0 {
            return Err(format!("{origin}rate_limit must be at least 1"));
        }
        let retention = match f.retention.as_deref() {
            None => Some(std::time::Duration::from_secs(30 * 86_400)),
            Some("forever") => None,
            Some(text) => Some(
                crate::units::parse_duration(text).map_err(|e| format!("{origin}retention: {e} (or \"forever\")"))?,
            ),
        };
        let mut webhooks = Vec::new();
        for url in &f.notify.webhooks {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {
                    webhooks.push(crate::runbook::WebhookUrl::Url(url.clone()))
                }
                _ => return Err(format!("{origin}notify.webhooks: {url:?} is not an http or https URL")),
            }
        }
        webhooks.extend(f.notify.webhook_secrets.iter().map(|s| crate::runbook::WebhookUrl::Secret(s.clone())));
        let mut tokens = f.tokens;
        for t in &tokens {
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "{origin}token {:?}: sha256 must be 64 hex digits (printf %s \"$TOKEN\" | sha256sum)",
                    t.name
                ));
            }
            if t.scopes.is_empty() {
                return Err(format!("{origin}token {:?}: give at least one scope (read, trigger, admin)", t.name));
            }
        }
        if let Some(admin) = o.admin_token.as_deref().filter(|t| !t.is_empty()) {
            tokens.push(TokenConfig {
                name: "TEND_TOKEN".into(),
                sha256: token_hash(admin),
                scopes: vec![Scope::Admin],
            });
        }
        for t in &mut tokens {
            t.sha256 = t.sha256.to_ascii_lowercase();
        }
        Ok(ServeConfig {
            listen,
            database: o.database.clone().or(f.database).unwrap_or_else(|| "tend.db".into()),
            runbooks: o.runbooks.clone().or(f.runbooks).unwrap_or_else(|| "runbooks".into()),
            plugins: o.plugins.clone().or(f.plugins).unwrap_or_else(|| "plugins".into()),
            json_logs,
            max_concurrent_runs,
            body_limit,
            rate_limit,
            retention,
            tokens,
            webhooks,
            clock_file: o.clock_file.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_environment_override_the_file() {
        let file = "listen = \"0.0.0.0:9000\"\ndatabase = \"/var/tend.db\"\nbody_limit = \"64KiB\"\n";
        let o = Overrides { database: Some("x.db".into()), admin_token: Some("s3cret".into()), ..Overrides::default() };
        let c = ServeConfig::resolve(Some((Path::new("tend.toml"), file)), &o).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.database, "x.db");
        assert_eq!(c.body_limit, 64 << 10);
        assert_eq!(c.runbooks, PathBuf::from("runbooks"));
        assert_eq!(c.tokens[0].sha256, token_hash("s3cret"));
        assert_eq!(c.tokens[0].scopes, vec![Scope::Admin]);
    }

    #[test]
    fn errors_name_the_file_line_and_setting() {
        let err =
            ServeConfig::resolve(Some((Path::new("tend.toml"), "listen = \"x\"\nport = 1\n")), &Overrides::default())
                .unwrap_err();
        assert!(err.starts_with("tend.toml:2: unknown field `port`"), "{err}");
        let err = ServeConfig::resolve(Some((Path::new("tend.toml"), "listen = \"nowhere\"\n")), &Overrides::default())
            .unwrap_err();
        assert_eq!(err, "tend.toml: listen \"nowhere\" is not an address; expected e.g. 127.0.0.1:8800");
        let bad = "[[tokens]]\nname = \"ci\"\nsha256 = \"abc\"\nscopes = [\"read\"]\n";
        let err = ServeConfig::resolve(Some((Path::new("t.toml"), bad)), &Overrides::default()).unwrap_err();
        assert_eq!(err, "t.toml: token \"ci\": sha256 must be 64 hex digits (printf %s \"$TOKEN\" | sha256sum)");
    }
}
