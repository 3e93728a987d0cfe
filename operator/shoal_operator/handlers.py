"""Watches: the thin shell that feeds watch events into the cache and the reconcile queue.

What each event changes and requeues is declared in `requeue`; this module only registers one kopf
handler per entry of `requeue.SOURCES`, and builds the informer of the agents' Leases
(`requeue.LEASES`), watched in their namespace only. Only `on.event` handlers are used: they keep no
progress annotations and add no finalizers, since cleanup is done by Kubernetes' garbage collector
through owner references. They read the raw event's object, a plain dict: kopf's `body` view resolves
every key lookup through its own layers, which at thousands of events was a tenth of the operator's
CPU.
"""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes_asyncio import client

from shoal_api.informer import Informer, namespaced_objects
from shoal_operator.cache import ClusterCache
from shoal_operator.reconciler import Reconciler
from shoal_operator.requeue import LEASES, SOURCES, Source, on_lease_list


def register(registry: kopf.OperatorRegistry, *, cache: ClusterCache, reconciler: Reconciler) -> None:
    """Attach the handlers to `registry`; closures instead of module globals keep tests independent."""

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # kopf only falls back to kubernetes_asyncio when the sync client is installed too.
        return await kopf.login_via_async_client(**kwargs)

    for source in SOURCES:
        _watch(registry, source, cache=cache, reconciler=reconciler)


def _watch(
    registry: kopf.OperatorRegistry,
    source: Source,
    *,
    cache: ClusterCache,
    reconciler: Reconciler,
) -> None:
    async def on_event(type: str | None, event: kopf.RawEvent, **_: Any) -> None:
        # The initial listing is delivered with type None.
        reconciler.requeue(source.react(cache, type or "ADDED", event["object"]))

    kopf.on.event(
        source.group,
        source.version,
        source.plural,
        registry=registry,
        id=f"{source.plural}.{source.group or 'core'}",
    )(on_event)


def lease_informer(
    api: client.ApiClient, *, cache: ClusterCache, reconciler: Reconciler, namespace: str
) -> Informer:
    """The agents' heartbeat Leases: a relist also notices a Lease deleted while the watch was down."""
    lister, watcher = namespaced_objects(
        api, LEASES.group, LEASES.version, LEASES.plural, namespace=namespace
    )
    return Informer(
        what=f"agent Leases in {namespace}",
        lister=lister,
        watcher=watcher,
        on_sync=lambda items: reconciler.requeue(on_lease_list(cache, items)),
        on_event=lambda event, body: reconciler.requeue(LEASES.react(cache, event, body)),
    )
