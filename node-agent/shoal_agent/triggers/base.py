"""What every trigger shares: how it reaches the runtime, and its lifecycle.

A trigger turns events (an HTTP request, a job start, later a Redis pub/sub message) into
`InvocationRequest`s for one app and does something with the results. It only sees an `Invoker`,
so triggers are testable without wasmtime and the runtime knows nothing of triggers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from ..runtime.app import InvocationRequest
from ..runtime.outcome import InvocationResult

Invoker = Callable[[InvocationRequest], Awaitable[InvocationResult]]


@runtime_checkable
class Trigger(Protocol):
    """A long-lived event source bound to one app (e.g. a Redis channel subscription).

    The agent calls `start()` when the app is placed and ready, and `stop()` when it is removed
    or the agent shuts down; `stop()` must return only once no more invocations will be made.
    Request/response triggers (HTTP) are mounted as handlers instead and need no lifecycle.
    """

    kind: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
