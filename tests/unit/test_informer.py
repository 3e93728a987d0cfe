"""The informer (the agent's placements, the operator's agent Leases): list then watch, relist on
410 Gone, back off on errors, and a watchdog that relists when a watch goes silent (a half-open
connection)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api.informer import Informer

pytestmark = pytest.mark.unit


def obj(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": rv}}


class FakeApi:
    """Lists and watch streams scripted per call: a stream is a list of events, an exception to raise
    after them, or "hang" (a connection that stays open and says nothing)."""

    def __init__(self, streams: list[Any]) -> None:
        self.lists = 0
        self.watched_from: list[str] = []
        self.streams = streams

    async def lister(self) -> dict[str, Any]:
        self.lists += 1
        rv = str(self.lists * 10)
        return {"items": [obj("a", rv)], "metadata": {"resourceVersion": rv}}

    async def watcher(self, rv: str) -> AsyncGenerator[dict[str, Any], None]:
        self.watched_from.append(rv)
        script: list[Any] | str = self.streams.pop(0) if self.streams else "hang"
        if isinstance(script, str):  # "hang"
            await asyncio.Event().wait()
            return
        for item in script:
            if isinstance(item, Exception):
                raise item
            yield item


def informer(api: FakeApi, slept: list[float], **kwargs: Any) -> tuple[Informer, list[Any], list[Any]]:
    syncs: list[Any] = []
    events: list[Any] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    inf = Informer(
        "test",
        api.lister,
        api.watcher,
        syncs.append,
        lambda kind, o: events.append((kind, o["metadata"]["name"])),
        sleep=sleep,
        **kwargs,
    )
    return inf, syncs, events


async def run_until(inf: Informer, done: Any) -> None:
    """Run the informer until `done()` (polled: the informer has no hook to wait on), at most 5 s."""
    task = asyncio.create_task(inf.run())
    try:
        async with asyncio.timeout(5.0):
            while not done():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_events_stream_from_the_list_and_resume_from_the_last_version() -> None:
    api = FakeApi(
        [
            [
                {"type": "ADDED", "raw_object": obj("b", "11")},
                {"type": "BOOKMARK", "raw_object": obj("", "12")},
            ],
            [{"type": "DELETED", "raw_object": obj("b", "13")}],
        ]
    )
    slept: list[float] = []
    inf, syncs, events = informer(api, slept)
    await run_until(inf, lambda: len(api.watched_from) >= 3 and inf.healthy)
    assert syncs == [[obj("a", "10")]] and inf.synced.is_set()
    assert events == [("ADDED", "b"), ("DELETED", "b")], "bookmarks only move the version"
    assert api.watched_from == ["10", "12", "13"], "a watch that ended normally resumes; no relist"
    assert api.lists == 1 and inf.relists == 0 and slept == []


async def test_410_gone_relists_at_once_and_errors_back_off() -> None:
    api = FakeApi(
        [
            [ApiException(status=410, reason="Gone")],
            [ApiException(status=500, reason="Internal")],
            [ApiException(status=503, reason="Unavailable")],
        ]
    )
    slept: list[float] = []
    inf, syncs, _ = informer(api, slept)
    await run_until(inf, lambda: api.lists >= 4)
    assert len(syncs) == 4, "every relist hands the complete set over"
    assert inf.relists == 3
    # The 410 cost no wait; each error waited its (jittered) backoff, and a successful list reset it.
    assert len(slept) == 2 and all(0.25 <= s <= 0.5 for s in slept), slept


async def test_a_silent_watch_is_relisted_by_the_watchdog() -> None:
    api = FakeApi(["hang"])
    slept: list[float] = []
    inf, syncs, _ = informer(api, slept, silence_seconds=0.05)
    await run_until(inf, lambda: api.lists >= 2)
    assert inf.relists >= 1 and len(syncs) >= 2
    assert slept == [], "a silent watch relists at once"
