"""Session fixtures for tests on the private test network (hack/localcluster/testnet.py).

One netns + veth, real servers behind dependency pods, one real operator and real agents on kwok
Nodes of their own (label `shoal.dev/testnet`, so simulated agents of other tests never meet
them), each agent bound to and advertising a test-network address. Everything is removed in
`finally` blocks, also when a test fails; a machine where the network cannot be made fails the
tests that need it (it is not skipped).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.agentproc import AgentProcess
from harness.fakeagents import AGENT_NAMESPACE
from harness.kubehttp import KubeHttp
from harness.operatorproc import OperatorProcess
from localcluster.controlplane import ControlPlane
from localcluster.depservers import DependencyServers
from localcluster.registry import Registry
from localcluster.testnet import TestNet
from shoal_api import GROUP, VERSION
from shoal_api.naming import agent_lease_name
from shoal_oci import WasmFormat, push_wasm

REPO = Path(__file__).resolve().parents[2]
NET_LABEL = "shoal.dev/testnet"
NET_NODES = ("net-1", "net-2", "net-3")


@pytest.fixture(scope="session")
def testnet(control_plane: ControlPlane) -> Iterator[TestNet]:
    net = TestNet.create(name=f"t{os.getpid()}", pod_cidr=control_plane.pod_cidr)
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture(scope="session")
def dependency_servers(
    control_plane: ControlPlane, testnet: TestNet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DependencyServers]:
    servers = DependencyServers(
        plane=control_plane, testnet=testnet, workdir=tmp_path_factory.mktemp("depservers")
    )
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def net_kube(control_plane: ControlPlane, shoal_crds: Path) -> KubeHttp:
    kube = KubeHttp(control_plane)
    if not kube.exists(f"/api/v1/namespaces/{AGENT_NAMESPACE}"):
        kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": AGENT_NAMESPACE}})
    return kube


@pytest.fixture(scope="session")
def net_operator(
    control_plane: ControlPlane, shoal_crds: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("net-operator")
    with OperatorProcess(kubeconfig=control_plane.kubeconfig, workdir=workdir, identity="op-net") as proc:
        yield proc


@pytest.fixture(scope="session")
def net_agents(
    net_kube: KubeHttp,
    testnet: TestNet,
    control_plane: ControlPlane,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, AgentProcess]]:
    """A real agent per kwok Node `net-*`, triggers on a test-network address each."""
    agents: dict[str, AgentProcess] = {}
    try:
        for node in NET_NODES:
            net_kube.apply(
                f"/api/v1/nodes/{node}",
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": node,
                        "labels": {"kubernetes.io/hostname": node, "type": "kwok", NET_LABEL: testnet.name},
                        "annotations": {"kwok.x-k8s.io/node": "fake"},
                    },
                    "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
                },
            )
            work = tmp_path_factory.mktemp(f"agent-{node}")
            agent = AgentProcess(
                kubeconfig=control_plane.kubeconfig,
                node=node,
                namespace=AGENT_NAMESPACE,
                workdir=work,
                cache_dir=work / "cache",
                http_host=testnet.host_address(),
            )
            agents[node] = agent
            agent.start()
        yield agents
    finally:
        for agent in agents.values():
            agent.stop()
        for node in NET_NODES:
            net_kube.delete(f"/api/v1/nodes/{node}")
            net_kube.delete(f"/apis/{GROUP}/{VERSION}/wasmnodes/{node}")
            net_kube.delete(
                f"/apis/coordination.k8s.io/v1/namespaces/{AGENT_NAMESPACE}/leases/{agent_lease_name(node)}"
            )


@pytest.fixture(scope="session")
def example_guests() -> Path:
    """hack/examples built into their usual cache (build.sh is incremental and writes atomically)."""
    if shutil.which("clang") is None or shutil.which("wat2wasm") is None:
        pytest.skip("clang and wat2wasm are needed to build the example guests (hack/setup.sh)")
    done = subprocess.run([str(REPO / "hack/examples/build.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return Path(done.stdout.strip().splitlines()[-1].split(None, 1)[1])


@pytest.fixture(scope="session")
def example_images(example_guests: Path, oci_registry: Registry) -> dict[str, str]:
    """name -> image reference (tag) of every example guest the network tests use."""
    images = {}
    for name in ("hello-c", "tally", "scoreboard", "leaderboard", "redis-and-sql"):
        wasm = example_guests / f"{name}.wasm"
        if not wasm.exists():
            pytest.fail(f"{wasm} was not built (scoreboard needs Go >= 1.21)")
        image = f"{oci_registry.address}/net-e2e/{name}:v1"
        push_wasm(image, wasm, WasmFormat.WASM_ARTIFACT)
        images[name] = image
    return images


@pytest.fixture
def net_namespace(net_kube: KubeHttp, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"net-{request.node.name.lower().replace('_', '-')[:30].strip('-')}-{os.getpid() % 10000}"
    net_kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    try:
        yield name
    finally:
        net_kube.delete(f"/api/v1/namespaces/{name}")
