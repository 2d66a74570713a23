//! `host.http-fetch`: outbound HTTP(S) behind the step's `hosts` grant.
//! The host checks every request and every redirect hop against the
//! allow-list before connecting; bodies and times are bounded.
//!
//! By default outbound HTTP is denied: with an empty `hosts` grant every
//! request fails with an error naming the host to grant.

use super::Denials;
use crate::runtime::bindings::types;
use crate::runtime::grants::HostPattern;
use std::time::{Duration, Instant};
use url::Url;

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 10;
/// Largest response body kept, in bytes; longer bodies are cut and flagged.
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// Timeout of one request unless the guest asks for another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request as the guest sent it (mirrors the WIT record).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
    pub follow_redirects: bool,
}

/// A response handed back to the guest (mirrors the WIT record).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub truncated: bool,
    pub final_url: String,
}

/// Per-step HTTP access.
pub struct HttpCap {
    client: reqwest::Client,
    hosts: Vec<HostPattern>,
    deadline: Instant,
    denials: Denials,
}

impl HttpCap {
    /// Part two: per-step state from the `hosts` grant. `client` must not
    /// follow redirects by itself (see [`client`]).
    pub fn new(client: reqwest::Client, hosts: &[HostPattern], deadline: Instant, denials: Denials) -> Self {
        HttpCap { client, hosts: hosts.to_vec(), deadline, denials }
    }

    /// Part three: `host.http-fetch`.
    pub async fn request(&mut self, req: Request) -> Result<Response, String> {
        let method = reqwest::Method::from_bytes(req.method.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("HTTP method {:?} is not valid", req.method))?;
        let mut url = Url::parse(&req.url).map_err(|e| format!("URL {:?} is not valid: {e}", req.url))?;
        let timeout = req.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let deadline = self.deadline.min(Instant::now() + timeout);
        let mut method = method;
        let mut body = req.body.clone();
        for _hop in 0..=MAX_REDIRECTS {
            self.check(&url)?;
            let mut builder = self.client.request(method.clone(), url.clone());
            for (k, v) in &req.headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            if let Some(b) = &body {
                builder = builder.body(b.clone());
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(format!("request to {url} timed out"));
            }
            let resp = tokio::time::timeout(remaining, builder.send())
                .await
                .map_err(|_| format!("request to {url} timed out after {}", crate::units::format_duration(timeout)))?
                .map_err(|e| format!("request to {url} failed: {}", describe(&e)))?;
            let status = resp.status();
            if req.follow_redirects
                && status.is_redirection()
                && let Some(location) = resp.headers().get(reqwest::header::LOCATION)
            {
                let location = location.to_str().map_err(|_| format!("redirect from {url} has a non-text Location"))?;
                url = url
                    .join(location)
                    .map_err(|e| format!("redirect from {url} to {location:?} is not a valid URL: {e}"))?;
                // 303, and 301/302 after POST, turn into GET without a body, as browsers do.
                if status == reqwest::StatusCode::SEE_OTHER
                    || (method == reqwest::Method::POST && status.as_u16() < 303)
                {
                    method = reqwest::Method::GET;
                    body = None;
                }
                continue;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            return tokio::time::timeout(remaining, read_response(resp))
                .await
                .map_err(|_| format!("reading the response from {url} timed out"))?;
        }
        Err(format!("request to {} followed more than {MAX_REDIRECTS} redirects", req.url))
    }

    /// Checks a URL against the grant, recording a denial that names the host.
    fn check(&self, url: &Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("URL {url} is not http or https"));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string().to_ascii_lowercase(),
            None => return Err(format!("URL {url} has no host")),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        check_host(&self.hosts, &self.denials, &host, port)
    }
}

/// Checks `host` (lowercase; an IPv6 address without brackets) and `port`
/// against a `hosts` grant, recording a denial that names them. Shared with
/// `host.tls-inspect`, which is granted the same way.
pub(super) fn check_host(hosts: &[HostPattern], denials: &Denials, host: &str, port: u16) -> Result<(), String> {
    if hosts.iter().any(|p| p.matches(host, port)) {
        return Ok(());
    }
    let shown = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let granted = if hosts.is_empty() {
        "none".to_string()
    } else {
        hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", ")
    };
    let msg = format!("hosts: {shown} is not granted to this step (granted: {granted})");
    denials.push(msg.clone());
    Err(msg)
}

async fn read_response(mut resp: reqwest::Response) -> Result<Response, String> {
    let status = resp.status().as_u16();
    let final_url = resp.url().to_string();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) =
        resp.chunk().await.map_err(|e| format!("reading the response from {final_url} failed: {}", describe(&e)))?
    {
        let room = MAX_BODY_BYTES - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response { status, headers, body, truncated, final_url })
}

/// The innermost cause of a reqwest error, which is the useful part
/// ("connection refused", "dns error: ...").
fn describe(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    if e.is_timeout() { "timed out".to_string() } else { source.to_string() }
}

/// The shared HTTP client: no automatic redirects (the host follows them,
/// checking each hop), no proxy from the environment.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("tend/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// `host.http-fetch`'s request, in the contract's types.
impl From<types::HttpRequest> for Request {
    fn from(req: types::HttpRequest) -> Request {
        Request {
            method: req.method,
            url: req.url,
            headers: req.headers,
            body: req.body,
            timeout: req.timeout_ms.map(|ms| Duration::from_millis(ms.into())),
            follow_redirects: req.follow_redirects,
        }
    }
}

impl From<Response> for types::HttpResponse {
    fn from(resp: Response) -> types::HttpResponse {
        types::HttpResponse {
            status: resp.status,
            headers: resp.headers,
            body: resp.body,
            truncated: resp.truncated,
            final_url: resp.final_url,
        }
    }
}
