"""Package a .wasm file in any of the three formats and push it: for example builds, tests and `shoal push`.

Building is pure (`build`), so tests can inspect manifests; `push` uploads blobs, then child manifests by
digest, then the top manifest under the reference's tag, and returns the top manifest's digest. Manifests
are pushed as the exact bytes we hashed, so the digest returned is the digest the registry serves.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import digests, formats
from . import mediatypes as mt
from .credentials import Credentials
from .errors import DigestMismatch, InvalidReference
from .formats import WasmFormat
from .reference import Reference

if TYPE_CHECKING:
    from .registry_client import RegistryClient

WASM_PLATFORM = {"architecture": "wasm", "os": "wasi"}


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return digests.of_bytes(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **extra}


@dataclass(frozen=True)
class Manifest(Blob):
    pass


@dataclass(frozen=True)
class Artifact:
    blobs: tuple[Blob, ...]
    manifests: tuple[Manifest, ...]  # children first; the last one is what the tag points at

    @property
    def digest(self) -> str:
        return self.manifests[-1].digest


def _json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _timestamp(created: datetime | None) -> str:
    return (created or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _image_manifest(
    media_type: str, config: Blob, layers: list[Blob], annotations: Mapping[str, str]
) -> Manifest:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return Manifest(media_type, _json(doc))


def wasm_config(
    wasm: bytes, layer_digest: str, created: str, component: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The CNCF TAG-Runtime config: os wasip2 (with a `component` section) for components, else wasip1."""
    doc: dict[str, Any] = {"created": created, "architecture": "wasm"}
    if formats.is_component(wasm):
        doc["os"] = "wasip2"
        doc["layerDigests"] = [layer_digest]
        doc["component"] = dict(component or {"exports": [], "imports": []})
    else:
        doc["os"] = "wasip1"
        doc["layerDigests"] = [layer_digest]
    return doc


def spin_locked_app(app_name: str, component_digest: str, route: str = "/...") -> dict[str, Any]:
    """The locked app of a one-component HTTP Spin app, in the shape `spin registry push` writes (the
    component's source names its layer by digest; the origin of a local build is dropped)."""
    return {
        "spin_lock_version": 0,
        "metadata": {"name": app_name, "version": "0.1.0", "trigger": {"type": "http"}},
        "triggers": [
            {
                "id": f"trigger--{app_name}",
                "trigger_type": "http",
                "trigger_config": {"component": app_name, "route": route},
            }
        ],
        "components": [
            {"id": app_name, "source": {"content_type": "application/wasm", "digest": component_digest}}
        ],
    }


def _spin_artifact(
    wasm: bytes, app_name: str, stamp: str, notes: dict[str, str], *, locked_app_as_config: bool
) -> Artifact:
    """Spin's packaging: the component as a Wasm content layer and the locked app either as the
    manifest's config (older Spin) or as a layer of its own beside an OCI image config that names it
    in a label (newer Spin)."""
    layer = Blob(mt.SPIN_WASM_LAYER, wasm)
    locked = Blob(mt.SPIN_CONFIG, _json(spin_locked_app(app_name, layer.digest)))
    notes.setdefault("org.opencontainers.image.title", app_name)
    notes.setdefault("org.opencontainers.image.created", stamp)
    if locked_app_as_config:
        return Artifact((locked, layer), (_image_manifest(mt.OCI_MANIFEST, locked, [layer], notes),))
    image_config = {
        "architecture": "wasm",
        "os": "wasip1",
        "config": {"Labels": {"com.fermyon.spin.lockedAppDigest": locked.digest}},
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    config = Blob(mt.OCI_IMAGE_CONFIG, _json(image_config))
    manifest = _image_manifest(mt.OCI_MANIFEST, config, [layer, locked], notes)
    return Artifact((config, layer, locked), (manifest,))


def _tar_layer(wasm: bytes, path: str, mtime: int) -> tuple[bytes, str]:
    """A gzipped tar holding only the module at `path`; returns (compressed, diff_id of the plain tar)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size, info.mode, info.mtime = len(wasm), 0o755, mtime
        tar.addfile(info, io.BytesIO(wasm))
    plain = buf.getvalue()
    return gzip.compress(plain, mtime=0), digests.of_bytes(plain)


def build(
    wasm: bytes,
    fmt: WasmFormat | str,
    *,
    created: datetime | None = None,
    entrypoint: str = "/app.wasm",
    docker_media_types: bool = False,
    as_index: bool = False,
    component: Mapping[str, Any] | None = None,
    app_name: str = "app",
    annotations: Mapping[str, str] | None = None,
    spin_locked_app_as_config: bool = False,
) -> Artifact:
    """Package `wasm`; `docker_media_types`/`as_index` only apply to the Docker+Wasm image format,
    `app_name` and `spin_locked_app_as_config` (older Spin's layout) to the Spin format."""
    fmt = WasmFormat(fmt)
    formats.check_wasm_bytes(wasm[:8], "input")
    stamp = _timestamp(created)
    notes = dict(annotations or {})
    if fmt is WasmFormat.WASM_ARTIFACT:
        layer = Blob(mt.WASM_LAYER, wasm)
        config = Blob(mt.WASM_CONFIG, _json(wasm_config(wasm, layer.digest, stamp, component)))
        notes.setdefault("org.opencontainers.image.created", stamp)
        return Artifact((config, layer), (_image_manifest(mt.OCI_MANIFEST, config, [layer], notes),))
    if fmt is WasmFormat.SPIN:
        return _spin_artifact(wasm, app_name, stamp, notes, locked_app_as_config=spin_locked_app_as_config)

    mtime = int((created or datetime.now(UTC)).timestamp())
    gz, diff_id = _tar_layer(wasm, entrypoint, mtime)
    layer = Blob(mt.DOCKER_LAYER_TAR_GZIP if docker_media_types else mt.OCI_LAYER_TAR_GZIP, gz)
    image_config = {
        "created": stamp,
        **WASM_PLATFORM,
        "config": {"Entrypoint": [entrypoint]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": stamp, "created_by": "shoal push"}],
    }
    config = Blob(mt.DOCKER_IMAGE_CONFIG if docker_media_types else mt.OCI_IMAGE_CONFIG, _json(image_config))
    image = _image_manifest(
        mt.DOCKER_MANIFEST if docker_media_types else mt.OCI_MANIFEST, config, [layer], notes
    )
    if not as_index:
        return Artifact((config, layer), (image,))
    index_type = mt.DOCKER_MANIFEST_LIST if docker_media_types else mt.OCI_INDEX
    index = Manifest(
        index_type,
        _json(
            {
                "schemaVersion": 2,
                "mediaType": index_type,
                "manifests": [image.descriptor(platform=WASM_PLATFORM)],
            }
        ),
    )
    return Artifact((config, layer), (image, index))


def push(
    ref: str,
    artifact: Artifact,
    *,
    plain_http: bool | None = None,
    credentials: Credentials | None = None,
    timeout: float = 30.0,
) -> str:
    """Upload `artifact` to `ref` (a tag, or a bare repository to push by digest only); returns its digest."""
    parsed = Reference.parse(ref)
    if parsed.digest:
        raise InvalidReference(f"push to a tag, not a digest: {ref}")
    from .registry_client import RegistryClient  # see ArtifactPuller._client: oras loads on use

    client = RegistryClient(
        parsed,
        plain_http=parsed.is_loopback if plain_http is None else plain_http,
        credentials=credentials,
        timeout=timeout,
    )
    with tempfile.TemporaryDirectory(prefix="shoal-push-") as tmp:
        for blob in {b.digest: b for b in artifact.blobs}.values():
            path = Path(tmp) / digests.hex_of(blob.digest)
            path.write_bytes(blob.data)
            client.push_blob(path, blob.digest, len(blob.data))
    *children, top = artifact.manifests
    for child in children:
        _push_manifest(client, child.digest, child)
    _push_manifest(client, parsed.tag or top.digest, top)
    return top.digest


def _push_manifest(client: RegistryClient, target: str, manifest: Manifest) -> None:
    served = client.push_manifest(target, manifest.data, manifest.media_type)
    if served is not None and served != manifest.digest:
        raise DigestMismatch(f"registry stored manifest as {served}, we hashed {manifest.digest}")


def push_wasm(
    ref: str,
    wasm: bytes | Path,
    fmt: WasmFormat | str = WasmFormat.WASM_ARTIFACT,
    *,
    plain_http: bool | None = None,
    credentials: Credentials | None = None,
    **build_options: Any,
) -> str:
    """Build and push in one call; returns the manifest digest (the index's, with `as_index=True`)."""
    data = wasm.read_bytes() if isinstance(wasm, Path) else wasm
    return push(ref, build(data, fmt, **build_options), plain_http=plain_http, credentials=credentials)
