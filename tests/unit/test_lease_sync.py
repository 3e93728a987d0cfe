"""The agents' Leases reach the cache through the operator's informer: each event, and a (re)list
that also notices a Lease deleted while the watch was down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api.constants import AGENT_LEASE_PREFIX
from shoal_api.informer import Informer
from shoal_operator.cache import ClusterCache
from shoal_operator.requeue import LEASES, NOTHING, Requeue, on_lease_list

pytestmark = pytest.mark.unit

EVERY_APP = Requeue(topology=True, nodes=None)


def lease(
    node: str, renewed: str = "2026-12-07T03:00:00.000000Z", *, holder: str | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{AGENT_LEASE_PREFIX}{node}",
            "namespace": "shoal-system",
            "resourceVersion": "1",
        },
        "spec": {"holderIdentity": holder or node, "renewTime": renewed, "leaseDurationSeconds": 15},
    }


def test_a_relist_applies_new_agents_and_forgets_deleted_ones() -> None:
    cache = ClusterCache()
    assert on_lease_list(cache, [lease("n1"), lease("n2")]) == EVERY_APP
    assert {n for n, a in cache.agents.items() if a.renew_time} == {"n1", "n2"}
    epoch = cache.topology_epoch

    # The same agents, renewed: nothing to requeue, the epoch stays.
    assert on_lease_list(cache, [lease("n1", "2026-12-07T03:00:10Z"), lease("n2")]) == NOTHING
    assert cache.topology_epoch == epoch
    assert cache.agents["n1"].renew_time is not None and cache.agents["n1"].renew_time.second == 10

    # n2's Lease was deleted while the watch was down: the relist is the only news of it.
    assert on_lease_list(cache, [lease("n1")]) == EVERY_APP
    assert cache.agents["n2"].renew_time is None
    assert cache.agents["n1"].renew_time is not None
    assert cache.topology_epoch > epoch


def test_a_relist_matches_agents_by_holder_identity() -> None:
    """A node name too long for a Lease name is hashed into it; the holder identity names the node."""
    cache = ClusterCache()
    on_lease_list(cache, [lease("hashed-abc", holder="a-very-long-node-name")])
    assert on_lease_list(cache, [lease("hashed-abc", holder="a-very-long-node-name")]) == NOTHING
    assert cache.agents["a-very-long-node-name"].renew_time is not None


def test_other_leases_in_the_namespace_change_nothing() -> None:
    cache = ClusterCache()
    other = {"metadata": {"name": "shoal-operator"}, "spec": {"holderIdentity": "operator-0"}}
    assert on_lease_list(cache, [other]) == NOTHING
    assert LEASES.react(cache, "MODIFIED", other) == NOTHING
    assert cache.agents == {}


async def test_the_informer_feeds_lists_and_events_into_the_cache() -> None:
    """What `handlers.informer` wires for `LEASES`, over a scripted API: list, a watch that adds and
    deletes an agent, then a 410 and a relist that no longer holds the first agent."""
    cache = ClusterCache()
    requeued: list[Requeue] = []
    lists = [
        {"metadata": {"resourceVersion": "5"}, "items": [lease("n1")]},
        {"metadata": {"resourceVersion": "9"}, "items": [lease("n3")]},
    ]
    streams: list[list[dict[str, Any]]] = [
        [
            {"type": "ADDED", "object": lease("n2")},
            {"type": "MODIFIED", "object": lease("n2", "2026-12-07T03:00:05Z")},
            {"type": "DELETED", "object": lease("n2")},
        ],
    ]

    async def lister() -> dict[str, Any]:
        return lists.pop(0)

    async def watcher(rv: str) -> AsyncGenerator[dict[str, Any], None]:
        if not streams:
            if lists:
                raise ApiException(status=410, reason="Gone")
            await asyncio.sleep(3600)
        for event in streams.pop(0):
            yield event

    informer = Informer(
        what="agent Leases",
        lister=lister,
        watcher=watcher,
        on_sync=lambda items: requeued.append(on_lease_list(cache, items)),
        on_event=lambda event, body: requeued.append(LEASES.react(cache, event, body)),
    )
    task = asyncio.create_task(informer.run())
    try:
        for _ in range(200):
            if not lists and informer.relists == 1 and cache.agents.get("n3"):
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    live = {n for n, a in cache.agents.items() if a.renew_time is not None}
    assert live == {"n3"}
    # list n1: new; n2 added: new; renewed: nothing; deleted: gone; relist: n1 gone and n3 new.
    assert requeued == [EVERY_APP, EVERY_APP, NOTHING, EVERY_APP, EVERY_APP]
