#!/usr/bin/env bash
# A kind cluster with a local registry, Shoal built and installed from this checkout, and an example app.
# Needs docker, kind, kubectl and helm. NOT run in CI: the development machines have no container engine
# (tests use hack/localcluster instead), so treat this as a recipe that may need small fixes.
#   hack/kind-up.sh            create (or reuse) cluster "shoal" and registry localhost:5001
#   kind delete cluster --name shoal && docker rm -f shoal-registry    to tear down
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cluster="${CLUSTER:-shoal}"
reg_name=shoal-registry
reg_port="${REGISTRY_PORT:-5001}"
tag="${TAG:-dev}"

# 1. A registry container, reachable as localhost:$reg_port from the host and from the nodes.
if [[ "$(docker inspect -f '{{.State.Running}}' "$reg_name" 2>/dev/null || true)" != true ]]; then
  docker run -d --restart=always -p "127.0.0.1:${reg_port}:5000" --network bridge --name "$reg_name" registry:2
fi

# 2. The cluster, with containerd told where localhost:$reg_port really is (kind's documented recipe).
if ! kind get clusters | grep -qx "$cluster"; then
  kind create cluster --name "$cluster" --config - <<KIND
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes: [{role: control-plane}, {role: worker}, {role: worker}]
containerdConfigPatches:
  - |-
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"
KIND
fi
for node in $(kind get nodes --name "$cluster"); do
  docker exec "$node" mkdir -p "/etc/containerd/certs.d/localhost:${reg_port}"
  printf '[host."http://%s:5000"]\n' "$reg_name" |
    docker exec -i "$node" cp /dev/stdin "/etc/containerd/certs.d/localhost:${reg_port}/hosts.toml"
done
docker network connect kind "$reg_name" 2>/dev/null || true

# 3. Images, loaded straight into the nodes (no push needed).
for component in operator node-agent; do
  image="shoal-${component#node-}:$tag"
  docker build -f "$here/$component/Dockerfile" -t "$image" "$here"
  kind load docker-image --name "$cluster" "$image"
done

# 4. The chart (CRDs included), with the freshly built images.
helm upgrade --install shoal "$here/charts/shoal" --namespace shoal-system --create-namespace --wait \
  --set operator.image.repository=shoal-operator --set operator.image.tag="$tag" \
  --set operator.image.pullPolicy=Never \
  --set agent.image.repository=shoal-agent --set agent.image.tag="$tag" --set agent.image.pullPolicy=Never

# 5. An example module pushed from the host; the agents pull it through the registry's in-cluster name.
"$here/hack/examples/build.sh" "${TMPDIR:-/tmp}/shoal-examples"
"$here/.venv/bin/shoal" push "${TMPDIR:-/tmp}/shoal-examples/hello-c.wasm" "localhost:${reg_port}/demo/hello:v1"
"$here/.venv/bin/shoal" scaffold "localhost:${reg_port}/demo/hello:v1" --name hello --http-path /hello |
  kubectl apply -n default -f -
kubectl -n default wait --for=condition=Ready wasmapp/hello --timeout=120s || kubectl -n default get wasmapps
echo "try: kubectl -n shoal-system port-forward ds/shoal-agent 8000 & curl localhost:8000/hello"
