"""One informer: list, then watch from the list's resourceVersion, forever (client-go's reflector).

Every (re)list hands the complete set to `on_sync`, so objects deleted while the watch was down are
noticed; then events stream from the list's resourceVersion. A 410 Gone relists at once; a dropped
connection or an API error relists after a backoff (`shoal_api.backoff`); and a watchdog relists when
the watch is silent for longer than `silence_seconds`: the apiserver sends a bookmark about once a
minute, so a silent stream is a half-open connection (an apiserver that vanished without closing it),
which would otherwise hide every event until the client-side timeout. `healthy` is true while a list
or watch is established.

The agent watches its node's placements with it, and the operator every kind it schedules by
(`Replacing` turns each relist into events). It lives in shoal_api, as the backoff does, because both
programs use it and they never import each other.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api.backoff import Backoff, Retry, Sleep

log = logging.getLogger(__name__)

WATCH_SECONDS = 240
"""Server-side timeout of one watch request; the loop then re-watches from the last resourceVersion."""
SILENCE_SECONDS = 150.0
"""No event, not even a bookmark, for this long: the watch is presumed dead and the informer relists."""
RETRY = Backoff(first=0.5, cap=10.0, jitter=0.5)

OnSync = Callable[[list[dict[str, Any]]], None]
OnEvent = Callable[[str, dict[str, Any]], None]
Lister = Callable[[], Awaitable[dict[str, Any]]]
"""One LIST: a body with `items` and `metadata.resourceVersion`."""
Watcher = Callable[[str], AsyncGenerator[dict[str, Any], None]]
"""Watch events as the apiserver sends them (`type`, `object`) from a resourceVersion until the server
ends the request; an ERROR event is raised as an ApiException."""


class SilentWatch(Exception):
    """The watch said nothing, not even a bookmark, for longer than the watchdog allows."""


@dataclass
class Informer:
    what: str
    """What is watched, for log lines."""
    lister: Lister
    watcher: Watcher
    on_sync: OnSync
    on_event: OnEvent
    backoff: Backoff = RETRY
    silence_seconds: float = SILENCE_SECONDS
    sleep: Sleep = asyncio.sleep
    healthy: bool = False
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    """Set after the first complete list was handed over."""
    relists: int = 0
    """Lists after the first: 410s, errors and silent watches (for tests and logs)."""

    async def run(self) -> None:
        retry = Retry(self.backoff, sleep=self.sleep)
        listed = False
        while True:
            try:
                if listed:
                    self.relists += 1
                rv = await self._list()
                listed = True
                retry.succeeded()
                while True:
                    rv = await self._watch(rv)
            except asyncio.CancelledError:
                self.healthy = False
                raise
            except ApiException as e:
                self.healthy = False
                if e.status == 410:
                    log.info("%s watch expired (410); relisting", self.what)
                    continue
                log.warning("%s list/watch failed: %s %s", self.what, e.status, e.reason)
            except SilentWatch:
                self.healthy = False
                log.warning("%s watch silent for %.0fs; relisting", self.what, self.silence_seconds)
                continue
            except Exception as e:
                self.healthy = False
                log.warning("%s list/watch failed: %r", self.what, e)
            await retry.failed()

    async def _list(self) -> str:
        listing = await self.lister()
        self.on_sync(list(listing.get("items") or []))
        self.healthy = True
        self.synced.set()
        return str(listing["metadata"]["resourceVersion"])

    async def _watch(self, rv: str) -> str:
        """One watch request; returns the resourceVersion to resume from."""
        events = self.watcher(rv)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(anext(events), self.silence_seconds)
                except StopAsyncIteration:
                    return rv
                except TimeoutError:
                    raise SilentWatch() from None
                obj: dict[str, Any] = event["object"]
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                kind = str(event["type"])
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self.on_event(kind, obj)
        finally:
            await events.aclose()


@dataclass
class Replacing:
    """A kind's events as they come, and each (re)list as events too: ADDED for every listed object and
    DELETED for every object seen before but no longer listed, as client-go's DeltaFIFO `Replace` does;
    otherwise an object deleted while the watch was down would stay in the consumer's view forever.
    Use `event` and `sync` as the informer's `on_event` and `on_sync`.

    What it keeps of each object is a tombstone, not the object: the metadata a deletion is handled by
    (name, namespace, uid, labels) and a pod's node, so a relist's DELETED carries only those."""

    on_event: OnEvent
    _seen: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def event(self, kind: str, obj: dict[str, Any]) -> None:
        key = _key(obj)
        if kind == "DELETED":
            self._seen.pop(key, None)
        else:
            self._seen[key] = _tombstone(obj)
        self.on_event(kind, obj)

    def sync(self, items: list[dict[str, Any]]) -> None:
        listed = set()
        for obj in items:
            listed.add(_key(obj))
            self.event("ADDED", obj)
        for key in [k for k in self._seen if k not in listed]:
            self.event("DELETED", self._seen[key])


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return str(meta.get("namespace") or ""), str(meta["name"])


def _tombstone(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    kept: dict[str, Any] = {
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "labels") if k in meta}
    }
    node = (obj.get("spec") or {}).get("nodeName")
    if node:
        kept["spec"] = {"nodeName": node}
    return kept


def cluster_objects(
    api: client.ApiClient, group: str, version: str, plural: str, *, label_selector: str | None = None
) -> tuple[Lister, Watcher]:
    """List and watch functions for one kind in every namespace (or a cluster-scoped kind), optionally
    filtered by label. `group` "" is the core API (Nodes, Pods)."""
    return _list_and_watch(api, _path(group, version, plural), label_selector=label_selector)


def namespaced_objects(
    api: client.ApiClient, group: str, version: str, plural: str, *, namespace: str
) -> tuple[Lister, Watcher]:
    """List and watch functions for one kind in one namespace."""
    return _list_and_watch(api, _path(group, version, plural, namespace=namespace))


def _path(group: str, version: str, plural: str, *, namespace: str | None = None) -> str:
    root = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{root}/namespaces/{namespace}/{plural}" if namespace else f"{root}/{plural}"


def _list_and_watch(api: client.ApiClient, path: str, **query: str | None) -> tuple[Lister, Watcher]:
    """A LIST of `path` as a lister, and a WATCH of it from a resourceVersion as a watcher, both as
    plain dicts straight from the JSON. The generated clients would build a model per object, and
    kubernetes_asyncio's `Watch` serializes each event's object back to JSON and parses it again even
    when it asks for no model: at thousands of events both are CPU the operator does not have."""

    async def lister() -> dict[str, Any]:
        response = await _get(api, path, query, seconds=WATCH_SECONDS)
        try:
            listing: dict[str, Any] = json.loads(await response.read())
        finally:
            response.release()
        return listing

    async def watcher(rv: str) -> AsyncGenerator[dict[str, Any], None]:
        watch = {
            **query,
            "watch": "true",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        response = await _get(api, path, watch, seconds=WATCH_SECONDS + 30)
        try:
            async for line in _lines(response.content):
                event: dict[str, Any] = json.loads(line)
                if event.get("type") == "ERROR":  # e.g. 410 Gone: the version is too old to resume
                    status = event.get("object") or {}
                    raise ApiException(status=status.get("code"), reason=status.get("message"))
                yield event
        finally:
            response.release()

    return lister, watcher


async def _lines(content: Any) -> AsyncGenerator[bytes, None]:
    """The stream's lines, however long: aiohttp's `readline` refuses a line over 128 KiB, and one
    object with large annotations or managedFields can be that."""
    pending = bytearray()
    async for chunk in content.iter_any():
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            if end > start:
                yield bytes(pending[start:end])
            start = end + 1
        del pending[:start]
    if pending.strip():
        yield bytes(pending)


async def _get(api: client.ApiClient, path: str, query: dict[str, str | None], *, seconds: float) -> Any:
    """One GET through the API client (its host, credentials and TLS), the body left unread."""
    response = await api.call_api(
        path,
        "GET",
        query_params=[(k, v) for k, v in query.items() if v is not None],
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
        _preload_content=False,
        _request_timeout=seconds,
    )
    if not 200 <= response.status <= 299:
        body = await response.text()
        response.release()
        raise ApiException(status=response.status, reason=f"{response.reason}: {body[:200]}")
    return response
