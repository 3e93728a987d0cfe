"""Pure translations used by the reconciler."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shoal_api import WasmApp
from shoal_api.meta import Condition
from shoal_api.wasmapp import WasmAppStatus
from shoal_operator.adapt import placement_failure, unbound_dependencies
from shoal_operator.cache import ClusterCache, DependencyPod

pytestmark = pytest.mark.unit


def app() -> WasmApp:
    return WasmApp.model_validate(
        {
            "metadata": {"name": "whiskers", "namespace": "ns"},
            "spec": {
                "module": {"image": "r/m:v1"},
                "trigger": {"http": {"path": "/w"}},
                "dependencies": [
                    {"name": "cache", "redis": {}},
                    {"name": "db", "mysql": {"database": "w"}},
                    {"name": "ext", "redis": {}, "serviceRef": {"name": "theirs", "port": 6379}},
                ],
            },
        }
    )


def test_unbound_dependencies_are_provisioned_ones_without_a_bound_pod() -> None:
    cache = ClusterCache()
    assert unbound_dependencies(cache, app()) == ["cache", "db"]
    cache.dependency_pods[("ns", "whiskers", "cache")]["uid-1"] = DependencyPod(node=None, ready=False)
    assert unbound_dependencies(cache, app()) == ["cache", "db"]
    cache.dependency_pods[("ns", "whiskers", "cache")]["uid-1"] = DependencyPod(node="node-2", ready=False)
    assert unbound_dependencies(cache, app()) == ["db"]
    cache.dependency_pods[("ns", "whiskers", "db")]["uid-2"] = DependencyPod(node="node-1", ready=True)
    assert unbound_dependencies(cache, app()) == []


def test_pinned_digest_is_what_live_placements_of_the_same_image_run() -> None:
    from shoal_api import WasmPlacement
    from shoal_api.meta import ObjectMeta
    from shoal_operator.adapt import pinned_digest, placement_spec

    a = app()

    def placement(
        node: str, digest: str, *, image: str | None = None, deleting: bool = False
    ) -> WasmPlacement:
        spec = placement_spec(a, node=node, digest=digest, dependencies=[])
        if image is not None:
            spec.module.image = image
        meta = ObjectMeta(name=f"whiskers.{node}", namespace="ns")
        if deleting:
            meta.deletion_timestamp = "2026-01-01T00:00:00Z"  # type: ignore[assignment]
        return WasmPlacement(metadata=meta, spec=spec)

    d1, d2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    assert pinned_digest(a, []) is None
    assert pinned_digest(a, [placement("n1", d1), placement("n2", d1)]) == d1
    assert pinned_digest(a, [placement("n1", d1), placement("n2", d2)]) is None, (
        "mid-rollout: no single answer"
    )
    assert pinned_digest(a, [placement("n1", d1), placement("n2", d2, deleting=True)]) == d1
    assert pinned_digest(a, [placement("n1", d1, image="r/other:v1")]) is None


def test_placement_failure_is_the_degraded_message_while_a_placement_failed() -> None:
    """What converge sends once as a PlacementFailed Warning: a new message makes a new Event."""

    def degraded(status: str, reason: str, message: str) -> WasmAppStatus:
        when = datetime(2026, 1, 1, tzinfo=UTC)
        cond = Condition(
            type="Degraded", status=status, reason=reason, message=message, last_transition_time=when
        )
        return WasmAppStatus(conditions=[cond])

    refused = "1 placement(s) failed; node-a: load: LoadError: WASI preview 3 ..."
    assert placement_failure(degraded("True", "PlacementFailed", refused)) == refused
    assert placement_failure(degraded("True", "AgentLost", "agent heartbeat expired")) is None
    assert placement_failure(degraded("False", "AsExpected", "")) is None
    assert placement_failure(WasmAppStatus()) is None
    assert placement_failure(None) is None
