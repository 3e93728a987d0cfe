#!/usr/bin/env bash
# Install everything Shoal's tests and demo need on a fresh Debian machine. Idempotent.
#   1. Debian packages: the real servers tests run against, and the toolchain for example guests.
#   2. A Python virtualenv in .venv with the project, its dev tools and the dev kit (localcluster, harness...).
#   3. Kubernetes, etcd, kwok, helm and oras built from the Go module proxy (cached in ~/.cache/shoal).
#   4. The native data plane (Rust: wasmtime + hyper, a PyO3 extension built by maturin), with cargo's
#      target dir cached in ~/.cache/shoal/cargo so a fresh clone rebuilds only the crate itself.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

debs=(docker-registry redis-server mariadb-server prometheus runc busybox-static wrk
      clang lld wasi-libc libclang-rt-14-dev-wasm32 wabt curl ca-certificates
      podman buildah mmdebstrap containerd containernetworking-plugins iptables conntrack)
# npm installs componentize-js for the JS component guest; a Node.js that came with its own npm is kept
# (Debian's npm would conflict with it).
command -v npm >/dev/null || debs+=(nodejs npm)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  # Keep apt from starting the servers as system services: tests start their own, on loopback.
  policy=/usr/sbin/policy-rc.d
  added_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
    "${sudo_cmd[@]}" chmod +x "$policy"
    added_policy=1
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ((added_policy)) && "${sudo_cmd[@]}" rm -f "$policy"
  log "Debian packages installed"
else
  log "Debian packages: all present"
fi

py=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  "$py" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
stamp=.venv/.shoal-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp || hack/pyproject.toml -nt $stamp ]]; then
  log "installing the project, its dev tools and the dev kit (hack/pyproject.toml) into .venv"
  .venv/bin/pip install -q -e '.[dev]' -e hack
  touch "$stamp"
else
  log "python environment: up to date"
fi

hack/build-tools.sh >/dev/null
hack/build-dataplane.sh
log "done"
