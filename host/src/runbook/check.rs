//! Checks a runbook file and builds the engine's model from it: YAML
//! shape and unknown keys, names and references, CEL and template syntax,
//! cron lines and time zones, durations and sizes, plugins, their config
//! against the schema they declare, and the grants their capabilities need.
//! Collects every problem it can find rather than stopping at the first.
//! No I/O: the caller reads the file and describes the plugins.

use super::expr::{self, Expr, Text, Tmpl};
use super::spec::{self, OnFailureSpec, RepeatBlock, RunbookSpec, StepSpec};
use super::yaml::{self, At, DeError, Node, Pos};
use super::{
    AlertParam, AlertTrigger, Approval, CronTrigger, Item, Missed, Notify, OnFailure, Overlap, Param, Pause, Repeat,
    ReportKind, RetryPolicy, Rule, Runbook, Step, Trigger,
};
use crate::runtime::PluginInfo;
use crate::runtime::grants::{DirGrant, Grants, HostPattern};
use crate::runtime::limits::Limits;
use crate::runtime::record::Severity;
use crate::units::{parse_bytes, parse_duration};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// One problem in a runbook file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
}

/// The plugins a runbook may use: name → what `describe()` returned (None
/// when the plugin is installed but could not be described).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub plugins: BTreeMap<String, Option<PluginInfo>>,
}

impl Catalog {
    fn names(&self) -> Vec<&str> {
        self.plugins.keys().map(String::as_str).collect()
    }
}

/// Checks a runbook's text. Returns the model, or every problem found,
/// sorted by position.
pub fn check(file: &Path, text: &str, catalog: &Catalog) -> Result<Runbook, Vec<Diagnostic>> {
    let root = match yaml::parse(text) {
        Ok(node) => node,
        Err(e) => return Err(vec![Diagnostic { pos: e.pos, message: format!("invalid YAML: {}", e.message) }]),
    };
    let mut cx = Checker {
        diags: Vec::new(),
        catalog,
        step_ids: BTreeMap::new(),
        handler_ids: BTreeSet::new(),
        params: BTreeSet::new(),
        cron_params: Vec::new(),
        reads_history: false,
    };
    let runbook = cx.runbook(&root, file, text);
    let mut diags = cx.diags;
    diags.sort();
    diags.dedup();
    match runbook {
        Some(rb) if diags.is_empty() => Ok(rb),
        _ => Err(diags),
    }
}

/// Checks only the `notify` section of a parsed runbook (the default
/// when it has none).
pub fn notify_section(root: &Node) -> Result<Notify, Vec<Diagnostic>> {
    let catalog = Catalog::default();
    let mut cx = Checker {
        diags: Vec::new(),
        catalog: &catalog,
        step_ids: BTreeMap::new(),
        handler_ids: BTreeSet::new(),
        params: BTreeSet::new(),
        cron_params: Vec::new(),
        reads_history: false,
    };
    let spec = match root.get("notify") {
        Some(node) => cx.read::<spec::NotifySpec>(node, "notify"),
        None => Some(spec::NotifySpec::default()),
    };
    let notify = spec.map(|spec| cx.notify(&spec));
    match notify {
        Some(n) if cx.diags.is_empty() => Ok(n),
        _ => Err(cx.diags),
    }
}

struct Checker<'a> {
    diags: Vec<Diagnostic>,
    catalog: &'a Catalog,
    /// Every step id (steps, loop steps, handlers) and where it is defined.
    step_ids: BTreeMap<String, Pos>,
    handler_ids: BTreeSet<String>,
    params: BTreeSet<String>,
    /// Params of cron triggers, checked against the runbook's params at the end.
    cron_params: Vec<(Pos, Value)>,
    /// Whether an expression read `history`.
    reads_history: bool,
}

/// Names: a letter, then letters, digits, `_` (usable in CEL as `steps.<id>`).
fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Metric names as Prometheus writes them: a letter, `_` or `:`, then
/// letters, digits, `_` or `:`.
fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Runbook names: lower case letters, digits, `-` and `_`, starting with a letter or digit.
fn is_runbook_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && s.len() <= 100
}

impl Checker<'_> {
    fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags.push(Diagnostic { pos, message: message.into() });
    }

    fn de_error(&mut self, e: DeError) {
        self.error(e.pos.unwrap_or_default(), e.to_string());
    }

    /// Reads a typed value, recording unknown keys and the first hard error.
    fn read<T: serde::de::DeserializeOwned>(&mut self, node: &Node, path: &str) -> Option<T> {
        let mut unknown = Vec::new();
        let result = yaml::from_node::<T>(node, path, &mut unknown);
        for e in unknown {
            self.de_error(e);
        }
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.de_error(e);
                None
            }
        }
    }

    fn duration(&mut self, what: &str, d: &Option<At<String>>) -> Option<Duration> {
        let d = d.as_ref()?;
        match parse_duration(&d.value) {
            Ok(v) if v.is_zero() => {
                self.error(d.pos, format!("{what}: must be greater than zero"));
                None
            }
            Ok(v) => Some(v),
            Err(e) => {
                self.error(d.pos, format!("{what}: {e}"));
                None
            }
        }
    }

    /// A pause: a duration, or `${{ CEL }}` (the whole value) evaluated when
    /// the pause starts.
    fn pause(&mut self, what: &str, d: &Option<At<String>>) -> Option<Pause> {
        let src = d.as_ref()?;
        let inner = src.value.trim().strip_prefix("${{").and_then(|rest| rest.strip_suffix("}}"));
        match inner {
            Some(code) => {
                let code = At { pos: src.pos, value: code.trim().to_string() };
                self.cel(what, &code).map(Pause::Expr)
            }
            None => self.duration(what, d).map(Pause::Fixed),
        }
    }

    fn cel(&mut self, what: &str, src: &At<String>) -> Option<Expr> {
        match Expr::compile(&src.value) {
            Ok(e) => {
                self.check_refs(what, src.pos, &src.value, &e.variables());
                Some(e)
            }
            Err(e) => {
                self.error(
                    src.pos,
                    format!("{what}: CEL syntax error in `{}` at column {}: {}", src.value, e.col, e.message),
                );
                None
            }
        }
    }

    fn text(&mut self, what: &str, src: &At<String>) -> Option<Text> {
        match Text::compile(&src.value) {
            Ok((t, names)) => {
                let roots: Vec<String> = names.iter().map(|n| n.split('.').next().unwrap_or("").to_string()).collect();
                for (name, root) in names.iter().zip(&roots) {
                    match root.as_str() {
                        "steps" | "params" | "measured" => {
                            if let Some(second) = name.split('.').nth(1) {
                                let synthetic = format!("{root}.{second}");
                                self.check_refs(what, src.pos, &synthetic, &[]);
                            }
                        }
                        _ => {}
                    }
                }
                self.check_roots(what, src.pos, &roots);
                Some(t)
            }
            Err(e) => {
                self.error(src.pos, format!("{what}: {e}"));
                None
            }
        }
    }

    /// Checks that an expression reads only known variables, steps and params.
    fn check_refs(&mut self, what: &str, pos: Pos, source: &str, variables: &[String]) {
        self.check_roots(what, pos, variables);
        for id in expr::step_refs(source) {
            if !self.step_ids.contains_key(&id) {
                let hint = yaml::did_you_mean(&id, self.step_ids.keys().map(String::as_str))
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                self.error(pos, format!("{what}: refers to unknown step {id:?}{hint}"));
            }
        }
        for id in expr::measured_refs(source) {
            if !self.step_ids.contains_key(&id) {
                let hint = yaml::did_you_mean(&id, self.step_ids.keys().map(String::as_str))
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                self.error(pos, format!("{what}: measured: refers to unknown step {id:?}{hint}"));
            }
        }
        for name in expr::param_refs(source) {
            if !self.params.contains(&name) {
                let hint = yaml::did_you_mean(&name, self.params.iter().map(String::as_str))
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                self.error(pos, format!("{what}: refers to unknown param {name:?}{hint}"));
            }
        }
    }

    fn check_roots(&mut self, what: &str, pos: Pos, variables: &[String]) {
        for v in variables {
            self.reads_history |= v == "history";
            if !expr::ROOTS.contains(&v.as_str()) {
                let hint = yaml::did_you_mean(v, expr::ROOTS.iter().copied())
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                self.error(
                    pos,
                    format!(
                        "{what}: unknown variable {v:?}{hint}; expressions can use params, steps, iteration, run, history and measured"
                    ),
                );
            }
        }
    }

    fn runbook(&mut self, root: &Node, file: &Path, text: &str) -> Option<Runbook> {
        if !matches!(root.value, yaml::Value::Map(_)) {
            self.error(
                root.pos,
                format!("a runbook is a mapping with at least `name` and `steps`, found {}", root.kind()),
            );
            return None;
        }
        let spec: Option<RunbookSpec> = self.read(root, "");
        // When the whole file did not read, read each section alone so every
        // section's first error is reported, not only the file's first.
        let Some(spec) = spec else {
            self.probe_sections(root);
            return None;
        };
        if !is_runbook_name(&spec.name.value) {
            self.error(
                spec.name.pos,
                format!(
                    "name: {:?} is not a valid runbook name; expected lower case letters, digits, `-` and `_`, e.g. \"local-health\"",
                    spec.name.value
                ),
            );
        }

        let params = self.params(&spec);
        // Collect every step id first, so references may point forward.
        let mut step_nodes: Vec<(String, &Node, bool)> = Vec::new(); // (path, node, in loop)
        let mut loops: Vec<(usize, &Node)> = Vec::new();
        for (i, item) in spec.steps.iter().enumerate() {
            if item.get("repeat").is_some() {
                loops.push((i, item));
                if let Some(yaml::Value::Seq(inner)) = item.get("repeat").and_then(|r| r.get("steps")).map(|s| &s.value)
                {
                    for (j, n) in inner.iter().enumerate() {
                        step_nodes.push((format!("steps[{i}].repeat.steps[{j}]"), n, true));
                    }
                }
            } else {
                step_nodes.push((format!("steps[{i}]"), item, false));
            }
        }
        for (i, n) in spec.handlers.iter().enumerate() {
            step_nodes.push((format!("handlers[{i}]"), n, false));
            if let Some(id) = n.get("id").and_then(Node::as_str) {
                self.handler_ids.insert(id.to_string());
            }
        }
        for (_, node, _) in &step_nodes {
            if let Some(id_node) = node.get("id")
                && let Some(id) = id_node.as_str()
            {
                if let Some(first) = self.step_ids.get(id) {
                    let first = *first;
                    self.error(id_node.pos, format!("step id {id:?} is already used at line {}", first.line));
                } else {
                    self.step_ids.insert(id.to_string(), id_node.pos);
                }
            }
        }
        if spec.steps.is_empty() {
            self.error(
                root.get("steps").map(|n| n.pos).unwrap_or(root.pos),
                "steps: a runbook needs at least one step",
            );
        }

        let defaults = self.defaults(&spec.defaults);
        let mut items = Vec::new();
        let mut loop_iter = loops.iter().peekable();
        for (i, item) in spec.steps.iter().enumerate() {
            if loop_iter.peek().is_some_and(|(li, _)| *li == i) {
                loop_iter.next();
                if let Some(r) = self.repeat(item, i, &defaults) {
                    items.push(Item::Repeat(r));
                }
            } else if let Some(s) = self.step(item, &format!("steps[{i}]"), &defaults) {
                items.push(Item::Step(Box::new(s)));
            }
        }
        let mut handlers = Vec::new();
        for (i, n) in spec.handlers.iter().enumerate() {
            if let Some(s) = self.step(n, &format!("handlers[{i}]"), &defaults) {
                if !matches!(s.on_failure, OnFailure::Fail) {
                    self.error(n.pos, format!("handler {:?}: on_failure is not allowed on a handler", s.id));
                }
                handlers.push(s);
            }
        }

        let triggers = self.triggers(&spec);
        let escalations = self.rules(&spec);
        let escalate_findings = match &spec.escalate_findings {
            None => Some(Severity::High),
            Some(s) if s.value == "off" => None,
            Some(s) => self.severity("escalate_findings", s, true),
        };
        let notify = self.notify(&spec.notify);
        let report = spec.report.as_ref().and_then(|r| match r.value.parse::<ReportKind>() {
            Ok(kind) => Some(kind),
            Err(e) => {
                self.error(r.pos, format!("report: {e}"));
                None
            }
        });
        let timeout = self.duration("timeout", &spec.timeout);
        let concurrency = match &spec.concurrency {
            Some(c) if c.value == 0 => {
                self.error(c.pos, "concurrency: must be at least 1");
                None
            }
            c => c.as_ref().map(|c| c.value),
        };
        let rb = Runbook {
            name: spec.name.value.clone(),
            description: spec.description.clone(),
            file: file.to_path_buf(),
            hash: blake3::hash(text.as_bytes()).to_hex().to_string(),
            source: text.to_string(),
            params: params?,
            triggers,
            timeout,
            concurrency,
            items,
            handlers,
            escalations,
            escalate_findings,
            notify,
            reads_history: self.reads_history,
            report,
        };
        for (pos, params) in std::mem::take(&mut self.cron_params) {
            if let Err(errors) = rb.resolve_params(params.as_object().unwrap_or(&Default::default())) {
                for e in errors {
                    self.error(pos, format!("cron trigger params: {e}"));
                }
            }
        }
        Some(rb)
    }

    /// Reads each top-level section on its own, for error collection.
    fn probe_sections(&mut self, root: &Node) {
        if root.get("name").is_none() {
            self.error(root.pos, "missing required key \"name\"");
        }
        if root.get("steps").is_none() {
            self.error(root.pos, "missing required key \"steps\"");
        }
        for (key, value) in root.entries() {
            let k = key.key_text();
            let path = k.as_str();
            match path {
                "name" => drop(self.read::<String>(value, path)),
                "description" => drop(self.read::<Option<String>>(value, path)),
                "params" => drop(self.read::<BTreeMap<String, At<spec::ParamSpec>>>(value, path)),
                "triggers" => drop(self.read::<Vec<At<spec::TriggerSpec>>>(value, path)),
                "defaults" => drop(self.read::<spec::DefaultsSpec>(value, path)),
                "timeout" => drop(self.read::<Option<At<String>>>(value, path)),
                "concurrency" => drop(self.read::<Option<At<u32>>>(value, path)),
                "steps" | "handlers" => {
                    if let Some(items) = self.read::<Vec<Node>>(value, path) {
                        for (i, item) in items.iter().enumerate() {
                            let p = format!("{path}[{i}]");
                            if item.get("repeat").is_some() {
                                drop(self.read::<RepeatBlock>(item, &p));
                            } else {
                                drop(self.read::<StepSpec>(item, &p));
                            }
                        }
                    }
                }
                "escalations" => drop(self.read::<Vec<At<spec::EscalationSpec>>>(value, path)),
                "escalate_findings" => drop(self.read::<Option<At<String>>>(value, path)),
                "notify" => drop(self.read::<spec::NotifySpec>(value, path)),
                "report" => drop(self.read::<Option<At<String>>>(value, path)),
                _ => {} // reported as unknown by the first read
            }
        }
    }

    fn params(&mut self, spec: &RunbookSpec) -> Option<Vec<Param>> {
        let mut out = Vec::new();
        for (name, p) in &spec.params {
            if !is_ident(name) {
                self.error(
                    p.pos,
                    format!("params: {name:?} is not a valid param name; expected letters, digits and `_`"),
                );
            }
            self.params.insert(name.clone());
            let kind = p.value.kind.value;
            if let Some(d) = &p.value.default {
                if p.value.required {
                    self.error(d.pos, format!("param {name:?}: a required param cannot have a default"));
                }
                if !d.value.is_null() && !kind.accepts(&d.value) {
                    self.error(d.pos, format!("param {name:?}: default {} is not a {}", d.value, kind.as_str()));
                }
            }
            if let Some(allowed) = &p.value.allowed {
                for v in &allowed.value {
                    if !kind.accepts(v) {
                        self.error(allowed.pos, format!("param {name:?}: enum value {v} is not a {}", kind.as_str()));
                    }
                }
                if let Some(d) = &p.value.default
                    && !d.value.is_null()
                    && !allowed.value.contains(&d.value)
                {
                    self.error(d.pos, format!("param {name:?}: default {} is not one of its enum values", d.value));
                }
            }
            out.push(Param {
                name: name.clone(),
                kind,
                required: p.value.required,
                default: p.value.default.as_ref().map(|d| d.value.clone()),
                allowed: p.value.allowed.as_ref().map(|a| a.value.clone()),
                description: p.value.description.clone(),
            });
        }
        Some(out)
    }

    fn defaults(&mut self, d: &spec::DefaultsSpec) -> Defaults {
        let timeout = self.duration("defaults.timeout", &d.timeout).unwrap_or(Limits::default().timeout);
        let memory =
            d.memory.as_ref().and_then(|m| self.bytes("defaults.memory", m)).unwrap_or(Limits::default().memory_bytes);
        let retry = match &d.retry {
            Some(r) => self.retry("defaults.retry", r, &RetryPolicy::default()),
            None => RetryPolicy::default(),
        };
        let grants = self.grants("defaults.grants", &d.grants, &Grants::default());
        Defaults { timeout, memory, retry, grants }
    }

    fn bytes(&mut self, what: &str, v: &At<String>) -> Option<u64> {
        match parse_bytes(&v.value) {
            Ok(b) => Some(b),
            Err(e) => {
                self.error(v.pos, format!("{what}: {e}"));
                None
            }
        }
    }

    fn retry(&mut self, what: &str, r: &At<spec::RetrySpec>, base: &RetryPolicy) -> RetryPolicy {
        let mut policy = base.clone();
        let spec = &r.value;
        if let Some(a) = &spec.attempts {
            if a.value == 0 || a.value > 100 {
                self.error(a.pos, format!("{what}.attempts: {} is out of range; expected 1 to 100", a.value));
            } else {
                policy.attempts = a.value;
            }
        }
        if let Some(b) = &spec.backoff {
            policy.backoff = b.value;
        }
        if let Some(d) = self.duration(&format!("{what}.delay"), &spec.delay) {
            policy.delay = d;
        }
        if let Some(d) = self.duration(&format!("{what}.max_delay"), &spec.max_delay) {
            policy.max_delay = d;
        }
        if policy.max_delay < policy.delay {
            self.error(r.pos, format!("{what}: max_delay is shorter than delay"));
        }
        if let Some(j) = spec.jitter {
            policy.jitter = j;
        }
        if let Some(on) = &spec.retry_on {
            policy.retry_on = on.iter().map(|o| o.value).collect();
        }
        policy
    }

    fn grants(&mut self, what: &str, g: &spec::GrantsSpec, base: &Grants) -> Grants {
        let mut grants = base.clone();
        for h in &g.hosts {
            match HostPattern::parse(&h.value) {
                Ok(p) if !grants.hosts.contains(&p) => grants.hosts.push(p),
                Ok(_) => {}
                Err(e) => self.error(h.pos, format!("{what}.hosts: {e}")),
            }
        }
        for d in &g.dirs {
            match DirGrant::parse(&d.value) {
                Ok(dir) => {
                    if !dir.host.is_absolute() {
                        self.error(d.pos, format!("{what}.dirs: {:?}: the host path must be absolute", d.value));
                    }
                    grants.dirs.push(dir)
                }
                Err(e) => self.error(d.pos, format!("{what}.dirs: {e}")),
            }
        }
        grants.env.extend(g.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        for s in &g.secrets {
            if s.value.is_empty() {
                self.error(s.pos, format!("{what}.secrets: a secret name cannot be empty"));
            } else if !grants.secrets.contains(&s.value) {
                grants.secrets.push(s.value.clone());
            }
        }
        grants.system_metrics |= g.system_metrics;
        grants
    }

    fn repeat(&mut self, node: &Node, index: usize, defaults: &Defaults) -> Option<Repeat> {
        let path = format!("steps[{index}]");
        let block: RepeatBlock = self.read(node, &path)?;
        let r = &block.repeat.value;
        let id = r.id.as_ref().map(|i| i.value.clone()).unwrap_or_else(|| "repeat".into());
        if let Some(i) = &r.id
            && !is_ident(&i.value)
        {
            self.error(i.pos, format!("repeat id {:?}: expected letters, digits and `_`", i.value));
        }
        let what = format!("repeat {id:?}");
        let until = self.cel(&format!("{what}: until"), &r.until);
        if r.max_iterations.value == 0 || r.max_iterations.value > 10_000 {
            self.error(
                r.max_iterations.pos,
                format!("{what}: max_iterations {} is out of range; expected 1 to 10000", r.max_iterations.value),
            );
        }
        let interval = self.pause(&format!("{what}: interval"), &r.interval);
        let fail_when_exhausted = match &r.on_exhausted {
            None => false,
            Some(v) if v.value == "continue" => false,
            Some(v) if v.value == "fail" => true,
            Some(v) => {
                self.error(v.pos, format!("{what}: on_exhausted {:?} is not \"continue\" or \"fail\"", v.value));
                false
            }
        };
        if r.steps.is_empty() {
            self.error(block.repeat.pos, format!("{what}: steps: a loop needs at least one step"));
        }
        let mut steps = Vec::new();
        for (j, n) in r.steps.iter().enumerate() {
            if n.get("repeat").is_some() {
                self.error(n.pos, format!("{what}: loops cannot be nested"));
                continue;
            }
            if let Some(s) = self.step(n, &format!("{path}.repeat.steps[{j}]"), defaults) {
                steps.push(s);
            }
        }
        Some(Repeat { id, until: until?, max_iterations: r.max_iterations.value, interval, fail_when_exhausted, steps })
    }

    fn step(&mut self, node: &Node, path: &str, defaults: &Defaults) -> Option<Step> {
        let spec: StepSpec = self.read(node, path)?;
        let id = spec.id.value.clone();
        if !is_ident(&id) {
            self.error(
                spec.id.pos,
                format!("step id {id:?} is not valid: expected a letter, then letters, digits and `_` (ids are used in expressions as steps.<id>)"),
            );
        }
        let what = format!("step {id:?}");
        let mut ok = true;

        let info = match self.catalog.plugins.get(&spec.plugin.value) {
            Some(info) => info.clone(),
            None => {
                let names = self.catalog.names();
                let hint = yaml::did_you_mean(&spec.plugin.value, names.iter().copied())
                    .map(|s| format!("did you mean {s:?}? "))
                    .unwrap_or_default();
                self.error(
                    spec.plugin.pos,
                    format!(
                        "{what}: plugin {:?} is not installed ({hint}installed: {})",
                        spec.plugin.value,
                        names.join(", ")
                    ),
                );
                ok = false;
                None
            }
        };

        let mut terrs = Vec::new();
        let config = match &spec.config {
            Some(n) => Tmpl::compile(&n.value, "with", &mut terrs),
            None => Tmpl::Lit(Value::Object(Default::default())),
        };
        let input = match &spec.input {
            Some(n) => Tmpl::compile(&n.value, "input", &mut terrs),
            None => Tmpl::Lit(Value::Null),
        };
        for e in &terrs {
            self.error(e.pos, format!("{what}: {}: {}", e.path, e.message));
            ok = false;
        }
        for (field, tmpl, node) in [("with", &config, &spec.config), ("input", &input, &spec.input)] {
            let pos = node.as_ref().map(|n| n.pos).unwrap_or(spec.id.pos);
            for e in tmpl.exprs() {
                self.check_refs(&format!("{what}: {field}"), pos, &e.source, &e.variables());
            }
        }
        let when = match &spec.when {
            Some(w) => {
                let e = self.cel(&format!("{what}: when"), w);
                ok &= e.is_some();
                e
            }
            None => None,
        };

        let mut limits = Limits { timeout: defaults.timeout, memory_bytes: defaults.memory, ..Limits::default() };
        if let Some(t) = self.duration(&format!("{what}: timeout"), &spec.timeout) {
            limits.timeout = t;
        }
        if let Some(m) = spec.memory.as_ref().and_then(|m| self.bytes(&format!("{what}: memory"), m)) {
            limits.memory_bytes = m;
        }
        if let Some(s) = spec.stack.as_ref().and_then(|s| self.bytes(&format!("{what}: stack"), s)) {
            limits.stack_bytes = s as usize;
        }
        if let Err(e) = limits.check() {
            self.error(spec.id.pos, format!("{what}: {e}"));
        }
        let retry = match &spec.retry {
            Some(r) => self.retry(&format!("{what}: retry"), r, &defaults.retry),
            None => defaults.retry.clone(),
        };
        let on_failure = match &spec.on_failure {
            None => OnFailure::Fail,
            Some(o) => match &o.value {
                OnFailureSpec::Fail => OnFailure::Fail,
                OnFailureSpec::Continue => OnFailure::Continue,
                OnFailureSpec::Run(ids) => {
                    if ids.is_empty() {
                        self.error(o.pos, format!("{what}: on_failure: the list of handlers is empty"));
                    }
                    for h in ids {
                        if !self.handler_ids.contains(h) {
                            let hint = yaml::did_you_mean(h, self.handler_ids.iter().map(String::as_str))
                                .map(|s| format!(" (did you mean {s:?}?)"))
                                .unwrap_or_default();
                            self.error(
                                o.pos,
                                format!("{what}: on_failure names {h:?}, which is not a step under `handlers`{hint}"),
                            );
                        }
                    }
                    OnFailure::Run(ids.clone())
                }
            },
        };
        let grants = self.grants(&format!("{what}: grants"), &spec.grants, &defaults.grants);
        let approval = match &spec.approval {
            None => None,
            Some(a) => {
                let message = a.value.message.as_ref().and_then(|m| self.text(&format!("{what}: approval.message"), m));
                let timeout = self
                    .duration(&format!("{what}: approval.timeout"), &a.value.timeout)
                    .unwrap_or(Duration::from_secs(3600));
                let approve_on_timeout = match &a.value.on_timeout {
                    None => false,
                    Some(v) if v.value == "reject" => false,
                    Some(v) if v.value == "approve" => true,
                    Some(v) => {
                        self.error(
                            v.pos,
                            format!("{what}: approval.on_timeout {:?} is not \"reject\" or \"approve\"", v.value),
                        );
                        false
                    }
                };
                Some(Approval { message, timeout, approve_on_timeout })
            }
        };

        let compare = self.compare(&what, &spec.compare);
        let delay = self.pause(&format!("{what}: delay"), &spec.delay);

        if let Some(info) = &info {
            self.check_config(&what, &spec, info, &config);
            self.check_capabilities(&what, &spec, info, &grants);
        }
        if !ok {
            return None;
        }
        Some(Step {
            id,
            plugin: spec.plugin.value.clone(),
            config,
            input,
            when,
            limits,
            retry,
            on_failure,
            grants,
            approval,
            idempotent: spec.idempotent,
            compare,
            delay,
        })
    }

    /// A step's `compare`: a non-empty list of distinct metric names.
    fn compare(&mut self, what: &str, compare: &Option<At<Vec<At<String>>>>) -> Vec<String> {
        let Some(list) = compare else { return Vec::new() };
        if list.value.is_empty() {
            self.error(
                list.pos,
                format!("{what}: compare: the list of metrics is empty; name at least one, e.g. [health_score]"),
            );
        }
        let mut names: Vec<String> = Vec::new();
        for (i, name) in list.value.iter().enumerate() {
            if !is_metric_name(&name.value) {
                self.error(
                    name.pos,
                    format!(
                        "{what}: compare[{i}]: {:?} is not a valid metric name; expected a letter, `_` or `:`, then letters, digits, `_` or `:` (e.g. health_score)",
                        name.value
                    ),
                );
            } else if names.contains(&name.value) {
                self.error(name.pos, format!("{what}: compare[{i}]: metric {:?} is listed twice", name.value));
            } else {
                names.push(name.value.clone());
            }
        }
        names
    }

    /// Checks the literal parts of a step's config against the plugin's
    /// JSON Schema; values computed by `${{ }}` are checked when the step runs.
    fn check_config(&mut self, what: &str, spec: &StepSpec, info: &PluginInfo, config: &Tmpl) {
        let Some(schema) = &info.config_schema else { return };
        let validator = match jsonschema::validator_for(schema) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("plugin {:?} declares an unusable config schema: {e}", info.name);
                return;
            }
        };
        let dynamic = config.dynamic_pointers();
        let instance = config.static_json();
        let pos = spec.config.as_ref().map(|c| c.pos).unwrap_or(spec.plugin.pos);
        for err in validator.iter_errors(&instance) {
            let at = err.instance_path().as_str().to_string();
            if dynamic.iter().any(|d| at == *d || at.starts_with(&format!("{d}/"))) {
                continue;
            }
            let node_pos = spec.config.as_ref().and_then(|c| pointer_pos(&c.value, &at)).unwrap_or(pos);
            let field = if at.is_empty() { "with".to_string() } else { format!("with{}", at.replace('/', ".")) };
            self.error(node_pos, format!("{what}: {field}: {err} (config schema of plugin {:?})", info.name));
        }
    }

    /// A plugin's declared capabilities need their grants.
    fn check_capabilities(&mut self, what: &str, spec: &StepSpec, info: &PluginInfo, grants: &Grants) {
        for cap in &info.capabilities {
            let missing = match cap.as_str() {
                "http" if grants.hosts.is_empty() => Some("grants.hosts (e.g. hosts: [api.example.com])"),
                "tls" if grants.hosts.is_empty() => Some("grants.hosts (e.g. hosts: [\"api.example.com:443\"])"),
                "system-metrics" if !grants.system_metrics => Some("grants.system_metrics: true"),
                "secrets" if grants.secrets.is_empty() => Some("grants.secrets (e.g. secrets: [api-token])"),
                "fs" if grants.dirs.is_empty() => Some("grants.dirs (e.g. dirs: [\"/var/log:/logs:ro\"])"),
                "env" if grants.env.is_empty() => Some("grants.env (e.g. env: {REGION: eu-west-1})"),
                _ => None,
            };
            if let Some(grant) = missing {
                self.error(
                    spec.plugin.pos,
                    format!(
                        "{what}: plugin {:?} needs the {cap:?} capability, but the step is not granted it; add {grant}",
                        info.name
                    ),
                );
            }
        }
    }

    fn severity(&mut self, what: &str, s: &At<String>, allow_info: bool) -> Option<Severity> {
        let names: &[&str] = if allow_info {
            &["critical", "high", "medium", "low", "info"]
        } else {
            &["critical", "high", "medium", "low"]
        };
        if names.contains(&s.value.as_str()) {
            serde_json::from_value(Value::String(s.value.clone())).ok()
        } else {
            let hint = yaml::did_you_mean(&s.value, names.iter().copied())
                .map(|h| format!(" (did you mean {h:?}?)"))
                .unwrap_or_default();
            self.error(
                s.pos,
                format!("{what}: severity {:?} is not one of {}{hint}", s.value, yaml::quote_list(names)),
            );
            None
        }
    }

    fn rules(&mut self, spec: &RunbookSpec) -> Vec<Rule> {
        let mut out = Vec::new();
        for (i, r) in spec.escalations.iter().enumerate() {
            let what = format!("escalations[{i}]");
            let when = self.cel(&format!("{what}: when"), &r.value.when);
            let severity = self.severity(&what, &r.value.severity, false);
            let message = self.text(&format!("{what}: message"), &r.value.message);
            let dedup_key = match &r.value.dedup_key {
                Some(k) => self.text(&format!("{what}: dedup_key"), k).map(Some),
                None => Some(None),
            };
            let auto_resolve = r.value.auto_resolve.unwrap_or(false);
            if let (Some(when), Some(severity), Some(message), Some(dedup_key)) = (when, severity, message, dedup_key) {
                out.push(Rule { index: i, when, severity, message, dedup_key, auto_resolve });
            }
        }
        out
    }

    fn triggers(&mut self, spec: &RunbookSpec) -> Vec<Trigger> {
        let mut out = Vec::new();
        for (i, t) in spec.triggers.iter().enumerate() {
            let what = format!("triggers[{i}]");
            let v = &t.value;
            let kinds = usize::from(v.cron.is_some()) + usize::from(v.http.is_some()) + usize::from(v.alert.is_some());
            if kinds != 1 {
                self.error(t.pos, format!("{what}: a trigger has exactly one of `cron`, `http` or `alert`"));
                continue;
            }
            if v.cron.is_none()
                && (v.timezone.is_some()
                    || v.overlap.is_some()
                    || v.missed.is_some()
                    || v.missed_window.is_some()
                    || v.jitter.is_some()
                    || (v.params.is_some() && v.alert.is_none()))
            {
                self.error(t.pos, format!("{what}: timezone, params, overlap, missed, missed_window and jitter only apply to a cron trigger (params also to an alert trigger)"));
            }
            if let Some(cron) = &v.cron {
                let line = match crate::cron::Line::parse(&cron.value) {
                    Ok(line) => Some(line),
                    Err(e) => {
                        self.error(
                            cron.pos,
                            format!("{what}: cron {:?} is not a valid 5-field crontab line or @macro: {e}", cron.value),
                        );
                        None
                    }
                };
                let tz = v.timezone.as_ref().map(|z| z.value.clone()).unwrap_or_else(|| "UTC".into());
                let zone = match jiff::tz::TimeZone::get(&tz) {
                    Ok(zone) => Some(zone),
                    Err(_) => {
                        let pos = v.timezone.as_ref().map(|z| z.pos).unwrap_or(t.pos);
                        self.error(pos, format!("{what}: time zone {tz:?} is not a known IANA time zone (e.g. \"Europe/Paris\", \"UTC\")"));
                        None
                    }
                };
                let params = v.params.as_ref().map(|p| p.value.clone()).unwrap_or(Value::Object(Default::default()));
                if let Some(p) = &v.params
                    && !p.value.is_object()
                {
                    self.error(p.pos, format!("{what}: params must be a mapping"));
                }
                let overlap = match v.overlap.as_ref().map(|o| (o.value.as_str(), o.pos)) {
                    None | Some(("skip", _)) => Overlap::Skip,
                    Some(("queue", _)) => Overlap::Queue,
                    Some(("allow", _)) => Overlap::Allow,
                    Some((other, pos)) => {
                        self.error(pos, format!("{what}: overlap {other:?} is not \"skip\", \"queue\" or \"allow\""));
                        Overlap::Skip
                    }
                };
                let missed = match v.missed.as_ref().map(|o| (o.value.as_str(), o.pos)) {
                    None | Some(("last", _)) => Missed::Last,
                    Some(("none", _)) => Missed::None,
                    Some(("all", _)) => Missed::All,
                    Some((other, pos)) => {
                        self.error(pos, format!("{what}: missed {other:?} is not \"none\", \"last\" or \"all\""));
                        Missed::Last
                    }
                };
                let missed_window = self
                    .duration(&format!("{what}: missed_window"), &v.missed_window)
                    .unwrap_or(Duration::from_secs(86_400));
                let jitter = self.duration(&format!("{what}: jitter"), &v.jitter).unwrap_or(Duration::ZERO);
                self.cron_params.push((v.params.as_ref().map(|p| p.pos).unwrap_or(cron.pos), params.clone()));
                if let (Some(line), Some(zone)) = (line, zone) {
                    let trigger = CronTrigger {
                        expr: cron.value.clone(),
                        timezone: tz,
                        schedule: crate::cron::Schedule::new(line, zone),
                        params,
                        overlap,
                        missed,
                        missed_window,
                        jitter,
                    };
                    self.cron_timing(&what, cron.pos, v.jitter.as_ref().map(|j| j.pos), &trigger);
                    out.push(Trigger::Cron(trigger));
                }
            } else if let Some(http) = v.http {
                if http {
                    out.push(Trigger::Http);
                }
            } else if let Some(alert) = &v.alert {
                let mut regexes = Vec::new();
                for (label, re) in &alert.match_re {
                    match regex::Regex::new(&format!("^(?:{})$", re.value)) {
                        Ok(r) => regexes.push((label.clone(), r)),
                        Err(e) => self
                            .error(re.pos, format!("{what}: alert.match_re.{label}: invalid regular expression: {e}")),
                    }
                }
                if alert.exact.is_empty() && alert.match_re.is_empty() {
                    self.error(
                        t.pos,
                        format!("{what}: an alert trigger needs at least one label in `match` or `match_re`"),
                    );
                }
                let params = self.alert_params(&what, v.params.as_ref());
                out.push(Trigger::Alert(AlertTrigger { exact: alert.exact.clone(), regex: regexes, params }));
            }
        }
        out
    }

    /// The params of an alert trigger: known params, strings checked as
    /// templates that read only `alert`.
    fn alert_params(&mut self, what: &str, params: Option<&At<Value>>) -> Vec<(String, AlertParam)> {
        let Some(p) = params else { return Vec::new() };
        let Value::Object(map) = &p.value else {
            self.error(p.pos, format!("{what}: params must be a mapping"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, value) in map {
            if !self.params.contains(name) {
                let hint = yaml::did_you_mean(name, self.params.iter().map(String::as_str))
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                self.error(p.pos, format!("{what}: params: {name:?} is not a param of the runbook{hint}"));
                continue;
            }
            let param = match value {
                Value::String(text) => match Text::compile(text) {
                    Ok((t, names)) => {
                        for n in names.iter().filter(|n| n.split('.').next() != Some("alert")) {
                            self.error(
                                p.pos,
                                format!("{what}: params.{name}: unknown variable {n:?}; an alert trigger's params can use `alert` ({{{{ alert.labels.instance }}}}, alert.annotations, alert.status, alert.starts_at, alert.fingerprint)"),
                            );
                        }
                        AlertParam::Template(t)
                    }
                    Err(e) => {
                        self.error(p.pos, format!("{what}: params.{name}: {e}"));
                        continue;
                    }
                },
                other => AlertParam::Literal(other.clone()),
            };
            out.push((name.clone(), param));
        }
        out
    }

    /// A cron line that never matches a date (`0 0 30 2 *`) is an error, and
    /// so is a jitter as long as the shortest time between two fires: the
    /// scheduler could then not tell a jittered fire from the next one.
    fn cron_timing(&mut self, what: &str, cron_pos: Pos, jitter_pos: Option<Pos>, t: &CronTrigger) {
        let now = jiff::Timestamp::now();
        if t.schedule.next_after(now).is_none() {
            self.error(cron_pos, format!("{what}: cron {:?} never fires: no date matches it", t.expr));
            return;
        }
        // Only a jitter needs the shortest gap (200 fire times: the bulk of
        // checking a runbook with many cron triggers).
        let Some(jitter_pos) = jitter_pos else { return };
        let fires = t.schedule.next_fires(now, 100);
        // Also the fires around the next two daylight-saving changes (a job
        // may fire twice within an hour on a fall-back day), so the answer
        // does not depend on the date of the check.
        let day = jiff::SignedDuration::from_hours(24);
        let mut runs = vec![fires];
        if let Ok(tz) = jiff::tz::TimeZone::get(&t.timezone) {
            for change in tz.following(now).take(2) {
                let from = change.timestamp().checked_sub(day).unwrap_or(now);
                runs.push(t.schedule.next_fires(from, 50));
            }
        }
        let shortest = runs.iter().flat_map(|r| r.windows(2).map(|w| w[1].duration_since(w[0]))).min();
        if let Some(gap) = shortest
            && t.jitter.as_secs_f64() >= gap.as_secs_f64()
        {
            let gap = Duration::from_secs_f64(gap.as_secs_f64());
            self.error(
                jitter_pos,
                format!(
                    "{what}: jitter {} must be shorter than the shortest time between two fires of {:?} ({})",
                    crate::units::format_duration(t.jitter),
                    t.expr,
                    crate::units::format_duration(gap)
                ),
            );
        }
    }

    fn notify(&mut self, n: &spec::NotifySpec) -> Notify {
        use crate::notify::{Field, Webhook, WebhookSettings};
        let mut webhooks = Vec::new();
        for (i, w) in n.webhooks.iter().enumerate() {
            let what = format!("notify.webhooks[{i}]");
            let v = &w.value;
            fn text(s: &Option<At<String>>) -> Option<&str> {
                s.as_ref().map(|s| s.value.as_str())
            }
            let settings = WebhookSettings {
                url: text(&v.url),
                url_secret: text(&v.url_secret),
                format: text(&v.format),
                routing_key_secret: text(&v.routing_key_secret),
            };
            match Webhook::from_settings(settings) {
                Ok(hook) => webhooks.push(hook),
                Err(problems) => {
                    for (field, message) in problems {
                        let pos = match field {
                            Field::Sink => w.pos,
                            Field::Url => v.url.as_ref().map_or(w.pos, |u| u.pos),
                            Field::Format => v.format.as_ref().map_or(w.pos, |f| f.pos),
                            Field::RoutingKeySecret => v.routing_key_secret.as_ref().map_or(w.pos, |k| k.pos),
                        };
                        self.error(pos, format!("{what}: {message}"));
                    }
                }
            }
        }
        let dedup_window = self.duration("notify.dedup_window", &n.dedup_window).unwrap_or(Duration::from_secs(3600));
        Notify { webhooks, dedup_window, log: n.log.unwrap_or(true) }
    }
}

/// Settings steps inherit.
struct Defaults {
    timeout: Duration,
    memory: u64,
    retry: RetryPolicy,
    grants: Grants,
}

/// The position of the node a JSON pointer (`/targets/0`) designates.
fn pointer_pos(node: &Node, pointer: &str) -> Option<Pos> {
    let mut cur = node;
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        cur = match &cur.value {
            yaml::Value::Map(_) => cur.get(&seg)?,
            yaml::Value::Seq(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur.pos)
}
