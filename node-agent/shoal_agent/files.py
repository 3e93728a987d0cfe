"""An app version's `spec.files` on this node: directory trees on the agent's disk, and the
(host directory, guest path) pairs the data plane preopens read-only for every instance.

Trees are written once per content and shared by every app version that shows the same content:
`<root>/artifact/<manifest hex>` (a Spin app's data layers or a Docker+Wasm image's filesystem) and
`<root>/configmap/<sha256 of its keys and values>`. A tree appears under its final name only once
complete (written into `<root>/tmp`, then renamed), so a crash leaves no half tree to serve.

Bounds: the trees one app version shows may hold `app_limit` bytes together, and all trees on the
node `total_limit`; past the total, trees no loaded app version uses are deleted first. The guest
never sees anything else of the node: the data plane gives it only these preopens (and its scratch
directory, a fresh one per invocation under `<scratch root>`).

ConfigMaps are read when the app version loads, as a pod's env from a ConfigMap is: a changed
ConfigMap shows from the next load (a new template, a restart) on.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

MIN_ENTRY_BYTES = 512
"""What a file or folder counts at least (as the data plane counts scratch directories)."""


class FilesError(Exception):
    """Files that cannot be shown as declared: the placement's Failed message says why."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class FilesPlan:
    """What the data plane's `load` takes."""

    mounts: tuple[tuple[str, str], ...] = ()
    """(host directory, guest path), read-only."""
    scratch: tuple[str, int, str] | None = None
    """(guest path, bound in bytes, host root of the per-invocation directories)."""
    trees: frozenset[Path] = frozenset()
    """The trees the mounts show (kept while the app version is loaded)."""

    @property
    def empty(self) -> bool:
        return not self.mounts and self.scratch is None


def config_map_files(data: Mapping[str, str], binary: Mapping[str, bytes], what: str) -> dict[str, bytes]:
    """Each key a file, as a ConfigMap volume shows it; a key that is no plain file name is refused
    (the apiserver refuses them too: this is the guard for what a file name must never be)."""
    files: dict[str, bytes] = {}
    for key, value in [*((k, v.encode()) for k, v in data.items()), *binary.items()]:
        if not key or key in (".", "..") or "/" in key or "\0" in key:
            raise FilesError(f"{what}: key {key!r} is not a file name", retryable=True)
        if key in files:
            raise FilesError(f"{what}: key {key!r} is in both data and binaryData", retryable=True)
        files[key] = value
    return files


def content_key(files: Mapping[str, bytes]) -> str:
    """The content address of a set of named files."""
    h = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        h.update(f"{len(name)}:{name}:{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()


def inside(tree: Path, path: str) -> Path:
    """The folder `path` (absolute, as the API's guest paths are) of `tree`; never outside it."""
    rel = posixpath.normpath("/" + path).lstrip("/")
    return tree / rel if rel else tree


def tree_bytes(root: Path) -> int:
    """Bytes a tree holds, each entry at least `MIN_ENTRY_BYTES`."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        total += MIN_ENTRY_BYTES * len(dirnames)
        for name in filenames:
            try:
                total += max(os.lstat(os.path.join(dirpath, name)).st_size, MIN_ENTRY_BYTES)
            except FileNotFoundError:
                continue
    return total


@dataclass
class FileTrees:
    """The node's trees, their sizes, and which app versions use them."""

    root: Path
    app_limit: int = 256 << 20
    total_limit: int = 1 << 30
    _sizes: dict[Path, int] = field(default_factory=dict, init=False)
    _users: dict[Path, int] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _scanned: bool = field(default=False, init=False)

    def _scan(self) -> None:
        """Once per process: count the trees an earlier agent left (they count against the node's
        bound) and drop its unfinished ones."""
        if self._scanned:
            return
        self._scanned = True
        shutil.rmtree(self.root / "tmp", ignore_errors=True)
        for kind in ("artifact", "configmap"):
            folder = self.root / kind
            for tree in sorted(folder.iterdir()) if folder.is_dir() else []:
                self._sizes.setdefault(tree, tree_bytes(tree))

    def tree(self, kind: str, key: str, fill: Callable[[Path, int], None]) -> Path:
        """The tree `kind/key`, written by `fill(folder, limit)` unless it exists (blocking)."""
        final = self.root / kind / key
        with self._lock:
            self._scan()
            if final.is_dir():
                if final not in self._sizes:
                    self._sizes[final] = tree_bytes(final)
                return final
        tmp = self.root / "tmp" / uuid.uuid4().hex
        tmp.mkdir(parents=True)
        try:
            fill(tmp, self.app_limit)
            size = tree_bytes(tmp)
            with self._lock:
                self._make_room(size, for_=f"{kind} files")
                final.parent.mkdir(parents=True, exist_ok=True)
                if final.is_dir():  # written meanwhile by another load of the same content
                    return final
                os.rename(tmp, final)
                self._sizes[final] = size
            return final
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _make_room(self, size: int, *, for_: str) -> None:
        total = sum(self._sizes.values())
        for tree in sorted(self._sizes, key=str):
            if total + size <= self.total_limit:
                break
            if self._users.get(tree, 0) == 0:
                shutil.rmtree(tree, ignore_errors=True)
                total -= self._sizes.pop(tree)
        if total + size > self.total_limit:
            raise FilesError(
                f"{for_} need {size} bytes, but the node's file trees hold {total} of their bound of "
                f"{self.total_limit} bytes for loaded apps",
                retryable=True,
            )

    def check_app(self, plan: FilesPlan) -> None:
        used = sum(self._sizes.get(t, 0) for t in plan.trees)
        if used > self.app_limit:
            raise FilesError(
                f"the app's files hold {used} bytes, over the bound of {self.app_limit} bytes per app",
                retryable=False,
            )

    def use(self, plan: FilesPlan) -> None:
        with self._lock:
            for tree in plan.trees:
                self._users[tree] = self._users.get(tree, 0) + 1

    def release(self, plan: FilesPlan) -> None:
        with self._lock:
            for tree in plan.trees:
                left = self._users.get(tree, 0) - 1
                if left > 0:
                    self._users[tree] = left
                else:
                    self._users.pop(tree, None)


def write_files(files: Mapping[str, bytes], what: str, folder: Path, limit: int) -> None:
    """Write named files into `folder`, bounded like the artifact's trees."""
    total = sum(max(len(v), MIN_ENTRY_BYTES) for v in files.values())
    if total > limit:
        raise FilesError(f"{what} holds {total} bytes, over the bound of {limit} bytes", retryable=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
