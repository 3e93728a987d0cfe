"""The publish stage writes only the Service/EndpointSlices that changed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

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


async def test_submitted_writes_keep_only_the_newest_wanted_state_and_nothing_unchanged() -> None:
    cache = ClusterCache()
    cache.agents["n1"] = AgentRecord(node="n1", endpoint=("10.0.0.1", 8080))
    kube = RecordingKube()
    publish = Publish(cache=cache, kube=kube, memos=Memos())  # type: ignore[arg-type]
    serving = frozenset({"n1"})
    app = http_app()

    publish.submit(app, [placement(app, "n1", ready=False)], serving=serving)
    publish.submit(app, [placement(app, "n1", ready=True)], serving=serving)
    assert kube.applied == [] and publish.pending == 1, "queued, not written in the batch"
    await publish.drain()
    assert kube.applied == ["Service/hello", "EndpointSlice/hello-ipv4-8080"]

    kube.applied.clear()
    publish.submit(app, [placement(app, "n1", ready=True)], serving=serving)
    assert publish.pending == 0, "what is written is not queued again"
    publish.submit(app, [placement(app, "n1", ready=False)], serving=serving)
    publish.submit(app, [placement(app, "n1", ready=True)], serving=serving)
    assert publish.pending == 0, "a change undone before it was sent is dropped"


class FailingKube(RecordingKube):
    async def create_or_apply(self, body: dict[str, Any]) -> None:
        raise ApiException(status=500, reason="boom")


async def test_a_failed_write_hands_the_app_back_and_is_tried_again() -> None:
    cache = ClusterCache()
    cache.agents["n1"] = AgentRecord(node="n1", endpoint=("10.0.0.1", 8080))
    failed: list[str] = []
    memos = Memos()
    publish = Publish(cache=cache, kube=FailingKube(), memos=memos, on_failure=failed.append)  # type: ignore[arg-type]
    app = http_app()
    publish.submit(app, [placement(app, "n1", ready=True)], serving=frozenset({"n1"}))
    await publish.drain()
    assert failed == ["ns/hello"] and memos["ns/hello"].published == {}, "nothing counted as written"

    kube = RecordingKube()
    publish.kube = kube  # type: ignore[assignment]
    publish.submit(app, [placement(app, "n1", ready=True)], serving=frozenset({"n1"}))
    await publish.drain()
    assert kube.applied == ["Service/hello", "EndpointSlice/hello-ipv4-8080"]


async def test_background_senders_never_write_one_app_twice_at_once() -> None:
    cache = ClusterCache()
    cache.agents["n1"] = AgentRecord(node="n1", endpoint=("10.0.0.1", 8080))
    in_flight: set[str] = set()
    overlaps: list[str] = []
    release = asyncio.Event()

    class SlowKube(RecordingKube):
        async def create_or_apply(self, body: dict[str, Any]) -> None:
            name = body["metadata"]["name"]
            if name in in_flight:
                overlaps.append(name)
            in_flight.add(name)
            await release.wait()
            in_flight.discard(name)
            await super().create_or_apply(body)

    kube = SlowKube()
    publish = Publish(cache=cache, kube=kube, memos=Memos(), concurrency=4)  # type: ignore[arg-type]
    app = http_app()
    senders = asyncio.create_task(publish.run())
    try:
        publish.submit(app, [placement(app, "n1", ready=False)], serving=frozenset({"n1"}))
        await asyncio.sleep(0.01)
        publish.submit(app, [placement(app, "n1", ready=True)], serving=frozenset({"n1"}))
        await asyncio.sleep(0.01)
        assert publish.pending == 1, "the newer state waits for the write in flight"
        release.set()
        for _ in range(100):
            if not publish.pending and not in_flight:
                break
            await asyncio.sleep(0.01)
    finally:
        senders.cancel()
    assert overlaps == []
    # the first write created both objects; the second one rewrites only the slice
    assert kube.applied == ["Service/hello", "EndpointSlice/hello-ipv4-8080", "EndpointSlice/hello-ipv4-8080"]
