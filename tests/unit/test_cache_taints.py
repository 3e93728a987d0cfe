"""The cache dates NoExecute taints, because tolerationSeconds count from when a taint appeared, and
tells new placement events from echoes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shoal_api import WasmApp
from shoal_operator.adapt import app_request, placement_spec
from shoal_operator.cache import ClusterCache

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def node(*taints: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "n1", "labels": {}},
        "spec": {"taints": list(taints)},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi"}},
    }


def test_a_no_execute_taint_without_time_added_is_dated_when_first_seen() -> None:
    cache = ClusterCache()
    cache.apply_node("ADDED", node({"key": "gone", "effect": "NoExecute"}), now=T0)
    assert cache.nodes["n1"].taints[0].time_added == T0
    # later updates (a label, another taint) keep the first sighting; nothing else is dated
    later = node({"key": "gone", "effect": "NoExecute"}, {"key": "soft", "effect": "NoSchedule"})
    changed = cache.apply_node("MODIFIED", later, now=T0 + timedelta(minutes=5))
    gone, soft = cache.nodes["n1"].taints
    assert gone.time_added == T0 and soft.time_added is None
    assert changed  # the new taint is a change


def test_time_added_from_the_node_wins() -> None:
    cache = ClusterCache()
    body = node({"key": "gone", "effect": "NoExecute", "timeAdded": "2026-01-01T11:00:00Z"})
    cache.apply_node("ADDED", body, now=T0)
    assert cache.nodes["n1"].taints[0].time_added == T0 - timedelta(hours=1)


def test_a_taint_removed_and_added_again_starts_over() -> None:
    cache = ClusterCache()
    cache.apply_node("ADDED", node({"key": "gone", "effect": "NoExecute"}), now=T0)
    cache.apply_node("MODIFIED", node(), now=T0 + timedelta(minutes=1))
    cache.apply_node("MODIFIED", node({"key": "gone", "effect": "NoExecute"}), now=T0 + timedelta(minutes=2))
    assert cache.nodes["n1"].taints[0].time_added == T0 + timedelta(minutes=2)


def test_toleration_seconds_reach_the_scheduler() -> None:
    wasmapp = WasmApp.model_validate(
        {
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {
                "module": {"image": "r/m:v1"},
                "trigger": {"http": {"path": "/a"}},
                "placement": {
                    "tolerations": [{"key": "gone", "operator": "Exists", "tolerationSeconds": 30}]
                },
            },
        }
    )
    (toleration,) = app_request(wasmapp, dependency_nodes=frozenset()).tolerations
    assert toleration.seconds == 30 and toleration.effect == ""


def test_the_echo_of_a_placement_already_known_is_no_change() -> None:
    """The watch echoes each placement the operator created; only a new resourceVersion is news."""
    app = WasmApp.model_validate(
        {
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {"module": {"image": "r/m:v1"}, "trigger": {"http": {"path": "/web"}}},
        }
    )
    spec = placement_spec(app, node="n1", digest="sha256:" + "0" * 64, dependencies=[])
    meta = {"name": "web.n1", "namespace": "ns", "resourceVersion": "7"}
    body: dict[str, Any] = {"apiVersion": "shoal.dev/v1alpha1", "kind": "WasmPlacement", "metadata": meta}
    body["spec"] = spec.to_dict()
    cache = ClusterCache()
    assert cache.apply_placement("ADDED", body) == ("ns/web", True)
    assert cache.apply_placement("ADDED", body) == ("ns/web", False)
    status = {"ready": True, "state": "Ready"}
    moved = body | {"metadata": meta | {"resourceVersion": "8"}, "status": status}
    assert cache.apply_placement("MODIFIED", moved) == ("ns/web", True)
    assert cache.placements[("ns", "web.n1")].status is not None
    assert cache.apply_placement("DELETED", moved) == ("ns/web", True)
    assert cache.app_placements("ns/web") == []
