"""InvocationWorkers: results and errors reach the caller, slots free only when the call ends,
finished work crosses to the event loop in batches, and close() cancels what never started."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shoal_agent.runtime.workers import InvocationWorkers

pytestmark = pytest.mark.unit


@pytest.fixture
def workers() -> Iterator[InvocationWorkers]:
    pool = InvocationWorkers(2, name="test-workers")
    yield pool
    pool.close()


async def test_results_and_errors_reach_the_caller(workers: InvocationWorkers) -> None:
    def boom() -> int:
        raise ValueError("guest went wrong")

    assert await workers.submit(lambda: 6 * 7) == 42
    with pytest.raises(ValueError, match="guest went wrong"):
        await workers.submit(boom)


async def test_calls_run_off_the_event_loop_thread(workers: InvocationWorkers) -> None:
    loop_thread = threading.get_ident()
    ran_on = await workers.submit(threading.get_ident)
    assert ran_on != loop_thread


async def test_done_runs_when_the_call_ends_even_if_the_caller_gave_up(workers: InvocationWorkers) -> None:
    release = threading.Event()
    done: list[float] = []
    fut = workers.submit(lambda: release.wait(5), done=lambda: done.append(time.monotonic()))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(fut, 0.05)
    assert fut.cancelled() and not done, "the slot must stay held while the call still runs"
    release.set()
    for _ in range(200):
        if done:
            break
        await asyncio.sleep(0.01)
    assert len(done) == 1


async def test_many_results_cross_to_the_loop_in_few_wake_ups() -> None:
    pool = InvocationWorkers(1, name="test-batch")
    loop = asyncio.get_running_loop()
    wakeups = 0
    real = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal wakeups
        wakeups += 1
        return real(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
    try:
        gate = threading.Event()
        first = pool.submit(lambda: gate.wait(5))
        rest = [pool.submit(lambda i=i: i) for i in range(200)]  # type: ignore[misc]
        gate.set()
        assert await first is True
        assert await asyncio.gather(*rest) == list(range(200))
    finally:
        loop.call_soon_threadsafe = real  # type: ignore[method-assign]
        pool.close()
    # The loop does not run while it waits for `first`'s batch, so results pile up in the mailbox
    # and cross together: far fewer wake-ups than results.
    assert wakeups < 50, wakeups


async def test_close_cancels_what_has_not_started() -> None:
    pool = InvocationWorkers(1, name="test-close")
    gate = threading.Event()
    running = pool.submit(lambda: gate.wait(5))
    queued = pool.submit(lambda: "never")
    closer = asyncio.get_running_loop().run_in_executor(None, pool.close)
    await asyncio.sleep(0.05)
    gate.set()
    await closer
    assert await running is True
    with pytest.raises(asyncio.CancelledError):
        await queued
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(lambda: 1)


def test_one_pool_serves_successive_event_loops(workers: InvocationWorkers) -> None:
    async def one(value: int) -> int:
        return await workers.submit(lambda: value)

    assert asyncio.run(one(1)) == 1
    assert asyncio.run(one(2)) == 2


def test_needs_a_worker() -> None:
    with pytest.raises(ValueError):
        InvocationWorkers(0)
