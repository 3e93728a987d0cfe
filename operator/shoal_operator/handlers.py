"""kopf handlers: the thin shell that feeds watch events into the cache and the reconcile queue.

Only `on.event` handlers are used: they keep no progress annotations and add no finalizers, since
cleanup is done by Kubernetes' garbage collector through owner references. They read the raw event's
object, a plain dict: kopf's `body` view resolves every key lookup through its own layers, which at
thousands of events was a tenth of the operator's CPU.
"""

from __future__ import annotations

from typing import Any

import kopf

from shoal_api import GROUP, VERSION, WASMAPP_PLURAL, WASMNODE_PLURAL, WASMPLACEMENT_PLURAL
from shoal_operator.cache import ClusterCache
from shoal_operator.reconciler import Reconciler


def register(
    registry: kopf.OperatorRegistry, *, cache: ClusterCache, reconciler: Reconciler, agent_namespace: str
) -> None:
    """Attach the handlers to `registry`; closures instead of module globals keep tests independent."""

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # kopf only falls back to kubernetes_asyncio when the sync client is installed too.
        return await kopf.login_via_async_client(**kwargs)

    @kopf.on.event(GROUP, VERSION, WASMAPP_PLURAL, registry=registry)
    async def wasmapp_event(type: str | None, event: kopf.RawEvent, **_: Any) -> None:
        body = event["object"]
        if type is None:  # the initial listing is delivered with type None
            type = "ADDED"
        key, changed = cache.apply_app(type, body)
        if changed:
            if type != "DELETED":
                generation = body["metadata"].get("generation")
                reconciler.generation_seen(key, generation if isinstance(generation, int) else 0)
            reconciler.enqueue(key)

    @kopf.on.event(GROUP, VERSION, WASMPLACEMENT_PLURAL, registry=registry)
    async def wasmplacement_event(type: str | None, event: kopf.RawEvent, **_: Any) -> None:
        key, changed = cache.apply_placement(type or "ADDED", event["object"])
        if changed:
            reconciler.enqueue(key)

    @kopf.on.event(GROUP, VERSION, WASMNODE_PLURAL, registry=registry)
    async def wasmnode_event(type: str | None, event: kopf.RawEvent, **_: Any) -> None:
        body = event["object"]
        if cache.apply_wasmnode(type or "ADDED", body):
            reconciler.enqueue_affected_by_nodes(frozenset({body["metadata"]["name"]}))

    @kopf.on.event("", "v1", "nodes", registry=registry)
    async def node_event(type: str | None, event: kopf.RawEvent, **_: Any) -> None:
        body = event["object"]
        if cache.apply_node(type or "ADDED", body):
            reconciler.enqueue_affected_by_nodes(frozenset({body["metadata"]["name"]}))

    @kopf.on.event("", "v1", "pods", registry=registry)
    async def pod_event(type: str | None, event: kopf.RawEvent, **_: Any) -> None:
        body = event["object"]
        capacity_changed, dependency_of = cache.apply_pod(type or "ADDED", body)
        if dependency_of is not None:
            reconciler.enqueue(dependency_of)
        if capacity_changed:
            node = (body.get("spec") or {}).get("nodeName")
            reconciler.enqueue_affected_by_nodes(frozenset({node}) if node else frozenset())

    @kopf.on.event(
        "coordination.k8s.io",
        "v1",
        "leases",
        registry=registry,
        when=lambda namespace, **_: namespace == agent_namespace,
    )
    async def lease_event(type: str | None, event: kopf.RawEvent, **_: Any) -> None:
        if cache.apply_lease(type or "ADDED", event["object"]):
            reconciler.enqueue_affected_by_nodes(None)
