"""The informer (the agent's placements, every kind the operator watches): list then watch, relist on
410 Gone, back off on errors, a watchdog that relists when a watch goes silent (a half-open
connection), relists as events, and the apiserver's list and watch protocol."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from aiohttp import web
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api.informer import Informer, Replacing, namespaced_objects

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
                {"type": "ADDED", "object": obj("b", "11")},
                {"type": "BOOKMARK", "object": obj("", "12")},
            ],
            [{"type": "DELETED", "object": obj("b", "13")}],
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


def test_a_relist_turns_what_is_no_longer_listed_into_a_deletion_with_a_tombstone() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    replacing = Replacing(lambda kind, o: seen.append((kind, o)))
    pod = {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "u1",
            "labels": {"app": "x"},
            "resourceVersion": "3",
        },
        "spec": {"nodeName": "node-1", "containers": [{"name": "c"}]},
        "status": {"phase": "Running"},
    }
    other = {"metadata": {"name": "q", "namespace": "ns", "uid": "u2"}}
    replacing.sync([pod])
    replacing.event("ADDED", other)
    replacing.event("DELETED", other)
    replacing.event("MODIFIED", pod)
    seen.clear()
    replacing.sync([])
    assert seen == [
        (
            "DELETED",
            {
                "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
                "spec": {"nodeName": "node-1"},
            },
        )
    ], "only the pod the relist no longer holds; q was deleted by its own event"
    replacing.sync([other])
    assert seen[-1] == ("ADDED", other)


async def test_list_and_watch_speak_the_apiserver_protocol() -> None:
    """Against a loopback server in the apiserver's shape: the list's JSON, watch lines longer than
    aiohttp's line limit, split across chunks, and an ERROR event raised as the status it carries."""
    big = "x" * 300_000
    requests: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        requests.append({"path": request.path, **request.query})
        if request.query.get("watch") != "true":
            return web.json_response({"metadata": {"resourceVersion": "7"}, "items": [obj("a", "6")]})
        response = web.StreamResponse()
        await response.prepare(request)
        line = json.dumps({"type": "ADDED", "object": {**obj("b", "8"), "data": big}}).encode() + b"\n"
        for start in range(0, len(line), 65_536):
            await response.write(line[start : start + 65_536])
        gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
        await response.write(json.dumps(gone).encode() + b"\n")
        return response

    app = web.Application()
    app.router.add_get("/apis/shoal.dev/v1alpha1/namespaces/ns/wasmplacements", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    cfg = client.Configuration(host=f"http://127.0.0.1:{port}")
    try:
        async with client.ApiClient(cfg) as api:
            lister, watcher = namespaced_objects(
                api, "shoal.dev", "v1alpha1", "wasmplacements", namespace="ns"
            )
            listing = await lister()
            assert listing["items"] == [obj("a", "6")]
            got = []
            with pytest.raises(ApiException) as gone_error:
                async for event in watcher("7"):
                    got.append(event)
            assert [(e["type"], e["object"]["metadata"]["name"], len(e["object"]["data"])) for e in got] == [
                ("ADDED", "b", len(big))
            ]
            assert gone_error.value.status == 410
    finally:
        await runner.cleanup()
    assert requests[0] == {"path": "/apis/shoal.dev/v1alpha1/namespaces/ns/wasmplacements"}
    assert requests[1]["resourceVersion"] == "7" and requests[1]["allowWatchBookmarks"] == "true"
