"""An HTTP WasmApp is reachable through the addresses the cluster publishes for it.

The operator writes the app's EndpointSlices from WasmNode.spec.endpoint; the agents advertise
test-network addresses (loopback is rejected in slices), so a client that reads the slices, as
kube-proxy or a headless-Service client would, reaches every replica.
"""

from __future__ import annotations

import pytest

from harness.agentproc import AgentProcess
from harness.kubehttp import KubeHttp
from harness.netcluster import apply_app, eventually, http_get, is_ready, slice_addresses
from harness.operatorproc import OperatorProcess
from localcluster.testnet import TestNet

from .conftest import NET_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_two_replicas_answer_through_each_endpointslice_address(
    net_kube: KubeHttp,
    net_operator: OperatorProcess,
    net_agents: dict[str, AgentProcess],
    example_images: dict[str, str],
    net_namespace: str,
    testnet: TestNet,
) -> None:
    ns = net_namespace
    apply_app(
        net_kube,
        ns,
        "hello",
        {
            "module": {"image": example_images["hello-c"]},
            "replicas": 2,
            "trigger": {"http": {"path": "/hello"}},
            "placement": {"nodeSelector": {NET_LABEL: testnet.name}},
        },
    )
    eventually(lambda: is_ready(net_kube, ns, "hello"), within=60, what="hello Ready")
    advertised = {a.advertise_host for a in net_agents.values()}

    def two_addresses() -> list[tuple[str, int]]:
        found = slice_addresses(net_kube, ns, "hello")
        return found if len(found) == 2 else []

    addresses = eventually(two_addresses, within=30, what="two ready endpoints in hello's slices")
    assert {host for host, _ in addresses} <= advertised
    assert len({host for host, _ in addresses}) == 2, addresses
    for address in addresses:
        status, body = http_get(address, "/hello/x?y=1")
        assert status == 200, (address, body)
        assert "Hello from C" in body and "y=1" in body, body
