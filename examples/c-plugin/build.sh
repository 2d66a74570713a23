#!/bin/sh
# Builds stats.wasm, the tend plugin in C (see README.md): WIT bindings from
# `wit-bindgen c`, a core module from Debian's clang and wasi-libc (WASI
# preview1, reactor), then a WASI 0.2 component from `wasm-tools component
# new` with the preview1 adapter of wasmtime 48.
#
# Environment (all optional):
#   OUT    the component to write                  (default: stats.wasm)
#   BUILD  directory for intermediate files        (default: build)
#   CC     a clang with the wasm32-wasi target     (default: clang-14)
#   WIT    the directory of tend's plugin.wit      (default: ../../wit)
set -eu
cd "$(dirname "$0")"
OUT=${OUT:-stats.wasm}
BUILD=${BUILD:-build}
CC=${CC:-clang-14}
WIT=${WIT:-../../wit}

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "build.sh: $1 is not on PATH; $2" >&2
        exit 1
    }
}
need "$CC" "install Debian's clang: apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32"
need wit-bindgen "install it: cargo install --locked wit-bindgen-cli@0.60.0"
need wasm-tools "install it: cargo install --locked wasm-tools@1.254.2"
need cargo "install Rust (rustup): cargo fetches the WASI adapter"
# The libc and the compiler builtins for wasm32-wasi, where $CC looks for them.
[ -f "$("$CC" --target=wasm32-wasi -print-file-name=libc.a)" ] || {
    echo "build.sh: $CC finds no wasi-libc for wasm32-wasi; apt-get install wasi-libc" >&2
    exit 1
}
[ -f "$("$CC" --target=wasm32-wasi -print-libgcc-file-name)" ] || {
    echo "build.sh: $CC finds no compiler builtins for wasm32-wasi ($("$CC" --target=wasm32-wasi \
-print-libgcc-file-name)); apt-get install libclang-rt-14-dev-wasm32" >&2
    exit 1
}
mkdir -p "$BUILD/bindings"

# 1. C bindings of the `plugin` world: plugin.h, plugin.c and the
#    component type as an object file (a custom section the linker keeps).
wit-bindgen c "$WIT" --world plugin --out-dir "$BUILD/bindings" >"$BUILD/wit-bindgen.log" 2>&1 || {
    cat "$BUILD/wit-bindgen.log" >&2
    exit 1
}

# 2. A core module. A reactor has no main(): tend calls the exports.
#    --strip-debug drops the DWARF Debian's libc.a carries (150 KB); the
#    function names stay, for backtraces of traps.
"$CC" --target=wasm32-wasi -mexec-model=reactor -std=c11 -O2 -Wall -Wextra -Werror \
    -I src -I "$BUILD/bindings" \
    src/json.c src/stats.c src/step.c "$BUILD/bindings/plugin.c" "$BUILD/bindings/plugin_component_type.o" \
    -Wl,--strip-debug -o "$BUILD/stats.core.wasm"

# 3. The component. wasi-libc calls WASI preview1 (`wasi_snapshot_preview1`);
#    the adapter implements it on the WASI 0.2 interfaces tend provides.
cargo run --quiet --locked --manifest-path adapter/Cargo.toml -- "$BUILD/wasi_snapshot_preview1.reactor.wasm"
wasm-tools component new "$BUILD/stats.core.wasm" \
    --adapt "wasi_snapshot_preview1=$BUILD/wasi_snapshot_preview1.reactor.wasm" -o "$OUT"
wasm-tools validate "$OUT"
echo "built $OUT ($(wc -c <"$OUT") bytes)"
