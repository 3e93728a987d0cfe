"""List, then watch, this node's WasmPlacements (cluster-wide, by label), forever.

Every (re)list hands the complete set to `on_sync`, so placements deleted while the watch was down
are noticed; then events stream from the list's resourceVersion. A 410 Gone, a dropped connection or
an API error relists after a backoff; `healthy` is true while a list or watch is established.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api.constants import GROUP, VERSION, WASMPLACEMENT_PLURAL

log = logging.getLogger(__name__)

WATCH_SECONDS = 240
"""Server-side timeout of one watch request; the loop then re-watches from the last resourceVersion."""

OnSync = Callable[[list[dict[str, Any]]], None]
OnEvent = Callable[[str, dict[str, Any]], None]


class PlacementWatch:
    def __init__(self, api: client.ApiClient, selector: str, on_sync: OnSync, on_event: OnEvent) -> None:
        self._custom: Any = client.CustomObjectsApi(api)
        self.selector = selector
        self._on_sync = on_sync
        self._on_event = on_event
        self.healthy = False
        self.synced = asyncio.Event()
        """Set after the first complete list was handed over."""

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                rv = await self._list()
                failures = 0
                while True:
                    rv = await self._watch(rv)
            except asyncio.CancelledError:
                self.healthy = False
                raise
            except ApiException as e:
                self.healthy = False
                if e.status == 410:
                    log.info("placement watch expired (410); relisting")
                    continue
                failures += 1
                log.warning("placement list/watch failed: %s %s", e.status, e.reason)
            except Exception as e:
                self.healthy = False
                failures += 1
                log.warning("placement list/watch failed: %r", e)
            await asyncio.sleep(min(10.0, 0.25 * 2**failures) * (0.5 + random.random() / 2))

    async def _list(self) -> str:
        listing = await self._custom.list_cluster_custom_object(
            GROUP, VERSION, WASMPLACEMENT_PLURAL, label_selector=self.selector
        )
        self._on_sync(list(listing.get("items") or []))
        self.healthy = True
        self.synced.set()
        return str(listing["metadata"]["resourceVersion"])

    async def _watch(self, rv: str) -> str:
        """One watch request; returns the resourceVersion to resume from."""
        w = watch.Watch()
        async with w.stream(
            self._custom.list_cluster_custom_object,
            GROUP,
            VERSION,
            WASMPLACEMENT_PLURAL,
            label_selector=self.selector,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=WATCH_SECONDS + 30,
        ) as stream:
            async for event in stream:
                obj: dict[str, Any] = event["raw_object"]
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                kind = str(event["type"])
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._on_event(kind, obj)
        return rv
