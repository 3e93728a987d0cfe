"""The reconcile queue: app keys waiting for the next batch, wake-ups, and per-key backoff.

Like client-go's workqueue: a key is queued once however many events name it; a batch takes every
queued key at once; a key that keeps failing comes back after a delay that grows for that key only
(`shoal_api.backoff`), and a success resets it. Named wake-ups (`wake_at`) replace the earlier one of
the same name, so a timer that no longer applies never fires.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from shoal_api.backoff import Backoff, KeyedBackoff

RETRY = Backoff(first=1.0, cap=60.0)
"""1 s doubling to a minute: a registry or apiserver hiccup is retried soon, a broken app rarely."""


@dataclass
class WorkQueue:
    backoff: KeyedBackoff = field(default_factory=lambda: KeyedBackoff(RETRY))
    _pending: set[str] = field(default_factory=set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _timers: dict[str, dict[str, asyncio.TimerHandle]] = field(default_factory=dict)
    """key -> name -> its pending named wake-up."""

    def add(self, key: str) -> None:
        self._pending.add(key)
        self._wake.set()

    def add_all(self, keys: Iterable[str]) -> None:
        self._pending.update(keys)
        self._wake.set()

    def poke(self) -> None:
        """Look again now (an agent link changed), even with nothing queued."""
        self._wake.set()

    async def wait(self, *, at_most: float) -> None:
        """Until something is added or poked, or `at_most` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=at_most)
        self._wake.clear()

    def take(self) -> list[str]:
        """Every queued key, sorted; the queue is empty after."""
        batch, self._pending = self._pending, set()
        return sorted(batch)

    def __bool__(self) -> bool:
        return bool(self._pending)

    # --- later ------------------------------------------------------------------------------------

    def retry(self, key: str) -> None:
        """`key` failed (or is waiting on something no event reports): queue it again after its backoff."""
        self.after(key, self.backoff.next_delay(key))

    def succeeded(self, key: str) -> None:
        self.backoff.forget(key)

    def after(self, key: str, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.add, key)

    def wake_at(self, key: str, name: str, delay: float | None) -> None:
        """Queue `key` in `delay` seconds, replacing the wake-up of the same name; None: cancel it."""
        timers = self._timers.setdefault(key, {})
        timer = timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        if delay is None:
            return

        def fire() -> None:
            timers.pop(name, None)
            self.add(key)

        timers[name] = asyncio.get_running_loop().call_later(delay, fire)

    def forget(self, key: str) -> None:
        """The app is gone: no backoff, no named wake-ups (an unnamed retry finds it gone, harmlessly)."""
        self.backoff.forget(key)
        for timer in self._timers.pop(key, {}).values():
            timer.cancel()
