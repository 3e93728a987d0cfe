"""A reconcile that finds nothing to change writes nothing: not a placement, a status, a Service, a
slice nor an Event. The resync requeues every app every 30 s, so a write there would be one per app
per resync for ever."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shoal_api import WasmApp
from shoal_operator.cache import ClusterCache
from shoal_operator.reconciler import Reconciler

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DIGEST = "sha256:" + "1" * 64


class RecordingKube:
    """Every write the stages make, in order, as (what, name)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []
        self.version = 0

    def _next_version(self) -> str:
        self.version += 1
        return str(self.version)

    async def create_placement(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(("create placement", body["metadata"]["name"]))
        return body | {"metadata": body["metadata"] | {"resourceVersion": self._next_version()}}

    async def replace_placement_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.writes.append(("replace placement", name))

    async def delete_placement(self, namespace: str, name: str) -> None:
        self.writes.append(("delete placement", name))

    async def write_app_status(self, namespace: str, name: str, status: dict[str, Any]) -> str:
        self.writes.append(("status", name))
        return self._next_version()

    async def event(self, obj: dict[str, Any], **kwargs: Any) -> None:
        self.writes.append(("event", kwargs["reason"]))

    async def create_or_apply(self, body: dict[str, Any]) -> None:
        self.writes.append(("create", f"{body['kind']}/{body['metadata']['name']}"))

    async def apply(self, body: dict[str, Any]) -> None:
        self.writes.append(("apply", f"{body['kind']}/{body['metadata']['name']}"))

    async def prune_endpoint_slices(self, namespace: str, service: str, *, keep: set[str]) -> None:
        self.writes.append(("prune", service))

    async def delete_endpoint_slice(self, namespace: str, name: str) -> None:
        self.writes.append(("delete slice", name))


def cluster() -> ClusterCache:
    cache = ClusterCache()
    for i in (1, 2, 3):
        node = f"n{i}"
        cache.apply_node(
            "ADDED",
            {
                "metadata": {"name": node, "labels": {}},
                "status": {
                    "allocatable": {"cpu": "4", "memory": "8Gi"},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            },
        )
        cache.apply_wasmnode(
            "ADDED",
            {
                "metadata": {"name": node},
                "spec": {
                    "capacity": {"cpuMillis": 2000, "memoryBytes": 2 << 30},
                    "endpoint": {"host": f"10.0.0.{i}", "port": 8080},
                },
            },
        )
        cache.apply_lease(
            "ADDED",
            {
                "metadata": {"name": f"shoal-agent-{node}"},
                "spec": {
                    "holderIdentity": node,
                    "leaseDurationSeconds": 3600,
                    "renewTime": "2026-01-01T00:00:00Z",
                },
            },
        )
    cache.apply_app(
        "ADDED",
        {
            "apiVersion": "shoal.dev/v1alpha1",
            "kind": "WasmApp",
            "metadata": {
                "name": "web",
                "namespace": "ns",
                "uid": "u1",
                "generation": 1,
                "resourceVersion": "1",
            },
            "spec": {
                "module": {"image": f"registry.test/web@{DIGEST}"},
                "replicas": 2,
                "trigger": {"http": {"path": "/web"}},
            },
        },
    )
    return cache


async def test_a_second_reconcile_of_an_unchanged_app_writes_nothing() -> None:
    kube = RecordingKube()
    reconciler = Reconciler(cache=cluster(), kube=kube, resolver=None, clock=lambda: NOW)  # type: ignore[arg-type]

    await reconciler.reconcile_batch(["ns/web"])
    await reconciler.publish.drain()
    kinds = sorted({what for what, _ in kube.writes})
    assert kinds == ["create", "create placement", "event", "status"], kube.writes
    assert isinstance(reconciler.cache.apps["ns/web"], WasmApp)

    kube.writes.clear()
    await reconciler.reconcile_batch(["ns/web"])
    await reconciler.publish.drain()
    assert kube.writes == []
