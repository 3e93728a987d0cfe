"""The background Event sender: aggregation, a bounded queue, and waiting while a batch is written."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shoal_operator.events import EventRecorder

pytestmark = pytest.mark.unit

APP = {"apiVersion": "shoal.dev/v1alpha1", "kind": "WasmApp", "metadata": {"name": "a", "namespace": "ns"}}


class Posted:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []

    async def __call__(self, obj: Any, *, type_: str, reason: str, message: str, count: int) -> None:
        self.events.append((reason, message, count))


async def test_identical_events_are_counted_once_and_others_kept_in_order() -> None:
    posted = Posted()
    recorder = EventRecorder(posted)
    recorder.record(APP, type_="Normal", reason="Scheduled", message="placed on n1")
    recorder.record(APP, type_="Normal", reason="Scheduled", message="placed on n1")
    recorder.record(APP, type_="Normal", reason="Descheduled", message="removed from n1")
    await recorder.flush()
    assert posted.events == [("Scheduled", "placed on n1", 2), ("Descheduled", "removed from n1", 1)]
    assert recorder.pending == 0


async def test_a_full_queue_drops_and_counts() -> None:
    dropped = []
    recorder = EventRecorder(Posted(), max_queued=1, on_drop=lambda: dropped.append(1))
    recorder.record(APP, type_="Normal", reason="Scheduled", message="one")
    recorder.record(APP, type_="Normal", reason="Scheduled", message="two")
    assert recorder.pending == 1 and dropped == [1]


async def test_events_wait_while_held_then_go() -> None:
    posted = Posted()
    recorder = EventRecorder(posted, max_delay=30)
    sender = asyncio.create_task(recorder.run())
    try:
        with recorder.hold():
            recorder.record(APP, type_="Normal", reason="Scheduled", message="placed on n1")
            await asyncio.sleep(0.05)
            assert posted.events == [], "held: the batch's writes go first"
        for _ in range(100):
            if posted.events:
                break
            await asyncio.sleep(0.01)
        assert posted.events == [("Scheduled", "placed on n1", 1)]
    finally:
        sender.cancel()


async def test_a_long_hold_does_not_starve_events() -> None:
    posted = Posted()
    recorder = EventRecorder(posted, max_delay=0.05)
    sender = asyncio.create_task(recorder.run())
    try:
        with recorder.hold():
            recorder.record(APP, type_="Normal", reason="Scheduled", message="placed on n1")
            for _ in range(100):
                if posted.events:
                    break
                await asyncio.sleep(0.01)
            assert posted.events == [("Scheduled", "placed on n1", 1)]
    finally:
        sender.cancel()
