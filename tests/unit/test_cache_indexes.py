"""The cache's per-app indexes keep no entry for an app whose placements and dependency pods are all
gone: the leak probe (`python -m chaos.leakprobe --refs`) found one empty set per deleted app."""

from __future__ import annotations

from typing import Any

import pytest

from shoal_api import LABEL_APP, WasmApp
from shoal_operator.adapt import placement_spec
from shoal_operator.cache import LABEL_DEPENDENCY, ClusterCache

pytestmark = pytest.mark.unit


def placement(app: str, node: str) -> dict[str, Any]:
    wasmapp = WasmApp.model_validate(
        {
            "metadata": {"name": app, "namespace": "ns", "uid": f"u-{app}", "generation": 1},
            "spec": {"module": {"image": "r/m:v1"}, "trigger": {"http": {"path": f"/{app}"}}},
        }
    )
    spec = placement_spec(wasmapp, node=node, digest="sha256:" + "0" * 64, dependencies=[])
    meta = {"name": f"{app}.{node}", "namespace": "ns", "resourceVersion": "1"}
    return {
        "apiVersion": "shoal.dev/v1alpha1",
        "kind": "WasmPlacement",
        "metadata": meta,
        "spec": spec.to_dict(),
    }


def dependency_pod(app: str, uid: str) -> dict[str, Any]:
    labels = {LABEL_APP: app, LABEL_DEPENDENCY: "cache"}
    return {
        "metadata": {"name": f"{app}-cache", "namespace": "ns", "uid": uid, "labels": labels},
        "spec": {"nodeName": "n1", "containers": []},
        "status": {"phase": "Running"},
    }


def test_deleted_placements_leave_no_index_entry() -> None:
    cache = ClusterCache()
    for i in range(50):  # churn: each app lives, then goes
        cache.apply_placement("ADDED", placement(f"app-{i}", "n1"))
        cache.apply_placement("ADDED", placement(f"app-{i}", "n2"))
        assert len(cache.app_placements(f"ns/app-{i}")) == 2
        cache.apply_placement("DELETED", placement(f"app-{i}", "n1"))
        assert [p.spec.node_name for p in cache.app_placements(f"ns/app-{i}")] == ["n2"]
        cache.forget_placement("ns", f"app-{i}.n2")  # the operator's own delete, before its echo
        cache.apply_placement("DELETED", placement(f"app-{i}", "n2"))
    assert cache.placements == {}
    assert dict(cache.placements_by_app) == {}


def test_deleted_dependency_pods_leave_no_index_entry() -> None:
    cache = ClusterCache()
    for i in range(20):
        cache.apply_pod("ADDED", dependency_pod(f"app-{i}", f"pod-{i}"))
        assert list(cache.dependency_pods[("ns", f"app-{i}", "cache")]) == [f"pod-{i}"]
        cache.apply_pod("DELETED", dependency_pod(f"app-{i}", f"pod-{i}"))
    cache.apply_pod("DELETED", dependency_pod("never-seen", "pod-x"))  # a delete we never saw added
    assert dict(cache.dependency_pods) == {}
