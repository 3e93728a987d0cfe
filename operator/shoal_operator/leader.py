"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's leaderelection semantics.

Only the leader reconciles; standbys wait. The rules, as in client-go:

- A Lease is free when it has no holder (a graceful `release()` clears it, so a standby takes over
  on its next try instead of waiting out the lease).
- A held Lease expires `leaseDurationSeconds` after this process last *saw it change*, measured on
  its own monotonic clock. The renewTime written in the Lease is another machine's wall clock and is
  never compared with ours, so clock skew between nodes cannot cause two leaders.
- Every write is a replace carrying the read resourceVersion; a 409 means someone else wrote first,
  and we simply look again on the next try.
- The leader renews every `retry_period`; if no renewal has succeeded for `renew_deadline` (which is
  shorter than the lease duration, so it steps down before anyone may take over) or it sees another
  holder, it sets `lost` and stops renewing. The process should then exit: it may no longer act.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from types import TracebackType
from typing import Any, Self

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

logger = logging.getLogger(__name__)

JITTER = 0.2
"""Acquire retries wait retry_period * (1 + up to JITTER), so standbys do not retry in lockstep."""


@dataclass(frozen=True)
class LeaseRecord:
    """The election-relevant part of a Lease spec."""

    holder: str
    lease_duration_seconds: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0

    @classmethod
    def from_lease(cls, lease: Any) -> LeaseRecord:
        spec = lease.spec
        return cls(
            holder=(spec.holder_identity or "") if spec else "",
            lease_duration_seconds=(spec.lease_duration_seconds or 0) if spec else 0,
            acquire_time=spec.acquire_time if spec else None,
            renew_time=spec.renew_time if spec else None,
            transitions=(spec.lease_transitions or 0) if spec else 0,
        )

    def to_spec(self) -> dict[str, Any]:
        """Lease spec for the wire; MicroTime needs exactly six fractional digits."""
        spec: dict[str, Any] = {
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.holder:
            spec["holderIdentity"] = self.holder
        if self.acquire_time is not None:
            spec["acquireTime"] = _micro_time(self.acquire_time)
        if self.renew_time is not None:
            spec["renewTime"] = _micro_time(self.renew_time)
        return spec


class LeaseState(Enum):
    FREE = "free"
    """No holder: anyone may take it."""
    MINE = "mine"
    """We hold it: renew."""
    EXPIRED = "expired"
    """Someone holds it but has not renewed within its duration, as we observed it: take over."""
    HELD = "held"
    """Someone else holds it and may still be acting: wait."""


def lease_state(record: LeaseRecord, *, identity: str, observed_at: float, now: float) -> LeaseState:
    """Classify a Lease for `identity`; `observed_at` is when (our monotonic clock) the record was last
    seen to change, `now` is the same clock now."""
    if not record.holder:
        return LeaseState.FREE
    if record.holder == identity:
        return LeaseState.MINE
    if now >= observed_at + record.lease_duration_seconds:
        return LeaseState.EXPIRED
    return LeaseState.HELD


def takeable(state: LeaseState) -> bool:
    return state is not LeaseState.HELD


def next_record(
    current: LeaseRecord | None, *, identity: str, lease_duration_seconds: int, wall: datetime
) -> LeaseRecord:
    """The record to write to acquire or renew: acquireTime and the transition count only change when
    the holder does, so `leaseTransitions` counts leadership changes."""
    if current is not None and current.holder == identity:
        return replace(current, lease_duration_seconds=lease_duration_seconds, renew_time=wall)
    transitions = current.transitions + 1 if current is not None else 0
    return LeaseRecord(
        holder=identity,
        lease_duration_seconds=lease_duration_seconds,
        acquire_time=wall,
        renew_time=wall,
        transitions=transitions,
    )


class LeaderElector:
    """Elects one leader among processes sharing `namespace/name`; `identity` must be unique per process.

    Use `await acquire()` (returns once leading and keeps renewing in the background), watch `lost`,
    and `await release()` on shutdown; or `async with elector:` for the same.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15,
        renew_deadline: float = 10,
        retry_period: float = 2,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not identity:
            raise ValueError("identity must not be empty")
        if not lease_duration > renew_deadline > retry_period * (1 + JITTER) > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period * 1.2 > 0")
        self._api = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._clock = clock
        self._now = now
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._leading = False
        self._renewer: asyncio.Task[None] | None = None
        self.lost = asyncio.Event()
        """Set when leadership is lost after having been acquired; never cleared."""

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def observed_holder(self) -> str | None:
        """Holder in the last Lease we read or wrote, if any."""
        return self._observed.holder if self._observed else None

    @property
    def observed_renew_time(self) -> datetime | None:
        """renewTime in the last Lease we read or wrote, if any."""
        return self._observed.renew_time if self._observed else None

    # --- lifecycle ----------------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Block until this process leads, then keep renewing in the background."""
        if self._leading:
            return
        if self.lost.is_set():
            raise RuntimeError("leadership was lost; an elector is not reused, make a new one")
        while True:
            if await self._attempt(limit=None):
                break
            await asyncio.sleep(self.retry_period * (1 + JITTER * random.random()))
        self._leading = True
        logger.info("%s leads Lease %s/%s", self.identity, self.namespace, self.name)
        self._renewer = asyncio.create_task(self._renew_loop(), name=f"lease-renew-{self.name}")

    async def release(self) -> None:
        """Stop renewing and, if we still hold the Lease, clear its holder so a standby takes over now."""
        await self._stop_renewing()
        if not self._leading:
            return
        self._leading = False
        try:
            lease = await self._api.read_namespaced_lease(self.name, self.namespace)
            if LeaseRecord.from_lease(lease).holder != self.identity:
                return
            wall = self._now()
            # Duration 1 as client-go writes it, so an elector that does not treat an empty holder as
            # free still waits at most a second.
            cleared = replace(
                LeaseRecord.from_lease(lease), holder="", lease_duration_seconds=1, renew_time=wall
            )
            if await self._replace(lease.metadata.resource_version, cleared):
                logger.info("%s released Lease %s/%s", self.identity, self.namespace, self.name)
        except Exception as e:
            # The Lease then simply expires; nothing else to do on the way out.
            logger.warning("could not release Lease %s/%s: %s", self.namespace, self.name, e)

    async def __aenter__(self) -> Self:
        await self.acquire()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()

    # --- internals ----------------------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        last_renewed = self._clock()
        while True:
            await asyncio.sleep(self.retry_period)
            remaining = self.renew_deadline - (self._clock() - last_renewed)
            if await self._attempt(limit=max(remaining, 0.01)):
                last_renewed = self._clock()
                continue
            taken = self._observed is not None and self._observed.holder != self.identity
            if taken or self._clock() - last_renewed >= self.renew_deadline:
                logger.error(
                    "%s lost Lease %s/%s (%s)",
                    self.identity,
                    self.namespace,
                    self.name,
                    f"now held by {self._observed.holder!r}"
                    if taken and self._observed
                    else "renew deadline",
                )
                self._leading = False
                self.lost.set()
                return

    async def _stop_renewing(self) -> None:
        task, self._renewer = self._renewer, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _attempt(self, *, limit: float | None) -> bool:
        """_try_acquire_or_renew within `limit` seconds, where any failure (API, network, closed client,
        timeout) only costs this attempt: the deadlines decide what a run of failures means."""
        try:
            return await asyncio.wait_for(self._try_acquire_or_renew(), timeout=limit)
        except TimeoutError:
            logger.warning("Lease %s/%s: attempt timed out", self.namespace, self.name)
        except Exception as e:
            logger.warning("Lease %s/%s: attempt failed: %r", self.namespace, self.name, e)
        return False

    async def _try_acquire_or_renew(self) -> bool:
        """One attempt; True when we hold the Lease afterwards. Conflicts and API errors are False."""
        wall = self._now()
        duration = math.ceil(self.lease_duration)
        try:
            lease = await self._api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as e:
            if e.status != 404:
                logger.warning("reading Lease %s/%s failed: %s", self.namespace, self.name, e.reason)
                return False
            record = next_record(None, identity=self.identity, lease_duration_seconds=duration, wall=wall)
            return await self._create(record)

        current = LeaseRecord.from_lease(lease)
        if current != self._observed:
            self._observed, self._observed_at = current, self._clock()
        state = lease_state(current, identity=self.identity, observed_at=self._observed_at, now=self._clock())
        if not takeable(state):
            return False
        record = next_record(current, identity=self.identity, lease_duration_seconds=duration, wall=wall)
        return await self._replace(lease.metadata.resource_version, record)

    async def _create(self, record: LeaseRecord) -> bool:
        body: Any = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record.to_spec(),
        }
        try:
            created = await self._api.create_namespaced_lease(self.namespace, body)
        except ApiException as e:
            if e.status != 409:  # 409: another elector created it first
                logger.warning("creating Lease %s/%s failed: %s", self.namespace, self.name, e.reason)
            return False
        self._observed, self._observed_at = LeaseRecord.from_lease(created), self._clock()
        return True

    async def _replace(self, resource_version: str, record: LeaseRecord) -> bool:
        body: Any = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace, "resourceVersion": resource_version},
            "spec": record.to_spec(),
        }
        try:
            written = await self._api.replace_namespaced_lease(self.name, self.namespace, body)
        except ApiException as e:
            if e.status != 409:  # 409: someone wrote since we read; look again next time
                logger.warning("updating Lease %s/%s failed: %s", self.namespace, self.name, e.reason)
            return False
        self._observed, self._observed_at = LeaseRecord.from_lease(written), self._clock()
        return True


def _micro_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ElectionThread:
    """A `LeaderElector` on a thread of its own, with its own event loop and API client, as client-go
    runs leader election in a goroutine of its own.

    Why: on the operator's loop the renewals waited behind everything else it does. Creating 10,000
    WasmApps over 1,000 Nodes kept that loop busy for seconds at a time (bench-schedule's scale probe),
    a renewal came too late, and the leader stepped down in the middle of the work (renew deadline).
    Here a renewal needs only the GIL, which Python hands between threads every few milliseconds.

    The same interface as the elector: `await acquire()`, `lost` (an event of the caller's loop) and
    `await release()`, which also stops the thread.
    """

    RELEASE_SECONDS = 15.0

    def __init__(self, configuration: client.Configuration, **elector: Any) -> None:
        self._configuration = configuration
        self._elector_kwargs = elector
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="leader-election", daemon=True)
        self._elector: LeaderElector | None = None
        self._api: client.ApiClient | None = None
        self._caller: asyncio.AbstractEventLoop | None = None
        self._forwarder: asyncio.Task[None] | None = None
        self.lost = asyncio.Event()
        """Set (in the caller's loop) when leadership is lost after having been acquired."""

    @property
    def renewed(self) -> datetime | None:
        """The renewTime of the Lease as last read or written on the thread."""
        return self._elector.observed_renew_time if self._elector is not None else None

    async def acquire(self) -> None:
        """Block until this process leads; cancelling it cancels the attempts on the thread."""
        self._caller = asyncio.get_running_loop()
        if not self._thread.is_alive():
            self._thread.start()
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._acquire(), self._loop))

    async def release(self) -> None:
        """Release the Lease if held (so a standby takes over at once), then stop the thread."""
        if not self._thread.is_alive():
            return
        try:
            # Bounded: a release that cannot reach the apiserver must not hold up the process's exit
            # (the Lease then expires on its own).
            releasing = asyncio.run_coroutine_threadsafe(self._release(), self._loop)
            await asyncio.wait_for(asyncio.wrap_future(releasing), timeout=self.RELEASE_SECONDS)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 10)
            if not self._thread.is_alive():
                self._loop.close()

    # --- on the election thread -------------------------------------------------------------------

    async def _acquire(self) -> None:
        if self._elector is None:
            self._api = client.ApiClient(self._configuration)
            self._elector = LeaderElector(self._api, **self._elector_kwargs)
        await self._elector.acquire()
        self._forwarder = asyncio.get_running_loop().create_task(
            self._forward_lost(self._elector), name="forward-lost"
        )

    async def _forward_lost(self, elector: LeaderElector) -> None:
        await elector.lost.wait()
        if self._caller is not None:
            self._caller.call_soon_threadsafe(self.lost.set)

    async def _release(self) -> None:
        if self._forwarder is not None:
            self._forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._forwarder
        if self._elector is not None:
            await self._elector.release()
        if self._api is not None:
            await self._api.close()
