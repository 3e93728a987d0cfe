"""Tag -> digest resolution, once per WasmApp generation, so every replica runs the same bytes."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from shoal_agent.oci import ArtifactPuller, OciError
from shoal_agent.oci.retry import RetryPolicy


class ResolveError(Exception):
    """The module reference cannot be resolved now (missing, unauthorized, registry down)."""


class DigestResolver:
    def __init__(self, *, attempts: int = 3) -> None:
        # Resolution only fetches manifests; the blob store stays empty.
        self._puller = ArtifactPuller(
            cache_root=Path(tempfile.mkdtemp(prefix="shoal-resolver-")),
            retry=RetryPolicy(attempts=attempts, base_delay=0.2, max_delay=2.0),
            request_timeout=10.0,
        )

    async def resolve(self, image: str, pull_secrets: Iterable[Mapping[str, Any]] = ()) -> str:
        try:
            return await self._puller.resolve(image, list(pull_secrets))
        except OciError as e:
            raise ResolveError(f"cannot resolve module {image}: {e}") from e
