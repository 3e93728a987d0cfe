"""Components as WasmApps: Python and JavaScript `wasi:http/proxy` components and a Python `wasi:cli/run`
component pushed to the registry, placed by the operator, served by the agents' native listener and reached
through the addresses the app's EndpointSlices publish; a C core module made a `wasi:cli` component
(WAGI and job); a Spin app in Spin's own packaging, and one on its MySQL dependency; a WASI preview 3
component refused with a condition and an Event that say why."""

from __future__ import annotations

import base64
import contextlib
import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis

from harness.agentproc import AgentProcess
from harness.kubehttp import KubeHttp
from harness.netcluster import apply_app, condition, eventually, http_get, is_ready, slice_addresses
from harness.operatorproc import OperatorProcess
from localcluster.depservers import DependencyServers
from localcluster.registry import Registry
from localcluster.testnet import TestNet
from localcluster.whiskers import static_volume
from shoal_oci import WasmFormat, push_wasm
from tests.conftest import Upstream

from .conftest import NET_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# componentize-py components embed CPython: ~12 MiB of linear memory per instance, a few ms to start.
RESOURCES = {"memory": "64Mi", "timeout": "10s"}
Get = Callable[[str], tuple[int, str]]
"""GET a path of the test's app: (status, body)."""


@pytest.fixture
def apply_component(
    net_kube: KubeHttp,
    net_operator: OperatorProcess,
    net_agents: dict[str, AgentProcess],
    component_guests: Path,
    oci_registry: Registry,
    net_namespace: str,
    testnet: TestNet,
) -> Callable[..., None]:
    """Push a component guest (in packaging `fmt`) and apply it as an HTTP WasmApp `comp` on /c
    (plus `extra` spec fields)."""

    def apply(guest: str, fmt: WasmFormat = WasmFormat.WASM_ARTIFACT, **extra: Any) -> None:
        image = f"{oci_registry.address}/net-e2e/{guest}:v1"
        push_wasm(image, component_guests / f"{guest}.wasm", fmt, app_name=guest)
        apply_app(
            net_kube,
            net_namespace,
            "comp",
            {
                "module": {"image": image},
                "replicas": 1,
                "resources": RESOURCES,
                "trigger": {"http": {"path": "/c"}},
                "placement": {"nodeSelector": {NET_LABEL: testnet.name}},
                **extra,
            },
        )

    return apply


@pytest.fixture
def deploy_component(
    apply_component: Callable[..., None], net_kube: KubeHttp, net_namespace: str
) -> Callable[..., Get]:
    """Apply a component guest as `comp`, wait until it is Ready (after `first`, say its dependency
    pod serving), and return how to GET from it."""

    def deploy(
        guest: str,
        first: Callable[[], object] | None = None,
        fmt: WasmFormat = WasmFormat.WASM_ARTIFACT,
        **extra: Any,
    ) -> Get:
        apply_component(guest, fmt, **extra)
        ns = net_namespace
        if first is not None:
            first()
        eventually(lambda: is_ready(net_kube, ns, "comp"), within=120, what=f"{guest} Ready")
        (address,) = eventually(
            lambda: slice_addresses(net_kube, ns, "comp"), within=30, what="an endpoint in the slices"
        )
        # By Host, not by path alone: every test's app is `comp` on /c, and an agent's paths are
        # shared by all namespaces (the first app keeps one). The `comp` of the test before, its
        # namespace still being deleted, can hold /c on the same agent for seconds, and a request by
        # path went to it (a Spin MySQL test once got the Redis app's 500).
        return functools.partial(http_get, address, host=f"comp.{ns}")

    return deploy


@pytest.fixture
def serve_component(deploy_component: Callable[..., Get]) -> Callable[[str, str], None]:
    """Deploy a component guest and check what its endpoint answers."""

    def serve(guest: str, expected: str) -> None:
        status, body = deploy_component(guest)("/c/x?y=1")
        assert status == 200, body
        assert body.startswith(expected), body

    return serve


# Two tests, not one parametrized: each gets its own namespace (named after the test).
def test_wasi_http_component_app(serve_component: Callable[[str, str], None]) -> None:
    serve_component("hello-component-py", "Hello from a Python component, GET /c/x?y=1")


def test_javascript_wasi_http_component_app(serve_component: Callable[[str, str], None]) -> None:
    """componentize-js (SpiderMonkey in the component): the JS `fetch` handler as a WasmApp."""
    serve_component("hello-component-js", "Hello from JS, GET /c/x?y=1 x-name=- served=1")


def test_wasi_cli_component_app(serve_component: Callable[[str, str], None]) -> None:
    serve_component("cli-component-py", "Hello from a Python command component, args=[] path=/x")


def test_wagi_by_a_c_module_made_a_wasi_cli_component(
    serve_component: Callable[[str, str], None],
) -> None:
    """hello-c, built for wasm32-wasi and wrapped by `wasm-tools component new` with wasmtime's
    command adapter: a `wasi:cli/run` component answering CGI over its stdio."""
    serve_component("hello-c-component", "Hello from C, /x?y=1")


def test_job_of_a_c_module_made_a_wasi_cli_component(
    apply_component: Callable[..., None], net_kube: KubeHttp, net_namespace: str
) -> None:
    apply_component("job-c-component", trigger={"job": {"args": ["0", "from-e2e"], "backoffLimit": 0}})

    def finished() -> list[dict[str, Any]]:
        items = net_kube.get(f"/apis/shoal.dev/v1alpha1/namespaces/{net_namespace}/wasmplacements")["items"]
        return [p["status"] for p in items if (p.get("status") or {}).get("exitCode") is not None]

    (status,) = eventually(finished, within=90, what="the job's placement to record an exit code")
    assert status["state"] == "Succeeded" and status["exitCode"] == 0, status
    assert "job-c ran with 2 argument(s)\narg[1]=0\narg[2]=from-e2e" in status["output"], status


def test_outbound_http_is_allowed_only_to_listed_hosts(
    deploy_component: Callable[..., Get],
    upstream_http: Callable[[str], Upstream],
    net_agents: dict[str, AgentProcess],
) -> None:
    """The agents run in the root network namespace: the upstreams on its loopback are what a guest
    must not reach unless a pattern names the address literally."""
    allowed, other = upstream_http("allowed"), upstream_http("other")
    hosts = [f"http://127.0.0.1:{allowed.port}", f"http://localhost:{other.port}"]
    get = deploy_component("fetch-component-py", capabilities={"allowedOutboundHosts": hosts})

    def fetch(url: str, host: str = "") -> tuple[int, str]:
        query = urlencode({"url": url, **({"host": host} if host else {})})
        return get(f"/c?{query}")

    assert fetch(f"http://127.0.0.1:{allowed.port}/hello.txt") == (200, "fetched 200: hello from allowed")
    assert fetch(f"http://127.0.0.1:{other.port}/denied.txt") == (
        502,
        "refused: ErrorCode_HttpRequestDenied()",
    )
    # Listed by name only: `localhost` resolves to loopback, which a name never unlocks.
    assert fetch(f"http://localhost:{other.port}/by-name.txt") == (
        502,
        "refused: ErrorCode_DestinationIpProhibited()",
    )
    # Host-header bypass: an allowed Host header, a disallowed address.
    status, body = fetch(f"http://127.0.0.1:{other.port}/bypass.txt", host=f"127.0.0.1:{allowed.port}")
    assert status == 502 and body.startswith("refused:"), body
    assert allowed.paths() == ["/hello.txt"]
    assert other.paths() == []
    # The refusals are counted per app on the agent that ran them.
    counted = 0.0
    for agent in net_agents.values():
        for m in re.finditer(r"^shoal_outbound_http_denied_total\{([^}]*)\} (\S+)$", agent.metrics(), re.M):
            if 'app="comp"' in m.group(1):
                counted += float(m.group(2))
    assert counted >= 2, counted


def test_a_wasi_preview_3_component_is_refused_with_a_condition_and_an_event(
    apply_component: Callable[..., None], net_kube: KubeHttp, net_namespace: str
) -> None:
    ns = net_namespace
    apply_component("http-p3")

    def failed() -> dict[str, Any] | None:
        degraded = condition(net_kube, ns, "comp", "Degraded")
        return degraded if degraded and degraded["reason"] == "PlacementFailed" else None

    degraded = eventually(failed, within=90, what="Degraded=True, PlacementFailed")
    assert degraded is not None
    refusal = (
        "WASI preview 3 (wasi:*@0.3.x, e.g. wasi:http@0.3.0) components are not supported by this data plane"
    )
    assert f"load: UnsupportedComponentError: {refusal}" in degraded["message"], degraded
    assert "wasmtime 48" in degraded["message"], degraded
    assert "it uses wasi:http/types@0.3.0, wasi:http/handler@0.3.0" in degraded["message"], degraded

    def warnings() -> list[dict[str, Any]]:
        events = net_kube.get(f"/api/v1/namespaces/{ns}/events")["items"]
        return [
            e for e in events if e["reason"] == "PlacementFailed" and e["involvedObject"]["name"] == "comp"
        ]

    (event,) = eventually(warnings, within=30, what="a PlacementFailed Event on the WasmApp")
    assert event["type"] == "Warning" and refusal in event["message"], event
    assert not is_ready(net_kube, ns, "comp")


@contextlib.contextmanager
def dependency_volume(net_kube: KubeHttp, namespace: str, dependency: str, path: Path) -> Iterator[None]:
    """The PersistentVolume an admin would make for the claim of app `comp`'s dependency (no
    provisioner here), pre-bound to it; deleted afterwards."""
    claim = f"data-comp-{dependency}-0"
    name = f"{namespace}-{claim}"
    net_kube.request("POST", "/api/v1/persistentvolumes", static_volume(name, namespace, claim, str(path)))
    try:
        yield
    finally:
        net_kube.delete(f"/api/v1/persistentvolumes/{name}")


@pytest.fixture
def redis_volume(net_kube: KubeHttp, net_namespace: str, tmp_path: Path) -> Iterator[None]:
    with dependency_volume(net_kube, net_namespace, "cache", tmp_path):
        yield


def test_spin_app_counts_in_redis_and_reads_a_variable_from_a_secret(
    deploy_component: Callable[..., Get],
    dependency_servers: DependencyServers,
    redis_volume: None,
    net_kube: KubeHttp,
    net_namespace: str,
) -> None:
    ns = net_namespace
    net_kube.apply(
        f"/api/v1/namespaces/{ns}/secrets/spin-vars",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "spin-vars", "namespace": ns},
            "data": {"greeting": base64.b64encode(b"Hello from a Secret").decode()},
        },
    )

    def redis_serving() -> str:
        # The operator's Redis for dependency `cache` of app `comp`, at the pod IP the cluster gave
        # it (a dependency pod waits on the PV controller and kube-scheduler: up to minutes here).
        return dependency_servers.wait_serving(namespace=ns, pod="comp-cache-0", timeout=240).ip

    # Packaged as `spin registry push` does (the locked app in a layer of its own): the agent finds
    # the one component the locked app names; its Spin route `/...` is not used, the app is on /c.
    get = deploy_component(
        "spin-counter-py",
        first=redis_serving,
        fmt=WasmFormat.SPIN,
        dependencies=[{"name": "cache", "redis": {}}],
        variables=[
            {"name": "greeting", "valueFrom": {"secretKeyRef": {"name": "spin-vars", "key": "greeting"}}}
        ],
    )
    for n in (1, 2, 3):
        assert get("/c") == (200, f"Hello from a Secret, request {n}\n")
    client = redis.Redis(host=redis_serving(), port=6379, socket_timeout=2)
    try:
        assert client.get(f"{ns}/comp:requests") == b"3"
    finally:
        client.close()
    # The placement's status names the Spin interfaces Shoal does not implement.
    placements = net_kube.get(f"/apis/shoal.dev/v1alpha1/namespaces/{ns}/wasmplacements")["items"]
    messages = [p.get("status", {}).get("message", "") for p in placements]
    unimplemented = "not implemented (calls trap): "
    assert any(unimplemented in m and "fermyon:spin/llm@2.0.0" in m for m in messages), messages


def test_spin_mysql_app(
    deploy_component: Callable[..., Get],
    dependency_servers: DependencyServers,
    net_kube: KubeHttp,
    net_namespace: str,
    tmp_path: Path,
) -> None:
    """A Spin app writes and reads its declared MySQL dependency, and cannot open another address."""
    ns = net_namespace

    def mysql_serving() -> str:
        # The operator's MySQL for dependency `db` of app `comp` (its pod waits on the PV
        # controller and kube-scheduler, and the server initialises its data directory).
        return dependency_servers.wait_serving(namespace=ns, pod="comp-db-0", timeout=300).ip

    with dependency_volume(net_kube, ns, "db", tmp_path):
        get = deploy_component(
            "spin-mysql-py",
            first=mysql_serving,
            dependencies=[{"name": "db", "mysql": {"database": "visits", "storage": "1Gi"}}],
        )
        columns = "['n:int64', 'last:str']"
        assert get("/c/a") == (200, f"visits 1 /c/a {columns}\n")
        assert get("/c/a") == (200, f"visits 2 /c/a {columns}\n")
        status, body = get("/c/undeclared")
        assert status == 200, body
        assert "is not mysql://<dependency> of a declared MySQL dependency (db)" in body, body
        placements = net_kube.get(f"/apis/shoal.dev/v1alpha1/namespaces/{ns}/wasmplacements")["items"]
        messages = [p.get("status", {}).get("message", "") for p in placements]
        assert not any("fermyon:spin/mysql" in m for m in messages), messages
