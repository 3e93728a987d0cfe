"""Leader election against a real apiserver: one leader at a time, fast hand-over on release, takeover
within the lease duration when the leader stops renewing, and the leader noticing it was replaced.

Short timings (3 s lease) keep the tests quick; the logic does not depend on the scale.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes_asyncio import client

from shoal_operator.leader import ElectionThread, LeaderElector

pytestmark = pytest.mark.integration

LEASE = "shoal-operator"
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 3, 2, 0.3


@pytest.fixture
async def electors(api: client.ApiClient, namespace: str) -> AsyncIterator[Callable[..., LeaderElector]]:
    """Makes electors on the test's Lease; releases them all at the end."""
    made: list[LeaderElector] = []

    def make(identity: str, api_client: client.ApiClient = api) -> LeaderElector:
        elector = LeaderElector(
            api_client,
            namespace=namespace,
            name=LEASE,
            identity=identity,
            lease_duration=LEASE_DURATION,
            renew_deadline=RENEW_DEADLINE,
            retry_period=RETRY_PERIOD,
        )
        made.append(elector)
        return elector

    yield make
    for elector in made:
        with contextlib.suppress(Exception):
            await elector.release()


async def holder(api: client.ApiClient, namespace: str) -> Any:
    lease = await client.CoordinationV1Api(api).read_namespaced_lease(LEASE, namespace)
    return lease.spec


async def test_one_leader_and_release_hands_over_at_once(
    api: client.ApiClient, namespace: str, electors: Callable[..., LeaderElector]
) -> None:
    candidates = [electors(f"replica-{i}") for i in range(3)]
    tasks = {asyncio.create_task(c.acquire()): c for c in candidates}
    done, pending = await asyncio.wait(tasks, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1
    leader = tasks[done.pop()]
    # The leader keeps renewing: nobody else gets in for well over a lease duration.
    await asyncio.sleep(LEASE_DURATION * 2)
    assert all(not t.done() for t in pending)
    assert [c.identity for c in candidates if c.is_leader] == [leader.identity]
    spec = await holder(api, namespace)
    assert spec.holder_identity == leader.identity
    assert not leader.lost.is_set()

    started = time.monotonic()
    await leader.release()
    assert not leader.is_leader
    done, pending = await asyncio.wait(pending, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    took = time.monotonic() - started
    assert len(done) == 1
    successor = tasks[done.pop()]
    # Released, not expired: the next retry (retry_period + jitter) takes it.
    assert took < LEASE_DURATION, took
    spec = await holder(api, namespace)
    assert spec.holder_identity == successor.identity
    assert spec.lease_transitions == 1
    for task in pending:
        task.cancel()


async def test_standby_takes_over_when_the_leader_stops_renewing(
    api: client.ApiClient, namespace: str, electors: Callable[..., LeaderElector]
) -> None:
    # The leader gets its own client, closed below: its process is partitioned from the apiserver.
    doomed_client = client.ApiClient(api.configuration)
    leader = electors("replica-a", doomed_client)
    standby = electors("replica-b")
    await leader.acquire()
    waiting = asyncio.create_task(standby.acquire())
    await asyncio.sleep(1)
    assert not waiting.done()

    await doomed_client.close()
    cut = time.monotonic()
    await asyncio.wait_for(leader.lost.wait(), timeout=10)
    lost_after = time.monotonic() - cut
    await asyncio.wait_for(waiting, timeout=10)
    taken_after = time.monotonic() - cut

    # The leader steps down (renew deadline) before the standby may take over (lease duration).
    assert lost_after <= RENEW_DEADLINE + RETRY_PERIOD + 1.5, lost_after
    assert lost_after < taken_after
    assert taken_after <= LEASE_DURATION + 2 * RETRY_PERIOD + 1.5, taken_after
    assert standby.is_leader and not leader.is_leader
    assert (await holder(api, namespace)).holder_identity == "replica-b"


async def test_leader_notices_it_was_replaced(
    api: client.ApiClient, namespace: str, electors: Callable[..., LeaderElector]
) -> None:
    leader = electors("replica-a")
    await leader.acquire()
    coordination = client.CoordinationV1Api(api)
    lease = await coordination.read_namespaced_lease(LEASE, namespace)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body: Any = {
        "metadata": {
            "name": LEASE,
            "namespace": namespace,
            "resourceVersion": lease.metadata.resource_version,
        },
        "spec": {
            "holderIdentity": "intruder",
            "leaseDurationSeconds": 60,
            "renewTime": now,
            "acquireTime": now,
        },
    }
    await coordination.replace_namespaced_lease(LEASE, namespace, body)
    await asyncio.wait_for(leader.lost.wait(), timeout=5)
    assert not leader.is_leader
    await leader.release()  # not the holder any more: must leave the intruder's Lease alone
    assert (await holder(api, namespace)).holder_identity == "intruder"


async def test_context_manager_acquires_and_releases(
    api: client.ApiClient, namespace: str, electors: Callable[..., LeaderElector]
) -> None:
    async with electors("replica-a") as elector:
        assert elector.is_leader
        assert (await holder(api, namespace)).holder_identity == "replica-a"
    spec = await holder(api, namespace)
    assert spec.holder_identity is None
    assert spec.lease_duration_seconds == 1


async def test_the_election_thread_keeps_leading_while_the_operators_loop_is_blocked(
    api: client.ApiClient, namespace: str
) -> None:
    """What the operator runs: the elector on a thread of its own. Its caller's loop blocked for twice
    the renew deadline (a flood of events at scale) costs it nothing: it renews all along. On the
    operator's own loop, the renewals waited and the leader stepped down (bench-schedule's scale
    probe, 10,000 apps over 1,000 Nodes)."""
    threaded = ElectionThread(
        api.configuration,
        namespace=namespace,
        name=LEASE,
        identity="threaded",
        lease_duration=LEASE_DURATION,
        renew_deadline=RENEW_DEADLINE,
        retry_period=RETRY_PERIOD,
    )
    try:
        await asyncio.wait_for(threaded.acquire(), timeout=10)
        renewals = set()
        blocked_until = time.monotonic() + RENEW_DEADLINE * 2
        while time.monotonic() < blocked_until:  # the caller's loop runs nothing meanwhile
            renewals.add(threaded.renewed)
            time.sleep(RETRY_PERIOD / 4)  # noqa: ASYNC251 - blocking the caller's loop is the point
        # Every retry period: about 13 renewals in 4 s; a blocked elector would have made none.
        assert len(renewals) >= RENEW_DEADLINE * 2 / RETRY_PERIOD / 2, renewals
        assert not threaded.lost.is_set()
        spec = await holder(api, namespace)
        assert spec.holder_identity == "threaded"
    finally:
        await threaded.release()
    # Released: the Lease is free for a standby at once, and the thread is gone.
    assert not (await holder(api, namespace)).holder_identity
    assert not any(t.name == "leader-election" for t in threading.enumerate())
