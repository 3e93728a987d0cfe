"""Watches: the thin shell that feeds watch events into the cache and the reconcile queue.

What each event changes and requeues is declared in `requeue`; this module builds one informer
(`shoal_api.informer`) per entry of `requeue.SOURCES` and knows nothing else. The informers hand over
plain dicts straight from the apiserver's JSON. They replaced kopf, which this operator used for
nothing but `on.event` handlers (no progress annotations, no finalizers: cleanup is Kubernetes'
garbage collector's, through owner references) and whose per-event machinery was most of the
operator's CPU at a thousand apps. They also relist the way client-go does (an object deleted while a
watch was down is noticed), and the first list of each kind is the warm-up: the reconciler starts
when every kind is listed once, so no decision is made before the placements and heartbeats are
known (a replica that is fine where it is would otherwise move).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from kubernetes_asyncio import client

from shoal_api.informer import Informer, Replacing, cluster_objects, namespaced_objects
from shoal_operator.cache import ClusterCache
from shoal_operator.reconciler import Reconciler
from shoal_operator.requeue import SOURCES, Source

logger = logging.getLogger(__name__)


def informers(
    api: client.ApiClient, *, cache: ClusterCache, reconciler: Reconciler, agent_namespace: str
) -> list[Informer]:
    return [
        informer(api, source, cache=cache, reconciler=reconciler, agent_namespace=agent_namespace)
        for source in SOURCES
    ]


def informer(
    api: client.ApiClient,
    source: Source,
    *,
    cache: ClusterCache,
    reconciler: Reconciler,
    agent_namespace: str,
) -> Informer:
    def on_event(event: str, body: dict[str, Any]) -> None:
        reconciler.requeue(source.react(cache, event, body))

    if source.in_agent_namespace:
        what = f"{source.plural} in {agent_namespace}"
        lister, watcher = namespaced_objects(
            api, source.group, source.version, source.plural, namespace=agent_namespace
        )
    else:
        what = source.plural
        lister, watcher = cluster_objects(api, source.group, source.version, source.plural)
    relist = source.relist
    if relist is not None:
        return Informer(
            what=what,
            lister=lister,
            watcher=watcher,
            on_sync=lambda items: reconciler.requeue(relist(cache, items)),
            on_event=on_event,
        )
    replacing = Replacing(on_event)
    return Informer(
        what=what, lister=lister, watcher=watcher, on_sync=replacing.sync, on_event=replacing.event
    )


async def all_synced(watches: Sequence[Informer], *, report_every: float = 15.0) -> None:
    """Until every informer has listed its kind once; names the ones still waiting now and then (a
    missing CRD is a 404 that the informer retries, and logs, until the chart installs it)."""
    while waiting := [w for w in watches if not w.synced.is_set()]:
        try:
            async with asyncio.timeout(report_every):
                await asyncio.gather(*(w.synced.wait() for w in waiting))
        except TimeoutError:
            logger.info("waiting for the first list of %s", ", ".join(w.what for w in waiting))
