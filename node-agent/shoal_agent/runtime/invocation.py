"""Per-invocation state the host functions write into, found through a thread-local.

An invocation runs start to finish on one worker thread, and wasmtime calls host functions on
that same thread, so a thread-local is the cheapest way for a shared, per-app host function to
reach the current invocation's buffers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


class BoundedBuffer:
    """Collects bytes up to `limit`; remembers whether anything was cut off."""

    __slots__ = ("chunks", "limit", "size", "truncated")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.truncated = False
        self.chunks: list[bytes] = []

    def room(self) -> int:
        return self.limit - self.size

    def add(self, data: bytes) -> bool:
        """Append what fits; False if some of `data` did not."""
        room = self.limit - self.size
        if len(data) > room:
            if room > 0:
                self.chunks.append(data[:room])
                self.size = self.limit
            self.truncated = True
            return False
        self.chunks.append(data)
        self.size += len(data)
        return True

    def value(self) -> bytes:
        return b"".join(self.chunks)


@dataclass
class InvocationState:
    stdout: BoundedBuffer
    stderr: BoundedBuffer
    stdout_limit_hit: bool = False
    host_failure: str | None = None
    # (namespace, name) of the running app: lets a shared capability host function find that
    # app's dependency bindings without the runtime knowing about capabilities.
    app: tuple[str, str] | None = None
    # Free for capability host functions (e.g. a Redis connection for this invocation).
    extras: dict[str, Any] = field(default_factory=dict)


_local = threading.local()


def current() -> InvocationState | None:
    state: InvocationState | None = getattr(_local, "state", None)
    return state


def set_current(state: InvocationState | None) -> None:
    _local.state = state
