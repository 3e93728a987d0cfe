"""One informer: list, then watch from the list's resourceVersion, forever (client-go's reflector).

Every (re)list hands the complete set to `on_sync`, so objects deleted while the watch was down are
noticed; then events stream from the list's resourceVersion. A 410 Gone relists at once; a dropped
connection or an API error relists after a backoff (`shoal_api.backoff`); and a watchdog relists when
the watch is silent for longer than `silence_seconds`: the apiserver sends a bookmark about once a
minute, so a silent stream is a half-open connection (an apiserver that vanished without closing it),
which would otherwise hide every event until the client-side timeout. `healthy` is true while a list
or watch is established.

The agent watches its node's placements with it (it must not carry kopf's machinery), and the operator
its agents' heartbeat Leases: kopf can only watch a kind in every namespace or narrow the whole operator
to some, so it handed the operator every kubelet's Lease renewal (one per node every 10 s) only for a
filter to drop it, at about 2 ms of CPU each. It lives in shoal_api, as the backoff does, because both
programs use it and they never import each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client, watch
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
"""Watch events (`type`, `raw_object`) from a resourceVersion until the server ends the request."""


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
                obj: dict[str, Any] = event["raw_object"]
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                kind = str(event["type"])
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self.on_event(kind, obj)
        finally:
            await events.aclose()


def namespaced_objects(
    api: client.ApiClient, group: str, version: str, plural: str, *, namespace: str
) -> tuple[Lister, Watcher]:
    """List and watch functions for one kind in one namespace. Built-in kinds of a named group (Leases
    are coordination.k8s.io) go through the custom objects client too: the path is the same, and the
    answer stays plain dicts instead of the generated models, which cost far more to build."""
    custom: Any = client.CustomObjectsApi(api)
    return _list_and_watch(custom.list_namespaced_custom_object, group, version, namespace, plural)


def custom_objects(
    api: client.ApiClient, group: str, version: str, plural: str, *, label_selector: str
) -> tuple[Lister, Watcher]:
    """List and watch functions for a cluster-wide custom resource, filtered by label."""
    custom: Any = client.CustomObjectsApi(api)
    return _list_and_watch(
        custom.list_cluster_custom_object, group, version, plural, label_selector=label_selector
    )


def _list_and_watch(call: Any, *args: Any, **query: Any) -> tuple[Lister, Watcher]:
    """One list call of the custom objects client, as a lister and as a watcher from a version."""

    async def lister() -> dict[str, Any]:
        listing: dict[str, Any] = await call(*args, **query)
        return listing

    async def watcher(rv: str) -> AsyncGenerator[dict[str, Any], None]:
        w = watch.Watch()
        async with w.stream(
            call,
            *args,
            **query,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=WATCH_SECONDS + 30,
        ) as stream:
            async for event in stream:
                yield event

    return lister, watcher
