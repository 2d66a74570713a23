//! `write-adapter <file>`: writes the `wasi_snapshot_preview1` reactor
//! adapter of wasmtime 48 to `<file>` (see Cargo.toml).

use wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER as ADAPTER;

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: write-adapter <file>");
        std::process::exit(2);
    };
    if let Err(e) = std::fs::write(&path, ADAPTER) {
        eprintln!("write-adapter: cannot write {}: {e}", path.to_string_lossy());
        std::process::exit(1);
    }
}
