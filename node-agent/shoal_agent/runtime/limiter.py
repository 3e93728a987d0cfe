"""Per-app concurrency limit for the event loop: wait briefly for a slot, else report busy.

A hand-rolled FIFO instead of `asyncio.Semaphore` + `wait_for` so that a slot handed to a waiter
at the very moment its wait times out is given back, never leaked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Busy(Exception):
    """No slot became free within the wait budget."""


class ConcurrencyLimiter:
    def __init__(self, limit: int, max_wait_s: float = 0.1) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.max_wait_s = max_wait_s
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self, max_wait_s: float | None = None) -> None:
        """Take a slot, waiting up to `max_wait_s` (default: the limiter's); raises Busy otherwise."""
        if self.active < self.limit and not self.waiting:
            self.active += 1
            return
        wait = self.max_wait_s if max_wait_s is None else max_wait_s
        if wait <= 0:
            raise Busy()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            async with asyncio.timeout(wait):
                await fut
        except (TimeoutError, asyncio.CancelledError) as e:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot arrived as we gave up: pass it on
            if isinstance(e, asyncio.CancelledError):
                raise
            raise Busy() from None
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)

    def release(self) -> None:
        """Give the slot to the oldest live waiter, or free it."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # slot ownership moves; `active` is unchanged
                return
        self.active -= 1
