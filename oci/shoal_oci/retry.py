"""Exponential backoff with full jitter for transient registry failures, with an injectable clock.

Only `RegistryUnavailable` (connection errors, timeouts, 429, 5xx) is retried: a 404, a refused credential
or a digest mismatch will not change by asking again, so those surface at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from shoal_api.backoff import Backoff

from .errors import RegistryUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 8.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy needs at least one attempt")

    @property
    def backoff(self) -> Backoff:
        """Shoal's one backoff (shoal_api.backoff) with full jitter."""
        return Backoff(first=self.base_delay, cap=self.max_delay, jitter=1.0)

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)] (attempt counts from 0)."""
        return self.backoff.delay(attempt + 1, rand=self.jitter)

    async def run(self, op: Callable[[], Awaitable[T]], what: str) -> T:
        for attempt in range(self.attempts):
            try:
                return await op()
            except RegistryUnavailable as err:
                if attempt + 1 >= self.attempts:
                    raise RegistryUnavailable(
                        f"{what}: gave up after {self.attempts} attempts: {err}"
                    ) from err
                pause = self.delay(attempt)
                log.info("%s failed (%s); retrying in %.2fs", what, err, pause)
                await self.sleep(pause)
        raise AssertionError("unreachable")  # attempts >= 1
