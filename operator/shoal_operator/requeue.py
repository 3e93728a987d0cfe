"""What requeues which app: every watched kind, and what one of its events puts back in the queue.

The one place that says so, as spin-operator's `SetupWithManager` does with controller-runtime's
`For`, `Owns` and `Watches(..., EnqueueRequestsFromMapFunc(...))`. Each entry feeds the event into
the cache and maps the change it made to a `Requeue`; `handlers.py` builds one informer per entry and
knows nothing else. Timers requeue too, declared where they are set: a failure's backoff
(workqueue.py), a tolerationSeconds running out and a dependency wait (decide.py), held-back rollout
steps (converge.py), the periodic resync and agents coming or going (reconciler.py, `agents_changed`
below).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shoal_api import GROUP, VERSION, WASMAPP_PLURAL, WASMNODE_PLURAL, WASMPLACEMENT_PLURAL
from shoal_operator.cache import ClusterCache


@dataclass(frozen=True, slots=True)
class Requeue:
    apps: frozenset[str] = frozenset()
    """These apps, by key."""
    topology: bool = False
    """Where apps can go changed: every app short of replicas, and the apps placed on `nodes`."""
    nodes: frozenset[str] | None = frozenset()
    """With `topology`: the nodes it changed on; None: any node (every app)."""
    generation: tuple[str, int] | None = None
    """(app, generation) first seen in this event: the start of its scheduling latency."""


NOTHING = Requeue()


def on_app(cache: ClusterCache, event: str, body: Mapping[str, Any]) -> Requeue:
    """A spec change (a new generation) or a deletion: that app. Our own status writes: nothing."""
    key, changed = cache.apply_app(event, body)
    if not changed:
        return NOTHING
    generation = body["metadata"].get("generation")
    seen = (key, generation if isinstance(generation, int) else 0) if event != "DELETED" else None
    return Requeue(apps=frozenset({key}), generation=seen)


def on_placement(cache: ClusterCache, event: str, body: Mapping[str, Any]) -> Requeue:
    """An agent's report, or a placement gone: the app that owns it."""
    key, changed = cache.apply_placement(event, body)
    return Requeue(apps=frozenset({key})) if changed else NOTHING


def on_wasmnode(cache: ClusterCache, event: str, body: Mapping[str, Any]) -> Requeue:
    """An agent's budget or address changed: the apps on its node (and those short of replicas)."""
    if cache.apply_wasmnode(event, body):
        return Requeue(topology=True, nodes=frozenset({body["metadata"]["name"]}))
    return NOTHING


def on_node(cache: ClusterCache, event: str, body: Mapping[str, Any]) -> Requeue:
    """Labels, taints, readiness or allocatable changed: the apps on that node."""
    if cache.apply_node(event, body):
        return Requeue(topology=True, nodes=frozenset({body["metadata"]["name"]}))
    return NOTHING


def on_pod(cache: ClusterCache, event: str, body: Mapping[str, Any]) -> Requeue:
    """A dependency pod: its app. A pod's requests moving on a node: the apps on that node."""
    capacity_changed, dependency_of = cache.apply_pod(event, body)
    apps = frozenset({dependency_of}) if dependency_of is not None else frozenset()
    if not capacity_changed:
        return Requeue(apps=apps)
    node = (body.get("spec") or {}).get("nodeName")
    return Requeue(apps=apps, topology=True, nodes=frozenset({node}) if node else frozenset())


def on_lease(cache: ClusterCache, event: str, body: Mapping[str, Any]) -> Requeue:
    """An agent appeared or its Lease was deleted: any app may move."""
    return Requeue(topology=True, nodes=None) if cache.apply_lease(event, body) else NOTHING


def on_lease_list(cache: ClusterCache, items: list[dict[str, Any]]) -> Requeue:
    """A (re)list of the agents' Leases: each as seen, and an agent whose Lease was deleted while the
    watch was down as gone (no event will say so)."""
    changed = cache.sync_leases(items)
    return Requeue(topology=True, nodes=None) if changed else NOTHING


def agents_changed(nodes: frozenset[str]) -> Requeue:
    """A Lease ran out or a `/livez` link changed (no watch event says so): the apps on those nodes."""
    return Requeue(topology=True, nodes=nodes) if nodes else NOTHING


@dataclass(frozen=True, slots=True)
class Source:
    group: str
    version: str
    plural: str
    react: Callable[[ClusterCache, str, Mapping[str, Any]], Requeue]
    relist: Callable[[ClusterCache, list[dict[str, Any]]], Requeue] | None = None
    """What a complete (re)list does; None: each listed object as an event, and an object no longer
    listed as deleted (`shoal_api.informer.Replacing`)."""
    in_agent_namespace: bool = False
    """Watched in the agents' namespace only; otherwise in every namespace."""


LEASES = Source(
    "coordination.k8s.io", "v1", "leases", on_lease, relist=on_lease_list, in_agent_namespace=True
)
"""The agents' heartbeats, in their namespace only: every kubelet renews a Lease in kube-node-lease
every 10 s, and none of those is ours."""

SOURCES: tuple[Source, ...] = (
    Source(GROUP, VERSION, WASMAPP_PLURAL, on_app),
    Source(GROUP, VERSION, WASMPLACEMENT_PLURAL, on_placement),
    Source(GROUP, VERSION, WASMNODE_PLURAL, on_wasmnode),
    Source("", "v1", "nodes", on_node),
    Source("", "v1", "pods", on_pod),
    LEASES,
)
"""Every watched kind; `handlers.informers` builds one informer per entry."""


def affected_apps(cache: ClusterCache, nodes: frozenset[str] | None) -> list[str]:
    """Apps with a placement on one of `nodes` (all nodes when None) or replicas still missing."""
    keys = []
    for key, app in cache.apps.items():
        status = app.status
        if (
            status is None
            or status.replicas < app.spec.replicas
            or status.ready_replicas < app.spec.replicas
            or nodes is None
            or any(p.spec.node_name in nodes for p in cache.app_placements(key))
        ):
            keys.append(key)
    return keys
