#!/usr/bin/env bash
# Build the component guests (WASI preview 2) into an output directory, cached outside the clone:
#   hack/examples/build-components.sh [OUT]   OUT defaults to ${SHOAL_CACHE:-$HOME/.cache/shoal}/examples
# componentize-py 0.17.2 (PyPI) turns the Python apps into components; the WASI 0.2.0 WIT files come
# from spin-sdk 3.4.1's package (the last Spin SDK that emits preview 2). Both are installed into a
# venv under the cache the first time (network), then reused. A guest is rebuilt only when its source
# is newer than its .wasm (componentize-py takes ~30-40 s per guest: the CPython it embeds).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SHOAL_CACHE:-$HOME/.cache/shoal}"
out="${1:-$cache/examples}"
venv="$cache/componentize-venv"
mkdir -p "$out"

if ! "$venv/bin/componentize-py" --version >/dev/null 2>&1; then
  echo "setup  componentize-py 0.17.2 + spin-sdk 3.4.1 (WIT) -> $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check componentize-py==0.17.2
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps spin-sdk==3.4.1
fi
wit="$("$venv/bin/python" -c 'import spin_sdk, os; print(os.path.join(os.path.dirname(spin_sdk.__file__), "wit"))')"

py_component() { # py_component NAME WORLD
  local name="$1" world="$2" dir="$here/$1" target="$out/$1.wasm"
  if [[ -f "$target" && ! "$dir/app.py" -nt "$target" ]]; then echo "fresh  $name"; return; fi
  echo "build  $name ($world) -> $target"
  (cd "$dir" && "$venv/bin/componentize-py" -q -d "$wit" -w "$world" componentize app -o "$target.tmp.$$")
  mv -f "$target.tmp.$$" "$target"
}

# A Spin app: the world's WIT and bindings come from spin-sdk's own componentize-py.toml, found on
# the Python path given with -p (the venv's site-packages).
spin_component() { # spin_component NAME
  local name="$1" dir="$here/$1" target="$out/$1.wasm"
  if [[ -f "$target" && ! "$dir/app.py" -nt "$target" ]]; then echo "fresh  $name"; return; fi
  echo "build  $name (fermyon:spin/spin-http) -> $target"
  local site
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  (cd "$dir" && "$venv/bin/componentize-py" -q -w spin-http componentize app -p . -p "$site" -o "$target.tmp.$$")
  mv -f "$target.tmp.$$" "$target"
}

py_component hello-component-py wasi:http/proxy@0.2.0
py_component cli-component-py wasi:cli/command@0.2.0
py_component fetch-component-py wasi:http/proxy@0.2.0
spin_component spin-counter-py
echo "done   $out"
