"""Finding the Entrypoint file in a stack of tar(.gz) layers: prefixes, whiteouts, links, bounds."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from shoal_oci import ArtifactTooLarge, NotWasm
from shoal_oci.layers import Found, extract_from_layer, extract_from_stack, normalize

pytestmark = pytest.mark.unit

WASM = b"\0asm\x01\0\0\0"


def _layer(
    tmp_path: Path, name: str, files: dict[str, bytes | None], *, gz: bool = True, link: str = ""
) -> Path:
    """files: member name -> bytes (None makes a directory); `link` adds a symlink named so."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "elsewhere.wasm"
            tar.addfile(info)
    path = tmp_path / name
    path.write_bytes(gzip.compress(buf.getvalue()) if gz else buf.getvalue())
    return path


@pytest.mark.parametrize("member", ["app.wasm", "./app.wasm", "/app.wasm"])
@pytest.mark.parametrize("gz", [True, False])
def test_member_name_prefixes_and_compression(tmp_path: Path, member: str, gz: bool) -> None:
    layer = _layer(tmp_path, "l", {"etc/": None, member: WASM}, gz=gz)
    out = io.BytesIO()
    assert extract_from_layer(layer, "/app.wasm", out, limit=100) is Found.FILE
    assert out.getvalue() == WASM


def test_upper_layer_wins(tmp_path: Path) -> None:
    lower = _layer(tmp_path, "lower", {"app.wasm": b"\0asm\x01\0\0\0old"})
    upper = _layer(tmp_path, "upper", {"app.wasm": WASM})
    out = io.BytesIO()
    extract_from_stack([lower, upper], "app.wasm", out, limit=100)
    assert out.getvalue() == WASM


def test_file_only_in_lower_layer_is_found(tmp_path: Path) -> None:
    lower = _layer(tmp_path, "lower", {"bin/app.wasm": WASM})
    upper = _layer(tmp_path, "upper", {"etc/other": b"x"})
    out = io.BytesIO()
    extract_from_stack([lower, upper], "/bin/app.wasm", out, limit=100)
    assert out.getvalue() == WASM


@pytest.mark.parametrize("marker", ["bin/.wh.app.wasm", "bin/.wh..wh..opq", ".wh..wh..opq"])
def test_whiteouts_hide_lower_copies(tmp_path: Path, marker: str) -> None:
    lower = _layer(tmp_path, "lower", {"bin/app.wasm": WASM})
    upper = _layer(tmp_path, "upper", {marker: b""})
    with pytest.raises(NotWasm, match="no file"):
        extract_from_stack([lower, upper], "/bin/app.wasm", io.BytesIO(), limit=100)


def test_missing_file_link_and_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotWasm, match="no file"):
        extract_from_stack([_layer(tmp_path, "a", {"other": b"x"})], "/app.wasm", io.BytesIO(), limit=100)
    with pytest.raises(NotWasm, match="link"):
        extract_from_layer(_layer(tmp_path, "b", {}, link="app.wasm"), "/app.wasm", io.BytesIO(), limit=100)
    with pytest.raises(NotWasm, match="regular file"):
        extract_from_layer(_layer(tmp_path, "c", {"app.wasm": None}), "/app.wasm", io.BytesIO(), limit=100)


def test_size_bound_and_garbage(tmp_path: Path) -> None:
    layer = _layer(tmp_path, "big", {"app.wasm": WASM + bytes(1000)})
    with pytest.raises(ArtifactTooLarge):
        extract_from_layer(layer, "/app.wasm", io.BytesIO(), limit=100)
    junk = tmp_path / "junk"
    junk.write_bytes(b"this is not a tar archive at all" * 20)
    with pytest.raises(NotWasm, match="tar"):
        extract_from_layer(junk, "/app.wasm", io.BytesIO(), limit=100)


def test_normalize() -> None:
    assert normalize("./a/../b/c.wasm") == "b/c.wasm"
    assert normalize("/.hidden/x") == ".hidden/x"
