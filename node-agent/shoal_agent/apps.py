"""A loaded app version as the agent runs it: invocations counted in flight, its trigger, and the
plug points capability code uses (dependency bindings, extra trigger kinds such as redis).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shoal_api.wasmplacement import DependencyEndpoint

from .files import FilesPlan
from .runtime import InvocationRequest, InvocationResult, LoadedApp
from .triggers import Invoker, Trigger


@dataclass(frozen=True)
class AppBindings:
    """What capability host functions and triggers need to know about one app on this node.

    Passwords stay references (`DependencyEndpoint.password_secret`), resolved by whoever connects.
    """

    namespace: str
    app: str
    dependencies: tuple[DependencyEndpoint, ...] = ()
    capabilities: frozenset[str] = frozenset()
    """Declared capability names: the kinds of the app's dependencies (redis, mysql)."""
    share_keys_with: tuple[str, ...] = ()


TriggerFactory = Callable[[AppBindings, Mapping[str, object], Invoker], Trigger]
"""Builds a long-lived trigger (e.g. redis pub/sub) for a ready app: (bindings, trigger spec, invoker)."""


class BindingsListener(Protocol):
    """Told before an app version loads and after it is unloaded (e.g. to open/close connections)."""

    async def bind(self, bindings: AppBindings) -> None: ...

    async def unbind(self, bindings: AppBindings) -> None: ...


class InFlight:
    """Counts invocations of one app version, so draining can wait for them: those the agent asked
    for (jobs, messages) here, and those the data plane serves itself (HTTP) through `native`."""

    POLL_SECONDS = 0.01

    def __init__(self, native: Callable[[], int] = lambda: 0) -> None:
        self.count = 0
        self.native = native
        self._idle = asyncio.Event()
        self._idle.set()

    def wrap(self, invoker: Invoker) -> Invoker:
        async def counted(request: InvocationRequest) -> InvocationResult:
            self.count += 1
            self._idle.clear()
            try:
                return await invoker(request)
            finally:
                self.count -= 1
                if self.count == 0:
                    self._idle.set()

        return counted

    async def wait_idle(self, within: float) -> bool:
        """True once nothing is in flight, False if `within` seconds passed first."""
        deadline = asyncio.get_running_loop().time() + within
        try:
            async with asyncio.timeout_at(deadline):
                await self._idle.wait()
                # The data plane has no event to await: poll its count (drains are rare).
                while self.native() > 0:  # noqa: ASYNC110 - nothing to wait on but a count
                    await asyncio.sleep(self.POLL_SECONDS)
            return True
        except TimeoutError:
            return False


@dataclass
class RunningApp:
    """One version (template hash) of a placement's app, loaded and serving."""

    template_hash: str
    loaded: LoadedApp
    module_digest: str
    bindings: AppBindings
    invoker: Invoker
    inflight: InFlight
    trigger: Trigger | None = None
    job_task: asyncio.Task[None] | None = field(default=None, repr=False)
    files: FilesPlan = field(default_factory=FilesPlan)
    """The file trees this version shows (released when it is retired)."""

    async def stop_trigger(self) -> None:
        """No new events from the trigger; a running job or schedule loop is cancelled (its current
        attempt or runs run out)."""
        if self.trigger is not None:
            with contextlib.suppress(Exception):
                await self.trigger.stop()
        task, self.job_task = self.job_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
