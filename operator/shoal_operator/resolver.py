"""Tag -> digest resolution, once per WasmApp generation, so every replica runs the same bytes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from shoal_oci import OciError, Resolver, RetryPolicy


class ResolveError(Exception):
    """The module reference cannot be resolved now (missing, unauthorized, registry down)."""


class DigestResolver:
    """Resolves tags through the registry, remembering each answer for `ttl` seconds: when hundreds
    of apps name the same tag at once (a rollout, a benchmark) the registry is asked once, and a
    tag moved later is seen as soon as the short memory expires."""

    def __init__(self, *, attempts: int = 3, ttl: float = 5.0) -> None:
        self._ttl = ttl
        self._recent: dict[str, tuple[float, str]] = {}
        self._in_flight: dict[str, asyncio.Future[str]] = {}
        self._registry = Resolver(
            retry=RetryPolicy(attempts=attempts, base_delay=0.2, max_delay=2.0), request_timeout=10.0
        )

    async def resolve(self, image: str, pull_secrets: Iterable[Mapping[str, Any]] = ()) -> str:
        secrets = list(pull_secrets)
        key = image + "\0" + json.dumps(secrets, sort_keys=True)
        recent = self._recent.get(key)
        if recent is not None and time.monotonic() - recent[0] < self._ttl:
            return recent[1]
        # A batch prepares its apps concurrently: without sharing the lookup in flight, a thousand
        # apps naming one tag asked the registry a thousand times before the first answer was kept.
        pending = self._in_flight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(key, image, secrets))
            self._in_flight[key] = pending
            pending.add_done_callback(lambda _: self._in_flight.pop(key, None))
        return await asyncio.shield(pending)

    async def _lookup(self, key: str, image: str, secrets: list[Mapping[str, Any]]) -> str:
        try:
            digest = await self._registry.resolve(image, secrets)
        except OciError as e:
            raise ResolveError(f"cannot resolve module {image}: {e}") from e
        self._recent[key] = (time.monotonic(), digest)
        return digest
