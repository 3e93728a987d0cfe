"""The per-app concurrency limiter: FIFO hand-off, bounded wait, no leaked slots."""

from __future__ import annotations

import asyncio

import pytest

from shoal_agent.runtime import Busy, ConcurrencyLimiter

pytestmark = pytest.mark.unit


async def test_up_to_limit_then_busy_after_the_wait() -> None:
    lim = ConcurrencyLimiter(2, max_wait_s=0.02)
    await lim.acquire()
    await lim.acquire()
    loop = asyncio.get_running_loop()
    t = loop.time()
    with pytest.raises(Busy):
        await lim.acquire()
    assert loop.time() - t >= 0.015
    assert (lim.active, lim.waiting) == (2, 0)


async def test_zero_wait_is_busy_at_once() -> None:
    lim = ConcurrencyLimiter(1, max_wait_s=0)
    await lim.acquire()
    with pytest.raises(Busy):
        await lim.acquire()


async def test_release_hands_the_slot_to_the_oldest_waiter() -> None:
    lim = ConcurrencyLimiter(1, max_wait_s=1.0)
    await lim.acquire()
    order: list[int] = []

    async def waiter(i: int) -> None:
        await lim.acquire()
        order.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    assert lim.waiting == 3
    for _ in range(3):
        lim.release()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert lim.active == 1
    lim.release()
    assert lim.active == 0


async def test_cancelled_or_timed_out_waiters_do_not_leak_slots() -> None:
    lim = ConcurrencyLimiter(1, max_wait_s=0.05)
    await lim.acquire()
    cancelled = asyncio.create_task(lim.acquire())
    timed_out = asyncio.create_task(lim.acquire())
    await asyncio.sleep(0.01)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    with pytest.raises(Busy):
        await timed_out
    lim.release()
    assert (lim.active, lim.waiting) == (0, 0)
    await lim.acquire()
    assert lim.active == 1


async def test_slot_granted_as_the_wait_expires_is_given_back() -> None:
    lim = ConcurrencyLimiter(1, max_wait_s=0.05)
    await lim.acquire()
    task = asyncio.create_task(lim.acquire())
    await asyncio.sleep(0.01)
    lim.release()  # hands the slot to `task`
    task.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lim.active == 0


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ConcurrencyLimiter(0)


async def test_a_caller_may_wait_longer_than_the_default() -> None:
    lim = ConcurrencyLimiter(1, max_wait_s=0.01)
    await lim.acquire()
    patient = asyncio.create_task(lim.acquire(max_wait_s=5))
    await asyncio.sleep(0.05)  # well past the default wait
    assert not patient.done()
    lim.release()
    await asyncio.wait_for(patient, 1)
    assert lim.active == 1
