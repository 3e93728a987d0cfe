"""The chart's images on a real kubelet Node: `make images`, `make up REAL_NODES=1`, `helm install`.

Everything else in the suite runs on kwok Nodes with the operator and agents as local processes. Here
the images `make images` builds are pushed to the registry the node pulls from, the chart is installed
as a platform team would, and the DaemonSet's agent pod and the operator pod run on the real node with
the chart's security contexts, probes and downward-API values. A WasmApp placed on that agent answers
through its Service's ClusterIP (kube-proxy, iptables) from a pod and from the node, `kubectl logs`
and `kubectl exec` work, and a killed agent container is restarted by kubelet and serves again from
its compile cache (the pod's emptyDir).

Prints the figures (`real_node_*=` lines) and keeps them in ~/.cache/shoal/real-node-figures.txt.
On a host without what a node needs, the test is skipped and says which facility is missing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.kubehttp import KubeHttp
from harness.netcluster import eventually, is_ready
from localcluster.__main__ import _load, down, up
from localcluster.controlplane import ControlPlane
from localcluster.images import Built, build_images
from localcluster.realchart import hello_app, install, pod_if_ready, push_to_node, selector
from localcluster.realnode import RealNode, missing_facilities
from localcluster.tools import cache_dir, tool
from shoal_api import GROUP, VERSION
from shoal_oci import WasmFormat, push_wasm

# On a machine whose image caches are cold, the images fixture alone is two mmdebstrap bases (about
# 2 min) and the agent image's Rust stage compiling wasmtime (12+ min on 2 cores, more when the
# machine is busy): 20 min was seen to run out there. Warm, the whole module takes a few minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(2400)]

FIGURES = cache_dir() / "real-node-figures.txt"


@dataclass
class RealCluster:
    plane: ControlPlane
    node: RealNode
    registry: str
    node_registry: str

    def kubectl(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [tool("kubectl"), f"--kubeconfig={self.plane.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def on_node(self, argv: list[str], timeout: float = 60) -> str:
        """A command in the node's network namespace (where kube-proxy's rules are)."""
        done = subprocess.run(self.node.nsenter(argv), capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
        return done.stdout


@pytest.fixture(scope="module")
def images() -> list[Built]:
    missing = missing_facilities()
    if missing:
        pytest.skip("no real node on this host: missing " + "; ".join(missing))
    return build_images()


@pytest.fixture(scope="module")
def real_cluster(images: list[Built]) -> Iterator[RealCluster]:
    name = f"rn{os.getpid() % 100000}"
    assert up(name, 1, testnet=True, real_nodes=1) == 0
    try:
        state = _load(name)
        assert state is not None
        yield RealCluster(
            plane=ControlPlane.from_description(state),
            node=RealNode.from_description(state["realnode"]),  # type: ignore[arg-type]
            registry=str(state["registry"]),
            node_registry=str(state["node_registry"]),
        )
    finally:
        down(name)


def _wrk_rps(output: str) -> float:
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert found, output
    return float(found.group(1))


def _figure(name: str, value: float | str) -> None:
    line = f"real_node_{name}={value}"
    print(line)
    with FIGURES.open("a") as f:
        f.write(line + "\n")


def _agent_container_pid(node: RealNode) -> int:
    """The agent container's init PID, from runc's state under the node's own runc root."""
    root = node.state_dir / "runc" / "k8s.io"
    listed = subprocess.run(
        ["runc", "--root", str(root), "list", "--format", "json"], capture_output=True, text=True, check=True
    ).stdout
    for c in json.loads(listed or "[]"):
        config = json.loads((Path(c["bundle"]) / "config.json").read_text())
        annotations = config.get("annotations") or {}
        if annotations.get("io.kubernetes.cri.container-name") == "shoal-agent" and c["status"] == "running":
            return int(c["pid"])
    raise AssertionError(f"no running shoal-agent container in {listed}")


def test_chart_images_run_on_a_real_node(
    images: list[Built], real_cluster: RealCluster, example_guests: Path
) -> None:
    rc = real_cluster
    kube = KubeHttp(rc.plane)
    FIGURES.write_text(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    # helm install as a platform team would: the DaemonSet's agent pod on the real node, Ready.
    start = time.monotonic()
    refs = push_to_node(images, rc.node_registry)
    _figure("push_images_s", round(time.monotonic() - start, 1))
    start = time.monotonic()
    release = install(rc.plane, refs, rc.node_registry)
    ns = release.namespace
    agent = eventually(
        lambda: pod_if_ready(rc.plane, ns, selector(release, "agent")), within=300, what="agent Ready"
    )
    _figure("agent_pod_ready_s", round(time.monotonic() - start, 1))
    assert agent["spec"]["nodeName"] == rc.node.name
    operator = eventually(
        lambda: pod_if_ready(rc.plane, ns, selector(release, "operator")), within=180, what="operator Ready"
    )
    _figure("operator_pod_ready_s", round(time.monotonic() - start, 1))

    # As the chart defines it: uid 65532, read-only root, no capabilities; the downward-API budget.
    spec = agent["spec"]["containers"][0]
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    ident = rc.kubectl(
        "exec", "-n", ns, agent["metadata"]["name"], "--", "sh", "-c", "id -u; echo $MEMORY_LIMIT"
    )
    uid, memory_limit = ident.split()
    assert uid == "65532"
    assert int(memory_limit) > 0
    caps = rc.kubectl("exec", "-n", ns, agent["metadata"]["name"], "--", "grep", "CapEff", "/proc/1/status")
    assert caps.split()[1] == "0000000000000000", caps
    assert rc.kubectl("logs", "-n", ns, agent["metadata"]["name"]).strip(), "kubectl logs printed nothing"

    # A WasmApp placed on that agent, Ready.
    push_wasm(f"{rc.registry}/e2e/hello:v1", example_guests / "hello-c.wasm", WasmFormat.WASM_ARTIFACT)
    app_ns = "real-e2e"
    kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": app_ns}})
    start = time.monotonic()
    app = hello_app(app_ns, f"{rc.node_registry}/e2e/hello:v1")
    kube.apply(f"/apis/{GROUP}/{VERSION}/namespaces/{app_ns}/wasmapps/hello", app)
    eventually(lambda: is_ready(kube, app_ns, "hello"), within=120, what="hello Ready")
    _figure("wasmapp_apply_to_ready_s", round(time.monotonic() - start, 2))

    # Through the Service's ClusterIP (kube-proxy): from the node and from a pod.
    cluster_ip = kube.get(f"/api/v1/namespaces/{app_ns}/services/hello")["spec"]["clusterIP"]
    via_service = f"http://{cluster_ip}/hello"

    def hello_from_node() -> str:
        """kube-proxy REJECTs until it has synced the app's EndpointSlice: retried."""
        argv = rc.node.nsenter(["curl", "-s", "-m", "5", via_service])
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
        return out if "Hello from C" in out else ""

    body = eventually(
        hello_from_node,
        within=30,
        what=f"hello through {via_service} from the node",
    )
    assert "Hello from C" in body
    script = (
        f"import urllib.request; print(urllib.request.urlopen('{via_service}', timeout=5).read().decode())"
    )
    from_pod = rc.kubectl("exec", "-n", ns, operator["metadata"]["name"], "--", "python3", "-c", script)
    assert "Hello from C" in from_pod, from_pod

    # req/s through the ClusterIP vs straight to the agent pod, same client (wrk, in the node netns).
    direct = f"http://{agent['status']['podIP']}:8000/hello"
    wrk = ["wrk", "-t1", "-c8", "-d3s"]
    rps_service = _wrk_rps(rc.on_node([*wrk, via_service]))
    rps_direct = _wrk_rps(rc.on_node([*wrk, direct]))
    _figure("rps_clusterip", rps_service)
    _figure("rps_direct", rps_direct)
    assert rps_service > 0 and rps_direct > 0

    # Kill the agent container: kubelet restarts it, and it serves again from its compile cache.
    pod_name = agent["metadata"]["name"]
    os.kill(_agent_container_pid(rc.node), 9)
    start = time.monotonic()

    def restarted_and_serving() -> bool:
        pod = kube.get(f"/api/v1/namespaces/{ns}/pods/{pod_name}")
        restarts = pod["status"]["containerStatuses"][0]["restartCount"]
        if restarts < 1:
            return False
        done = subprocess.run(
            rc.node.nsenter(["curl", "-s", "-m", "2", via_service]), capture_output=True, text=True
        )
        return "Hello from C" in done.stdout

    eventually(restarted_and_serving, within=120, what="the restarted agent serving hello", interval=0.1)
    _figure("agent_restart_to_serving_s", round(time.monotonic() - start, 2))
    # A warm start serves the trigger port before the rest of the agent (and /metrics) is up.
    metrics_url = f"http://{agent['status']['podIP']}:9090/metrics"

    def scraped() -> str:
        done = subprocess.run(
            rc.node.nsenter(["curl", "-s", "-m", "5", metrics_url]), capture_output=True, text=True
        )
        return done.stdout if done.returncode == 0 else ""

    metrics = eventually(scraped, within=30, what=f"{metrics_url} after the restart")
    loads = [
        ln
        for ln in metrics.splitlines()
        if ln.startswith("shoal_module_compile_seconds_count") and "cache_load" in ln
    ]
    assert loads and float(loads[0].split()[-1]) >= 1, "\n".join(
        ln for ln in metrics.splitlines() if "compile" in ln
    )
    assert rc.kubectl("logs", "-n", ns, pod_name, "--previous").strip(), "no log of the killed container"
