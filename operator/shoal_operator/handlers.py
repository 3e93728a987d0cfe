"""kopf handlers: the thin shell that feeds watch events into the cache and the reconcile queue.

What each event changes and requeues is declared in `requeue.SOURCES`; this module only registers one
handler per entry. Only `on.event` handlers are used: they keep no progress annotations and add no
finalizers, since cleanup is done by Kubernetes' garbage collector through owner references. They read
the raw event's object, a plain dict: kopf's `body` view resolves every key lookup through its own
layers, which at thousands of events was a tenth of the operator's CPU.
"""

from __future__ import annotations

from typing import Any

import kopf

from shoal_operator.cache import ClusterCache
from shoal_operator.reconciler import Reconciler
from shoal_operator.requeue import SOURCES, Source


def register(
    registry: kopf.OperatorRegistry, *, cache: ClusterCache, reconciler: Reconciler, agent_namespace: str
) -> None:
    """Attach the handlers to `registry`; closures instead of module globals keep tests independent."""

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # kopf only falls back to kubernetes_asyncio when the sync client is installed too.
        return await kopf.login_via_async_client(**kwargs)

    for source in SOURCES:
        _watch(registry, source, cache=cache, reconciler=reconciler, agent_namespace=agent_namespace)


def _watch(
    registry: kopf.OperatorRegistry,
    source: Source,
    *,
    cache: ClusterCache,
    reconciler: Reconciler,
    agent_namespace: str,
) -> None:
    async def on_event(type: str | None, event: kopf.RawEvent, **_: Any) -> None:
        # The initial listing is delivered with type None.
        reconciler.requeue(source.react(cache, type or "ADDED", event["object"]))

    when = (lambda namespace, **_: namespace == agent_namespace) if source.agent_namespace_only else None
    kopf.on.event(
        source.group,
        source.version,
        source.plural,
        registry=registry,
        when=when,
        id=f"{source.plural}.{source.group or 'core'}",
    )(on_event)
