#!/usr/bin/env bash
# Build the Kubernetes control plane, etcd, kubectl, kwok, helm and oras from the Go module proxy.
#
# Results are cached outside the clone in $SHOAL_CACHE/bin/<module>-<version>/ so a second run is
# instant. Each tool module under hack/tools/ pins its own versions (go.mod + go.sum committed), so
# their minimum Go and dependency versions do not drag each other. Idempotent; prints progress.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${SHOAL_CACHE:-$HOME/.cache/shoal}
export CGO_ENABLED=0 GOFLAGS=${GOFLAGS:--mod=mod} GOTOOLCHAIN=local
bin_root="$cache/bin"
mkdir -p "$bin_root"

log() { printf '[build-tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# mod_version DIR MODULE: the version DIR's go.mod resolves MODULE to.
mod_version() { (cd "$1" && go list -m -f '{{.Version}}' "$2"); }

# build DIR OUTDIR NAME PKG [LDFLAGS]: go build PKG into OUTDIR/NAME unless it is already there.
build() {
  local dir=$1 out=$2 name=$3 pkg=$4 ldflags=${5:-}
  if [[ -x "$out/$name" ]]; then
    log "$name: cached at $out/$name"
    return
  fi
  mkdir -p "$out"
  log "$name: building $pkg (this can take several minutes on 2 cores)"
  local start=$SECONDS
  (cd "$dir" && go build -trimpath -o "$out/$name.tmp" -ldflags "-s -w $ldflags" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  log "$name: built in $((SECONDS - start))s"
}

# --- Kubernetes: apiserver, controller-manager, scheduler, kubectl, and etcd 3.5 -------------------
k8s_dir="$here/tools/k8s"
k8s_version=$(mod_version "$k8s_dir" k8s.io/kubernetes)
k8s_out="$bin_root/kubernetes-$k8s_version"
vpkg=k8s.io/component-base/version
ldk="-X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$(cut -d. -f2 <<<"$k8s_version") -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
ldk="$ldk -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"
# kubelet and kube-proxy run the real node of `make up REAL_NODES=1` (hack/localcluster/realnode.py).
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
  build "$k8s_dir" "$k8s_out" "$cmd" "k8s.io/kubernetes/cmd/$cmd" "$ldk"
done
build "$k8s_dir" "$k8s_out" etcd ./etcd

# --- kwok, helm, oras: one module each --------------------------------------------------------------
kwok_version=$(mod_version "$here/tools/kwok" sigs.k8s.io/kwok)
build "$here/tools/kwok" "$bin_root/kwok-$kwok_version" kwok sigs.k8s.io/kwok/cmd/kwok \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version"
helm_version=$(mod_version "$here/tools/helm" helm.sh/helm/v3)
build "$here/tools/helm" "$bin_root/helm-$helm_version" helm helm.sh/helm/v3/cmd/helm \
  "-X helm.sh/helm/v3/internal/version.version=$helm_version"
oras_version=$(mod_version "$here/tools/oras" oras.land/oras)
build "$here/tools/oras" "$bin_root/oras-$oras_version" oras oras.land/oras/cmd/oras \
  "-X oras.land/oras/internal/version.Version=${oras_version#v} -X oras.land/oras/internal/version.BuildMetadata="

# One stable folder of links, so callers need not know versions: $SHOAL_CACHE/bin/current/.
cur="$bin_root/current"
mkdir -p "$cur"
for f in "$k8s_out"/* "$bin_root/kwok-$kwok_version/kwok" "$bin_root/helm-$helm_version/helm" \
         "$bin_root/oras-$oras_version/oras"; do
  ln -sfn "$f" "$cur/$(basename "$f")"
done
log "all tools ready in $cur"
echo "SHOAL_BIN=$cur"
