"""The publish stage writes only the Service/EndpointSlices that changed."""

from __future__ import annotations

from typing import Any

import pytest

from shoal_api import WasmApp, WasmPlacement
from shoal_api.meta import ObjectMeta
from shoal_api.wasmplacement import WasmPlacementStatus
from shoal_operator import adapt
from shoal_operator.cache import AgentRecord, ClusterCache
from shoal_operator.memo import Memos
from shoal_operator.publish import Publish

pytestmark = pytest.mark.unit


class RecordingKube:
    """The writes the publish stage makes, by kind/name."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.pruned: list[str] = []

    async def apply(self, body: dict[str, Any]) -> None:
        self.applied.append(f"{body['kind']}/{body['metadata']['name']}")

    async def create_or_apply(self, body: dict[str, Any]) -> None:
        self.applied.append(f"{body['kind']}/{body['metadata']['name']}")

    async def prune_endpoint_slices(self, namespace: str, service: str, *, keep: set[str]) -> None:
        self.pruned.append(service)

    async def delete_endpoint_slice(self, namespace: str, name: str) -> None:
        raise AssertionError("no slice goes away here")


def http_app() -> WasmApp:
    return WasmApp.model_validate(
        {
            "metadata": {"name": "hello", "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {"module": {"image": "r/m:v1"}, "trigger": {"http": {"path": "/hello"}}},
        }
    )


def placement(app: WasmApp, node: str, *, ready: bool) -> WasmPlacement:
    spec = adapt.placement_spec(app, node=node, digest="sha256:" + "0" * 64, dependencies=[])
    status = WasmPlacementStatus(ready=ready, observed_template_hash=spec.template_hash)
    return WasmPlacement(metadata=ObjectMeta(name=f"hello.{node}", namespace="ns"), spec=spec, status=status)


async def test_readiness_changes_rewrite_the_slice_not_the_service() -> None:
    cache = ClusterCache()
    for node, ip in (("n1", "10.0.0.1"), ("n2", "10.0.0.2")):
        cache.agents[node] = AgentRecord(node=node, endpoint=(ip, 8080))
    kube = RecordingKube()
    publish = Publish(cache=cache, kube=kube, memos=Memos())  # type: ignore[arg-type]
    serving = frozenset({"n1", "n2"})
    app = http_app()

    await publish(
        app, [placement(app, "n1", ready=False), placement(app, "n2", ready=False)], serving=serving
    )
    assert kube.applied[0] == "Service/hello" and len(kube.applied) == 2, kube.applied
    slices = kube.applied[1:]
    assert kube.pruned == []  # a new app has no slices from an earlier run to prune

    kube.applied.clear()
    await publish(
        app, [placement(app, "n1", ready=False), placement(app, "n2", ready=False)], serving=serving
    )
    assert kube.applied == [], "nothing changed: nothing written"

    await publish(app, [placement(app, "n1", ready=True), placement(app, "n2", ready=False)], serving=serving)
    assert kube.applied == slices, "only the slice holds readiness"
