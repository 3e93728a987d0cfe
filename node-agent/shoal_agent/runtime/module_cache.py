"""Compile once per digest: an on-disk cache of serialized modules that survives agent restarts.

A cached file is only valid for the same wasmtime version and engine settings, so both are in its
name. Loading a serialized module is trusted by wasmtime, so each file carries a sha256 of its
payload and anything that does not verify is deleted and recompiled rather than handed over.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import wasmtime

from .engine import EngineSettings, wasmtime_version
from .errors import DigestMismatchError, InvalidWasmError, NotWasmError

log = logging.getLogger(__name__)

WASM_MAGIC = b"\0asm"
_CORE_VERSION = b"\x01\x00\x00\x00"
_FILE_MAGIC = b"SHOALCW1"
_HASH_LEN = 32

# "memory": already compiled in this process; not a compile, so not observed as one.
CompileResult = Literal["compiled", "cache_load", "memory"]


@dataclass(frozen=True)
class CompiledModule:
    digest: str
    module: wasmtime.Module
    result: CompileResult
    seconds: float


def normalize_digest(digest: str) -> str:
    """`sha256:<hex>` or bare hex -> lowercase hex."""
    hexpart = digest.split(":", 1)[1] if digest.startswith("sha256:") else digest
    hexpart = hexpart.lower()
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return hexpart


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_wasm_bytes(data: bytes) -> None:
    """Fail fast, with a readable message, on anything that is not a core Wasm module."""
    if data[:4] != WASM_MAGIC:
        head = data[:8]
        raise NotWasmError(f"not a WebAssembly module: expected magic \\0asm, found {head!r}")
    if data[4:8] != _CORE_VERSION:
        raise NotWasmError(
            f"unsupported WebAssembly binary version {data[4:8].hex()} (a component?); "
            "only core modules are supported"
        )


class ModuleCache:
    """Compiled modules in memory (per digest) and on disk (per digest + version + settings)."""

    def __init__(self, engine: wasmtime.Engine, settings: EngineSettings, directory: Path | None) -> None:
        self.engine = engine
        self.directory = directory
        self._suffix = f"{wasmtime_version()}-{settings.fingerprint()}.cwasm"
        self._memory: dict[str, wasmtime.Module] = {}
        self._lock = threading.Lock()
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, digest: str) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / f"{normalize_digest(digest)}-{self._suffix}"

    def get(self, wasm: bytes, digest: str | None = None) -> CompiledModule:
        """The compiled module for `wasm`; `digest`, when given, must match its sha256."""
        actual = sha256_digest(wasm)
        if digest is not None and normalize_digest(digest) != actual.split(":", 1)[1]:
            raise DigestMismatchError(f"artifact hashes to {actual}, expected {digest}")
        with self._lock:
            cached = self._memory.get(actual)
        start = time.perf_counter()
        if cached is not None:
            return CompiledModule(actual, cached, "memory", time.perf_counter() - start)
        module = self._load(actual)
        result: CompileResult = "cache_load"
        if module is None:
            module = self._compile(wasm)
            result = "compiled"
            self._store(actual, module)
        seconds = time.perf_counter() - start
        with self._lock:
            self._memory.setdefault(actual, module)
        return CompiledModule(actual, module, result, seconds)

    def forget(self, digest: str) -> None:
        """Drop the in-memory copy (the disk copy stays for the next load)."""
        with self._lock:
            self._memory.pop("sha256:" + normalize_digest(digest), None)

    def _compile(self, wasm: bytes) -> wasmtime.Module:
        check_wasm_bytes(wasm)
        try:
            return wasmtime.Module(self.engine, wasm)
        except wasmtime.WasmtimeError as e:
            raise InvalidWasmError(f"invalid WebAssembly module: {e}") from e

    def _load(self, digest: str) -> wasmtime.Module | None:
        path = self.path_for(digest)
        if path is None:
            return None
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        payload = blob[len(_FILE_MAGIC) + _HASH_LEN :]
        header_ok = blob.startswith(_FILE_MAGIC)
        expected = blob[len(_FILE_MAGIC) : len(_FILE_MAGIC) + _HASH_LEN]
        if not header_ok or hashlib.sha256(payload).digest() != expected:
            log.warning("discarding corrupt module cache file %s", path)
            path.unlink(missing_ok=True)
            return None
        try:
            return wasmtime.Module.deserialize(self.engine, payload)
        except wasmtime.WasmtimeError as e:
            log.warning("discarding unloadable module cache file %s: %s", path, e)
            path.unlink(missing_ok=True)
            return None

    def _store(self, digest: str, module: wasmtime.Module) -> None:
        path = self.path_for(digest)
        if path is None:
            return
        payload = bytes(module.serialize())
        blob = _FILE_MAGIC + hashlib.sha256(payload).digest() + payload
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
