"""Worker threads for invocations, with wake-ups batched in both directions.

A hello-world invocation costs about 70 us of wasmtime work, but handing it to a
`ThreadPoolExecutor` and back through `asyncio.wrap_future` cost several hundred microseconds
of CPU more: every hop wakes a sleeping thread (a futex round trip and a GIL handover) and each
result crossed back with its own `call_soon_threadsafe`. Here a worker that finishes a job takes
the next one without sleeping, and results reach the event loop in batches: one wake-up of the
loop per batch, however many invocations finished meanwhile. Under load that removes most
thread switches; when idle it behaves like a plain pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Mailbox:
    """Finished jobs of one event loop, handed over in one call per batch."""

    __slots__ = ("items", "lock", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.items: list[tuple[_Job[Any], Any, BaseException | None]] = []

    def post(self, job: _Job[Any], result: Any, error: BaseException | None) -> None:
        with self.lock:
            first = not self.items
            self.items.append((job, result, error))
        if first:
            # The loop may already be closed (shutdown): then nobody waits for the result.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.drain)

    def drain(self) -> None:
        """On the loop: settle every finished job's future and run its `done` callback."""
        with self.lock:
            items, self.items = self.items, []
        for job, result, error in items:
            if job.done is not None:
                job.done()
            future = job.future
            if future.done():  # the caller stopped waiting (cancelled)
                continue
            if isinstance(error, asyncio.CancelledError):
                future.cancel()
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)


@dataclass(slots=True)
class _Job(Generic[T]):
    fn: Callable[[], T]
    mailbox: _Mailbox
    future: asyncio.Future[T]
    done: Callable[[], None] | None


class InvocationWorkers:
    """A fixed set of daemon threads running submitted calls; `close()` joins them."""

    def __init__(self, workers: int, name: str = "shoal-wasm") -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._jobs: deque[_Job[Any]] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._idle = 0
        self._closed = False
        self._mailboxes: dict[asyncio.AbstractEventLoop, _Mailbox] = {}
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def size(self) -> int:
        return len(self._threads)

    def submit(self, fn: Callable[[], T], done: Callable[[], None] | None = None) -> asyncio.Future[T]:
        """Run `fn` on a worker; the returned future (of the running loop) gets its result.

        `done` runs on the loop once `fn` has really finished, even if the caller stopped waiting,
        so a slot it frees is held exactly as long as the guest runs."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._cond:
            if self._closed:
                raise RuntimeError("invocation workers are closed")
            mailbox = self._mailboxes.get(loop)
            if mailbox is None:
                self._mailboxes = {lp: mb for lp, mb in self._mailboxes.items() if not lp.is_closed()}
                mailbox = self._mailboxes[loop] = _Mailbox(loop)
            self._jobs.append(_Job(fn, mailbox, future, done))
            if self._idle:
                self._cond.notify()
        return future

    def _work(self) -> None:
        cond, jobs = self._cond, self._jobs
        while True:
            with cond:
                while not jobs and not self._closed:
                    self._idle += 1
                    try:
                        cond.wait()
                    finally:
                        self._idle -= 1
                if not jobs:
                    return
                job = jobs.popleft()
            try:
                result, error = job.fn(), None
            except BaseException as e:  # handed to the awaiting coroutine, as a pool would
                result, error = None, e
            job.mailbox.post(job, result, error)

    def close(self) -> None:
        """Stop taking work, cancel what has not started, wait for running calls to end."""
        with self._cond:
            self._closed = True
            pending = list(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
        for job in pending:
            job.mailbox.post(job, None, asyncio.CancelledError())
        for thread in self._threads:
            thread.join()
