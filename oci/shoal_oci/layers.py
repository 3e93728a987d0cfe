"""Find one file in a stack of image layers (tar, tar+gzip), honouring whiteouts, with a size bound."""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from .errors import ArtifactTooLarge, NotWasm

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_CHUNK = 1 << 16


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class Found(Enum):
    FILE = "file"
    DELETED = "deleted"  # a whiteout in this layer hides every lower copy
    ABSENT = "absent"


def normalize(path: str) -> str:
    """Tar member names come as `app.wasm`, `./app.wasm` or `/app.wasm`: compare them without prefix."""
    return posixpath.normpath("/" + path).lstrip("/") if path else ""


@dataclass(frozen=True)
class _Target:
    path: str

    @property
    def whiteout(self) -> str:
        head, tail = posixpath.split(self.path)
        return posixpath.join(head, WHITEOUT_PREFIX + tail)

    @property
    def opaque_markers(self) -> set[str]:
        """An opaque marker in any ancestor folder hides lower layers' copies too."""
        markers, head = set(), posixpath.dirname(self.path)
        while True:
            markers.add(posixpath.join(head, OPAQUE_MARKER) if head else OPAQUE_MARKER)
            if not head:
                return markers
            head = posixpath.dirname(head)


def extract_from_layer(layer: Path, member_path: str, dest: Sink, limit: int) -> Found:
    """Copy `member_path` from one tar(.gz) layer into `dest`; the layer is streamed, never unpacked."""
    target = _Target(normalize(member_path))
    hidden = False
    try:
        with tarfile.open(layer, mode="r|*") as tar:
            for member in tar:
                name = normalize(member.name)
                if name == target.path:
                    if member.issym() or member.islnk():
                        raise NotWasm(
                            f"{member_path} is a link in the image; give the real path as Entrypoint"
                        )
                    if not member.isfile():
                        raise NotWasm(f"{member_path} in the image is not a regular file")
                    if member.size > limit:
                        raise ArtifactTooLarge(f"{member_path} is {member.size} bytes, bound is {limit}")
                    src = tar.extractfile(member)
                    assert src is not None  # regular files always have data
                    copied = 0
                    while chunk := src.read(_CHUNK):
                        copied += len(chunk)
                        if copied > limit:
                            raise ArtifactTooLarge(f"{member_path} exceeds the bound of {limit} bytes")
                        dest.write(chunk)
                    return Found.FILE
                if name == target.whiteout or name in target.opaque_markers:
                    hidden = True
    except tarfile.TarError as err:
        raise NotWasm(f"layer is not a readable tar (or tar+gzip) archive: {err}") from err
    return Found.DELETED if hidden else Found.ABSENT


def extract_from_stack(layers: Sequence[Path], member_path: str, dest: Sink, limit: int) -> None:
    """Search from the top layer down, as an overlay filesystem would resolve the path."""
    for layer in reversed(layers):
        found = extract_from_layer(layer, member_path, dest, limit)
        if found is Found.FILE:
            return
        if found is Found.DELETED:
            break
    raise NotWasm(f"the image has no file at its Entrypoint {member_path}")
