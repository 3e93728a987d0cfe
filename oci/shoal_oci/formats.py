"""Which of the three Wasm packagings a manifest is, and where in it the module lives (pure logic).

(1) CNCF TAG-Runtime Wasm artifact: config `application/vnd.wasm.config.v0+json`, an `application/wasm`
    layer.
(2) Spin: the locked app is the config (older Spin) or a layer beside an OCI image config (newer Spin);
    layers `application/vnd.wasm.content.layer.v1+wasm`; its one component names its layer by digest
    (`spinapp` says which Spin apps Shoal runs).
(3) Docker+Wasm: an ordinary image; the module is the file at the config's Entrypoint inside a tar layer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from . import digests
from . import mediatypes as mt
from .errors import NotWasm, OciError
from .spinapp import SpinComponent, spin_component

WASM_MAGIC = b"\0asm"
CORE_MODULE_VERSION = b"\x01\x00\x00\x00"
COMPONENT_VERSION = b"\x0d\x00\x01\x00"


class WasmFormat(StrEnum):
    WASM_ARTIFACT = "wasm-artifact"
    SPIN = "spin"
    DOCKER_IMAGE = "docker-wasm"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, raw: Any, what: str) -> Descriptor:
        if not isinstance(raw, Mapping):
            raise OciError(f"{what}: descriptor is not an object")
        size = raw.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise OciError(f"{what}: descriptor has no valid size")
        platform = raw.get("platform")
        return cls(
            media_type=str(raw.get("mediaType", "")),
            digest=digests.validate(str(raw.get("digest", ""))),
            size=size,
            platform=platform if isinstance(platform, Mapping) else None,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform is not None:
            out["platform"] = dict(self.platform)
        return out


@dataclass(frozen=True)
class ModuleLocation:
    """Where the module is: a layer that *is* the module, or a path inside the image's tar layers."""

    format: WasmFormat
    layers: tuple[Descriptor, ...]  # (the module layer,) or every tar layer, bottom first
    path: str | None = None  # image format only: the Entrypoint path
    spin: SpinComponent | None = None  # Spin format: the component its locked app names
    locked_app: Descriptor | None = None
    """Spin format, newer layout: the layer with the locked app, to fetch and pass to `locate_spin`
    (`layers` then holds every Wasm layer)."""

    @property
    def download_size(self) -> int:
        return sum(d.size for d in self.layers)


def parse_json(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise OciError(f"{what} is not JSON: {err}") from err
    if not isinstance(doc, dict):
        raise OciError(f"{what} is not a JSON object")
    return doc


def manifest_media_type(doc: Mapping[str, Any], header: str | None) -> str:
    """A manifest's own `mediaType` wins; the Content-Type header covers manifests that omit it."""
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if header:
        return header.split(";", 1)[0].strip()
    return mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST


def is_wasm_platform(platform: Mapping[str, Any] | None) -> bool:
    if not platform:
        return False
    return platform.get("os") in mt.WASM_OSES or platform.get("architecture") == mt.WASM_ARCHITECTURE


def select_wasm_manifest(index: Mapping[str, Any]) -> Descriptor:
    """The Wasm entry of an image index (os wasi*/architecture wasm); a lone entry is taken as is."""
    raw = index.get("manifests")
    if not isinstance(raw, list) or not raw:
        raise NotWasm("image index lists no manifests")
    entries = [Descriptor.from_json(m, "index entry") for m in raw]
    for entry in entries:
        if is_wasm_platform(entry.platform):
            return entry
    if len(entries) == 1 and entries[0].platform is None:
        return entries[0]
    platforms = [f"{(e.platform or {}).get('os')}/{(e.platform or {}).get('architecture')}" for e in entries]
    raise NotWasm(f"image index has no wasi/wasm platform (has {', '.join(platforms)})")


def _layers(manifest: Mapping[str, Any]) -> list[Descriptor]:
    raw = manifest.get("layers")
    if not isinstance(raw, list):
        raise OciError("manifest has no layers list")
    return [Descriptor.from_json(layer, "layer") for layer in raw]


def config_descriptor(manifest: Mapping[str, Any]) -> Descriptor:
    return Descriptor.from_json(manifest.get("config"), "manifest config")


def locate_spin(spin_layers: Sequence[Descriptor], locked: Mapping[str, Any] | None) -> ModuleLocation:
    """The layer of a Spin app's one component; without a locked app, the first Wasm layer."""
    if locked is None:
        return ModuleLocation(WasmFormat.SPIN, (spin_layers[0],))
    component = spin_component(locked)
    by_digest = {d.digest: d for d in spin_layers}
    if component.digest not in by_digest:
        raise NotWasm(
            f"Spin component {component.id!r} names layer {component.digest}, which the manifest lacks"
        )
    return ModuleLocation(WasmFormat.SPIN, (by_digest[component.digest],), spin=component)


def _entrypoint(config: Mapping[str, Any]) -> str:
    inner = config.get("config")
    if isinstance(inner, Mapping):
        for key in ("Entrypoint", "Cmd"):
            value = inner.get(key)
            if isinstance(value, list) and value and isinstance(value[0], str) and value[0]:
                return value[0]
    raise NotWasm("image config has no Entrypoint (nor Cmd) naming the module")


def locate_module(manifest: Mapping[str, Any], config: Mapping[str, Any]) -> ModuleLocation:
    """Detect the format from the config's media type (then the layers' media types) and find the module."""
    config_type = config_descriptor(manifest).media_type
    layers = _layers(manifest)
    wasm_layers = [d for d in layers if d.media_type == mt.WASM_LAYER]
    spin_layers = [d for d in layers if d.media_type == mt.SPIN_WASM_LAYER]
    tar_layers = [d for d in layers if d.media_type in mt.TAR_LAYERS]

    if config_type == mt.WASM_CONFIG or (wasm_layers and not tar_layers and config_type != mt.SPIN_CONFIG):
        if not wasm_layers:
            raise NotWasm("Wasm artifact has no application/wasm layer")
        return ModuleLocation(WasmFormat.WASM_ARTIFACT, (wasm_layers[0],))
    if config_type == mt.SPIN_CONFIG or spin_layers:
        if not spin_layers:
            raise NotWasm("Spin application has no Wasm content layer")
        if config_type == mt.SPIN_CONFIG:
            return locate_spin(spin_layers, config)
        locked = [d for d in layers if d.media_type == mt.SPIN_CONFIG]
        if locked:
            return ModuleLocation(WasmFormat.SPIN, tuple(spin_layers), locked_app=locked[0])
        return locate_spin(spin_layers, None)
    if tar_layers and len(tar_layers) == len(layers):
        return ModuleLocation(WasmFormat.DOCKER_IMAGE, tuple(tar_layers), path=_entrypoint(config))
    kinds = sorted({d.media_type for d in layers}) or ["no layers"]
    raise NotWasm(f"no Wasm module in an artifact with config {config_type} and layers {', '.join(kinds)}")


def check_wasm_bytes(head: bytes, what: str) -> None:
    """Refuse anything that is not a core module or a component, judged by its 8-byte preamble."""
    if len(head) < 8 or head[:4] != WASM_MAGIC:
        raise NotWasm(f"{what} is not WebAssembly (no \\0asm preamble)")
    if head[4:8] not in (CORE_MODULE_VERSION, COMPONENT_VERSION):
        raise NotWasm(f"{what} has an unknown WebAssembly version {head[4:8].hex()}")


def is_component(head: bytes) -> bool:
    return head[:4] == WASM_MAGIC and head[4:8] == COMPONENT_VERSION
