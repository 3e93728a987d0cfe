"""Tag -> digest, from the manifest alone: the one resolver of the agent's puller, the operator and the CLI.

A reference that carries a digest resolves without network I/O. Otherwise one HEAD asks the registry
for Docker-Content-Digest; a registry need not send it, and then the manifest's bytes (bounded) are
hashed. No blob is fetched and nothing is stored. oras-py is blocking, so every registry call runs in
a worker thread, retried by `retry` (a CLI passes a single attempt and fails fast).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from . import digests, formats
from . import mediatypes as mt
from .credentials import DockerConfig, credentials_for
from .reference import Reference
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .registry_client import RegistryClient

T = TypeVar("T")

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def insecure_from_env(env: Mapping[str, str]) -> frozenset[str]:
    return frozenset(h.strip() for h in env.get("SHOAL_INSECURE_REGISTRIES", "").split(",") if h.strip())


@dataclass
class RegistryStats:
    """Registry round trips made, for tests and debugging (metrics are the caller's business)."""

    resolves: int = 0
    manifest_fetches: int = 0
    blob_fetches: int = 0


@dataclass
class Resolver:
    # host[:port] reached over plain http; by default those in SHOAL_INSECURE_REGISTRIES (comma-separated),
    # e.g. a cluster-internal registry the chart's agent and operator reach by its Service address.
    insecure_registries: Collection[str] = field(default_factory=lambda: insecure_from_env(os.environ))
    plain_http_loopback: bool = True  # 127.0.0.1/localhost/[::1] registries use plain http
    plain_http: bool = False  # every registry over plain http (the CLI's --plain-http)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    request_timeout: float = 30.0
    stats: RegistryStats = field(default_factory=RegistryStats)

    async def resolve(self, ref: str, pull_secrets: Iterable[DockerConfig] = ()) -> str:
        """The manifest digest `ref` names now; a reference with a digest resolves without network I/O."""
        parsed = Reference.parse(ref)
        if parsed.digest:
            return parsed.digest
        return await self.resolve_tag(parsed, self.client(parsed, list(pull_secrets)))

    async def resolve_tag(self, ref: Reference, client: RegistryClient) -> str:
        tag = ref.tag or "latest"
        self.stats.resolves += 1
        digest = await self.call(lambda: client.head_manifest(tag), f"resolve {ref}")
        if digest is None:  # registries need not send Docker-Content-Digest: hash the manifest itself
            self.stats.manifest_fetches += 1
            body, _ = await self.call(lambda: client.get_manifest(tag, MAX_MANIFEST_BYTES), f"resolve {ref}")
            digest = digests.of_bytes(body)
        return digests.validate(digest)

    async def wasm_config(self, ref: str, pull_secrets: Iterable[DockerConfig] = ()) -> dict[str, Any] | None:
        """The CNCF Wasm config (`os`, `component.exports`, ...) of the artifact `ref` names, fetched
        and verified; None for an artifact of another packaging (what `shoal scaffold` reads)."""
        parsed = Reference.parse(ref)
        client = self.client(parsed, list(pull_secrets))
        target = parsed.digest or parsed.tag or "latest"
        body, header = await self.call(
            lambda: client.get_manifest(target, MAX_MANIFEST_BYTES), f"manifest {ref}"
        )
        manifest = formats.parse_json(body, f"manifest {ref}")
        if formats.manifest_media_type(manifest, header) not in mt.IMAGE_MANIFESTS:
            return None
        config = formats.config_descriptor(manifest)
        if config.media_type != mt.WASM_CONFIG or config.size > MAX_MANIFEST_BYTES:
            return None

        def fetch() -> bytes:
            chunks: list[bytes] = []
            client.fetch_blob(config.digest, chunks.append)
            return b"".join(chunks)

        data = await self.call(fetch, f"config of {ref}")
        digests.check(data, config.digest, f"config of {ref}")
        return formats.parse_json(data, f"config of {ref}")

    def client(self, ref: Reference, secrets: Iterable[DockerConfig] = ()) -> RegistryClient:
        plain = (
            self.plain_http
            or ref.host in self.insecure_registries
            or (self.plain_http_loopback and ref.is_loopback)
        )
        # oras (and jsonschema under it) is a quarter of the agent's import time; a restarted agent
        # serving from its caches never talks to a registry, so it is imported on the first use.
        from .registry_client import RegistryClient

        return RegistryClient(
            ref,
            plain_http=plain,
            credentials=credentials_for(ref.host, list(secrets)),
            timeout=self.request_timeout,
        )

    async def call(self, fn: Callable[[], T], what: str) -> T:
        """One blocking registry call in a worker thread, retried while the registry is unavailable."""

        async def attempt() -> T:
            return await asyncio.to_thread(fn)

        return await self.retry.run(attempt, what)


__all__ = ["MAX_MANIFEST_BYTES", "RegistryStats", "Resolver", "insecure_from_env"]
