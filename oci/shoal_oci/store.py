"""Content-addressed blob store on the node's disk: `<root>/blobs/sha256/<hex>`, written atomically.

A blob only appears under its final name after its bytes hashed to that name, so a crash or a lying
registry can leave at most a stray temp file, never a wrong blob. `<root>/artifacts/sha256/<hex>.json`
records what a pulled manifest digest resolved to, which is what makes a cache hit free of network I/O.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import digests
from .errors import ArtifactTooLarge, DigestMismatch


class BlobWriter:
    """Hashes and counts while writing; `limit` and the expected size are enforced on every chunk."""

    def __init__(self, fh: IO[bytes], expected_size: int | None, limit: int, what: str) -> None:
        self._fh, self._expected_size, self._limit, self._what = fh, expected_size, limit, what
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> int:
        self.size += len(chunk)
        if self.size > self._limit:
            raise ArtifactTooLarge(f"{self._what} exceeds the bound of {self._limit} bytes")
        if self._expected_size is not None and self.size > self._expected_size:
            raise DigestMismatch(f"{self._what} is longer than its descriptor's {self._expected_size} bytes")
        self._hash.update(chunk)
        return self._fh.write(chunk)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


@dataclass(frozen=True)
class BlobStore:
    root: Path

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digests.hex_of(digest)

    def has(self, digest: str, size: int | None = None) -> bool:
        try:
            st = self.blob_path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def read(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    @contextlib.contextmanager
    def writer(
        self, expected_digest: str | None, *, expected_size: int | None = None, limit: int, what: str
    ) -> Iterator[BlobWriter]:
        """Yield a writer into a temp file; on clean exit verify and rename it to its content address.

        With `expected_digest=None` the content names itself (e.g. a module extracted from a layer).
        """
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="blob-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                w = BlobWriter(fh, expected_size, limit, what)
                yield w
                fh.flush()
                os.fsync(fh.fileno())
            if expected_size is not None and w.size != expected_size:
                raise DigestMismatch(f"{what}: got {w.size} bytes, descriptor says {expected_size}")
            if expected_digest is not None and w.digest != expected_digest:
                raise DigestMismatch(f"{what}: expected {expected_digest}, got {w.digest}")
            final = self.blob_path(w.digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def put(self, data: bytes, expected_digest: str | None = None, *, what: str = "blob") -> str:
        with self.writer(expected_digest, expected_size=len(data), limit=len(data), what=what) as w:
            w.write(data)
        return w.digest

    def _record_path(self, digest: str) -> Path:
        return self.root / "artifacts" / "sha256" / f"{digests.hex_of(digest)}.json"

    def load_record(self, digest: str) -> dict[str, Any] | None:
        try:
            doc = json.loads(self._record_path(digest).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def save_record(self, digest: str, record: dict[str, Any]) -> None:
        path = self._record_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".record-")
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
        os.replace(tmp, path)
