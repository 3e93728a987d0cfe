#!/usr/bin/env bash
# Compile the example and bad guests into an output directory (no network needed).
#   hack/examples/build.sh [OUT]     OUT defaults to ${SHOAL_CACHE:-$HOME/.cache/shoal}/examples
# Idempotent: a guest is rebuilt only when its sources changed (by content: stamps.sh).
# Needs clang + lld + wasi-libc + the wasm32 compiler-rt builtins (Debian: libclang-rt-14-dev-wasm32)
# for C, wat2wasm (wabt) for WAT, and Go >= 1.21 for hello-go (skipped with a note if absent).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-${SHOAL_CACHE:-$HOME/.cache/shoal}/examples}"
mkdir -p "$out"

# shellcheck source=hack/examples/stamps.sh
source "$here/stamps.sh"

build() { # build NAME TARGET CMD...: run CMD into a temp file, then move it into place
  local name="$1" target="$2"; shift 2
  local tmp="$target.tmp.$$"
  echo "build  $name -> $target"
  if "$@" -o "$tmp"; then mv -f "$tmp" "$target"; else rm -f "$tmp"; return 1; fi
}

# Each guest: when stale, build it and stamp it with the sources it came from.

sysroot=/usr
[[ -d /usr/share/wasi-sysroot ]] && sysroot=/usr/share/wasi-sysroot
cc() { clang --target=wasm32-wasi --sysroot="$sysroot" -O2 -Wl,--strip-all "$@"; }

for name in hello-c job-c cgi-echo cat-file; do
  src="$here/$name/main.c"; target="$out/$name.wasm"
  if stale "$target" "$src"; then build "$name" "$target" cc "$src" && stamp "$target"; else echo "fresh  $name"; fi
done

# Guests of the host ABI (docs/host-abi.md): rebuilt when guest/c/shoal.h changes too.
shoal_c="$(cd "$here/../../guest/c" && pwd)"
for name in tally leaderboard capprobe; do
  src="$here/$name/main.c"; target="$out/$name.wasm"
  if stale "$target" "$src" "$shoal_c/shoal.h"; then
    build "$name" "$target" cc -I"$shoal_c" "$src" && stamp "$target"
  else
    echo "fresh  $name"
  fi
done

for src in "$here/hello-wat/hello.wat" "$here"/bad/*.wat; do
  name="$(basename "$src" .wat)"
  [[ "$name" == hello ]] && name=hello-wat
  target="$out/$name.wasm"
  if stale "$target" "$src"; then build "$name" "$target" wat2wasm "$src" && stamp "$target"; else echo "fresh  $name"; fi
done

if stale "$out/not-wasm.wasm" "$here/bad/not-wasm.txt"; then
  echo "copy   not-wasm -> $out/not-wasm.wasm"
  cp "$here/bad/not-wasm.txt" "$out/not-wasm.wasm"
  stamp "$out/not-wasm.wasm"
else
  echo "fresh  not-wasm"
fi

gobin="$(command -v go || true)"
[[ -z "$gobin" && -x /usr/local/go/bin/go ]] && gobin=/usr/local/go/bin/go
go_guest() { # go_guest NAME [EXTRA_SOURCE...]: build hack/examples/NAME if any of its sources changed
  local name="$1" target="$out/$1.wasm" dir="$here/$1"; shift
  if stale "$target" "$dir"/*.go "$dir/go.mod" "$@"; then
    (cd "$dir" && GOOS=wasip1 GOARCH=wasm GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local \
      build "$name" "$target" "$gobin" build -trimpath -ldflags=-s)
    stamp "$target"
  else
    echo "fresh  $name"
  fi
}
if [[ -n "$gobin" ]]; then
  go_guest hello-go
  go_guest scoreboard "$here"/../../guest/go/shoal/*.go "$here/../../guest/go/shoal/go.mod"
else
  echo "skip   hello-go scoreboard (no go toolchain)"
fi
echo "done   $out"
