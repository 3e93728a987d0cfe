"""`make demo REAL_NODES=1`: the chart's own images running on a real kubelet Node of the local cluster.

Steps: `make up REAL_NODES=1` (control plane, kwok Nodes, registry, and a real Node: containerd,
kubelet, kube-proxy, a CNI bridge), `make images`, the images pushed to the registry the node pulls
from, `helm install charts/shoal` with the operator and the agent DaemonSet on the real node, a hello
WasmApp placed on that agent, and requests through its Service's ClusterIP (kube-proxy) from the node.
It exits leaving everything running; `make down` stops it all (containers, mounts, netns included).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from localcluster import examples
from localcluster.__main__ import up
from localcluster.controlplane import ControlPlane
from localcluster.images import build_images
from localcluster.processes import wait_until
from localcluster.realchart import hello_app, install, pod_if_ready, push_to_node, selector
from localcluster.realnode import RealNode
from localcluster.tools import bin_dir, cache_dir
from shoal_oci import WasmFormat, push_wasm

CLUSTER = "default"
NS = "shoal-demo"


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def main() -> int:
    started = time.monotonic()
    step("local control plane, registry and a real kubelet Node (make up REAL_NODES=1)")
    if up(CLUSTER, 3, real_nodes=1) != 0:
        return 1
    state: dict[str, Any] = json.loads((cache_dir() / "clusters" / CLUSTER / "state.json").read_text())
    if "realnode" not in state:
        print("this cluster has no real node: `make down`, then `make demo REAL_NODES=1`", file=sys.stderr)
        return 1
    plane = ControlPlane.from_description(state)
    node = RealNode.from_description(state["realnode"])
    registry, node_registry = str(state["registry"]), str(state["node_registry"])

    step("make images (podman, offline; cached after the first build)")
    built = build_images()
    for b in built:
        print(f"    {b.ref}: {b.seconds:.1f}s, {b.size_bytes / 1e6:.0f} MB")
    refs = push_to_node(built, node_registry)

    step(f"helm install charts/shoal, operator and agent on {node.name}")
    start = time.monotonic()
    release = install(plane, refs, node_registry)
    pods = {}
    for component in ("agent", "operator"):
        sel = selector(release, component)
        wait_until(
            lambda: bool(pod_if_ready(plane, release.namespace, sel)),  # noqa: B023 (called at once)
            what=f"the {component} pod Ready",
            timeout=300,
            interval=0.5,
        )
        pods[component] = pod_if_ready(plane, release.namespace, sel)
        print(f"    {pods[component]['metadata']['name']} Ready after {time.monotonic() - start:.1f}s")

    step("a hello WasmApp on the real node's agent")
    wasm = examples.build()
    push_wasm(f"{registry}/demo/hello-c:v1", wasm / "hello-c.wasm", WasmFormat.WASM_ARTIFACT)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
    plane.kubectl("apply", "-f", "-", input=json.dumps(namespace))
    start = time.monotonic()
    plane.kubectl("apply", "-f", "-", input=json.dumps(hello_app(NS, f"{node_registry}/demo/hello-c:v1")))
    plane.kubectl("wait", "-n", NS, "--for=condition=Ready", "wasmapp/hello", "--timeout=120s")
    print(f"    hello Ready {time.monotonic() - start:.1f}s after apply")
    cluster_ip = plane.get_json(f"/api/v1/namespaces/{NS}/services/hello")["spec"]["clusterIP"]
    curl = node.nsenter(["curl", "-s", "-m", "5", f"http://{cluster_ip}/hello"])
    answer = ""
    for _ in range(50):
        answer = subprocess.run(curl, capture_output=True, text=True).stdout
        if "Hello" in answer:
            break
        time.sleep(0.2)
    first = answer.strip().splitlines()[0] if answer.strip() else "(no answer)"
    print(f"    through the ClusterIP {cluster_ip} (kube-proxy): {first}")

    kubectl = f"{bin_dir() / 'kubectl'} --kubeconfig={plane.kubeconfig}"
    print(
        f"""
Real-node demo ready in {time.monotonic() - started:.0f}s. Try:
    {kubectl} get nodes -o wide
    {kubectl} -n {release.namespace} get pods -o wide
    {kubectl} -n {release.namespace} logs {pods["agent"]["metadata"]["name"]}
    {" ".join(curl)}
Node logs (containerd, kubelet, kube-proxy): {Path(node.workdir) / "logs"}
Stop everything: make down"""
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
