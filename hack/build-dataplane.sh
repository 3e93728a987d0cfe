#!/usr/bin/env bash
# Build the native data plane (node-agent/dataplane) with maturin and install it into .venv.
# Rebuilds only when the crate's sources change (a hash of them is kept in the venv); cargo's target
# dir lives in ~/.cache/shoal/cargo, so even a fresh clone only recompiles the crate, not wasmtime
# (the first build of wasmtime takes 10+ minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[dataplane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

crate=node-agent/dataplane
cache=${SHOAL_CACHE:-$HOME/.cache/shoal}
export CARGO_TARGET_DIR=$cache/cargo
stamp=.venv/.shoal-dataplane
sources=$( (cd "$crate" && cat Cargo.toml Cargo.lock pyproject.toml shoal_dataplane.pyi $(find src wit -type f | sort)) | sha256sum | cut -c1-16)
if [[ -f $stamp && $(cat "$stamp") == "$sources" ]] && .venv/bin/python -c 'import shoal_dataplane' 2>/dev/null; then
  log "native data plane: up to date"
  exit 0
fi
if [[ -d $CARGO_TARGET_DIR/release/build ]]; then
  log "building the native data plane (cached dependencies in $CARGO_TARGET_DIR)"
else
  log "building the native data plane: first build of wasmtime, 10+ minutes on 2 cores (cached afterwards)"
fi
start=$SECONDS
# A wheel dir of this build's own: clones built side by side share cargo's target dir (cargo locks
# it) but must not pick up each other's wheel.
mkdir -p "$cache"
wheels=$(mktemp -d "$cache/wheels.XXXXXX")
trap 'rm -rf "$wheels"' EXIT
# cargo prints one line per crate it compiles: that is the progress of a long first build.
buildlog=$wheels/build.log
.venv/bin/maturin build --release --locked -m "$crate/Cargo.toml" -o "$wheels" -i .venv/bin/python 2>&1 |
  tee "$buildlog" | grep -E --line-buffered '^\s*(Compiling|Finished)|Built wheel' >&2 || true
wheel=$(ls "$wheels"/shoal_dataplane-*.whl 2>/dev/null | head -1)
if [[ -z $wheel ]]; then
  tail -n 40 "$buildlog" >&2
  cp "$buildlog" "$cache/dataplane-build.log"
  log "the build failed (whole log: $cache/dataplane-build.log)"
  exit 1
fi
.venv/bin/pip install -q --force-reinstall --no-deps "$wheel"
echo "$sources" >"$stamp"
log "native data plane built and installed in $((SECONDS - start))s"
