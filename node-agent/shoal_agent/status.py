"""Placement status: pure transitions, and a per-placement pump that writes the latest one.

Writes are JSON merge patches to the `/status` subresource. The pump coalesces: if the state moves
Pulling -> Compiling -> Ready while a write is slow, only the newest status is sent next, and a
failed write is retried with backoff until it lands or the placement is gone (404).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api.backoff import Backoff, Retry
from shoal_api.constants import GROUP, VERSION, WASMPLACEMENT_PLURAL
from shoal_api.meta import set_condition
from shoal_api.wasmapp import PlacementState
from shoal_api.wasmplacement import WasmPlacementStatus

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
CONDITION_READY = "Ready"
CONDITION_COMPLETE = "Complete"
"""Jobs only: True once an attempt exited 0, False once the retries are used up."""
_JOB_FIELDS = ("exitCode", "attempts", "output")

_REASONS: dict[PlacementState, str] = {
    "Pending": "Pending",
    "Pulling": "Pulling",
    "Compiling": "Compiling",
    "Ready": "Ready",
    "Succeeded": "Succeeded",
    "Failed": "Failed",
    "Draining": "Draining",
}


def transition(
    previous: WasmPlacementStatus,
    *,
    state: PlacementState,
    ready: bool,
    message: str,
    observed_template_hash: str | None,
    now: datetime | None = None,
    reason: str | None = None,
    **job: Any,
) -> WasmPlacementStatus:
    """The next status: lastTransitionTime only moves with the state, the Ready condition with `ready`.

    `job` may set exit_code, attempts, output (None clears them); unset job fields are kept.
    """
    now = now or datetime.now(UTC)
    changed = previous.state != state or previous.last_transition_time is None
    conditions = set_condition(
        previous.conditions,
        type=CONDITION_READY,
        status="True" if ready else "False",
        reason=reason or _REASONS[state],
        message=message[:1024],
        now=now,
    )
    update: dict[str, Any] = {
        "state": state,
        "ready": ready,
        "message": message[:4096],
        "observed_template_hash": observed_template_hash,
        "last_transition_time": now if changed else previous.last_transition_time,
        "conditions": conditions,
    }
    if "output" in job and job["output"] is not None:
        job["output"] = WasmPlacementStatus.bound_output(job["output"])
    update.update(job)
    return previous.model_copy(update=update)


def with_job_condition(
    status: WasmPlacementStatus, *, complete: bool, reason: str, message: str
) -> WasmPlacementStatus:
    conditions = set_condition(
        status.conditions,
        type=CONDITION_COMPLETE,
        status="True" if complete else "False",
        reason=reason,
        message=message[:1024],
        now=datetime.now(UTC),
    )
    return status.model_copy(update={"conditions": conditions})


def patch_body(status: WasmPlacementStatus) -> dict[str, Any]:
    """Merge patch of the whole status; job fields that are unset are sent as null so they clear."""
    body = status.to_dict()
    for key in _JOB_FIELDS:
        body.setdefault(key, None)
    return {"status": body}


RETRY = Backoff(first=0.4, cap=10.0, jitter=0.5)
"""A failed status write: 0.4 s doubling to 10 s, jittered so a fleet of agents does not retry in step."""


class StatusPump:
    """Writes the latest status of one placement, in order, retrying until it lands."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self._custom: Any = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.name = name
        self._latest: WasmPlacementStatus | None = None
        self._written: WasmPlacementStatus | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.create_task(self._run(), name=f"status-{namespace}/{name}")
        self.gone = False

    def publish(self, status: WasmPlacementStatus) -> None:
        self._latest = status
        if status != self._written:
            self._idle.clear()
            self._wake.set()

    async def flush(self, within: float) -> None:
        """Wait (bounded) until the latest status is written."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), within)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        retry = Retry(RETRY)
        while True:
            await self._wake.wait()
            self._wake.clear()
            status = self._latest
            if status is None or status == self._written or self.gone:
                self._idle.set()
                continue
            failed = False
            try:
                await self._custom.patch_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    self.namespace,
                    WASMPLACEMENT_PLURAL,
                    self.name,
                    patch_body(status),
                    _content_type=MERGE_PATCH,
                )
                self._written = status
                retry.succeeded()
            except ApiException as e:
                if e.status == 404:
                    self.gone = True
                    self._idle.set()
                    continue
                failed = True
                log.warning(
                    "status of %s/%s: write failed: %s %s", self.namespace, self.name, e.status, e.reason
                )
            except Exception as e:
                failed = True
                log.warning("status of %s/%s: write failed: %r", self.namespace, self.name, e)
            if failed:
                await retry.failed()
            if self._latest != self._written:
                self._wake.set()
            else:
                self._idle.set()
