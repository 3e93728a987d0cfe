"""One backoff for every retry loop in Shoal: delays as data, jitter, an injectable sleep.

Modelled on kopf's throttler: a loop does not compute its own formula, it names a `Backoff` (the
first delay, the factor, the cap, how much jitter) and asks it for the delay after `n` failures, or
walks `delays()`. Jitter spreads the retries of many clients that failed together (a restarted
apiserver, a registry outage) so they do not all come back in the same instant; `jitter=0.5` waits
between half and all of the nominal delay.

It lives in shoal_api because every package already depends on it: the operator, the agent and the
CLI share it without a new package cycle.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

Sleep = Callable[[float], Awaitable[None]]
Random = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Backoff:
    """`first * factor**n`, capped at `cap`, then shortened by up to `jitter` of itself (0..1)."""

    first: float
    cap: float
    factor: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.first < 0 or self.cap < 0 or self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError(f"invalid backoff {self!r}")

    def nominal(self, failures: int) -> float:
        """The delay after the `failures`-th failure in a row (1 for the first), without jitter."""
        if failures <= 0:
            return 0.0
        # The exponent is bounded so a loop failing for days cannot overflow the float.
        return float(min(self.cap, self.first * self.factor ** min(failures - 1, 64)))

    def delay(self, failures: int, *, rand: Random = random.random) -> float:
        """The nominal delay times a factor from `1 - jitter` (rand() = 0) up to 1 (rand() -> 1)."""
        return self.nominal(failures) * (1.0 - self.jitter * (1.0 - rand()))

    def delays(self, *, rand: Random = random.random) -> Iterator[float]:
        """Every delay in turn, forever (the cap repeats): the throttler's source of delays."""
        failures = 0
        while True:
            failures += 1
            yield self.delay(failures, rand=rand)


@dataclass(slots=True)
class Retry:
    """The state of one retry loop: how many failures in a row, and the sleep between them.

    `await retry.failed()` counts a failure and sleeps its delay; `retry.succeeded()` starts over.
    Tests pass a `sleep` that records instead of waiting.
    """

    backoff: Backoff
    sleep: Sleep = asyncio.sleep
    rand: Random = random.random
    failures: int = 0

    @property
    def upcoming(self) -> float:
        """The nominal delay the next failure will wait (for a log line; jitter may shorten it)."""
        return self.backoff.nominal(self.failures + 1)

    def next_delay(self) -> float:
        """Count a failure and return how long to wait before the next attempt."""
        self.failures += 1
        return self.backoff.delay(self.failures, rand=self.rand)

    async def failed(self) -> float:
        delay = self.next_delay()
        await self.sleep(delay)
        return delay

    def succeeded(self) -> None:
        self.failures = 0


@dataclass(slots=True)
class KeyedBackoff:
    """Failures per key (an app, a placement): the delay grows for the key that keeps failing only."""

    backoff: Backoff
    rand: Random = random.random
    _failures: dict[str, int] = field(default_factory=dict)

    def next_delay(self, key: str) -> float:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return self.backoff.delay(failures, rand=self.rand)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)
