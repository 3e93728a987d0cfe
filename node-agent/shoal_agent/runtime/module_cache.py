"""What the agent checks of a Wasm artifact before handing it to the data plane.

Compiled modules are cached by the data plane itself (memory, and on disk per digest + wasmtime
version + engine configuration, checksummed; node-agent/dataplane/src/cache.rs).
"""

from __future__ import annotations

import hashlib

from .errors import NotWasmError

WASM_MAGIC = b"\0asm"
_CORE_VERSION = b"\x01\x00\x00\x00"
# A component (WASI preview 2): version 0x0d, layer 1.
_COMPONENT_VERSION = b"\x0d\x00\x01\x00"


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
    """Fail fast, with a readable message, on anything that is not a core module or a component."""
    if data[:4] != WASM_MAGIC:
        head = data[:8]
        raise NotWasmError(f"not a WebAssembly module: expected magic \\0asm, found {head!r}")
    if data[4:8] not in (_CORE_VERSION, _COMPONENT_VERSION):
        raise NotWasmError(
            f"unsupported WebAssembly binary version {data[4:8].hex()}: neither a core module "
            "(01000000) nor a component (0d000100)"
        )
