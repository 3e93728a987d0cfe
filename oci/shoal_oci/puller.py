"""The node agent's artifact pull: resolve a tag, fetch by digest, verify, cache, hand back the module.

One `ArtifactPuller` per agent. Its cache is keyed by the digest a reference resolves to, so a second
pull of that digest touches no network; concurrent pulls of one digest share a single download.
Tags are resolved by the shared `Resolver`; oras-py is blocking, so every registry call runs in a
worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import datafiles, digests, formats, layers
from . import mediatypes as mt
from .credentials import DockerConfig
from .errors import ArtifactTooLarge, NotWasm
from .formats import Descriptor, ModuleLocation, WasmFormat
from .reference import Reference
from .resolver import MAX_MANIFEST_BYTES, RegistryStats, Resolver, insecure_from_env
from .retry import RetryPolicy
from .store import BlobStore

if TYPE_CHECKING:
    from .registry_client import RegistryClient

DEFAULT_MAX_ARTIFACT_BYTES = 64 * 1024 * 1024
MAX_CONFIG_BYTES = 4 * 1024 * 1024
RECORD_VERSION = 2
"""2: records what the artifact's files are (Spin data layers, an image's layers)."""


@dataclass(frozen=True)
class PullResult:
    reference: str
    digest: str  # what the reference resolved to (an index's digest for a multi-platform image)
    module_path: Path
    module_digest: str
    module_size: int
    format: WasmFormat
    cache_hit: bool
    seconds: float
    files: Mapping[str, Any] | None = None
    """Where the artifact's files are: {"spin": [[digest, path], ...]} or {"image": [digest, ...]};
    None for a CNCF Wasm artifact (it carries only its module)."""

    @property
    def result(self) -> Literal["hit", "miss"]:
        """The label for `shoal_artifact_pull_seconds{result=...}`."""
        return "hit" if self.cache_hit else "miss"


@dataclass
class ArtifactPuller:
    cache_root: Path
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    # How registries are reached: see `Resolver`, which the puller builds from these.
    insecure_registries: Collection[str] = field(default_factory=lambda: insecure_from_env(os.environ))
    plain_http_loopback: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    request_timeout: float = 30.0
    stats: RegistryStats = field(default_factory=RegistryStats)
    _inflight: dict[str, asyncio.Task[PullResult]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.store = BlobStore(Path(self.cache_root))
        self.resolver = Resolver(
            insecure_registries=self.insecure_registries,
            plain_http_loopback=self.plain_http_loopback,
            retry=self.retry,
            request_timeout=self.request_timeout,
            stats=self.stats,
        )

    # -- public API -------------------------------------------------------------------------------

    async def resolve(self, ref: str, pull_secrets: Iterable[DockerConfig] = ()) -> str:
        """The manifest digest `ref` names now; a reference with a digest resolves without network I/O."""
        return await self.resolver.resolve(ref, pull_secrets)

    def _pull_done(self, digest: str, task: asyncio.Task[PullResult]) -> None:
        """Forget the shared download, and read its error so that a download whose waiters were all
        cancelled (the placement went away mid-pull) does not log "exception never retrieved"."""
        self._inflight.pop(digest, None)
        if not task.cancelled():
            task.exception()

    async def pull(self, ref: str, pull_secrets: Iterable[DockerConfig] = ()) -> PullResult:
        """Resolve, then return the cached module or fetch it (once, however many callers ask at once)."""
        started = time.monotonic()
        parsed = Reference.parse(ref)
        secrets = list(pull_secrets)
        client: RegistryClient | None = None
        if parsed.digest:
            digest = parsed.digest
        else:
            client = self.resolver.client(parsed, secrets)
            digest = await self.resolver.resolve_tag(parsed, client)
        cached = self.cached(digest, ref=ref, started=started)
        if cached is not None:
            return cached
        task = self._inflight.get(digest)
        if task is None:
            client = client or self.resolver.client(parsed, secrets)
            task = asyncio.create_task(self._fetch(parsed.with_digest(digest), client, ref, started))
            self._inflight[digest] = task
            task.add_done_callback(lambda t: self._pull_done(digest, t))
        result = await asyncio.shield(task)
        if result.reference != ref:  # joined someone else's download
            result = dataclasses.replace(result, reference=ref, seconds=time.monotonic() - started)
        return result

    def cached(self, digest: str, *, ref: str = "", started: float | None = None) -> PullResult | None:
        """The module for `digest` if it is on disk, without any network I/O."""
        record = self.store.load_record(digests.validate(digest))
        if record is None or record.get("version") != RECORD_VERSION:
            return None
        module_digest, size = str(record["module_digest"]), int(record["module_size"])
        if not self.store.has(module_digest, size):
            return None
        return PullResult(
            reference=ref or digest,
            digest=digest,
            module_path=self.store.blob_path(module_digest),
            module_digest=module_digest,
            module_size=size,
            format=WasmFormat(record["format"]),
            cache_hit=True,
            seconds=time.monotonic() - started if started is not None else 0.0,
            files=record.get("files"),
        )

    def write_files(self, pulled: PullResult, root: Path, limit: int) -> None:
        """Write the artifact's files as a tree under `root` (blocking), at most `limit` bytes."""
        files = pulled.files or {}
        if "spin" in files:
            placed = [(self.store.blob_path(str(d)), str(p)) for d, p in files["spin"]]
            datafiles.place_spin_files(placed, root, limit)
        elif "image" in files:
            stack = [self.store.blob_path(str(d)) for d in files["image"]]
            datafiles.extract_image_tree(stack, root, limit)
        else:
            raise NotWasm(
                f"{pulled.reference} is a {pulled.format.value} artifact, which carries no files "
                "(only a Spin app's data layers or a Docker+Wasm image's filesystem do)"
            )

    # -- internals --------------------------------------------------------------------------------

    async def _manifest(self, client: RegistryClient, digest: str) -> tuple[dict[str, Any], str]:
        self.stats.manifest_fetches += 1
        body, content_type = await self.resolver.call(
            lambda: client.get_manifest(digest, MAX_MANIFEST_BYTES), f"manifest {digest}"
        )
        digests.check(body, digest, "manifest")
        doc = formats.parse_json(body, f"manifest {digest}")
        return doc, formats.manifest_media_type(doc, content_type)

    async def _blob(self, client: RegistryClient, desc: Descriptor, limit: int, what: str) -> Path:
        """Download one blob into the store (unless already there) and return its path."""
        if self.store.has(desc.digest, desc.size):
            return self.store.blob_path(desc.digest)

        def download() -> None:
            with self.store.writer(desc.digest, expected_size=desc.size, limit=limit, what=what) as w:
                client.fetch_blob(desc.digest, w.write)

        self.stats.blob_fetches += 1
        await self.resolver.call(download, f"{what} {desc.digest}")
        return self.store.blob_path(desc.digest)

    async def _fetch(
        self, ref: Reference, client: RegistryClient, ref_text: str, started: float
    ) -> PullResult:
        assert ref.digest is not None
        manifest, media_type = await self._manifest(client, ref.digest)
        if media_type in mt.INDEXES:
            entry = formats.select_wasm_manifest(manifest)
            manifest, media_type = await self._manifest(client, entry.digest)
        if media_type not in mt.IMAGE_MANIFESTS:
            raise NotWasm(f"{ref} is a {media_type}, not an image manifest")

        config_desc = formats.config_descriptor(manifest)
        if config_desc.size > MAX_CONFIG_BYTES:
            raise ArtifactTooLarge(f"config of {ref} is {config_desc.size} bytes")
        # Bound before fetching any layer: the manifest declares every size (the config is small, capped).
        declared = config_desc.size + sum(
            Descriptor.from_json(d, "layer").size for d in manifest.get("layers") or []
        )
        config_path = await self._blob(client, config_desc, MAX_CONFIG_BYTES, "config")
        config = formats.parse_json(config_path.read_bytes(), "config")
        location = formats.locate_module(manifest, config)
        if location.locked_app is not None:  # newer Spin: the locked app is a layer, not the config
            locked = await self._blob(client, location.locked_app, MAX_CONFIG_BYTES, "Spin locked app")
            config = formats.parse_json(locked.read_bytes(), "locked app")
            location = formats.locate_spin(location.layers, config)
        data_layers = self._data_layers(manifest, config, location)
        needed = location.download_size + sum(d.size for d, _ in data_layers)
        if needed > self.max_artifact_bytes:
            raise ArtifactTooLarge(
                f"{ref} needs {needed} bytes (manifest total {declared}); bound is {self.max_artifact_bytes}"
            )
        module_digest = await self._module(client, location)
        for desc, _path in data_layers:
            await self._blob(client, desc, self.max_artifact_bytes, "data layer")
        files: dict[str, Any] | None = None
        if location.format is WasmFormat.SPIN:
            files = {"spin": [[d.digest, path] for d, path in data_layers]}
        elif location.format is WasmFormat.DOCKER_IMAGE:
            files = {"image": [d.digest for d in location.layers]}
        path = self.store.blob_path(module_digest)
        with path.open("rb") as fh:
            formats.check_wasm_bytes(fh.read(8), f"module of {ref}")
        size = path.stat().st_size
        self.store.save_record(
            ref.digest,
            {
                "version": RECORD_VERSION,
                "reference": ref_text,
                "format": location.format.value,
                "module_digest": module_digest,
                "module_size": size,
                "files": files,
            },
        )
        return PullResult(
            reference=ref_text,
            digest=ref.digest,
            module_path=path,
            module_digest=module_digest,
            module_size=size,
            format=location.format,
            cache_hit=False,
            seconds=time.monotonic() - started,
            files=files,
        )

    @staticmethod
    def _data_layers(
        manifest: Mapping[str, Any], config: Mapping[str, Any], location: ModuleLocation
    ) -> list[tuple[Descriptor, str]]:
        """A Spin app's files: each data layer its component names, with the path it goes to."""
        if location.format is not WasmFormat.SPIN:
            return []
        by_digest = {
            d.digest: d
            for d in (Descriptor.from_json(raw, "layer") for raw in manifest.get("layers") or [])
            if d.media_type == mt.SPIN_DATA_LAYER
        }
        out = []
        for f in datafiles.spin_component_files(config, location.layers[0].digest):
            desc = by_digest.get(f.digest)
            if desc is None:
                raise NotWasm(f"Spin file {f.path} names {f.digest}, which is no data layer of the artifact")
            out.append((desc, f.path))
        return out

    async def _module(self, client: RegistryClient, location: ModuleLocation) -> str:
        """Fetch what holds the module; for an image, extract the Entrypoint file into its own blob."""
        budget = self.max_artifact_bytes
        if location.format is not WasmFormat.DOCKER_IMAGE:
            (layer,) = location.layers
            await self._blob(client, layer, budget, "module layer")
            return layer.digest
        assert location.path is not None
        paths = []
        for layer in location.layers:
            paths.append(await self._blob(client, layer, budget, "image layer"))
            budget -= layer.size

        def extract() -> str:
            with self.store.writer(None, limit=self.max_artifact_bytes, what=f"module {location.path}") as w:
                layers.extract_from_stack(paths, location.path or "", w, self.max_artifact_bytes)
            return w.digest

        return await asyncio.to_thread(extract)


__all__ = ["DEFAULT_MAX_ARTIFACT_BYTES", "ArtifactPuller", "PullResult"]
