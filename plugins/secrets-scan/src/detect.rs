//! The detectors: what a file's text and mode bits give away. Pure
//! functions, no host calls, so each is unit-tested natively.
//!
//! A [`Hit`] keeps the secret only to hash it; nothing here formats the
//! secret into a message. Messages carry at most the token's well-known
//! type prefix (`AKIA…`, `ghp_…`) and a SHA-256 prefix of the secret.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use tend_plugin_sdk::SeverityLevel;

/// Hex digits of a secret's SHA-256 shown in findings (48 bits: enough to
/// tell two secrets apart, far too few to recover one).
pub const HASH_HEX: usize = 12;

/// Lines around an AWS access key id where a 40-character secret key
/// counts as its secret.
const AWS_SECRET_NEAR_LINES: usize = 3;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A PEM, OpenSSH or PuTTY private key.
    PrivateKey,
    /// A file holding a private key that its group or others may read.
    PrivateKeyReadable,
    /// An AWS access key id (`AKIA…`, `ASIA…`).
    AwsAccessKeyId,
    /// An AWS secret access key (next to its key id, or named so).
    AwsSecretAccessKey,
    /// A Google Cloud service-account key file (JSON with `private_key`).
    GcpServiceAccountKey,
    /// A GitHub token (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`).
    GithubToken,
    /// A GitLab personal access token (`glpat-`).
    GitlabToken,
    /// A Slack token (`xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`, `xoxe-`).
    SlackToken,
    /// A password, secret or token set in a `.env` file.
    EnvSecret,
    /// A password in a URL (`postgres://user:pass@host`).
    ConnectionStringPassword,
    /// A file, or a directory without the sticky bit, any user may write.
    WorldWritable,
    /// A file with the setuid bit.
    Setuid,
    /// A file with the setgid bit.
    Setgid,
}

impl Kind {
    /// Every kind, in the order above.
    pub const ALL: [Kind; 13] = [
        Kind::PrivateKey,
        Kind::PrivateKeyReadable,
        Kind::AwsAccessKeyId,
        Kind::AwsSecretAccessKey,
        Kind::GcpServiceAccountKey,
        Kind::GithubToken,
        Kind::GitlabToken,
        Kind::SlackToken,
        Kind::EnvSecret,
        Kind::ConnectionStringPassword,
        Kind::WorldWritable,
        Kind::Setuid,
        Kind::Setgid,
    ];

    /// The name used in output and state, e.g. `"aws_access_key_id"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PrivateKey => "private_key",
            Kind::PrivateKeyReadable => "private_key_readable",
            Kind::AwsAccessKeyId => "aws_access_key_id",
            Kind::AwsSecretAccessKey => "aws_secret_access_key",
            Kind::GcpServiceAccountKey => "gcp_service_account_key",
            Kind::GithubToken => "github_token",
            Kind::GitlabToken => "gitlab_token",
            Kind::SlackToken => "slack_token",
            Kind::EnvSecret => "env_secret",
            Kind::ConnectionStringPassword => "connection_string_password",
            Kind::WorldWritable => "world_writable",
            Kind::Setuid => "setuid",
            Kind::Setgid => "setgid",
        }
    }

    /// How serious a finding of this kind is. A private key readable by
    /// others is critical, by its group only high ([`Hit::severity`]).
    pub fn severity(self) -> SeverityLevel {
        match self {
            Kind::PrivateKeyReadable | Kind::AwsSecretAccessKey | Kind::GcpServiceAccountKey => SeverityLevel::Critical,
            Kind::PrivateKey | Kind::Setgid => SeverityLevel::Medium,
            _ => SeverityLevel::High,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("{s:?} is not a finding kind"))
    }
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub kind: Kind,
    /// 1-based line of a content finding.
    pub line: Option<usize>,
    /// Overrides [`Kind::severity`].
    pub severity: Option<SeverityLevel>,
    /// One line, naming the path, never the secret.
    pub title: String,
    /// Evidence: type prefix, hash, mode; never the secret.
    pub detail: String,
    /// The token's well-known type prefix with an ellipsis, e.g. `ghp_…`.
    pub prefix: Option<String>,
    /// The first [`HASH_HEX`] hex digits of the secret's SHA-256.
    pub sha256: Option<String>,
}

impl Hit {
    /// The severity of this hit.
    pub fn severity(&self) -> SeverityLevel {
        self.severity.unwrap_or(self.kind.severity())
    }
}

/// The first [`HASH_HEX`] hex digits of SHA-256 of `secret`.
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))[..HASH_HEX].to_string()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether content looks binary: a NUL byte in its first 8 KiB.
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}

/// Whether a file name is a dotenv file: `.env`, `.env.production`,
/// `prod.env`.
pub fn is_env_file(name: &str) -> bool {
    name == ".env" || name.starts_with(".env.") || (name.ends_with(".env") && name.len() > 4)
}

/// Mode findings of a file or directory (`kind_is_dir` for directories).
pub fn mode_hits(path: &str, mode: u32, uid: u32, is_dir: bool) -> Vec<Hit> {
    let mut hits = Vec::new();
    let sticky = mode & 0o1000 != 0;
    if mode & 0o002 != 0 && !(is_dir && sticky) {
        let what = if is_dir { "directory" } else { "file" };
        hits.push(mode_hit(
            Kind::WorldWritable,
            format!("{path} is world-writable"),
            format!("mode {mode:04o}: any user on the machine can change this {what}"),
        ));
    }
    if !is_dir && mode & 0o4000 != 0 {
        hits.push(mode_hit(
            Kind::Setuid,
            format!("{path} is setuid"),
            format!("mode {mode:04o}, owner uid {uid}: runs with its owner's privileges whoever starts it"),
        ));
    }
    if !is_dir && mode & 0o2000 != 0 {
        hits.push(mode_hit(
            Kind::Setgid,
            format!("{path} is setgid"),
            format!("mode {mode:04o}: runs with its group's privileges whoever starts it"),
        ));
    }
    hits
}

/// The readability finding of a file that holds a private key, if its
/// group or others may read it: critical for others, high for the group.
pub fn key_readable_hit(path: &str, mode: u32) -> Option<Hit> {
    let (who, severity) = if mode & 0o004 != 0 {
        ("any user", SeverityLevel::Critical)
    } else if mode & 0o040 != 0 {
        ("its group", SeverityLevel::High)
    } else {
        return None;
    };
    let mut hit = mode_hit(
        Kind::PrivateKeyReadable,
        format!("private key {path} is readable by {who}"),
        format!("mode {mode:04o}: only its owner should read a private key (chmod 600)"),
    );
    hit.severity = Some(severity);
    Some(hit)
}

fn mode_hit(kind: Kind, title: String, detail: String) -> Hit {
    Hit { kind, line: None, severity: None, title, detail, prefix: None, sha256: None }
}

/// A content hit: `secret` is hashed here and dropped.
fn secret_hit(kind: Kind, line: usize, title: String, what: &str, prefix: Option<&str>, secret: &str) -> Hit {
    let sha = hash(secret);
    let shown = prefix.map_or(String::new(), |p| format!("{p}…, "));
    Hit {
        kind,
        line: Some(line),
        severity: None,
        title,
        detail: format!("{what} ({shown}sha256 {sha}…); remove it from the file and rotate it"),
        prefix: prefix.map(|p| format!("{p}…")),
        sha256: Some(sha),
    }
}

/// Every secret in the text of the file at `path` (named `name`).
pub fn scan_text(path: &str, name: &str, text: &str) -> Vec<Hit> {
    let mut hits = Vec::new();
    let service_account = service_account_hit(path, text);
    let in_json_key = service_account.is_some();
    hits.extend(service_account);
    let lines: Vec<&str> = text.lines().collect();
    let mut aws_id_lines = Vec::new();
    let mut pem: Option<(usize, String, String)> = None;
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        if let Some((start, kind, block)) = &mut pem {
            block.push_str(line);
            block.push('\n');
            if line.contains("-----END ") {
                let (start, kind, block) = (*start, kind.clone(), std::mem::take(block));
                hits.push(private_key_hit(path, start, &kind, &block));
                pem = None;
            }
            continue;
        }
        if !in_json_key && let Some(kind) = pem_begin(line) {
            pem = Some((n, kind, format!("{line}\n")));
            continue;
        }
        if line.starts_with("PuTTY-User-Key-File-") {
            hits.push(private_key_hit(path, n, "PuTTY", text));
            continue;
        }
        let before = hits.len();
        for (id, prefix) in tokens(line, &["AKIA", "ASIA"], |b| b.is_ascii_uppercase() || b.is_ascii_digit(), 16, 16) {
            aws_id_lines.push(n);
            let title = format!("AWS access key id in {path}:{n}");
            hits.push(secret_hit(Kind::AwsAccessKeyId, n, title, "an AWS access key id", Some(prefix), id));
        }
        token_hits(&mut hits, path, n, line);
        hits.extend(connection_hits(path, n, line));
        if hits.len() == before && is_env_file(name) {
            hits.extend(env_hit(path, n, line));
        }
    }
    if let Some((start, kind, block)) = pem {
        hits.push(private_key_hit(path, start, &kind, &block));
    }
    hits.extend(aws_secret_hits(path, &lines, &aws_id_lines));
    hits
}

/// The key type of a `-----BEGIN <TYPE> PRIVATE KEY-----` line ("" for
/// PKCS#8, "RSA", "OPENSSH", "ENCRYPTED", ...).
fn pem_begin(line: &str) -> Option<String> {
    let at = line.find("-----BEGIN ")?;
    let rest = &line[at + "-----BEGIN ".len()..];
    let end = rest.find("PRIVATE KEY-----")?;
    Some(rest[..end].trim().to_string())
}

fn private_key_hit(path: &str, line: usize, kind: &str, block: &str) -> Hit {
    let what = match kind {
        "" => "a PKCS#8 private key".to_string(),
        "OPENSSH" => "an OpenSSH private key".to_string(),
        "PuTTY" => "a PuTTY private key".to_string(),
        "ENCRYPTED" => "an encrypted PKCS#8 private key".to_string(),
        k => format!("{} {k} private key", if k.starts_with(|c| "AEFHILMNORSX".contains(c)) { "an" } else { "a" }),
    };
    let sha = hash(block);
    Hit {
        kind: Kind::PrivateKey,
        line: Some(line),
        severity: None,
        title: format!("private key in {path}:{line}"),
        detail: format!("{what} (sha256 {sha}…); keep keys out of shared trees, or in a secret store"),
        prefix: None,
        sha256: Some(sha),
    }
}

/// A Google service-account key: JSON with `"type": "service_account"` and
/// a non-empty `private_key`.
fn service_account_hit(path: &str, text: &str) -> Option<Hit> {
    if !text.contains("service_account") || !text.contains("\"private_key\"") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if value.get("type")?.as_str()? != "service_account" {
        return None;
    }
    let key = value.get("private_key")?.as_str().filter(|k| !k.is_empty())?;
    let line = text.lines().position(|l| l.contains("\"private_key\"")).map_or(1, |i| i + 1);
    let email = value.get("client_email").and_then(|e| e.as_str()).unwrap_or("an unnamed account");
    let what = format!("the private key of Google service account {email}");
    let title = format!("Google service-account key in {path}");
    Some(secret_hit(Kind::GcpServiceAccountKey, line, title, &what, None, key))
}

/// A family of tokens: its kind, service, description, type prefixes, the
/// characters after the prefix, and how many at least.
struct TokenSpec {
    kind: Kind,
    service: &'static str,
    what: &'static str,
    prefixes: &'static [&'static str],
    charset: fn(u8) -> bool,
    min: usize,
}

/// The tokens [`token_hits`] looks for.
const TOKEN_SPECS: [TokenSpec; 4] = [
    TokenSpec {
        kind: Kind::GithubToken,
        service: "GitHub",
        what: "a GitHub token",
        prefixes: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        charset: |b| b.is_ascii_alphanumeric(),
        min: 36,
    },
    TokenSpec {
        kind: Kind::GithubToken,
        service: "GitHub",
        what: "a GitHub fine-grained token",
        prefixes: &["github_pat_"],
        charset: |b| b.is_ascii_alphanumeric() || b == b'_',
        min: 50,
    },
    TokenSpec {
        kind: Kind::GitlabToken,
        service: "GitLab",
        what: "a GitLab token",
        prefixes: &["glpat-"],
        charset: |b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
        min: 20,
    },
    TokenSpec {
        kind: Kind::SlackToken,
        service: "Slack",
        what: "a Slack token",
        prefixes: &["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-"],
        charset: |b| b.is_ascii_alphanumeric() || b == b'-',
        min: 10,
    },
];

/// GitHub, GitLab and Slack tokens of `line`.
fn token_hits(hits: &mut Vec<Hit>, path: &str, n: usize, line: &str) {
    for spec in &TOKEN_SPECS {
        for (token, prefix) in tokens(line, spec.prefixes, spec.charset, spec.min, 255) {
            let title = format!("{} token in {path}:{n}", spec.service);
            hits.push(secret_hit(spec.kind, n, title, spec.what, Some(prefix), token));
        }
    }
}

/// Occurrences in `line` of one of `prefixes` not preceded by a word
/// character, followed by `min` to `max` characters of `charset` and then
/// a character outside it: (whole token, its prefix).
fn tokens<'a>(
    line: &'a str,
    prefixes: &[&'static str],
    charset: impl Fn(u8) -> bool,
    min: usize,
    max: usize,
) -> Vec<(&'a str, &'static str)> {
    let bytes = line.as_bytes();
    let mut found = Vec::new();
    for prefix in prefixes {
        let mut from = 0;
        while let Some(at) = line[from..].find(prefix).map(|i| i + from) {
            from = at + prefix.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let body = bytes[from..].iter().take_while(|b| charset(**b)).count();
            if (min..=max).contains(&body) {
                found.push((&line[at..from + body], *prefix));
            }
        }
    }
    found
}

/// AWS secret access keys: 40 characters of `[A-Za-z0-9/+]` with upper
/// and lower case and a digit, on a line naming a secret or within
/// [`AWS_SECRET_NEAR_LINES`] lines of an access key id.
fn aws_secret_hits(path: &str, lines: &[&str], id_lines: &[usize]) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let named = line.to_ascii_lowercase().contains("secret");
        let near = id_lines.iter().any(|&id| id.abs_diff(n) <= AWS_SECRET_NEAR_LINES);
        if !named && !near {
            continue;
        }
        let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'/' || b == b'+';
        for word in line.split(|c: char| !(c.is_ascii() && b64(c as u8))) {
            let w = word.as_bytes();
            let mixed = w.iter().any(u8::is_ascii_uppercase)
                && w.iter().any(u8::is_ascii_lowercase)
                && w.iter().any(u8::is_ascii_digit);
            if w.len() == 40 && mixed {
                let title = format!("AWS secret access key in {path}:{n}");
                hits.push(secret_hit(Kind::AwsSecretAccessKey, n, title, "an AWS secret access key", None, word));
            }
        }
    }
    hits
}

/// Passwords in URLs of `line`: `scheme://user:password@host`.
fn connection_hits(path: &str, n: usize, line: &str) -> Vec<Hit> {
    let mut hits = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find("://").map(|i| i + from) {
        from = at + 3;
        let scheme_start = line[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
            .map_or(0, |i| i + 1);
        let scheme = &line[scheme_start..at];
        if !scheme.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let rest = &line[from..];
        let end = rest.find(|c: char| c.is_whitespace() || "/?#\"'<>`,;".contains(c)).unwrap_or(rest.len());
        let authority = &rest[..end];
        let Some((userinfo, host)) = authority.rsplit_once('@') else { continue };
        let Some((user, password)) = userinfo.split_once(':') else { continue };
        if is_placeholder(password) {
            continue;
        }
        let host = host.split(':').next().unwrap_or(host);
        let title = format!("password in a {scheme} URL in {path}:{n}");
        let what = format!("the password of user {user:?} at {host}");
        hits.push(secret_hit(Kind::ConnectionStringPassword, n, title, &what, None, password));
    }
    hits
}

/// Words in a variable name that make its value a secret.
const SECRET_WORDS: [&str; 7] = ["PASS", "SECRET", "TOKEN", "API_KEY", "APIKEY", "PRIVATE_KEY", "CREDENTIAL"];

/// `KEY=value` of a dotenv line when KEY names a secret and the value is
/// set (not empty, not a `${VAR}` reference, not a URL: those are
/// [`connection_hits`]).
fn env_hit(path: &str, n: usize, line: &str) -> Option<Hit> {
    let line = line.trim();
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    if key.starts_with('#') || !SECRET_WORDS.iter().any(|w| key.to_ascii_uppercase().contains(w)) {
        return None;
    }
    let value = value.trim();
    let value = match value.chars().next() {
        Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
        _ => value.split(" #").next().unwrap_or("").trim(),
    };
    if is_placeholder(value) || value.contains("://") {
        return None;
    }
    let title = format!("{key} set in {path}:{n}");
    Some(secret_hit(Kind::EnvSecret, n, title, "a secret in plain text in a .env file", None, value))
}

/// An empty value, a reference (`$VAR`, `${VAR}`, `{{ var }}`, `<password>`,
/// `%s`) or a mask (`****`, `xxxx`): not a secret.
fn is_placeholder(value: &str) -> bool {
    value.is_empty()
        || value.starts_with(['$', '{', '<', '%'])
        || value.chars().all(|c| c == '*')
        || value.chars().all(|c| c == 'x' || c == 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GH: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

    fn one(path: &str, name: &str, text: &str) -> Hit {
        let hits = scan_text(path, name, text);
        assert_eq!(hits.len(), 1, "{hits:#?}");
        hits.into_iter().next().unwrap()
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!("nope".parse::<Kind>(), Err("\"nope\" is not a finding kind".into()));
    }

    #[test]
    fn a_pem_private_key_is_found_and_hashed_whole() {
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAbCd\n-----END RSA PRIVATE KEY-----\n";
        let hit = one("/s/id_rsa", "id_rsa", &format!("x\n{key}"));
        assert_eq!(hit.kind, Kind::PrivateKey);
        assert_eq!(hit.line, Some(2));
        assert_eq!(hit.title, "private key in /s/id_rsa:2");
        let sha = hash(key);
        assert_eq!(
            hit.detail,
            format!("an RSA private key (sha256 {sha}…); keep keys out of shared trees, or in a secret store")
        );
        assert_eq!(hit.severity(), SeverityLevel::Medium);
        let ssh = one("/s/k", "k", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----");
        assert!(ssh.detail.starts_with("an OpenSSH private key (sha256 "), "{}", ssh.detail);
        let pkcs8 = one("/s/k", "k", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----");
        assert!(pkcs8.detail.starts_with("a PKCS#8 private key"), "{}", pkcs8.detail);
        assert!(scan_text("/s/c", "c", "-----BEGIN CERTIFICATE-----\nMIIE\n-----END CERTIFICATE-----").is_empty());
    }

    #[test]
    fn an_aws_key_pair_is_found_with_prefix_and_hash_only() {
        let text = "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = \
                    wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n";
        let hits = scan_text("/s/credentials", "credentials", text);
        assert_eq!(hits.len(), 2, "{hits:#?}");
        assert_eq!(hits[0].title, "AWS access key id in /s/credentials:2");
        assert_eq!(
            hits[0].detail,
            format!(
                "an AWS access key id (AKIA…, sha256 {}…); remove it from the file and rotate it",
                hash("AKIAIOSFODNN7EXAMPLE")
            )
        );
        assert_eq!(hits[0].prefix.as_deref(), Some("AKIA…"));
        assert_eq!(hits[0].severity(), SeverityLevel::High);
        assert_eq!(hits[1].title, "AWS secret access key in /s/credentials:3");
        assert_eq!(hits[1].sha256, Some(hash("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")));
        assert_eq!(hits[1].severity(), SeverityLevel::Critical);
        // Too short, too long, or glued to a word: not an id.
        assert!(scan_text("/s/x", "x", "AKIA123 XAKIAIOSFODNN7EXAMPLE AKIAIOSFODNN7EXAMPLEX").is_empty());
        // A 40-character hex digest far from any key id is not a secret key.
        assert!(scan_text("/s/x", "x", "commit da39a3ee5e6b4b0d3255bfef95601890afd80709").is_empty());
    }

    #[test]
    fn a_google_service_account_key_is_one_critical_finding() {
        let text = r#"{
  "type": "service_account",
  "client_email": "ci@proj.iam.gserviceaccount.com",
  "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n"
}"#;
        let hit = one("/s/sa.json", "sa.json", text);
        assert_eq!(hit.kind, Kind::GcpServiceAccountKey);
        assert_eq!(hit.title, "Google service-account key in /s/sa.json");
        assert_eq!(hit.line, Some(4));
        assert_eq!(
            hit.detail,
            format!(
                "the private key of Google service account ci@proj.iam.gserviceaccount.com (sha256 {}…); remove it \
                 from the file and rotate it",
                hash("-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n")
            )
        );
        assert_eq!(hit.severity(), SeverityLevel::Critical);
        assert!(scan_text("/s/x.json", "x.json", r#"{"type": "authorized_user", "private_key": "k"}"#).is_empty());
    }

    #[test]
    fn github_gitlab_and_slack_tokens_are_found() {
        let hit = one("/s/ci.yml", "ci.yml", &format!("token: {GH}"));
        assert_eq!((hit.kind, hit.title.as_str()), (Kind::GithubToken, "GitHub token in /s/ci.yml:1"));
        assert_eq!(
            hit.detail,
            format!("a GitHub token (ghp_…, sha256 {}…); remove it from the file and rotate it", hash(GH))
        );
        let pat = format!("github_pat_11ABCDEFG0{}", "a1".repeat(30));
        assert_eq!(one("/s/x", "x", &pat).prefix.as_deref(), Some("github_pat_…"));
        let gl = one("/s/x", "x", "GL=glpat-abcdefghij0123456789");
        assert_eq!((gl.kind, gl.prefix.as_deref()), (Kind::GitlabToken, Some("glpat-…")));
        assert_eq!(gl.title, "GitLab token in /s/x:1");
        let slack = one("/s/x", "x", "\"xoxb-1234567890-abcdefghij\"");
        assert_eq!((slack.kind, slack.prefix.as_deref()), (Kind::SlackToken, Some("xoxb-…")));
        assert!(scan_text("/s/x", "x", "ghp_short xoxb-1 glpat-x").is_empty());
    }

    #[test]
    fn passwords_in_env_files_and_urls_are_found() {
        let hit = one("/s/.env", ".env", "# db\nDEBUG=1\nexport DB_PASSWORD=\"hunter2 2\" # old\n");
        assert_eq!(hit.title, "DB_PASSWORD set in /s/.env:3");
        assert_eq!(
            hit.detail,
            format!(
                "a secret in plain text in a .env file (sha256 {}…); remove it from the file and rotate it",
                hash("hunter2 2")
            )
        );
        assert_eq!(one("/s/.env.prod", ".env.prod", "API_TOKEN=abc # note").sha256, Some(hash("abc")));
        // References, empty values and non-secret names are not findings.
        assert!(scan_text("/s/.env", ".env", "DB_PASSWORD=\nAPI_TOKEN=${TOKEN}\nUSER=app\n").is_empty());
        // Outside a .env file, KEY=value is left alone.
        assert!(scan_text("/s/app.conf", "app.conf", "DB_PASSWORD=hunter2").is_empty());

        let url = one("/s/.env", ".env", "DATABASE_URL=postgres://app:s3cr3t@db.internal:5432/app");
        assert_eq!(url.kind, Kind::ConnectionStringPassword);
        assert_eq!(url.title, "password in a postgres URL in /s/.env:1");
        assert_eq!(
            url.detail,
            format!(
                "the password of user \"app\" at db.internal (sha256 {}…); remove it from the file and rotate it",
                hash("s3cr3t")
            )
        );
        assert!(scan_text("/s/x", "x", "postgres://app@db/x https://${U}:${P}@h/ redis://:****@h").is_empty());
    }

    #[test]
    fn mode_bits_give_world_writable_setuid_and_readable_keys() {
        let hits = mode_hits("/s/run", 0o6757, 0, false);
        let titles: Vec<&str> = hits.iter().map(|h| h.title.as_str()).collect();
        assert_eq!(titles, ["/s/run is world-writable", "/s/run is setuid", "/s/run is setgid"]);
        assert_eq!(hits[0].detail, "mode 6757: any user on the machine can change this file");
        assert_eq!(hits[1].detail, "mode 6757, owner uid 0: runs with its owner's privileges whoever starts it");
        assert_eq!(hits[2].severity(), SeverityLevel::Medium);
        assert!(mode_hits("/s/tmp", 0o1777, 0, true).is_empty(), "a sticky shared directory is fine");
        assert_eq!(
            mode_hits("/s/d", 0o777, 0, true)[0].detail,
            "mode 0777: any user on the machine can change this directory"
        );
        assert!(mode_hits("/s/f", 0o644, 0, false).is_empty());

        let others = key_readable_hit("/s/id_rsa", 0o644).unwrap();
        assert_eq!(others.title, "private key /s/id_rsa is readable by any user");
        assert_eq!(others.detail, "mode 0644: only its owner should read a private key (chmod 600)");
        assert_eq!(others.severity(), SeverityLevel::Critical);
        let group = key_readable_hit("/s/id_rsa", 0o640).unwrap();
        assert_eq!(
            (group.title.as_str(), group.severity()),
            ("private key /s/id_rsa is readable by its group", SeverityLevel::High)
        );
        assert!(key_readable_hit("/s/id_rsa", 0o600).is_none());
    }

    #[test]
    fn binary_content_and_env_file_names_are_recognised() {
        assert!(is_binary(b"\x7fELF\0\0"));
        assert!(!is_binary(b"text"));
        for name in [".env", ".env.local", "prod.env"] {
            assert!(is_env_file(name), "{name}");
        }
        for name in ["env", ".envrc", ".env_example"] {
            assert!(!is_env_file(name), "{name}");
        }
    }

    #[test]
    fn no_message_contains_the_secret() {
        let secrets = [GH, "AKIAIOSFODNN7EXAMPLE", "hunter2secret", "s3cr3tpw"];
        let text = format!("{GH}\nAKIAIOSFODNN7EXAMPLE\nDB_PASSWORD=hunter2secret\nX=mysql://root:s3cr3tpw@h/db\n");
        let hits = scan_text("/s/.env", ".env", &text);
        assert_eq!(hits.len(), 4, "{hits:#?}");
        let shown = format!("{hits:?}");
        for s in secrets {
            assert!(!shown.contains(s), "{s} leaked: {shown}");
        }
    }
}
