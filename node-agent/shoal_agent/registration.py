"""The agent's presence in the cluster: its WasmNode (what it offers, what it runs) and its heartbeat Lease.

The Lease is renewed every leaseDurationSeconds/3 with a JSON merge patch (one write, no read): the
agent is the only writer of its own Lease, so there is nothing to arbitrate, and holderIdentity is
simply the node name. WasmNode spec is written at start and re-asserted when it drifts (or the object
was deleted); its status is rewritten, debounced, when the placements change. Every API failure only
costs one attempt: the loop backs off (capped at the renew period) and never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api.backoff import Backoff
from shoal_api.constants import GROUP, VERSION, WASMNODE_KIND, WASMNODE_PLURAL
from shoal_api.meta import owner_ref
from shoal_api.naming import agent_lease_name
from shoal_api.wasmnode import (
    AgentEndpoint,
    LeaseRef,
    NodePlacement,
    NodeResources,
    RuntimeVersions,
    WasmNodeSpec,
    WasmNodeStatus,
)

from .config import AgentConfig

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
STATUS_DEBOUNCE_SECONDS = 0.5


def micro_time(value: datetime) -> str:
    """metav1.MicroTime: the apiserver insists on exactly six fractional digits."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_spec(cfg: AgentConfig, *, wasmtime_version: str, agent_version: str) -> WasmNodeSpec:
    return WasmNodeSpec(
        capacity=NodeResources(cpu_millis=cfg.cpu_millis, memory_bytes=cfg.memory_bytes),
        endpoint=AgentEndpoint(host=cfg.advertise_host, port=cfg.http_port, health_port=cfg.metrics_port),
        runtime=RuntimeVersions(wasmtime=wasmtime_version, agent=agent_version),
        lease=LeaseRef(name=agent_lease_name(cfg.node_name), namespace=cfg.namespace),
    )


RETRY_FIRST_SECONDS = 0.5


def next_wait(*, failures: int, now: float, next_renew: float, renew_seconds: float, jitter: float) -> float:
    """Seconds until the next round of writes. All well: until the Lease is due. After `failures`
    failed rounds in a row: 0.5 s doubling per failure, capped at the renew interval and jittered
    down by up to half (`jitter` in [0, 1)) so a fleet of agents does not retry in step. A Lease
    never renewed (next_renew 0) is not a reason to retry at once."""
    if failures:
        backoff = Backoff(first=RETRY_FIRST_SECONDS, cap=renew_seconds, jitter=0.5)
        return backoff.delay(failures, rand=lambda: jitter)
    return max(0.05, next_renew - now)


class Registration:
    """Keeps WasmNode and Lease current; `registered` once both were written at least once."""

    def __init__(
        self,
        api: client.ApiClient,
        cfg: AgentConfig,
        *,
        wasmtime_version: str,
        agent_version: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._custom: Any = client.CustomObjectsApi(api)
        self._coordination: Any = client.CoordinationV1Api(api)
        self._core: Any = client.CoreV1Api(api)
        self.cfg = cfg
        self.spec = node_spec(cfg, wasmtime_version=wasmtime_version, agent_version=agent_version)
        self.lease_name = agent_lease_name(cfg.node_name)
        self._now = now
        self._status = WasmNodeStatus()
        self._status_dirty = asyncio.Event()
        self._node_written = False
        self._lease_renewed_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def registered(self) -> bool:
        return self._node_written and self._lease_renewed_at is not None

    def lease_fresh(self) -> bool:
        """Renewed within the lease duration, by our own monotonic clock."""
        at = self._lease_renewed_at
        return at is not None and time.monotonic() - at < self.cfg.lease_seconds

    def set_placements(self, placements: list[NodePlacement], allocated: NodeResources) -> None:
        """Publish what runs here (written to WasmNode.status shortly, coalescing bursts)."""
        status = WasmNodeStatus(allocated=allocated, placements=placements)
        if status != self._status:
            self._status = status
            self._status_dirty.set()

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="registration")

    async def stop(self) -> None:
        """Stop renewing: the Lease then expires on its own, which tells the operator we are gone."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def flush_status(self) -> None:
        """Write the WasmNode status now (used on shutdown); errors are logged, not raised."""
        await self._attempt(self._write_status, "WasmNode status")

    async def _run(self) -> None:
        failures = 0
        next_renew = 0.0
        while True:
            ok = True
            if not self._node_written:
                ok = await self._attempt(self._write_node, "WasmNode") and ok
                if ok:
                    self._status_dirty.set()
            if time.monotonic() >= next_renew:
                renewed = await self._attempt(self._renew_lease, "Lease")
                ok = renewed and ok
                if renewed:
                    next_renew = time.monotonic() + self.cfg.renew_seconds
            if self._node_written and self._status_dirty.is_set():
                self._status_dirty.clear()
                if not await self._attempt(self._write_status, "WasmNode status"):
                    self._status_dirty.set()
                    ok = False
            failures = 0 if ok else failures + 1
            wait = next_wait(
                failures=failures,
                now=time.monotonic(),
                next_renew=next_renew,
                renew_seconds=self.cfg.renew_seconds,
                jitter=random.random(),
            )
            if failures:
                # Not woken by a dirty status either: that is what kept a failing write in a tight loop.
                await asyncio.sleep(wait)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_dirty.wait(), timeout=wait)
                await asyncio.sleep(STATUS_DEBOUNCE_SECONDS)

    async def _attempt(self, op: Callable[[], Any], what: str) -> bool:
        try:
            await op()
            return True
        except asyncio.CancelledError:
            raise
        except ApiException as e:
            log.warning("writing %s failed: %s %s", what, e.status, e.reason)
        except Exception as e:
            log.warning("writing %s failed: %r", what, e)
        return False

    # --- writes -------------------------------------------------------------------------------------

    async def _owner(self) -> list[dict[str, Any]]:
        """The Node as owner, so deleting the Node garbage-collects its WasmNode (best effort)."""
        try:
            node = await self._core.read_node(self.cfg.node_name)
        except ApiException as e:
            log.info("cannot read Node %s (%s): WasmNode gets no owner", self.cfg.node_name, e.status)
            return []
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.cfg.node_name, "uid": node.metadata.uid},
        }
        return [owner_ref(body, controller=False)]

    async def _write_node(self) -> None:
        name = self.cfg.node_name
        try:
            await self._custom.patch_cluster_custom_object(
                GROUP,
                VERSION,
                WASMNODE_PLURAL,
                name,
                {"spec": self.spec.to_dict()},
                _content_type=MERGE_PATCH,
            )
        except ApiException as e:
            if e.status != 404:
                raise
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": WASMNODE_KIND,
                "metadata": {"name": name, "ownerReferences": await self._owner()},
                "spec": self.spec.to_dict(),
            }
            await self._custom.create_cluster_custom_object(GROUP, VERSION, WASMNODE_PLURAL, body)
            log.info("registered WasmNode %s (%s)", name, self.spec.capacity.to_dict())
        self._node_written = True

    async def _write_status(self) -> None:
        try:
            await self._custom.patch_cluster_custom_object_status(
                GROUP,
                VERSION,
                WASMNODE_PLURAL,
                self.cfg.node_name,
                {"status": self._status.to_dict()},
                _content_type=MERGE_PATCH,
            )
        except ApiException as e:
            if e.status == 404:  # someone deleted it: write it again on the next round
                self._node_written = False
            raise

    async def _renew_lease(self) -> None:
        now = micro_time(self._now())
        spec = {
            "holderIdentity": self.cfg.node_name,
            "leaseDurationSeconds": self.cfg.lease_seconds,
            "renewTime": now,
        }
        try:
            await self._coordination.patch_namespaced_lease(
                self.lease_name, self.cfg.namespace, {"spec": spec}, _content_type=MERGE_PATCH
            )
        except ApiException as e:
            if e.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.lease_name, "namespace": self.cfg.namespace},
                "spec": {**spec, "acquireTime": now},
            }
            await self._coordination.create_namespaced_lease(self.cfg.namespace, body)
            log.info("created Lease %s/%s", self.cfg.namespace, self.lease_name)
        self._lease_renewed_at = time.monotonic()
