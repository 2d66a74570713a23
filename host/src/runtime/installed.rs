//! The plugins directory as `tend plugins install` leaves it: each plugin
//! is `<name>.wasm` with a manifest `<name>.manifest.json` beside it saying
//! what was installed (name, version, language, contract, digest, size,
//! when and from where). A `.wasm` file copied in by hand also loads; it
//! simply has no manifest. Reads and writes that directory only.

use super::inspect::Language;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The manifest's file name suffix.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// What `tend plugins install` recorded about a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: String,
    pub language: Language,
    /// The WIT package and version it was built against, e.g. `tend:plugin@0.1.0`.
    pub contract: String,
    /// blake3 of the component, hex (the digest run records carry).
    pub digest: String,
    pub size_bytes: u64,
    /// RFC 3339, UTC.
    pub installed_at: String,
    /// The file it was installed from, as given.
    pub source: String,
}

/// The component file of plugin `name` in `dir`.
pub fn wasm_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.wasm"))
}

/// The manifest file of plugin `name` in `dir`.
pub fn manifest_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{MANIFEST_SUFFIX}"))
}

/// The manifest of plugin `name`, if it has a readable one.
pub fn read_manifest(dir: &Path, name: &str) -> Option<Manifest> {
    let text = std::fs::read_to_string(manifest_path(dir, name)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the component and its manifest, each atomically (a temporary
/// file renamed into place), the component first: a reader sees the old
/// plugin or the new one, never half of one. Returns the component's path.
pub fn write(dir: &Path, bytes: &[u8], manifest: &Manifest) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let wasm = wasm_path(dir, &manifest.name);
    write_atomic(&wasm, bytes)?;
    let json = serde_json::to_vec_pretty(manifest).map_err(std::io::Error::other)?;
    write_atomic(&manifest_path(dir, &manifest.name), &json)?;
    Ok(wasm)
}

/// Removes plugin `name`'s component and manifest. False when there was
/// no component.
pub fn remove(dir: &Path, name: &str) -> std::io::Result<bool> {
    let existed = match std::fs::remove_file(wasm_path(dir, name)) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    match std::fs::remove_file(manifest_path(dir, name)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(existed)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str) -> Manifest {
        Manifest {
            name: name.into(),
            version: "1.2.3".into(),
            description: "d".into(),
            language: Language::Python,
            contract: "tend:plugin@0.1.0".into(),
            digest: "ab".repeat(32),
            size_bytes: 5,
            installed_at: "2026-12-06T15:00:00Z".into(),
            source: "/tmp/x.wasm".into(),
        }
    }

    #[test]
    fn an_installed_plugin_reads_back_and_is_removed_with_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        let path = write(&plugins, b"bytes", &manifest("anomaly")).unwrap();
        assert_eq!(path, plugins.join("anomaly.wasm"));
        assert_eq!(std::fs::read(&path).unwrap(), b"bytes");
        assert_eq!(read_manifest(&plugins, "anomaly"), Some(manifest("anomaly")));
        let text = std::fs::read_to_string(manifest_path(&plugins, "anomaly")).unwrap();
        assert!(text.contains("\"language\": \"Python\""), "{text}");
        assert!(remove(&plugins, "anomaly").unwrap());
        assert!(!remove(&plugins, "anomaly").unwrap());
        assert_eq!(std::fs::read_dir(&plugins).unwrap().count(), 0, "no temporary files are left");
    }
}
