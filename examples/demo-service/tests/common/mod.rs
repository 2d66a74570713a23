//! Shared helpers of demo-service's end-to-end tests: start the real binary
//! on a free loopback port, a small blocking HTTP/1.1 client (so the tests
//! need no HTTP client crate and can send any bytes), a strict parser of the
//! Prometheus text exposition format 0.0.4, and `histogram_quantile` as
//! Prometheus computes it.

#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The admin token the tests start the service with.
pub const TOKEN: &str = "test-admin-token";

/// How long a test waits for a condition before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The demo-service binary, running; killed when dropped.
pub struct Service {
    child: Child,
    pub addr: String,
    stderr: Arc<Mutex<String>>,
}

impl Service {
    /// Starts with `args` and, unless `args` set them, the admin token,
    /// 200 synthetic requests a second and 200 ms restarts.
    pub fn start(args: &[&str]) -> Service {
        let mut all = args.to_vec();
        for (flag, value) in [("--token", TOKEN), ("--traffic-rps", "200"), ("--restart-ms", "200")] {
            if !args.contains(&flag) {
                all.extend([flag, value]);
            }
        }
        Service::start_exactly(&all, &[])
    }

    /// Starts on 127.0.0.1:0 with exactly `args` and `env` (DEMO_TOKEN is
    /// unset unless `env` sets it).
    pub fn start_exactly(args: &[&str], env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo-service"));
        cmd.args(["--listen", "127.0.0.1:0"]).args(args).env_remove("DEMO_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("demo-service starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.wait();
            panic!("demo-service did not start: {line:?}\n{}", stderr.lock().unwrap());
        };
        Service { addr: addr.to_string(), child, stderr }
    }

    /// What the service wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn get(&self, path: &str) -> Reply {
        request(&self.addr, "GET", path, &[], None)
    }

    /// An admin request with the right token.
    pub fn admin(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let auth = format!("Bearer {TOKEN}");
        request(&self.addr, method, path, &[("Authorization", &auth)], body)
    }

    /// An admin request that must succeed; returns its JSON body.
    pub fn admin_ok(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let reply = self.admin(method, path, body);
        assert!((200..300).contains(&reply.status), "{method} {path}: {} {}", reply.status, reply.body);
        reply.json()
    }

    /// Sets faults; returns every switch.
    pub fn faults(&self, json: &str) -> Value {
        self.admin_ok("POST", "/admin/faults", Some(json))
    }

    pub fn restart(&self) {
        self.admin_ok("POST", "/admin/restart", None);
    }

    /// Restarts and waits until /healthz answers 200 again.
    pub fn restart_and_wait(&self) {
        self.restart();
        self.eventually("the restart completes", || self.get("/healthz").status == 200);
    }

    pub fn scale(&self, replicas: u32) {
        self.admin_ok("POST", "/admin/scale", Some(&format!("{{\"replicas\": {replicas}}}")));
    }

    pub fn clear_cache(&self) {
        self.admin_ok("POST", "/admin/cache/clear", None);
    }

    /// Scrapes /metrics and parses it strictly.
    pub fn metrics(&self) -> Metrics {
        let reply = self.get("/metrics");
        assert_eq!(reply.status, 200, "{}", reply.body);
        parse_exposition(&reply.body).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{}", reply.body))
    }

    /// One sample's value (e.g. `demo_cpu_usage_ratio`,
    /// `demo_requests_total{status="500"}`), scraped now.
    pub fn value(&self, series: &str) -> f64 {
        self.metrics().value(series).unwrap_or_else(|| panic!("no sample {series}"))
    }

    /// Polls `check` every 50 ms until it holds; fails after [`PATIENCE`].
    pub fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        let start = Instant::now();
        while !check() {
            if start.elapsed() > PATIENCE {
                panic!("{what}: not within {PATIENCE:?}\nstderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the requests counted since `from` number at least `n`;
    /// returns the scrape at that point.
    pub fn after_requests(&self, from: &Metrics, n: f64) -> Metrics {
        let mut last = None;
        self.eventually(&format!("{n} more requests"), || {
            let now = self.metrics();
            let more = now.requests() - from.requests();
            last = Some(now);
            more >= n
        });
        last.unwrap()
    }

    /// Waits out requests still in flight (decided before a change; they
    /// take 25 ms at most with no latency fault).
    pub fn settle(&self) {
        std::thread::sleep(Duration::from_millis(300));
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == &name.to_ascii_lowercase()).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The `error` of a JSON error body.
    pub fn error(&self) -> String {
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        self.json()["error"].as_str().unwrap_or_else(|| panic!("no error field: {}", self.body)).to_string()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    raw(addr, head.as_bytes())
}

/// Sends `bytes` as they are and reads the response.
pub fn raw(addr: &str, bytes: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(bytes).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8(response).expect("a UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end: {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Reply { status, headers, body }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// One sample: the series as written (`name{labels}`) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// `name{l1="v1",l2="v2"}`, or `name` with no labels.
    pub fn series(&self) -> String {
        if self.labels.is_empty() {
            return self.name.clone();
        }
        let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

/// A parsed scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    pub families: Vec<Family>,
}

impl Metrics {
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    pub fn value(&self, series: &str) -> Option<f64> {
        self.families.iter().flat_map(|f| &f.samples).find(|s| s.series() == series).map(|s| s.value)
    }

    /// Every request counted, whatever its status.
    pub fn requests(&self) -> f64 {
        self.family("demo_requests_total").map(|f| f.samples.iter().map(|s| s.value).sum()).unwrap_or(0.0)
    }

    pub fn requests_with(&self, status: &str) -> f64 {
        self.value(&format!("demo_requests_total{{status=\"{status}\"}}")).unwrap_or(0.0)
    }

    /// `(le, cumulative count)` of the latency histogram.
    pub fn buckets(&self) -> Vec<(f64, f64)> {
        let family = self.family("demo_request_duration_seconds").expect("the latency histogram");
        family
            .samples
            .iter()
            .filter(|s| s.name == "demo_request_duration_seconds_bucket")
            .map(|s| (parse_value(&s.labels[0].1).unwrap(), s.value))
            .collect()
    }
}

/// Share of the requests counted between two scrapes that ended with
/// `status`.
pub fn share(from: &Metrics, to: &Metrics, status: &str) -> f64 {
    (to.requests_with(status) - from.requests_with(status)) / (to.requests() - from.requests())
}

/// `histogram_quantile(q, increase(buckets))` between two scrapes, as
/// Prometheus computes it: linear within the bucket the rank falls in.
pub fn quantile(q: f64, from: &Metrics, to: &Metrics) -> f64 {
    let buckets: Vec<(f64, f64)> =
        to.buckets().iter().zip(from.buckets()).map(|((le, n), (_, m))| (*le, n - m)).collect();
    let total = buckets.last().unwrap().1;
    assert!(total > 0.0, "no requests between the scrapes");
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for (le, count) in &buckets {
        if *count >= rank {
            if le.is_infinite() {
                return lower.0;
            }
            return lower.0 + (le - lower.0) * (rank - lower.1) / (count - lower.1);
        }
        lower = (*le, *count);
    }
    unreachable!("the +Inf bucket holds every request")
}

/// Parses a sample value the way Prometheus does.
pub fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    valid_name(name) && !name.contains(':')
}

/// Parses the text exposition format 0.0.4 strictly: HELP and TYPE at most
/// once per metric and before its samples; samples of a metric together;
/// valid names, labels and values; no series twice; histograms with
/// ascending `le` bounds, cumulative counts, a `+Inf` bucket equal to
/// `_count`, and a `_sum`; counters not negative.
pub fn parse_exposition(text: &str) -> Result<Metrics, String> {
    if !text.ends_with('\n') {
        return Err("the text does not end with a line feed".to_string());
    }
    let mut families: Vec<Family> = Vec::new();
    let mut seen_series = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("line {}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            let (keyword, name, rest) = (words.next(), words.next(), words.next().unwrap_or(""));
            let (Some(keyword @ ("HELP" | "TYPE")), Some(name)) = (keyword, name) else { continue };
            if !valid_name(name) {
                return Err(format!("{at}: bad metric name {name:?}"));
            }
            let index = match families.iter().position(|f| f.name == name) {
                Some(i) => i,
                None => {
                    families.push(Family {
                        name: name.to_string(),
                        kind: String::new(),
                        help: String::new(),
                        samples: vec![],
                    });
                    families.len() - 1
                }
            };
            let family = &mut families[index];
            if !family.samples.is_empty() {
                return Err(format!("{at}: {keyword} of {name} after its samples"));
            }
            if keyword == "HELP" {
                if !family.help.is_empty() {
                    return Err(format!("{at}: a second HELP for {name}"));
                }
                family.help = rest.to_string();
            } else {
                if !family.kind.is_empty() {
                    return Err(format!("{at}: a second TYPE for {name}"));
                }
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest) {
                    return Err(format!("{at}: unknown type {rest:?}"));
                }
                family.kind = rest.to_string();
            }
            continue;
        }
        let sample = parse_sample(line).map_err(|e| format!("{at}: {e}: {line:?}"))?;
        let owner = families.iter().position(|f| {
            let suffixes: &[&str] = match f.kind.as_str() {
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                _ => &[""],
            };
            suffixes.iter().any(|s| sample.name == format!("{}{s}", f.name))
        });
        let Some(owner) = owner else {
            return Err(format!("{at}: sample {} has no TYPE line before it", sample.name));
        };
        if owner != families.len() - 1 {
            return Err(format!("{at}: a sample of {} after the lines of another metric", families[owner].name));
        }
        if seen_series.insert(sample.series(), ()).is_some() {
            return Err(format!("{at}: the series {} appears twice", sample.series()));
        }
        families[owner].samples.push(sample);
    }
    for family in &families {
        if family.kind.is_empty() {
            return Err(format!("{} has no TYPE line", family.name));
        }
        if family.kind == "counter" && family.samples.iter().any(|s| s.value.is_nan() || s.value < 0.0) {
            return Err(format!("the counter {} has a negative or NaN sample", family.name));
        }
        if family.kind == "histogram" {
            check_histogram(family)?;
        }
    }
    Ok(Metrics { families })
}

fn check_histogram(family: &Family) -> Result<(), String> {
    let name = &family.name;
    let mut last: Option<(f64, f64)> = None;
    for s in family.samples.iter().filter(|s| s.name.ends_with("_bucket")) {
        let le = s.labels.iter().find(|(k, _)| k == "le").ok_or_else(|| format!("{name}: a bucket without le"))?;
        let bound = parse_value(&le.1).ok_or_else(|| format!("{name}: bad le {:?}", le.1))?;
        if let Some((prev_le, prev_count)) = last {
            if bound <= prev_le {
                return Err(format!("{name}: le {} does not ascend", le.1));
            }
            if s.value < prev_count {
                return Err(format!("{name}: bucket le={} counts less than the one before", le.1));
            }
        }
        last = Some((bound, s.value));
    }
    let Some((top, top_count)) = last else { return Err(format!("{name}: no buckets")) };
    if top != f64::INFINITY {
        return Err(format!("{name}: the last bucket is not le=\"+Inf\""));
    }
    let count = family.samples.iter().find(|s| s.name == format!("{name}_count"));
    if count.map(|s| s.value) != Some(top_count) {
        return Err(format!("{name}: _count differs from the +Inf bucket or is missing"));
    }
    if !family.samples.iter().any(|s| s.name == format!("{name}_sum")) {
        return Err(format!("{name}: no _sum"));
    }
    Ok(())
}

/// `name{label="value",...} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let (labels, rest) = match line[name_end..].strip_prefix('{') {
        Some(inner) => parse_labels(inner)?,
        None => (Vec::new(), &line[name_end..]),
    };
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut fields = rest.split(' ');
    let value = fields.next().ok_or("no value")?;
    let value = parse_value(value).ok_or_else(|| format!("bad value {value:?}"))?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("text after the timestamp".to_string());
    }
    Ok(Sample { name: name.to_string(), labels, value })
}

/// Label names and values, in order.
type Labels = Vec<(String, String)>;

/// The labels after `{`, and the text after the closing `}`.
fn parse_labels(mut rest: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("a label without =")?;
        let label = &rest[..eq];
        if !valid_label_name(label) {
            return Err(format!("bad label name {label:?}"));
        }
        let quoted = rest[eq + 1..].strip_prefix('"').ok_or("a label value without quotes")?;
        let mut value = String::new();
        let mut escaped = false;
        let mut end = None;
        for (i, c) in quoted.char_indices() {
            match (escaped, c) {
                (true, 'n') => value.push('\n'),
                (true, '\\' | '"') => value.push(c),
                (true, _) => return Err(format!("bad escape \\{c}")),
                (false, '\\') => {}
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, _) => value.push(c),
            }
            escaped = !escaped && c == '\\';
        }
        let end = end.ok_or("an unclosed label value")?;
        if labels.iter().any(|(k, _)| k == label) {
            return Err(format!("the label {label} appears twice"));
        }
        labels.push((label.to_string(), value));
        rest = &quoted[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("labels must be separated by commas".to_string());
        }
    }
}
