"""Components as WasmApps: a Python `wasi:http/proxy` component and a Python `wasi:cli/run` component
pushed to the registry, placed by the operator, served by the agents' native listener and reached
through the addresses the app's EndpointSlices publish."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.agentproc import AgentProcess
from harness.kubehttp import KubeHttp
from harness.netcluster import apply_app, eventually, http_get, is_ready, slice_addresses
from harness.operatorproc import OperatorProcess
from localcluster.registry import Registry
from localcluster.testnet import TestNet
from shoal_oci import WasmFormat, push_wasm

from .conftest import NET_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# componentize-py components embed CPython: ~12 MiB of linear memory per instance, a few ms to start.
RESOURCES = {"memory": "64Mi", "timeout": "10s"}


@pytest.fixture
def serve_component(
    net_kube: KubeHttp,
    net_operator: OperatorProcess,
    net_agents: dict[str, AgentProcess],
    component_guests: Path,
    oci_registry: Registry,
    net_namespace: str,
    testnet: TestNet,
) -> Callable[[str, str], None]:
    """Push a component guest, apply it as an HTTP WasmApp, and check what its endpoint answers."""

    def serve(guest: str, expected: str) -> None:
        image = f"{oci_registry.address}/net-e2e/{guest}:v1"
        push_wasm(image, component_guests / f"{guest}.wasm", WasmFormat.WASM_ARTIFACT)
        ns = net_namespace
        apply_app(
            net_kube,
            ns,
            "comp",
            {
                "module": {"image": image},
                "replicas": 1,
                "resources": RESOURCES,
                "trigger": {"http": {"path": "/c"}},
                "placement": {"nodeSelector": {NET_LABEL: testnet.name}},
            },
        )
        eventually(lambda: is_ready(net_kube, ns, "comp"), within=120, what=f"{guest} Ready")
        (address,) = eventually(
            lambda: slice_addresses(net_kube, ns, "comp"), within=30, what="an endpoint in the slices"
        )
        status, body = http_get(address, "/c/x?y=1")
        assert status == 200, body
        assert body.startswith(expected), body

    return serve


# Two tests, not one parametrized: each gets its own namespace (named after the test).
def test_wasi_http_component_app(serve_component: Callable[[str, str], None]) -> None:
    serve_component("hello-component-py", "Hello from a Python component, GET /c/x?y=1")


def test_wasi_cli_component_app(serve_component: Callable[[str, str], None]) -> None:
    serve_component("cli-component-py", "Hello from a Python command component, args=[] path=/x")
