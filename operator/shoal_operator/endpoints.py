"""A Service and EndpointSlices per HTTP WasmApp, pointing at the agents that serve it.

The Service has no selector: the pods behind an app are not the app's (agents serve many apps),
so the operator writes the EndpointSlices itself, the standard way for a custom controller
(`endpointslice.kubernetes.io/managed-by`). In-cluster clients then reach `<app>.<namespace>.svc`
like any Service; the agent routes by Host header (`<app>.<namespace>[.svc...]`) or path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from shoal_api import LABEL_APP, WasmApp
from shoal_api.constants import LABEL_MANAGED_BY, MANAGED_BY_VALUE
from shoal_api.meta import owner_ref

MANAGED_BY_CONTROLLER = "operator.shoal.dev"
SERVICE_PORT = 80

AddressType = Literal["IPv4", "IPv6", "FQDN"]


@dataclass(frozen=True, slots=True, order=True)
class AgentEndpoint:
    node: str
    host: str
    port: int
    ready: bool


def address_type(host: str) -> AddressType:
    """Agents advertise their pod IP in a cluster; a DNS name (FQDN slice) where they have none."""
    try:
        return "IPv6" if ipaddress.ip_address(host).version == 6 else "IPv4"
    except ValueError:
        return "FQDN"


def render_service(app: WasmApp) -> dict[str, Any]:
    name = app.metadata.name or ""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": app.metadata.namespace,
            "labels": {LABEL_APP: name, LABEL_MANAGED_BY: MANAGED_BY_VALUE},
            "ownerReferences": [owner_ref(app)],
        },
        "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": SERVICE_PORT, "protocol": "TCP"}]},
    }


def render_slices(app: WasmApp, endpoints: Iterable[AgentEndpoint]) -> list[dict[str, Any]]:
    """One slice per (address type, agent port): a slice's ports apply to all its endpoints."""
    name = app.metadata.name or ""
    groups: dict[tuple[AddressType, int], list[AgentEndpoint]] = {}
    for ep in sorted(endpoints):
        groups.setdefault((address_type(ep.host), ep.port), []).append(ep)
    slices = []
    for (kind, port), members in sorted(groups.items()):
        slices.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-{kind.lower()}-{port}",
                    "namespace": app.metadata.namespace,
                    "labels": {
                        "kubernetes.io/service-name": name,
                        "endpointslice.kubernetes.io/managed-by": MANAGED_BY_CONTROLLER,
                        LABEL_APP: name,
                    },
                    "ownerReferences": [owner_ref(app)],
                },
                "addressType": kind,
                "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": [m.host], "nodeName": m.node, "conditions": {"ready": m.ready}}
                    for m in members
                ],
            }
        )
    return slices


def slice_names(slices: Iterable[Mapping[str, Any]]) -> set[str]:
    return {s["metadata"]["name"] for s in slices}
