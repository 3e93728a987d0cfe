"""The background Event sender: aggregation, a bounded queue, and a trickle while a batch is written."""

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


async def test_events_trickle_while_held_and_flow_when_released() -> None:
    posted = Posted()
    recorder = EventRecorder(posted, held_rate=5)
    sender = asyncio.create_task(recorder.run())
    try:
        with recorder.hold():
            for node in ("n1", "n2", "n3"):
                recorder.record(APP, type_="Normal", reason="Scheduled", message=f"placed on {node}")
            await asyncio.sleep(0.1)
            assert len(posted.events) == 1, "held: one Event per 1/held_rate s, the batch's writes first"
        for _ in range(100):
            if len(posted.events) == 3:
                break
            await asyncio.sleep(0.01)
        assert [m for _, m, _ in posted.events] == ["placed on n1", "placed on n2", "placed on n3"]
    finally:
        sender.cancel()
