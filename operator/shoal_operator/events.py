"""core/v1 Events sent in the background, after the writes that place apps.

An Event tells a person what happened; a placement or a status is what happened. So, like client-go's
event broadcaster behind kube-scheduler, the reconciler only queues informational Events and a
background task posts them: a thousand "Scheduled" Events no longer sit between each app and its
status write, and while a batch is being written they wait (up to `max_delay`) so that they do not
compete with it for the apiserver. Like the broadcaster, the queue is bounded (an Event that does not
fit is dropped and counted) and an Event identical to one still queued only raises that one's count.

Warnings that explain a condition (FailedScheduling, a missing Secret) are not sent through here: the
reconciler posts them before the status write, so whoever sees the condition also finds the Event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

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
    queued_at: float
    count: int = 1


@dataclass
class EventRecorder:
    post: Post
    max_queued: int = 4096
    max_delay: float = 10.0
    """Longest an Event waits for the reconciler's writes to pause."""
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
        self._queue[key] = _Queued(obj, type_, reason, message, time.monotonic())
        self._queued.set()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """While held (the reconciler writing a batch), queued Events wait, up to `max_delay`."""
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
        """Post queued Events forever, `concurrency` at a time."""
        while True:
            await self._queued.wait()
            if not self._queue:
                self._queued.clear()
                continue
            if self._holds:
                oldest = next(iter(self._queue.values())).queued_at
                wait = oldest + self.max_delay - time.monotonic()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._released.wait(), timeout=wait)
            await self.flush(limit=self.concurrency)

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
