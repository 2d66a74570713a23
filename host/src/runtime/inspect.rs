//! What a component says about itself before it is compiled: the contract
//! it was built against (its `tend:plugin` imports and exports, checked by
//! name and version) and the language it was written in (the `producers`
//! custom sections its toolchain wrote). Reads bytes only: compiles,
//! instantiates and runs nothing, and imports nothing of the runtime.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use wasmparser::{Encoding, Imports, KnownCustom, Parser, Payload};

/// The WIT package plugins implement (`wit/plugin.wit`).
pub const CONTRACT_PACKAGE: &str = "tend:plugin";
/// The version of [`CONTRACT_PACKAGE`] this tend provides.
pub const CONTRACT_VERSION: &str = "0.1.0";
/// The interface a plugin exports.
pub const STEP_INTERFACE: &str = "step";

/// The language a component was written in, as its producers sections tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Language {
    Rust,
    Python,
    JavaScript,
    C,
    Cpp,
    Go,
    Zig,
    /// No producers section names a language we know.
    Unknown,
}

impl Language {
    pub const ALL: [Language; 8] = [
        Language::Rust,
        Language::Python,
        Language::JavaScript,
        Language::C,
        Language::Cpp,
        Language::Go,
        Language::Zig,
        Language::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::JavaScript => "JavaScript",
            Language::C => "C",
            Language::Cpp => "C++",
            Language::Go => "Go",
            Language::Zig => "Zig",
            Language::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Language {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Language::ALL.into_iter().find(|l| l.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
            let names: Vec<&str> = Language::ALL.iter().map(|l| l.as_str()).collect();
            format!("unknown language {s:?}; expected one of {}", names.join(", "))
        })
    }
}

impl serde::Serialize for Language {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Language {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a file is not a plugin this tend can load, found without compiling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractError {
    /// Not WebAssembly at all, or damaged.
    NotWasm(String),
    /// A core module: it needs wrapping into a component.
    CoreModule,
    /// Built against another version of the contract.
    OtherVersion { found: String },
    /// A component that does not export the step interface.
    NoStepExport { exports: Vec<String> },
    /// Imports of interfaces no tend provides (neither the contract nor WASI).
    ForeignImports(Vec<String>),
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ours = format!("{CONTRACT_PACKAGE}@{CONTRACT_VERSION}");
        match self {
            ContractError::NotWasm(e) => write!(f, "is not a WebAssembly component: {e}"),
            ContractError::CoreModule => write!(
                f,
                "is a core WebAssembly module, not a component; make it one with \
                 `wasm-tools component new` (see docs/writing-plugins.md)"
            ),
            ContractError::OtherVersion { found } => write!(
                f,
                "was built against {CONTRACT_PACKAGE}@{found}; this tend provides {ours}: \
                 rebuild it against the wit/plugin.wit of this tend"
            ),
            ContractError::NoStepExport { exports } => write!(
                f,
                "does not export {CONTRACT_PACKAGE}/{STEP_INTERFACE}@{CONTRACT_VERSION} (it exports {}); \
                 a plugin implements the world `plugin` of wit/plugin.wit",
                if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
            ),
            ContractError::ForeignImports(names) => write!(
                f,
                "imports {} that tend does not provide; a plugin may import only {ours} and WASI 0.2",
                names.join(", ")
            ),
        }
    }
}

impl std::error::Error for ContractError {}

/// What a component's bytes say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentFacts {
    pub language: Language,
    /// Every producers entry, as `field: name version` (e.g.
    /// `processed-by: wit-component 0.239.0`), without repeats.
    pub producers: Vec<String>,
    /// The top-level component's import names.
    pub imports: Vec<String>,
    /// The top-level component's export names.
    pub exports: Vec<String>,
}

impl ComponentFacts {
    /// Reads a component's imports, exports and producers, then checks it
    /// was built against this tend's contract.
    pub fn read(bytes: &[u8]) -> Result<ComponentFacts, ContractError> {
        let mut facts =
            ComponentFacts { language: Language::Unknown, producers: vec![], imports: vec![], exports: vec![] };
        let mut depth = 0usize;
        let mut top_is_component = false;
        // What the core modules inside import from: a shared library's
        // name (libpython3.14.so) tells a language producers sections omit.
        let mut core_imports = BTreeSet::new();
        for payload in Parser::new(0).parse_all(bytes) {
            let payload = payload.map_err(|e| ContractError::NotWasm(e.to_string()))?;
            match payload {
                Payload::Version { encoding, .. } => {
                    if depth == 0 {
                        top_is_component = encoding == Encoding::Component;
                        if !top_is_component {
                            return Err(ContractError::CoreModule);
                        }
                    }
                    depth += 1;
                }
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentImportSection(reader) if depth == 1 => {
                    for import in reader {
                        let import = import.map_err(|e| ContractError::NotWasm(e.to_string()))?;
                        facts.imports.push(import.name.name.to_string());
                    }
                }
                Payload::ComponentExportSection(reader) if depth == 1 => {
                    for export in reader {
                        let export = export.map_err(|e| ContractError::NotWasm(e.to_string()))?;
                        facts.exports.push(export.name.name.to_string());
                    }
                }
                Payload::ImportSection(reader) => {
                    for group in reader.into_iter().flatten() {
                        let module = match group {
                            Imports::Single(_, import) => import.module,
                            Imports::Compact1 { module, .. } | Imports::Compact2 { module, .. } => module,
                        };
                        core_imports.insert(module.to_string());
                    }
                }
                Payload::CustomSection(section) => {
                    if let KnownCustom::Producers(reader) = section.as_known() {
                        for field in reader.into_iter().flatten() {
                            for value in field.values.into_iter().flatten() {
                                let entry =
                                    format!("{}: {} {}", field.name, value.name, value.version).trim_end().to_string();
                                if !facts.producers.contains(&entry) {
                                    facts.producers.push(entry);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if !top_is_component {
            return Err(ContractError::NotWasm("the file is empty".into()));
        }
        facts.language = language(&facts.producers, &core_imports);
        facts.check_contract()?;
        Ok(facts)
    }

    fn check_contract(&self) -> Result<(), ContractError> {
        let prefix = format!("{CONTRACT_PACKAGE}/");
        // Another contract version shows in any tend:plugin name.
        for name in self.imports.iter().chain(&self.exports) {
            if let Some(rest) = name.strip_prefix(&prefix) {
                let version = rest.split_once('@').map(|(_, v)| v).unwrap_or("(no version)");
                if version != CONTRACT_VERSION {
                    return Err(ContractError::OtherVersion { found: version.to_string() });
                }
            }
        }
        let step = format!("{prefix}{STEP_INTERFACE}@{CONTRACT_VERSION}");
        if !self.exports.contains(&step) {
            return Err(ContractError::NoStepExport { exports: self.exports.clone() });
        }
        let foreign: Vec<String> = self
            .imports
            .iter()
            .filter(|name| !name.starts_with(&prefix) && !name.starts_with("wasi:"))
            .cloned()
            .collect();
        if !foreign.is_empty() {
            return Err(ContractError::ForeignImports(foreign));
        }
        Ok(())
    }
}

/// The language from producers entries and the modules core modules import
/// from. The tool that made the component wins over the languages of the
/// code linked into it: a JavaScript component carries SpiderMonkey (C++)
/// and Rust, a Python one CPython (C) and a Rust runtime. componentize-py
/// 0.25 writes no producers entry of its own; its modules import from
/// `libpython3.<minor>.so`. Rust plugins built in release are stripped of
/// rustc's entry; wit-bindgen-rust's stays.
fn language(producers: &[String], core_imports: &BTreeSet<String>) -> Language {
    let has = |field: &str, needle: &str| {
        producers.iter().any(|p| {
            p.strip_prefix(field)
                .and_then(|rest| rest.strip_prefix(": "))
                .is_some_and(|rest| rest.to_ascii_lowercase().starts_with(&needle.to_ascii_lowercase()))
        })
    };
    if has("processed-by", "componentize-js") || has("processed-by", "ComponentizeJS") || has("language", "JavaScript")
    {
        return Language::JavaScript;
    }
    if has("processed-by", "componentize-py") || core_imports.iter().any(|m| m.starts_with("libpython3")) {
        return Language::Python;
    }
    if has("processed-by", "tinygo") || has("language", "Go") || has("processed-by", "wit-bindgen-go") {
        return Language::Go;
    }
    if has("language", "Rust") || has("processed-by", "wit-bindgen-rust") {
        return Language::Rust;
    }
    if has("language", "Zig") || has("processed-by", "zig") {
        return Language::Zig;
    }
    if has("language", "C++") {
        return Language::Cpp;
    }
    if has("language", "C") || has("processed-by", "clang") {
        return Language::C;
    }
    Language::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn producers(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_tool_that_made_a_component_names_its_language_before_the_code_linked_in() {
        let none = BTreeSet::new();
        // What componentize-js 0.23 writes (its engine is C++ and Rust).
        let js = producers(&["language: C11", "language: Rust", "language: C_plus_plus_14", "language: JavaScript"]);
        assert_eq!(language(&js, &none), Language::JavaScript);
        // componentize-py 0.25: a Rust runtime, and modules importing libpython.
        let py = producers(&["language: Rust", "processed-by: component-init-transform 0.2.0"]);
        let libpython = BTreeSet::from(["env".to_string(), "libpython3.14.so".to_string()]);
        assert_eq!(language(&py, &libpython), Language::Python);
        assert_eq!(language(&py, &none), Language::Rust);
        let rust = producers(&["processed-by: wit-bindgen-rust 0.45.0", "processed-by: wit-bindgen-c 0.51.0"]);
        assert_eq!(language(&rust, &none), Language::Rust);
        let c = producers(&["language: C11", "processed-by: clang 14.0.6", "processed-by: wit-bindgen-c 0.60.0"]);
        assert_eq!(language(&c, &none), Language::C);
        assert_eq!(language(&[], &none), Language::Unknown);
    }

    #[test]
    fn a_language_reads_back_from_its_name() {
        for l in Language::ALL {
            assert_eq!(l.as_str().parse::<Language>(), Ok(l));
        }
        assert_eq!(
            "Cobol".parse::<Language>(),
            Err("unknown language \"Cobol\"; expected one of Rust, Python, JavaScript, C, C++, Go, Zig, unknown".into())
        );
    }

    fn facts(imports: &[&str], exports: &[&str]) -> ComponentFacts {
        ComponentFacts {
            language: Language::Unknown,
            producers: vec![],
            imports: imports.iter().map(|s| s.to_string()).collect(),
            exports: exports.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_component_built_against_another_contract_version_says_which() {
        let f = facts(&["tend:plugin/host@0.2.0"], &["tend:plugin/step@0.2.0"]);
        let err = f.check_contract().unwrap_err();
        assert_eq!(
            err.to_string(),
            "was built against tend:plugin@0.2.0; this tend provides tend:plugin@0.1.0: \
             rebuild it against the wit/plugin.wit of this tend"
        );
    }

    #[test]
    fn a_component_without_the_step_export_or_with_foreign_imports_is_refused_by_name() {
        let err = facts(&[], &["wasi:cli/run@0.2.0"]).check_contract().unwrap_err();
        assert_eq!(
            err.to_string(),
            "does not export tend:plugin/step@0.1.0 (it exports wasi:cli/run@0.2.0); \
             a plugin implements the world `plugin` of wit/plugin.wit"
        );
        let err = facts(&["acme:db/query@1.0.0", "wasi:io/streams@0.2.0"], &["tend:plugin/step@0.1.0"])
            .check_contract()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "imports acme:db/query@1.0.0 that tend does not provide; \
             a plugin may import only tend:plugin@0.1.0 and WASI 0.2"
        );
        facts(&["tend:plugin/host@0.1.0", "wasi:io/streams@0.2.3"], &["tend:plugin/step@0.1.0"])
            .check_contract()
            .unwrap();
    }

    #[test]
    fn the_contract_version_is_the_one_wit_plugin_wit_declares() {
        let wit = include_str!("../../../wit/plugin.wit");
        assert!(
            wit.contains(&format!("package {CONTRACT_PACKAGE}@{CONTRACT_VERSION};")),
            "wit/plugin.wit does not declare package {CONTRACT_PACKAGE}@{CONTRACT_VERSION}"
        );
    }

    #[test]
    fn every_built_in_plugin_is_rust_and_keeps_the_contract() {
        for (name, bytes) in crate::runtime::BUILTIN_PLUGINS {
            let facts = ComponentFacts::read(bytes).unwrap_or_else(|e| panic!("built-in {name}: {e}"));
            assert_eq!(facts.language, Language::Rust, "{name}: {:?}", facts.producers);
        }
    }

    #[test]
    fn a_core_module_and_junk_are_told_apart_from_a_component() {
        assert_eq!(ComponentFacts::read(b"\0asm\x01\0\0\0"), Err(ContractError::CoreModule));
        assert!(matches!(ComponentFacts::read(b"hello"), Err(ContractError::NotWasm(_))));
        assert!(matches!(ComponentFacts::read(b""), Err(ContractError::NotWasm(_))));
    }
}
