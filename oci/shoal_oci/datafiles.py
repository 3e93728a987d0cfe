"""The files an artifact carries besides its module, written out as a directory tree for a guest.

(2) Spin: the locked app's component lists its files, each `{content: {digest}, path}` (or with the
    digest flattened beside `path`) naming an `application/vnd.wasm.content.layer.v1+data` layer
    that holds the file's bytes; the file goes to `path` under the tree's root.
(3) Docker+Wasm: the image's filesystem, its tar layers applied bottom first with whiteouts and
    opaque markers honoured as an overlay filesystem would; regular files and folders only (links,
    devices and fifos are left out, so nothing in the tree points outside it).

Every write is bounded: a tree that would exceed `limit` bytes (each entry counting at least
`MIN_ENTRY_BYTES`) raises `ArtifactTooLarge`, whatever the compressed layers declared.
"""

from __future__ import annotations

import posixpath
import shutil
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ArtifactTooLarge, NotWasm
from .layers import OPAQUE_MARKER, WHITEOUT_PREFIX, normalize

MIN_ENTRY_BYTES = 512
_CHUNK = 1 << 16


@dataclass(frozen=True)
class SpinFile:
    digest: str
    path: str  # relative to the tree's root, normalized


def _digest_of(entry: Mapping[str, Any]) -> str | None:
    content = entry.get("content")
    digest = content.get("digest") if isinstance(content, Mapping) else entry.get("digest")
    return digest if isinstance(digest, str) else None


def spin_component_files(config: Mapping[str, Any], module_digest: str) -> list[SpinFile]:
    """The files of the component whose source is the module layer (the first component when none
    names it)."""
    components = [c for c in config.get("components") or [] if isinstance(c, Mapping)]
    chosen = next(
        (c for c in components if _digest_of(c.get("source") or {}) == module_digest),
        components[0] if components else None,
    )
    files: list[SpinFile] = []
    for entry in (chosen or {}).get("files") or []:
        if not isinstance(entry, Mapping):
            continue
        digest, path = _digest_of(entry), normalize(str(entry.get("path") or ""))
        if digest is None:
            raise NotWasm(f"Spin file {entry.get('path')!r} names no content digest (inline or local?)")
        if not path:
            raise NotWasm(f"Spin file with content {digest} has no path")
        files.append(SpinFile(digest, path))
    return files


class _Budget:
    def __init__(self, limit: int, what: str) -> None:
        self.limit, self.what, self.used = limit, what, 0

    def charge(self, size: int) -> None:
        self.used += max(size, MIN_ENTRY_BYTES)
        if self.used > self.limit:
            raise ArtifactTooLarge(f"{self.what} exceed the bound of {self.limit} bytes")


def _clear(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _make_dirs(root: Path, rel: str) -> Path:
    """`root/rel` as a folder, replacing a file a lower layer left where a folder now goes."""
    here = root
    for part in rel.split("/") if rel else []:
        here = here / part
        if here.exists() and not here.is_dir():
            here.unlink()
        here.mkdir(exist_ok=True)
    return here


def _copy(src: Any, dest: Path, budget: _Budget, declared: int) -> None:
    budget.charge(declared)
    _clear(dest)
    written = 0
    with dest.open("wb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > declared:  # a file longer than it said: charge what it really is
                budget.charge(written - declared)
                declared = written
            out.write(chunk)


def place_spin_files(files: Sequence[tuple[Path, str]], root: Path, limit: int) -> None:
    """Write each (blob, relative path) under `root`."""
    budget = _Budget(limit, "the Spin app's files")
    for blob, rel in files:
        parent = _make_dirs(root, posixpath.dirname(rel))
        with blob.open("rb") as src:
            _copy(src, parent / posixpath.basename(rel), budget, blob.stat().st_size)


def extract_image_tree(layers: Sequence[Path], root: Path, limit: int) -> None:
    """Apply the image's tar layers (bottom first) under `root`."""
    budget = _Budget(limit, "the image's files")
    for layer in layers:
        try:
            _apply_whiteouts(layer, root)
            _extract_layer(layer, root, budget)
        except tarfile.TarError as err:
            raise NotWasm(f"layer is not a readable tar (or tar+gzip) archive: {err}") from err


def _apply_whiteouts(layer: Path, root: Path) -> None:
    """First pass over a layer: what it deletes of the layers below it."""
    with tarfile.open(layer, mode="r|*") as tar:
        for member in tar:
            name = normalize(member.name)
            head, tail = posixpath.split(name)
            if tail == OPAQUE_MARKER:
                folder = root / head if head else root
                if folder.is_dir():
                    for child in folder.iterdir():
                        _clear(child)
            elif tail.startswith(WHITEOUT_PREFIX):
                _clear(root / head / tail.removeprefix(WHITEOUT_PREFIX))


def _extract_layer(layer: Path, root: Path, budget: _Budget) -> None:
    with tarfile.open(layer, mode="r|*") as tar:
        for member in tar:
            name = normalize(member.name)
            if not name or posixpath.basename(name).startswith(WHITEOUT_PREFIX):
                continue
            if member.isdir():
                budget.charge(0)
                _make_dirs(root, name)
            elif member.isfile():
                parent = _make_dirs(root, posixpath.dirname(name))
                src = tar.extractfile(member)
                assert src is not None  # regular files always have data
                _copy(src, parent / posixpath.basename(name), budget, member.size)
            # Links, devices and fifos are left out: nothing in the tree may point outside it.
