"""`helm install charts/shoal` for real, then the operator and one agent per kwok Node run as local
processes with the chart's ServiceAccount tokens, and do their whole job.

The chart's pods land on kwok Nodes and run nothing; their ServiceAccounts and pods give the local
processes their identities (agent tokens are bound to the DaemonSet pod of their node, with the
chart's nodeRestriction policy on). Agents bind addresses of a private test network, so the operator's
EndpointSlices hold addresses that answer. Any permission the chart forgot shows up as a 403 in a
log or as an object never written, and fails a test here.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.clusters import control_plane_at, local_shoal
from localcluster import examples
from localcluster.chart import Release
from localcluster.controlplane import ControlPlane
from localcluster.registry import Registry
from localcluster.shoalprocs import LocalShoal
from localcluster.testnet import TestNet
from localcluster.tokens import token_identity
from localcluster.tools import tool

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

NS = "shoal-demo"
DENIED = re.compile(r"\b403\b|forbidden", re.IGNORECASE)  # not a port like 40321
API = "/apis/shoal.dev/v1alpha1"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chart-install")


@pytest.fixture(scope="module")
def plane(work: Path) -> Iterator[ControlPlane]:
    """A control plane of this module's own: the chart's cluster-scoped objects and the WasmNodes of
    node-1..3 would otherwise meet the other tests' fakes."""
    with control_plane_at(work / "cluster") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def chart_net(plane: ControlPlane, work: Path) -> Iterator[TestNet]:
    net = TestNet.create(name=f"chart-{work.name[-12:]}", pod_cidr=plane.pod_cidr)
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture(scope="module")
def registry(work: Path) -> Iterator[Registry]:
    reg = Registry(workdir=work / "registry")
    reg.start()
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def release(plane: ControlPlane) -> Release:
    rel = Release(plane, values=["--set", "agent.nodeRestriction.enabled=true"])
    rel.install()
    return rel


@pytest.fixture(scope="module")
def shoal(release: Release, chart_net: TestNet, work: Path) -> Iterator[LocalShoal]:
    with local_shoal(release, chart_net, work / "shoal") as local:
        yield local


@pytest.fixture(scope="module")
def deployed(shoal: LocalShoal, registry: Registry) -> LocalShoal:
    wasm = examples.build()
    pushed = examples.push(registry.address, wasm, [examples.HELLOS[0], examples.JOB])
    assert set(pushed) == {"hello-c", "job-c"}
    plane = shoal.release.plane
    docs = examples.manifests(examples.EXAMPLES_DIR / "hello.yaml", registry.address, only=["hello-c"])
    docs += examples.manifests(examples.EXAMPLES_DIR / "job.yaml", registry.address)
    examples.apply(plane, docs)
    examples.wait_ready(plane, NS, ["hello-c", "countdown"], timeout=120)
    return shoal


def http_get(url: str, host: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def as_token(plane: ControlPlane, kubeconfig: Path, method: str, path: str, body: Any) -> tuple[int, str]:
    """Status code and body of one request made with the token in `kubeconfig`."""
    token = json.loads(kubeconfig.read_text())["users"][0]["user"]["token"]
    req = urllib.request.Request(plane.server + path, data=json.dumps(body).encode(), method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/merge-patch+json")
    ctx = ssl.create_default_context(cafile=str(plane.pki_dir / "ca.crt"))
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# --- tests ----------------------------------------------------------------------------------------


def test_helm_install_deploys_the_chart(release: Release) -> None:
    plane = release.plane
    done = subprocess.run(
        [tool("helm"), f"--kubeconfig={plane.kubeconfig}", "status", release.name, "-n", release.namespace,
         "-o", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout)["info"]["status"] == "deployed"
    agents = release.agent_pods(plane.node_names())
    assert sorted(agents) == plane.node_names()
    assert release.operator_pod().node
    for component in ("operator", "agent"):
        plane.get_json(
            f"/api/v1/namespaces/{release.namespace}/serviceaccounts/{release.service_account(component)}"
        )
    crds = {
        c["metadata"]["name"]
        for c in plane.get_json("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
    }
    assert {"wasmapps.shoal.dev", "wasmplacements.shoal.dev", "wasmnodes.shoal.dev"} <= crds


def test_processes_authenticate_as_the_chart_service_accounts(shoal: LocalShoal) -> None:
    rel, plane = shoal.release, shoal.release.plane
    assert shoal.operator is not None
    identity = token_identity(
        plane, json.loads(shoal.operator.kubeconfig.read_text())["users"][0]["user"]["token"]
    )
    assert identity["username"] == f"system:serviceaccount:{rel.namespace}:{rel.service_account('operator')}"
    for node, agent in shoal.agents.items():
        token = json.loads(agent.kubeconfig.read_text())["users"][0]["user"]["token"]
        identity = token_identity(plane, token)
        assert identity["username"] == f"system:serviceaccount:{rel.namespace}:{rel.service_account('agent')}"
        assert identity["extra"]["authentication.kubernetes.io/node-name"] == [node]


def test_hello_is_ready_and_answers_through_its_endpointslices(deployed: LocalShoal) -> None:
    plane = deployed.release.plane
    hosts = {a.http_host: a for a in deployed.agents.values()}
    placed = examples.placements(plane, NS, "hello-c")
    assert sorted(p["spec"]["nodeName"] for p in placed) == plane.node_names()
    for agent in deployed.agents.values():
        code, body = http_get(f"{agent.url}/hello-c/x?q=1")
        assert (code, body.split(",")[0]) == (200, "Hello from C"), body
        code, body = http_get(f"{agent.url}/", host=f"hello-c.{NS}.svc.cluster.local")
        assert code == 200 and body.startswith("Hello from C"), body
    slices = plane.get_json(f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices")["items"]
    addresses = [(a, s["ports"][0]["port"]) for s in slices for e in s["endpoints"] for a in e["addresses"]]
    assert sorted(a for a, _ in addresses) == sorted(hosts)
    for address, port in addresses:  # what an in-cluster client behind the Service would reach
        code, body = http_get(f"http://{address}:{port}/", host=f"hello-c.{NS}")
        assert code == 200 and body.startswith("Hello from C"), (address, body)
    plane.get_json(f"/api/v1/namespaces/{NS}/services/hello-c")


def test_job_runs_to_completion(deployed: LocalShoal) -> None:
    plane = deployed.release.plane
    (placement,) = examples.placements(plane, NS, "countdown")
    status = placement["status"]
    assert (status["state"], status["exitCode"], status["attempts"]) == ("Succeeded", 0, 1), status
    assert "arg[2]=liftoff" in status["output"]
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in status["conditions"])


def test_node_restriction_keeps_agents_to_their_node(deployed: LocalShoal) -> None:
    plane = deployed.release.plane
    mine, other = plane.node_names()[:2]
    kubeconfig = deployed.agents[mine].kubeconfig
    patch = {"metadata": {"annotations": {"shoal.test/touched": "yes"}}}
    assert as_token(plane, kubeconfig, "PATCH", f"{API}/wasmnodes/{mine}", patch)[0] == 200
    # The chart's ValidatingAdmissionPolicy denies it (422 Invalid, as admission policies answer).
    code, body = as_token(plane, kubeconfig, "PATCH", f"{API}/wasmnodes/{other}", patch)
    assert code == 422 and "may only write the WasmNode of its own node" in body, (code, body)


def test_everything_was_written_and_nothing_forbidden(deployed: LocalShoal) -> None:
    rel, plane = deployed.release, deployed.release.plane
    nodes = plane.node_names()
    wasmnodes = plane.get_json(f"{API}/wasmnodes")["items"]
    assert sorted(n["metadata"]["name"] for n in wasmnodes) == nodes
    assert all(
        n["spec"]["endpoint"]["host"] == deployed.agents[n["metadata"]["name"]].http_host for n in wasmnodes
    )
    leases = {
        x["metadata"]["name"]
        for x in plane.get_json(f"/apis/coordination.k8s.io/v1/namespaces/{rel.namespace}/leases")["items"]
    }
    assert {"shoal-operator", *(f"shoal-agent-{n}" for n in nodes)} <= leases
    app = examples.wasmapp(plane, NS, "hello-c")
    assert app["status"]["readyReplicas"] == 3, app["status"]
    logs = deployed.logs()
    assert set(logs) == {"shoal-operator", *(f"shoal-agent-{n}" for n in nodes)}
    for name, text in logs.items():
        denied = [line for line in text.splitlines() if DENIED.search(line)]
        assert not denied, f"{name}:\n" + "\n".join(denied[:10])
        assert " ERROR " not in text, f"{name}:\n{text[-3000:]}"
