"""Pure translations used by the reconciler."""

from __future__ import annotations

import pytest

from shoal_api import WasmApp
from shoal_operator.adapt import unbound_dependencies
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
