//! What a step is allowed to use beyond pure computation. Everything is
//! denied unless listed here. Parsing and matching only; no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The capabilities granted to one step.
///
/// By default nothing is granted: no directories, no environment
/// variables, no outbound HTTP, no secrets, no machine metrics, and no
/// sockets at all (WASI sockets are never granted; HTTP goes through the
/// host's allow-listed `http-fetch`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    /// Host directories the step sees, e.g. `/var/log:/logs:ro`.
    pub dirs: Vec<DirGrant>,
    /// Environment variables the step sees, e.g. `REGION=eu-west-1`.
    pub env: BTreeMap<String, String>,
    /// Hosts the step may reach over HTTP(S) (`http-fetch`) and TLS
    /// (`tls-inspect`), e.g. `api.example.com`,
    /// `*.example.com`, `localhost:8080`.
    pub hosts: Vec<HostPattern>,
    /// Secret names the step may read, e.g. `slack-webhook`.
    pub secrets: Vec<String>,
    /// Whether the step may read CPU, memory, disk and load of the machine
    /// tend runs on. By default false.
    pub system_metrics: bool,
}

/// One host directory made visible to a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// Directory on the machine, e.g. `/var/log`.
    pub host: PathBuf,
    /// Path the guest opens, e.g. `/logs`.
    pub guest: String,
    /// Whether the step may write. By default read-only.
    pub writable: bool,
}

impl DirGrant {
    /// Parses `HOST_PATH:GUEST_PATH[:ro|:rw]` (read-only unless `:rw`).
    pub fn parse(text: &str) -> Result<DirGrant, String> {
        let expected = "expected HOST_PATH:GUEST_PATH[:ro|:rw], e.g. /var/log:/logs:ro";
        let parts: Vec<&str> = text.split(':').collect();
        let (host, guest, writable) = match parts.as_slice() {
            [h, g] => (*h, *g, false),
            [h, g, "ro"] => (*h, *g, false),
            [h, g, "rw"] => (*h, *g, true),
            [_, _, mode] => return Err(format!("dir grant {text:?}: mode {mode:?} is not ro or rw")),
            _ => return Err(format!("dir grant {text:?}: {expected}")),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(format!("dir grant {text:?}: {expected}"));
        }
        Ok(DirGrant { host: PathBuf::from(host), guest: guest.to_string(), writable })
    }
}

impl fmt::Display for DirGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.writable { "rw" } else { "ro" };
        write!(f, "{}:{}:{mode}", self.host.display(), self.guest)
    }
}

/// A host allowed for outbound HTTP: an exact name (`api.example.com`), a
/// wildcard for subdomains (`*.example.com`, which does not match
/// `example.com` itself), or an IP address, each with an optional port
/// (`localhost:8080`). Without a port, any port matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses a host grant such as `api.example.com`, `*.example.com`,
    /// `127.0.0.1:8080` or `[::1]:80`.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let t = text.trim().to_ascii_lowercase();
        let bad = |why: &str| {
            format!(
                "host grant {text:?}: {why}; expected a host name with an optional port, e.g. api.example.com, *.example.com or localhost:8080"
            )
        };
        if t.is_empty() {
            return Err(bad("empty"));
        }
        if t.contains("://") || t.contains('/') {
            return Err(bad("a URL is not a host"));
        }
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse::<u16>().map_err(|_| bad("port is not a number from 0 to 65535"))?),
                None if after.is_empty() => None,
                None => return Err(bad("unexpected text after ]")),
            };
            (h.to_string(), port)
        } else {
            match t.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => {
                    (h.to_string(), Some(p.parse::<u16>().map_err(|_| bad("port is not a number from 0 to 65535"))?))
                }
                _ => (t.clone(), None),
            }
        };
        let (host, wildcard) = match host.strip_prefix("*.") {
            Some(rest) => (rest.to_string(), true),
            None => (host, false),
        };
        if host.is_empty() || host.contains('*') {
            return Err(bad("a wildcard is only allowed as the first label, as in *.example.com"));
        }
        Ok(HostPattern { host, wildcard, port })
    }

    /// Whether `host` (lower case, IPv6 without brackets) on `port` is allowed.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host.trim_end_matches('.');
        if self.wildcard {
            host.len() > self.host.len()
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let star = if self.wildcard { "*." } else { "" };
        match self.port {
            Some(p) => write!(f, "{star}{host}:{p}"),
            None => write!(f, "{star}{host}"),
        }
    }
}

/// Parses `KEY=VALUE` for an environment grant.
pub fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("env grant {text:?}: expected KEY=VALUE, e.g. REGION=eu-west-1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let p = HostPattern::parse("api.example.com").unwrap();
        assert!(p.matches("api.example.com", 443));
        assert!(!p.matches("evil.com", 443));
        assert!(!p.matches("xapi.example.com", 443));

        let w = HostPattern::parse("*.Example.com").unwrap();
        assert!(w.matches("a.example.com", 80));
        assert!(w.matches("a.b.example.com", 80));
        assert!(!w.matches("example.com", 80));
        assert!(!w.matches("badexample.com", 80));

        let port = HostPattern::parse("localhost:8080").unwrap();
        assert!(port.matches("localhost", 8080));
        assert!(!port.matches("localhost", 8081));

        let v6 = HostPattern::parse("[::1]:80").unwrap();
        assert!(v6.matches("::1", 80));
        assert_eq!(v6.to_string(), "[::1]:80");
        assert_eq!(w.to_string(), "*.example.com");
    }

    #[test]
    fn bad_host_patterns_are_explained() {
        assert_eq!(
            HostPattern::parse("https://x.com/").unwrap_err(),
            "host grant \"https://x.com/\": a URL is not a host; expected a host name with an optional port, e.g. api.example.com, *.example.com or localhost:8080"
        );
        assert!(HostPattern::parse("a.*.com").is_err());
        assert!(HostPattern::parse("x.com:http").is_err());
        assert!(HostPattern::parse("").is_err());
    }

    #[test]
    fn dir_grants() {
        let d = DirGrant::parse("/var/log:/logs").unwrap();
        assert!(!d.writable);
        assert_eq!(d.to_string(), "/var/log:/logs:ro");
        assert!(DirGrant::parse("/tmp/x:/x:rw").unwrap().writable);
        assert_eq!(
            DirGrant::parse("/tmp/x:/x:wx").unwrap_err(),
            "dir grant \"/tmp/x:/x:wx\": mode \"wx\" is not ro or rw"
        );
        assert!(DirGrant::parse("/tmp/x").is_err());
    }

    #[test]
    fn env_grants() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("NOVALUE").is_err());
    }
}
