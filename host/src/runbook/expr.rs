//! Expressions in runbooks: CEL conditions (`when`, `until`, escalation
//! rules), `${{ CEL }}` values inside `with` and `input`, and minijinja
//! text templates (escalation messages and dedup keys, approval messages).
//! Compiles once when a runbook loads; evaluates against a [`Scope`].
//! Pure: no I/O.
//!
//! Every expression sees the same variables:
//! - `params`: the run's parameters, after defaults;
//! - `steps.<id>`: `{status, output, metrics, series, by_label, findings}`
//!   of each step, as [`super::view`] builds and documents it;
//! - `iteration`: 0 outside a `repeat` block, 1, 2, ... inside;
//! - `run`: `{id, runbook, trigger}`;
//! - `history.<id>.<metric>`: what step `<id>` measured in this runbook's
//!   earlier runs, one value per run (its last), oldest first, for metrics
//!   without labels; `history.<id>` is `{}` for a step with no history yet;
//! - `measured.<id>.<metric>`: what step `<id>` measured so far in this
//!   run, one value per attempt that emitted the metric (the value
//!   `metrics.<metric>` shows), latest last; `measured.<id>` is `{}` until
//!   the step emits.

use super::yaml::{Node, Pos, Value as YamlValue};
use serde_json::Value;
use std::sync::{Arc, LazyLock};

/// The variables every expression may use.
pub const ROOTS: &[&str] = &["params", "steps", "iteration", "run", "history", "measured"];

/// The CEL environment: the standard library.
static CEL_ENV: LazyLock<Arc<cel::Env>> = LazyLock::new(|| Arc::new(cel::Env::stdlib()));

/// The values expressions are evaluated against.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Scope {
    pub params: Value,
    pub steps: Value,
    pub iteration: u32,
    pub run: Value,
    pub history: Value,
    pub measured: Value,
}

impl Scope {
    /// The scope as one JSON object (for templates and for display).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "params": self.params, "steps": self.steps, "iteration": self.iteration, "run": self.run,
            "history": self.history, "measured": self.measured,
        })
    }

    /// A CEL context holding the scope's variables.
    fn cel_context(&self) -> Result<cel::Context<'static, 'static>, String> {
        let mut ctx = cel::Context::with_env(CEL_ENV.clone());
        for (name, value) in [
            ("params", &self.params),
            ("steps", &self.steps),
            ("run", &self.run),
            ("history", &self.history),
            ("measured", &self.measured),
        ] {
            ctx.add_variable_from_value(name, json_to_cel(value));
        }
        ctx.add_variable_from_value("iteration", cel::Value::Int(i64::from(self.iteration)));
        Ok(ctx)
    }
}

/// JSON to CEL. Integers become CEL `int` (not `uint`, which is what
/// `cel::to_value` picks for non-negative numbers), so `x + 1` works.
fn json_to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(cel::Value::Int)
            .or_else(|| n.as_u64().map(cel::Value::UInt))
            .unwrap_or_else(|| cel::Value::Float(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(json_to_cel).collect())),
        Value::Object(map) => cel::Value::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_cel(v)))
                .collect::<std::collections::HashMap<String, cel::Value>>()
                .into(),
        ),
    }
}

/// A compiled CEL expression.
#[derive(Clone)]
pub struct Expr {
    /// The expression as written, e.g. `steps.score.output.score >= 8`.
    pub source: String,
    program: Arc<cel::Program>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

/// A CEL syntax error: where in the expression, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// 1-based line and column inside the expression text.
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl Expr {
    /// Compiles `source`. The error is the first syntax error CEL reports.
    pub fn compile(source: &str) -> Result<Expr, SyntaxError> {
        match CEL_ENV.compile(source) {
            Ok(program) => Ok(Expr { source: source.to_string(), program: Arc::new(program) }),
            Err(errors) => {
                let first = errors.errors.first();
                Err(SyntaxError {
                    line: first.map(|e| e.pos.0.max(1) as u32).unwrap_or(1),
                    col: first.map(|e| e.pos.1.max(0) as u32 + 1).unwrap_or(1),
                    message: first.map(|e| e.msg.clone()).unwrap_or_else(|| "invalid expression".into()),
                })
            }
        }
    }

    /// Top-level variables the expression reads (e.g. `params`, `steps`);
    /// the variables of macros such as `list.all(x, x > 0)` are left out.
    pub fn variables(&self) -> Vec<String> {
        let refs = self.program.references();
        let bound = macro_vars(&self.source);
        let mut vars: Vec<String> =
            refs.variables().into_iter().filter(|v| !bound.iter().any(|b| b == v)).map(str::to_string).collect();
        vars.sort();
        vars
    }

    /// Evaluates to JSON.
    pub fn eval(&self, scope: &Scope) -> Result<Value, String> {
        let ctx = scope.cel_context()?;
        self.eval_in(&ctx)
    }

    fn eval_in(&self, ctx: &cel::Context) -> Result<Value, String> {
        let value = self.program.execute(ctx).map_err(|e| format!("`{}`: {e}", self.source))?;
        value.json().map_err(|e| format!("`{}`: the result cannot be turned into JSON: {e:?}", self.source))
    }

    /// Evaluates a condition; anything but a boolean is an error.
    pub fn eval_bool(&self, scope: &Scope) -> Result<bool, String> {
        match self.eval(scope)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("`{}` gave {}, expected true or false", self.source, describe(&other))),
        }
    }
}

/// Names bound by the macros `all`, `exists`, `exists_one`, `map` and
/// `filter` (their first argument).
fn macro_vars(source: &str) -> Vec<String> {
    let code = blank_strings(source);
    let mut out = Vec::new();
    for m in ["all(", "exists(", "exists_one(", "map(", "filter("] {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(m) {
            let after = &rest[i + m.len()..];
            let preceded_by_dot = rest[..i].trim_end().ends_with('.');
            let name: String =
                after.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if preceded_by_dot && !name.is_empty() && after.trim_start()[name.len()..].trim_start().starts_with(',') {
                out.push(name);
            }
            rest = after;
        }
    }
    out
}

/// `number 3`, `string "x"`, `null`, ... for messages.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Step ids an expression's text refers to as `steps.<id>` or
/// `steps["<id>"]`, in order of appearance. String literals are skipped.
pub fn step_refs(source: &str) -> Vec<String> {
    refs_after(source, "steps")
}

/// Step ids an expression's text refers to as `measured.<id>`.
pub fn measured_refs(source: &str) -> Vec<String> {
    refs_after(source, "measured")
}

/// Param names an expression's text refers to as `params.<name>`.
pub fn param_refs(source: &str) -> Vec<String> {
    refs_after(source, "params")
}

fn refs_after(source: &str, root: &str) -> Vec<String> {
    let code = blank_strings(source);
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(found) = code[i..].find(root) {
        let start = i + found;
        let end = start + root.len();
        i = end;
        let before_ok = start == 0 || !is_ident(bytes[start - 1]) && bytes[start - 1] != b'.';
        if !before_ok {
            continue;
        }
        let rest = &source[end..];
        let name = if let Some(r) = rest.strip_prefix('.') {
            r.bytes().take_while(|b| is_ident(*b)).map(char::from).collect::<String>()
        } else if let Some(r) = rest.strip_prefix("[\"").or_else(|| rest.strip_prefix("['")) {
            r.chars().take_while(|c| *c != '"' && *c != '\'').collect()
        } else {
            continue;
        };
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The source with the contents of string literals replaced by spaces, so
/// scanning for names never looks inside them. Keeps byte offsets.
fn blank_strings(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in source.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                    out.push(c);
                    continue;
                }
                for _ in 0..c.len_utf8() {
                    out.push(' ');
                }
            }
            None => {
                if c == '"' || c == '\'' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// `${{ }}` values.

/// A value from the runbook whose strings may hold `${{ CEL }}`. A string
/// that is exactly one expression becomes the expression's value (any JSON
/// type); one that mixes text and expressions becomes text.
#[derive(Debug, Clone)]
pub enum Tmpl {
    Lit(Value),
    Expr(Expr),
    Text(Vec<Part>),
    List(Vec<Tmpl>),
    Object(Vec<(String, Tmpl)>),
}

/// A piece of a [`Tmpl::Text`].
#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    Expr(Expr),
}

/// A problem in a `${{ }}` value: where (the YAML node), and what.
#[derive(Debug, Clone, PartialEq)]
pub struct TmplError {
    pub pos: Pos,
    /// Path of the node from the step, e.g. `with.targets[0]`.
    pub path: String,
    pub message: String,
}

impl Tmpl {
    /// Compiles the `${{ }}` expressions of a YAML value, collecting every
    /// problem. `path` names the node in messages, e.g. `with`.
    pub fn compile(node: &Node, path: &str, errors: &mut Vec<TmplError>) -> Tmpl {
        match &node.value {
            YamlValue::Str(s) if s.contains("${{") => match split(s) {
                Err(message) => {
                    errors.push(TmplError { pos: node.pos, path: path.into(), message });
                    Tmpl::Lit(Value::Null)
                }
                Ok(pieces) => {
                    let mut parts = Vec::new();
                    for piece in pieces {
                        match piece {
                            Piece::Text(t) => parts.push(Part::Text(t)),
                            Piece::Expr(src) => match Expr::compile(&src) {
                                Ok(e) => parts.push(Part::Expr(e)),
                                Err(e) => errors.push(TmplError {
                                    pos: node.pos,
                                    path: path.into(),
                                    message: format!("CEL syntax error in `{src}` at column {}: {}", e.col, e.message),
                                }),
                            },
                        }
                    }
                    match parts.as_slice() {
                        [Part::Expr(e)] => Tmpl::Expr(e.clone()),
                        _ => Tmpl::Text(parts),
                    }
                }
            },
            YamlValue::Seq(items) => Tmpl::List(
                items.iter().enumerate().map(|(i, n)| Tmpl::compile(n, &format!("{path}[{i}]"), errors)).collect(),
            ),
            YamlValue::Map(entries) => Tmpl::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = k.key_text();
                        let child = Tmpl::compile(v, &format!("{path}.{key}"), errors);
                        (key, child)
                    })
                    .collect(),
            ),
            _ => Tmpl::Lit(node.to_json()),
        }
    }

    /// Every expression inside, in order.
    pub fn exprs(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Expr>) {
        match self {
            Tmpl::Lit(_) => {}
            Tmpl::Expr(e) => out.push(e),
            Tmpl::Text(parts) => out.extend(parts.iter().filter_map(|p| match p {
                Part::Expr(e) => Some(e),
                Part::Text(_) => None,
            })),
            Tmpl::List(items) => items.iter().for_each(|t| t.collect(out)),
            Tmpl::Object(entries) => entries.iter().for_each(|(_, t)| t.collect(out)),
        }
    }

    /// The value with literal parts only; expressions become null. For
    /// checking static config against a schema.
    pub fn static_json(&self) -> Value {
        match self {
            Tmpl::Lit(v) => v.clone(),
            Tmpl::Expr(_) | Tmpl::Text(_) => Value::Null,
            Tmpl::List(items) => Value::Array(items.iter().map(Tmpl::static_json).collect()),
            Tmpl::Object(entries) => Value::Object(entries.iter().map(|(k, t)| (k.clone(), t.static_json())).collect()),
        }
    }

    /// JSON pointers (`/targets/0`) of the values that are expressions.
    pub fn dynamic_pointers(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.pointers("", &mut out);
        out
    }

    fn pointers(&self, at: &str, out: &mut Vec<String>) {
        match self {
            Tmpl::Lit(_) => {}
            Tmpl::Expr(_) | Tmpl::Text(_) => out.push(at.to_string()),
            Tmpl::List(items) => items.iter().enumerate().for_each(|(i, t)| t.pointers(&format!("{at}/{i}"), out)),
            Tmpl::Object(entries) => entries.iter().for_each(|(k, t)| {
                let key = k.replace('~', "~0").replace('/', "~1");
                t.pointers(&format!("{at}/{key}"), out)
            }),
        }
    }

    /// Evaluates every expression and returns the resulting JSON.
    pub fn render(&self, scope: &Scope) -> Result<Value, String> {
        if let Tmpl::Lit(v) = self {
            return Ok(v.clone());
        }
        let ctx = scope.cel_context()?;
        self.render_in(&ctx)
    }

    fn render_in(&self, ctx: &cel::Context) -> Result<Value, String> {
        Ok(match self {
            Tmpl::Lit(v) => v.clone(),
            Tmpl::Expr(e) => e.eval_in(ctx)?,
            Tmpl::Text(parts) => {
                let mut s = String::new();
                for p in parts {
                    match p {
                        Part::Text(t) => s.push_str(t),
                        Part::Expr(e) => match e.eval_in(ctx)? {
                            Value::String(v) => s.push_str(&v),
                            Value::Null => {}
                            other => s.push_str(&other.to_string()),
                        },
                    }
                }
                Value::String(s)
            }
            Tmpl::List(items) => Value::Array(items.iter().map(|t| t.render_in(ctx)).collect::<Result<_, _>>()?),
            Tmpl::Object(entries) => Value::Object(
                entries.iter().map(|(k, t)| Ok((k.clone(), t.render_in(ctx)?))).collect::<Result<_, String>>()?,
            ),
        })
    }
}

enum Piece {
    Text(String),
    Expr(String),
}

/// Splits `a ${{ x }} b` into text and expression sources. The closing
/// `}}` is the first one outside string literals and nested braces.
fn split(s: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("${{") {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        let body = &rest[open + 3..];
        let close = find_close(body).ok_or_else(|| format!("`${{{{` in {s:?} has no closing `}}}}`"))?;
        let src = body[..close].trim();
        if src.is_empty() {
            return Err(format!("empty `${{{{ }}}}` in {s:?}"));
        }
        pieces.push(Piece::Expr(src.to_string()));
        rest = &body[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(pieces)
}

fn find_close(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let blanked = blank_strings(body);
    let b = blanked.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => depth += 1,
            b'}' if depth > 0 => depth -= 1,
            b'}' if i + 1 < b.len() && bytes[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

// ---------------------------------------------------------------------------
// Text templates.

/// A minijinja text template, e.g. `health score {{ steps.score.output.score }}`.
/// Undefined names are errors, not empty text.
#[derive(Debug, Clone)]
pub struct Text {
    pub source: String,
}

static JINJA: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env
});

impl Text {
    /// Checks the template's syntax. Returns it and the dotted names it
    /// reads (e.g. `steps.score`), or the error with its line in the text.
    pub fn compile(source: &str) -> Result<(Text, Vec<String>), String> {
        let tmpl = JINJA.template_from_str(source).map_err(|e| {
            let line = e.line().map(|l| format!(" (line {l} of the template)")).unwrap_or_default();
            format!("template error{line}: {}", e.detail().unwrap_or(&e.to_string()))
        })?;
        let globals: Vec<String> = JINJA.globals().map(|(name, _)| name.to_string()).collect();
        let mut names: Vec<String> = tmpl
            .undeclared_variables(true)
            .into_iter()
            .filter(|n| !globals.iter().any(|g| n == g || n.starts_with(&format!("{g}."))))
            .collect();
        names.sort();
        Ok((Text { source: source.to_string() }, names))
    }

    /// Renders against a scope.
    pub fn render(&self, scope: &Scope) -> Result<String, String> {
        self.render_json(&scope.to_json())
    }

    /// Renders against any JSON object, e.g. `{"alert": {...}}`.
    pub fn render_json(&self, context: &Value) -> Result<String, String> {
        JINJA
            .render_str(&self.source, minijinja::value::Serde(context))
            .map_err(|e| format!("template {:?}: {}", self.source, e.detail().unwrap_or(&e.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::yaml;
    use serde_json::json;

    fn scope() -> Scope {
        Scope {
            params: json!({"url": "http://x", "threshold": 8}),
            steps: json!({"score": {"status": "succeeded", "output": {"score": 7.5}, "metrics": {}, "findings": []}}),
            iteration: 2,
            run: json!({"id": "01J", "runbook": "rb", "trigger": "cli"}),
            history: json!({"score": {"health_score": [4.0, 6.5]}}),
            measured: json!({"score": {"health_score": [7.0, 8.5, 9.0]}, "probe": {}}),
        }
    }

    #[test]
    fn measured_holds_this_runs_values_of_a_steps_metrics_latest_last() {
        let e =
            Expr::compile("measured.score.health_score.size() >= 3 && measured.score.health_score.all(s, s >= 7.0)")
                .unwrap();
        assert_eq!(e.variables(), vec!["measured"]);
        assert_eq!(e.eval_bool(&scope()), Ok(true));
        let last = Expr::compile("measured.score.health_score[measured.score.health_score.size() - 1]").unwrap();
        assert_eq!(last.eval(&scope()), Ok(json!(9.0)));
        let none = Expr::compile("has(measured.probe.latency_ms)").unwrap();
        assert_eq!(none.eval_bool(&scope()), Ok(false), "a step that has not emitted is {{}}");
        assert_eq!(measured_refs("measured.score.x + measured[\"probe\"].y"), vec!["score", "probe"]);
    }

    #[test]
    fn history_holds_earlier_runs_values_of_a_steps_metrics() {
        let e = Expr::compile("history.score.health_score[1] > history.score.health_score[0]").unwrap();
        assert_eq!(e.eval_bool(&scope()), Ok(true));
    }

    #[test]
    fn conditions_compare_numbers_of_either_kind() {
        let e = Expr::compile("steps.score.output.score < params.threshold && iteration == 2").unwrap();
        assert!(e.eval_bool(&scope()).unwrap());
        assert_eq!(e.variables(), vec!["iteration", "params", "steps"]);
    }

    #[test]
    fn macro_variables_are_not_free_variables() {
        let e = Expr::compile("steps.score.output.reasons.all(r, r.points < 3) && [1].exists(x, x == 1)").unwrap();
        assert_eq!(e.variables(), vec!["steps"]);
        assert!(!e.eval_bool(&scope()).is_ok_and(|b| b), "reasons is missing: an error, not true");
    }

    #[test]
    fn integers_do_arithmetic_with_literals() {
        let e = Expr::compile("params.threshold + 1").unwrap();
        assert_eq!(e.eval(&scope()).unwrap(), serde_json::json!(9));
    }

    #[test]
    fn a_condition_must_be_boolean() {
        let e = Expr::compile("params.threshold").unwrap();
        assert_eq!(e.eval_bool(&scope()).unwrap_err(), "`params.threshold` gave number 8, expected true or false");
    }

    #[test]
    fn syntax_errors_have_a_column() {
        let err = Expr::compile("params.url ==").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.col > 1, "{err:?}");
    }

    #[test]
    fn references_skip_string_literals() {
        assert_eq!(step_refs("steps.a.output == 'steps.b' && steps[\"c\"].status == \"x\""), vec!["a", "c"]);
        assert_eq!(param_refs("params.url + mysteps.x"), vec!["url"]);
    }

    #[test]
    fn whole_expressions_keep_their_type_and_mixed_ones_become_text() {
        let node = yaml::parse("a: ${{ params.threshold + 1 }}\nb: \"url=${{ params.url }}/x\"\nc: [1, \"${{ iteration }}\"]\nd: \"${{ {'k': {'n': 1}} }}\"\n").unwrap();
        let mut errors = Vec::new();
        let t = Tmpl::compile(&node, "with", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let v = t.render(&scope()).unwrap();
        assert_eq!(v, json!({"a": 9, "b": "url=http://x/x", "c": [1, 2], "d": {"k": {"n": 1}}}));
        assert_eq!(t.dynamic_pointers(), vec!["/a", "/b", "/c/1", "/d"]);
        assert_eq!(t.static_json(), json!({"a": null, "b": null, "c": [1, null], "d": null}));
    }

    #[test]
    fn template_errors_name_the_path() {
        let node = yaml::parse("x:\n  y: \"${{ params. }}\"\n  z: \"${{ open\"\n").unwrap();
        let mut errors = Vec::new();
        Tmpl::compile(&node, "with", &mut errors);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].path, "with.x.y");
        assert!(errors[0].message.starts_with("CEL syntax error in `params.`"), "{}", errors[0].message);
        assert_eq!(errors[1].message, "`${{` in \"${{ open\" has no closing `}}`");
        assert_eq!(errors[1].pos, Pos { line: 3, col: 6 });
    }

    #[test]
    fn text_templates_are_strict() {
        let (t, names) = Text::compile("score {{ steps.score.output.score }} in {{ run.runbook }}").unwrap();
        assert_eq!(names, vec!["run.runbook", "steps.score.output.score"]);
        assert_eq!(t.render(&scope()).unwrap(), "score 7.5 in rb");
        let (t, _) = Text::compile("{{ nope.x }}").unwrap();
        assert!(t.render(&scope()).is_err());
        assert!(Text::compile("{{ unclosed").unwrap_err().starts_with("template error (line 1 of the template)"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// JSON values as runbooks and plugins produce them.
        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                (-1e12f64..1e12).prop_map(|f| json!(f)),
                "[a-zA-Z0-9 _./:-]{0,12}".prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn scope_with(x: Value) -> Scope {
            Scope { params: json!({ "x": x }), ..Scope::default() }
        }

        fn compile(yaml_text: &str) -> Tmpl {
            let node = yaml::parse(yaml_text).unwrap();
            let mut errors = Vec::new();
            let t = Tmpl::compile(&node, "with", &mut errors);
            assert!(errors.is_empty(), "{errors:?}");
            t
        }

        proptest! {
            #[test]
            fn a_whole_expression_passes_any_json_value_through_unchanged(v in json_value()) {
                let t = compile("v: ${{ params.x }}");
                prop_assert_eq!(t.render(&scope_with(v.clone())).unwrap(), json!({ "v": v }));
            }

            #[test]
            fn text_around_an_expression_is_kept(prefix in "[a-z ]{0,8}", suffix in "[a-z ]{0,8}", x in "[a-zA-Z0-9]{0,10}") {
                let t = compile(&format!("v: \"{prefix}${{{{ params.x }}}}{suffix}\""));
                prop_assert_eq!(t.render(&scope_with(json!(x))).unwrap(), json!({ "v": format!("{prefix}{x}{suffix}") }));
            }

            #[test]
            fn integer_arithmetic_matches_rust(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000) {
                let e = Expr::compile("params.x.a * 3 + params.x.b").unwrap();
                prop_assert_eq!(e.eval(&scope_with(json!({"a": a, "b": b}))).unwrap(), json!(a * 3 + b));
                let c = Expr::compile("params.x.a < params.x.b").unwrap();
                prop_assert_eq!(c.eval_bool(&scope_with(json!({"a": a, "b": b}))).unwrap(), a < b);
            }

            #[test]
            fn strings_without_markers_are_literals(text in "[^$]{0,40}") {
                let node = Node { pos: Pos::default(), value: YamlValue::Str(text.clone()) };
                let mut errors = Vec::new();
                let t = Tmpl::compile(&node, "with", &mut errors);
                prop_assert!(errors.is_empty());
                prop_assert_eq!(t.render(&Scope::default()).unwrap(), Value::String(text));
            }

            #[test]
            fn splitting_never_panics_and_errors_name_the_text(text in ".{0,40}") {
                let node = Node { pos: Pos::default(), value: YamlValue::Str(text) };
                let mut errors = Vec::new();
                let _ = Tmpl::compile(&node, "with", &mut errors);
                for e in errors {
                    prop_assert_eq!(e.path, "with");
                }
            }

            #[test]
            fn step_references_are_found_outside_string_literals(id in "[a-z][a-z0-9_]{0,8}", noise in "[a-z ]{0,10}") {
                let source = format!("{noise} steps.{id}.status == 'steps.hidden' && \"steps.also_hidden\" != ''");
                prop_assert_eq!(step_refs(&source), vec![id]);
            }

            #[test]
            fn text_templates_render_values_verbatim(x in "[a-zA-Z0-9 .,:/_-]{0,20}") {
                let (t, _) = Text::compile("[{{ params.x }}]").unwrap();
                prop_assert_eq!(t.render(&scope_with(json!(x.clone()))).unwrap(), format!("[{x}]"));
            }
        }
    }
}
