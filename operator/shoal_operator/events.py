"""core/v1 Events sent in the background, after the writes that place apps.

An Event tells a person what happened; a placement or a status is what happened. So, like client-go's
event broadcaster behind kube-scheduler, the reconciler only queues informational Events and a
background task posts them: a thousand "Scheduled" Events no longer sit between each app and its
status write, and while a batch is being written they trickle out at `held_rate` a second so that
they barely compete with it for the apiserver (and are never held back for long). Like the
broadcaster, the queue is bounded (an Event that does not fit is dropped and counted) and an Event
identical to one still queued only raises that one's count.

Warnings that explain a condition (FailedScheduling, a missing Secret) are not sent through here: the
reconciler posts them before the status write, so whoever sees the condition also finds the Event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from shoal_api import WasmApp

logger = logging.getLogger(__name__)

Post = Callable[..., Awaitable[None]]
"""`Kube.event(obj, type_=, reason=, message=, count=)`."""

EventKey = tuple[str, str, str, str, str]
"""(namespace, name, type, reason, message): what makes two Events the same."""


@dataclass(slots=True)
class _Queued:
    obj: Mapping[str, Any]
    type_: str
    reason: str
    message: str
    count: int = 1


@dataclass
class EventRecorder:
    post: Post
    max_queued: int = 4096
    held_rate: float = 10.0
    """Events per second while the reconciler is writing a batch; as fast as `concurrency` allows
    otherwise."""
    concurrency: int = 4
    on_drop: Callable[[], None] = lambda: None
    _queue: dict[EventKey, _Queued] = field(default_factory=dict)
    """Insertion-ordered: the oldest Event first."""
    _queued: asyncio.Event = field(default_factory=asyncio.Event)
    _holds: int = 0
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, obj: Mapping[str, Any], *, type_: str, reason: str, message: str) -> None:
        """Queue an Event on `obj` (apiVersion, kind, metadata name/namespace/uid); never blocks."""
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"], type_, reason, message)
        queued = self._queue.get(key)
        if queued is not None:
            queued.count += 1
            return
        if len(self._queue) >= self.max_queued:
            self.on_drop()
            return
        self._queue[key] = _Queued(obj, type_, reason, message)
        self._queued.set()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """While held (the reconciler writing a batch), Events go out at `held_rate` only."""
        self._holds += 1
        self._released.clear()
        try:
            yield
        finally:
            self._holds -= 1
            if self._holds == 0:
                self._released.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def run(self) -> None:
        """Post queued Events forever: `concurrency` at a time, or one per 1/`held_rate` s while held."""
        while True:
            await self._queued.wait()
            if not self._queue:
                self._queued.clear()
                continue
            if not self._holds:
                await self.flush(limit=self.concurrency)
                continue
            await self.flush(limit=1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), timeout=1 / self.held_rate)

    async def flush(self, *, limit: int | None = None) -> None:
        """Post the oldest `limit` queued Events (all when None) and wait for them."""
        keys = list(self._queue)[:limit] if limit is not None else list(self._queue)
        batch = [self._queue.pop(k) for k in keys]
        await asyncio.gather(*(self._send(q) for q in batch))

    async def _send(self, queued: _Queued) -> None:
        try:
            await self.post(
                queued.obj,
                type_=queued.type_,
                reason=queued.reason,
                message=queued.message,
                count=queued.count,
            )
        except Exception:  # an Event is never worth stopping the sender for
            logger.exception("could not post event %s", queued.reason)


def event_ref(app: WasmApp) -> dict[str, Any]:
    """What an Event needs of its object: far cheaper than serializing the whole app."""
    meta = app.metadata
    return {
        "apiVersion": app.api_version,
        "kind": app.kind,
        "metadata": {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid},
    }


@dataclass
class Notify:
    """How the stages tell a person about an app: `inform` queues a Normal Event for the background
    sender (inline when there is none), `warn` posts a Warning now, before the status that it explains."""

    post: Post
    recorder: EventRecorder | None = None

    async def inform(self, app: WasmApp, *, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.record(event_ref(app), type_="Normal", reason=reason, message=message)
        else:
            await self.post(event_ref(app), type_="Normal", reason=reason, message=message)

    async def warn(self, app: WasmApp, *, reason: str, message: str) -> None:
        await self.post(event_ref(app), type_="Warning", reason=reason, message=message)

    def hold(self) -> contextlib.AbstractContextManager[None]:
        """Trickle the background Events while a batch is being written (EventRecorder.hold)."""
        return self.recorder.hold() if self.recorder is not None else contextlib.nullcontext()
