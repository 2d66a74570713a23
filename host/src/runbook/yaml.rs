//! A YAML document as a tree where every node knows its line and column,
//! and a serde `Deserializer` over that tree whose errors carry the
//! position and the field path of the node that caused them.
//!
//! Parsing goes through serde-saphyr (exact positions via `Spanned`); the
//! typed runbook structs are then read from the tree, so one parse serves
//! both the typed model and the position of anything validation reports.
//! Pure: no I/O.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

/// A 1-based line and column in the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// The value of a [`Node`]. Mappings keep their keys in source order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The entries of a mapping, or none.
    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries().iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    /// The text of a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A short description of the kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The node as JSON (positions dropped). Keys become strings.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or(J::Null),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(entries.iter().map(|(k, v)| (k.key_text(), v.to_json())).collect()),
        }
    }

    /// A mapping key as text (scalars only; others are shown as YAML-ish text).
    pub fn key_text(&self) -> String {
        match &self.value {
            Value::Str(s) => s.clone(),
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Seq(_) | Value::Map(_) => self.to_json().to_string(),
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document into a [`Node`] tree. An empty document is null.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.trim().is_empty() {
        return Ok(Node { pos: Pos { line: 1, col: 1 }, value: Value::Null });
    }
    match serde_saphyr::from_str::<Spanned<Raw>>(text) {
        Ok(spanned) => Ok(spanned.into_node()),
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos { line: l.line() as u32, col: l.column() as u32 })
                .unwrap_or(Pos { line: 1, col: 1 });
            // The crate's Display may include a snippet and repeats the
            // position ("error: line 3 column 3: ..."); keep the message.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid YAML").trim();
            let message = strip_position_prefix(first).to_string();
            Err(SyntaxError { pos, message })
        }
    }
}

/// `error: line 3 column 3: "-" is only valid ...` -> `"-" is only valid ...`.
fn strip_position_prefix(text: &str) -> &str {
    let rest = text.strip_prefix("error: ").unwrap_or(text);
    if let Some(after_line) = rest.strip_prefix("line ")
        && let Some((_, tail)) = after_line.split_once(": ")
        && after_line.split_once(": ").is_some_and(|(pos, _)| pos.contains(" column "))
    {
        return tail;
    }
    rest
}

/// What serde-saphyr deserializes into: a node whose children are spanned.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

trait IntoNode {
    fn into_node(self) -> Node;
}

impl IntoNode for Spanned<Raw> {
    fn into_node(self) -> Node {
        let pos = Pos { line: self.referenced.line() as u32, col: self.referenced.column() as u32 };
        let value = match self.value {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(b),
            Raw::Int(i) => Value::Int(i),
            Raw::Float(f) => Value::Float(f),
            Raw::Str(s) => Value::Str(s),
            Raw::Seq(items) => Value::Seq(items.into_iter().map(IntoNode::into_node).collect()),
            Raw::Map(entries) => Value::Map(entries.into_iter().map(|(k, v)| (k.into_node(), v.into_node())).collect()),
        };
        Node { pos, value }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                Raw::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
                Ok(i64::try_from(v).map(Raw::Int).unwrap_or(Raw::Float(v as f64)))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
                Ok(i64::try_from(v).map(Raw::Int).unwrap_or(Raw::Float(v as f64)))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Raw, E> {
                Ok(i64::try_from(v).map(Raw::Int).unwrap_or(Raw::Float(v as f64)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::Str(v))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Raw, E> {
                Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
                    items.push(item);
                }
                Ok(Raw::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut entries = Vec::new();
                // Keys are read as text: in a runbook they are names, and
                // YAML 1.1 would otherwise turn a key `y` or `on` into true.
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<Spanned<Raw>>()?;
                    entries.push((Spanned::new(Raw::Str(key.value), key.referenced, key.defined), value));
                }
                Ok(Raw::Map(entries))
            }
        }
        deserializer.deserialize_any(RawVisitor)
    }
}

// ---------------------------------------------------------------------------
// Typed reading of a tree.

/// A problem found while reading a node into a typed struct.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    /// Where the offending node is.
    pub pos: Option<Pos>,
    /// Field path from the document root, e.g. `steps[2].retry.attempts`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError { pos: None, path: String::new(), message: msg.to_string() }
    }

    fn invalid_type(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        de::Error::custom(format_args!("expected {}, found {}", plain_expected(exp), describe_unexpected(&unexp)))
    }

    fn invalid_value(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        de::Error::custom(format_args!("expected {}, found {}", plain_expected(exp), describe_unexpected(&unexp)))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let hint = did_you_mean(variant, expected.iter().copied())
            .map(|s| format!(" (did you mean {s:?}?)"))
            .unwrap_or_default();
        de::Error::custom(format_args!("{variant:?} is not one of {}{hint}", quote_list(expected)))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        unknown_key(field, expected)
    }

    fn missing_field(field: &'static str) -> Self {
        de::Error::custom(format_args!("missing required key {field:?}"))
    }
}

/// serde's names for Rust types, in words a runbook author knows.
fn plain_expected(exp: &dyn de::Expected) -> String {
    let text = exp.to_string();
    match text.as_str() {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        _ => text,
    }
}

fn describe_unexpected(u: &de::Unexpected) -> String {
    match u {
        de::Unexpected::Bool(b) => format!("boolean {b}"),
        de::Unexpected::Unsigned(n) => format!("number {n}"),
        de::Unexpected::Signed(n) => format!("number {n}"),
        de::Unexpected::Float(n) => format!("number {n}"),
        de::Unexpected::Str(s) => format!("string {s:?}"),
        de::Unexpected::Unit => "null".into(),
        de::Unexpected::Seq => "a list".into(),
        de::Unexpected::Map => "a mapping".into(),
        other => other.to_string(),
    }
}

/// `unknown key "whn" (did you mean "when"?); expected one of ...`.
pub fn unknown_key(key: &str, expected: &[&str]) -> DeError {
    let message = match did_you_mean(key, expected.iter().copied()) {
        Some(s) => format!("unknown key {key:?} (did you mean {s:?}?)"),
        None => format!("unknown key {key:?}; expected one of {}", quote_list(expected)),
    };
    DeError { pos: None, path: String::new(), message }
}

/// The closest candidate to `word`, when it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `"a", "b" or "c"`.
pub fn quote_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{:?}", s.as_ref())).collect();
    match quoted.as_slice() {
        [] => "nothing".into(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Reads a typed value from a node. Unknown keys in structs are collected
/// into `unknown` (each with its position and a did-you-mean) and skipped,
/// so one pass reports all of them; the first other error stops the read.
pub fn from_node<T: de::DeserializeOwned>(node: &Node, path: &str, unknown: &mut Vec<DeError>) -> Result<T, DeError> {
    let sink = Rc::new(RefCell::new(Vec::new()));
    let result = T::deserialize(NodeDe { node, path: path.to_string(), unknown: sink.clone() });
    unknown.extend(sink.borrow_mut().drain(..));
    result
}

/// The name [`At`] asks for to receive a node's position.
const POS_STRUCT: &str = "$tend::Pos";
/// The name [`Node`] asks for to receive the node itself.
const NODE_STRUCT: &str = "$tend::Node";

thread_local! {
    /// Hands a node from [`NodeDe`] to `Node::deserialize`: serde has no way
    /// to pass a value of our own type through a visitor.
    static HANDOFF: RefCell<Option<Node>> = const { RefCell::new(None) };
}

/// A field of type `Node` receives the subtree, positions included, for
/// later reading (step lists, plugin config with expressions). Only
/// [`from_node`] can produce one.
impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a YAML node")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                HANDOFF
                    .with(|h| h.borrow_mut().take())
                    .ok_or_else(|| E::custom("a YAML node can only be read from a runbook file"))
            }
        }
        deserializer.deserialize_struct(NODE_STRUCT, &[], NodeVisitor)
    }
}

/// A value with the position of its node. Only [`from_node`] fills `pos`.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T> std::ops::Deref for At<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for At<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AtVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for AtVisitor<T> {
            type Value = At<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<At<T>, A::Error> {
                let _: Option<String> = map.next_key()?;
                let (line, col): (u32, u32) = map.next_value()?;
                let _: Option<String> = map.next_key()?;
                let value = map.next_value()?;
                Ok(At { value, pos: Pos { line, col } })
            }
        }
        deserializer.deserialize_struct(POS_STRUCT, &["pos", "value"], AtVisitor(std::marker::PhantomData))
    }
}

type Sink = Rc<RefCell<Vec<DeError>>>;

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
    unknown: Sink,
}

impl<'a> NodeDe<'a> {
    fn child(&self, node: &'a Node, path: String) -> NodeDe<'a> {
        NodeDe { node, path, unknown: self.unknown.clone() }
    }

    /// Gives an error without a position this node's position and path.
    fn locate(&self, mut e: DeError) -> DeError {
        if e.pos.is_none() {
            e.pos = Some(self.node.pos);
            e.path = self.path.clone();
        }
        e
    }

    fn invalid(&self, exp: &dyn de::Expected) -> DeError {
        let found = match &self.node.value {
            Value::Str(s) => format!("string {s:?}"),
            Value::Int(i) => format!("number {i}"),
            Value::Float(f) => format!("number {f}"),
            Value::Bool(b) => format!("boolean {b}"),
            _ => self.node.kind().to_string(),
        };
        self.locate(de::Error::custom(format_args!("expected {}, found {found}", plain_expected(exp))))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(Seq { de: &self, items: items.iter().enumerate() }),
            Value::Map(entries) => {
                visitor.visit_map(Map { de: &self, entries: entries.iter(), value: None, fields: None })
            }
        };
        r.map_err(|e| self.locate(e))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == NODE_STRUCT {
            HANDOFF.with(|h| *h.borrow_mut() = Some(self.node.clone()));
            return visitor.visit_unit();
        }
        if name == POS_STRUCT {
            let pos = self.node.pos;
            return visitor
                .visit_map(PosMap { de: &self, step: 0, pos: (pos.line, pos.col) })
                .map_err(|e| self.locate(e));
        }
        match &self.node.value {
            Value::Map(entries) => visitor
                .visit_map(Map { de: &self, entries: entries.iter(), value: None, fields: Some(fields) })
                .map_err(|e| self.locate(e)),
            _ => Err(self.invalid(&"a mapping")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Map(entries) if entries.len() == 1 => {
                visitor.visit_enum(Enum { de: &self, key: &entries[0].0, value: &entries[0].1 })
            }
            _ => return Err(self.invalid(&"a name or a mapping with one key")),
        };
        r.map_err(|e: DeError| self.locate(e))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

struct Seq<'s, 'a> {
    de: &'s NodeDe<'a>,
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
}

impl<'de> SeqAccess<'de> for Seq<'_, '_> {
    type Error = DeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => {
                let child = self.de.child(node, format!("{}[{i}]", self.de.path));
                seed.deserialize(child).map(Some)
            }
        }
    }
}

struct Map<'s, 'a> {
    de: &'s NodeDe<'a>,
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<(&'a Node, String)>,
    /// For structs: the known keys. Others are recorded and skipped.
    fields: Option<&'static [&'static str]>,
}

impl<'de> MapAccess<'de> for Map<'_, '_> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        for (key, value) in self.entries.by_ref() {
            let text = key.key_text();
            let path = join(&self.de.path, &text);
            if let Some(fields) = self.fields
                && !fields.contains(&text.as_str())
            {
                let mut e = unknown_key(&text, fields);
                e.pos = Some(key.pos);
                e.path = self.de.path.clone();
                self.de.unknown.borrow_mut().push(e);
                continue;
            }
            self.value = Some((value, path.clone()));
            let key_de = NodeDe { node: key, path, unknown: self.de.unknown.clone() };
            return seed.deserialize(KeyDe(key_de)).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (node, path) = self.value.take().ok_or_else(|| de::Error::custom("value without a key"))?;
        seed.deserialize(self.de.child(node, path))
    }
}

/// Keys deserialize as their text, whatever scalar they are.
struct KeyDe<'a>(NodeDe<'a>);

impl<'de, 'a> de::Deserializer<'de> for KeyDe<'a> {
    type Error = DeError;
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.0.node.value {
            Value::Str(s) => visitor.visit_str(s),
            _ => visitor.visit_string(self.0.node.key_text()),
        }
        .map_err(|e| self.0.locate(e))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
        option newtype_struct struct enum ignored_any
    }
}

struct PosMap<'s, 'a> {
    de: &'s NodeDe<'a>,
    step: u8,
    pos: (u32, u32),
}

impl<'de> MapAccess<'de> for PosMap<'_, '_> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let key = match self.step {
            0 => "pos",
            1 => "value",
            _ => return Ok(None),
        };
        seed.deserialize(key.into_deserializer()).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        self.step += 1;
        if self.step == 1 {
            seed.deserialize(serde::de::value::SeqDeserializer::new([self.pos.0, self.pos.1].into_iter()))
        } else {
            seed.deserialize(self.de.child(self.de.node, self.de.path.clone()))
        }
    }
}

struct Enum<'s, 'a> {
    de: &'s NodeDe<'a>,
    key: &'a Node,
    value: &'a Node,
}

impl<'de, 's, 'a> de::EnumAccess<'de> for Enum<'s, 'a> {
    type Error = DeError;
    type Variant = NodeDe<'a>;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, NodeDe<'a>), DeError> {
        let name = self.key.key_text();
        let path = join(&self.de.path, &name);
        let v = seed.deserialize(name.into_deserializer())?;
        Ok((v, self.de.child(self.value, path)))
    }
}

impl<'de, 'a> de::VariantAccess<'de> for NodeDe<'a> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        match self.node.value {
            Value::Null => Ok(()),
            _ => Err(self.invalid(&"nothing")),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Step {
        id: At<String>,
        #[serde(default)]
        retry: Option<Retry>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Retry {
        attempts: u32,
    }

    #[test]
    fn nodes_know_their_positions() {
        let node = parse("a: 1\nb:\n  - x\n  - {c: true}\n").unwrap();
        assert_eq!(node.get("a").unwrap().pos, Pos { line: 1, col: 4 });
        let b = node.get("b").unwrap();
        let Value::Seq(items) = &b.value else { panic!("{b:?}") };
        assert_eq!(items[1].pos.line, 4);
        assert_eq!(items[1].get("c").unwrap().value, Value::Bool(true));
    }

    #[test]
    fn keys_are_text_even_when_yaml_1_1_would_read_a_boolean() {
        let node = parse("y: 1\non: 2\n200: 3\n").unwrap();
        let keys: Vec<String> = node.entries().iter().map(|(k, _)| k.key_text()).collect();
        assert_eq!(keys, vec!["y", "on", "200"]);
    }

    #[test]
    fn errors_name_the_path_and_position() {
        let node = parse("id: x\nretry:\n  attempts: many\n").unwrap();
        let err = from_node::<Step>(&node, "steps[0]", &mut Vec::new()).unwrap_err();
        assert_eq!(err.pos, Some(Pos { line: 3, col: 13 }));
        assert_eq!(
            err.to_string(),
            "steps[0].retry.attempts: expected a whole number, 0 or more, found string \"many\""
        );
    }

    #[test]
    fn unknown_keys_are_all_collected_with_a_hint() {
        let node = parse("id: x\nretyr: 1\nfoo: 2\n").unwrap();
        let mut unknown = Vec::new();
        let step = from_node::<Step>(&node, "", &mut unknown).unwrap();
        assert_eq!(step.id.pos, Pos { line: 1, col: 5 });
        let messages: Vec<String> = unknown.iter().map(|e| format!("{}: {}", e.pos.unwrap(), e.message)).collect();
        assert_eq!(
            messages,
            vec![
                "2:1: unknown key \"retyr\" (did you mean \"retry\"?)".to_string(),
                "3:1: unknown key \"foo\"; expected one of \"id\" or \"retry\"".to_string(),
            ]
        );
    }

    #[test]
    fn missing_keys_point_at_the_mapping() {
        let node = parse("retry: {}\n").unwrap();
        let err = from_node::<Step>(&node, "", &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "retry: missing required key \"attempts\"");
        assert_eq!(err.pos, Some(Pos { line: 1, col: 8 }));
    }

    #[test]
    fn node_fields_keep_the_subtree() {
        #[derive(Debug, Deserialize)]
        struct Holder {
            with: Node,
        }
        let node = parse("with:\n  a: \"${{ x }}\"\n").unwrap();
        let h = from_node::<Holder>(&node, "", &mut Vec::new()).unwrap();
        assert_eq!(h.with.get("a").unwrap().pos, Pos { line: 2, col: 6 });
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err:?}");
        assert!(!err.message.is_empty());
    }
}
