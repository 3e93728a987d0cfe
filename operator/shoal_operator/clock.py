"""The operator's one clock: every stage reads the time through it, so tests can set it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def seconds_since(clock: Clock, start: datetime) -> float:
    return (clock() - start).total_seconds()
