"""`shoal push`: read a .wasm file, package it in one of the three OCI layouts, push it, return the digest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shoal_cli.component import read_world
from shoal_cli.errors import CliError
from shoal_oci import (
    InvalidReference,
    NotWasm,
    OciError,
    RegistryUnavailable,
    Unauthorized,
    WasmFormat,
    check_wasm_bytes,
    is_component,
    push_wasm,
)

# CLI spelling -> packaging. "cncf" is the CNCF TAG-Runtime Wasm artifact that Shoal prefers.
FORMATS = {"cncf": WasmFormat.WASM_ARTIFACT, "spin": WasmFormat.SPIN, "docker": WasmFormat.DOCKER_IMAGE}


@dataclass(frozen=True)
class Pushed:
    reference: str  # as given (a tag)
    digest: str  # of the top manifest, as the registry serves it

    @property
    def pinned(self) -> str:
        """The reference pinned to what was pushed: repository@digest."""
        return f"{repository_of(self.reference)}@{self.digest}"


def repository_of(ref: str) -> str:
    """`ref` without its tag or digest (a registry port is not a tag: only the last segment counts)."""
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}" if head else name


def read_module(path: Path) -> bytes:
    """The module's bytes, or a CliError naming what is wrong with the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, not a .wasm file") from None
    except OSError as e:
        raise CliError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        check_wasm_bytes(data[:8], str(path))
    except NotWasm:
        raise CliError(f"{path}: not a WebAssembly module (no \\0asm header)") from None
    return data


def push(path: Path, ref: str, *, fmt: str = "cncf", plain_http: bool | None = None) -> Pushed:
    """Push `path` to `ref` (which must carry a tag); every failure becomes one CliError line. A
    component's CNCF config lists its exports and imports (`os: wasip2`)."""
    wasm = read_module(path)
    component = read_world(path).to_config() if is_component(wasm[:8]) else None
    try:
        digest = push_wasm(ref, wasm, FORMATS[fmt], plain_http=plain_http, component=component)
    except InvalidReference as e:
        raise CliError(f"invalid reference {ref!r}: {e}") from None
    except RegistryUnavailable as e:
        raise CliError(f"registry unreachable for {ref}: {e}") from None
    except Unauthorized as e:
        raise CliError(f"registry refused {ref}: {e} (log in, or check the repository name)") from None
    except OciError as e:
        raise CliError(f"push to {ref} failed: {e}") from None
    return Pushed(ref, digest)
