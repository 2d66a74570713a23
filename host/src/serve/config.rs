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
    /// The database: a SQLite file path or `sqlite:` URL, e.g. `"/var/lib/tend/tend.db"` or
    /// `"sqlite:///var/lib/tend/tend.db"`, or a PostgreSQL URL that several `tend serve` may
    /// share, e.g. `"postgres://tend:PASSWORD@db.example:5432/tend"`. By default `tend.db`.
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
    /// The URL tend's API is reached at from outside, e.g.
    /// `"https://tend.example.com"`: notifications link to
    /// `<public_url>/v1/runs/<id>`. By default none (no link).
    pub public_url: Option<String>,
}

/// Service-wide notification sinks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Webhooks: URLs (JSON format) or sinks as in a runbook, e.g.
    /// `["http://alerts.internal/hook", {url_secret = "slack-hook", format = "slack"},
    /// {format = "pagerduty", routing_key_secret = "pd-key"}]`. By default none.
    #[serde(default)]
    pub webhooks: Vec<toml::Spanned<WebhookEntry>>,
    /// Names of secrets holding webhook URLs, e.g. `["slack-webhook"]`. By default none.
    #[serde(default)]
    pub webhook_secrets: Vec<String>,
}

/// One entry of `[notify] webhooks`: a URL, or a sink with the settings of
/// a runbook's `notify.webhooks` entries.
#[derive(Debug, Clone)]
pub enum WebhookEntry {
    Url(String),
    Sink(WebhookTable),
}

/// A service-wide sink written as a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTable {
    /// URL to POST to, e.g. `"http://alerts.internal/hook"`; a `pagerduty`
    /// sink posts to PagerDuty's Events API by default.
    pub url: Option<toml::Spanned<String>>,
    /// Name of a secret holding the URL, e.g. `"slack-hook"`.
    pub url_secret: Option<String>,
    /// `json` (the default), `slack`, `teams` or `pagerduty`.
    pub format: Option<toml::Spanned<String>>,
    /// For `pagerduty`: name of the secret holding the routing key, e.g. `"pd-key"`.
    pub routing_key_secret: Option<toml::Spanned<String>>,
}

impl<'de> Deserialize<'de> for WebhookEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = WebhookEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a URL or a table with url or url_secret, format, routing_key_secret")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<WebhookEntry, E> {
                Ok(WebhookEntry::Url(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<WebhookEntry, A::Error> {
                WebhookTable::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(WebhookEntry::Sink)
            }
        }
        d.deserialize_any(V)
    }
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
    pub webhooks: Vec<crate::notify::Webhook>,
    /// Where the API is reached from outside, for links to runs in notifications.
    pub public_url: Option<String>,
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
    /// `TEND_PUBLIC_URL`: overrides `public_url`.
    pub public_url: Option<String>,
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
        let at = |offset: usize| match file {
            Some((path, text)) => format!("{}:{}", path.display(), line_col(text, offset)),
            None => String::new(),
        };
        let webhooks = service_webhooks(&f.notify, &at)?;
        let public_url = match o.public_url.clone().filter(|u| !u.is_empty()).or(f.public_url) {
            Some(u) => match url::Url::parse(&u) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Some(u.trim_end_matches('/').to_string()),
                _ => {
                    return Err(format!(
                        "{origin}public_url {u:?} is not an http or https URL; expected e.g. https://tend.example.com"
                    ));
                }
            },
            None => None,
        };
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
            public_url,
            clock_file: o.clock_file.clone(),
        })
    }
}

/// `line:col: ` of a byte offset in `text` (1-based).
fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("{line}:{col}: ")
}

/// The service-wide sinks of `[notify]`, checked like a runbook's: every
/// problem, one a line, each starting with `at(offset)` of the setting at
/// fault (the file and its line and column).
fn service_webhooks(n: &NotifyConfig, at: &dyn Fn(usize) -> String) -> Result<Vec<crate::notify::Webhook>, String> {
    use crate::notify::{Field, Webhook, WebhookSettings};
    let mut webhooks = Vec::new();
    let mut problems = Vec::new();
    for (i, entry) in n.webhooks.iter().enumerate() {
        let (settings, spans) = match entry.get_ref() {
            WebhookEntry::Url(url) => (WebhookSettings { url: Some(url), ..Default::default() }, None),
            WebhookEntry::Sink(t) => (
                WebhookSettings {
                    url: t.url.as_ref().map(|u| u.get_ref().as_str()),
                    url_secret: t.url_secret.as_deref(),
                    format: t.format.as_ref().map(|f| f.get_ref().as_str()),
                    routing_key_secret: t.routing_key_secret.as_ref().map(|k| k.get_ref().as_str()),
                },
                Some(t),
            ),
        };
        match Webhook::from_settings(settings) {
            Ok(w) => webhooks.push(w),
            Err(found) => {
                for (field, message) in found {
                    let span = |s: Option<&toml::Spanned<String>>| s.map_or(entry.span().start, |s| s.span().start);
                    let offset = match (field, spans) {
                        (Field::Url, Some(t)) => span(t.url.as_ref()),
                        (Field::Format, Some(t)) => span(t.format.as_ref()),
                        (Field::RoutingKeySecret, Some(t)) => span(t.routing_key_secret.as_ref()),
                        _ => entry.span().start,
                    };
                    problems.push(format!("{}notify.webhooks[{i}]: {message}", at(offset)));
                }
            }
        }
    }
    webhooks.extend(n.webhook_secrets.iter().map(|s| Webhook {
        url: crate::notify::WebhookUrl::Secret(s.clone()),
        format: crate::notify::Format::Json,
        routing_key_secret: None,
    }));
    if problems.is_empty() { Ok(webhooks) } else { Err(problems.join("\n")) }
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
    fn service_wide_sinks_take_the_formats_of_runbooks() {
        let file = "public_url = \"https://tend.example.com/\"\n[notify]\nwebhooks = [\n  \"http://h/hook\",\n  {url_secret = \"slack-hook\", format = \"slack\"},\n  {format = \"pagerduty\", routing_key_secret = \"pd-key\"},\n]\nwebhook_secrets = [\"old\"]\n";
        let c = ServeConfig::resolve(Some((Path::new("tend.toml"), file)), &Overrides::default()).unwrap();
        let formats: Vec<&str> = c.webhooks.iter().map(|w| w.format.as_str()).collect();
        assert_eq!(formats, ["json", "slack", "pagerduty", "json"]);
        assert_eq!(c.webhooks[2].url, crate::notify::WebhookUrl::Url(crate::notify::PAGERDUTY_EVENTS_URL.into()));
        assert_eq!(c.webhooks[2].routing_key_secret.as_deref(), Some("pd-key"));
        assert_eq!(c.public_url.as_deref(), Some("https://tend.example.com"));
        let o = Overrides { public_url: Some("http://127.0.0.1:8800".into()), ..Overrides::default() };
        let c = ServeConfig::resolve(Some((Path::new("tend.toml"), file)), &o).unwrap();
        assert_eq!(c.public_url.as_deref(), Some("http://127.0.0.1:8800"));
    }

    #[test]
    fn bad_service_wide_sinks_are_named_by_line_and_column() {
        let file = "[notify]\nwebhooks = [\n  {url_secret = \"h\", format = \"slak\"},\n  {format = \"pagerduty\"},\n  {url = \"http://h/\", routing_key_secret = \"k\"},\n  \"ftp://x\",\n]\n";
        let err = ServeConfig::resolve(Some((Path::new("tend.toml"), file)), &Overrides::default()).unwrap_err();
        assert_eq!(
            err,
            "tend.toml:3:31: notify.webhooks[0]: format \"slak\" is not one of \"json\", \"slack\", \"teams\" or \"pagerduty\" (did you mean \"slack\"?)\n\
             tend.toml:4:3: notify.webhooks[1]: a pagerduty sink needs `routing_key_secret`, the secret holding the integration's routing key\n\
             tend.toml:5:44: notify.webhooks[2]: routing_key_secret: only a pagerduty sink takes a routing key, and this one's format is \"json\"\n\
             tend.toml:6:3: notify.webhooks[3]: url \"ftp://x\" is not an http or https URL"
        );
        let err =
            ServeConfig::resolve(Some((Path::new("t.toml"), "public_url = \"nowhere\"\n")), &Overrides::default())
                .unwrap_err();
        assert_eq!(
            err,
            "t.toml: public_url \"nowhere\" is not an http or https URL; expected e.g. https://tend.example.com"
        );
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
