"""The artifact's files through a real registry: a Spin app's data layers and a Docker+Wasm image's
filesystem are pulled with the module (and recorded, so a cache hit still knows them), then written
out as the tree the agent shows a guest."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from harness.artifacts import image_with_files, spin_with_files
from localcluster.registry import Registry
from shoal_oci import ArtifactPuller, NotWasm, push, push_wasm

pytestmark = pytest.mark.integration

WASM = b"\0asm\x01\0\0\0"


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def pull_files(puller: ArtifactPuller, ref: str, dest: Path) -> dict[str, bytes]:
    pulled = asyncio.run(puller.pull(ref))
    dest.mkdir()
    puller.write_files(pulled, dest, 1 << 20)
    return tree(dest)


def test_spin_data_layers_and_image_files_become_trees(oci_registry: Registry, tmp_path: Path) -> None:
    spin_ref = f"{oci_registry.address}/files/spin:v1"
    push(spin_ref, spin_with_files(WASM, {"static/a.txt": b"A\n", "b.txt": b"B\n"}))
    image_ref = f"{oci_registry.address}/files/image:v1"
    push(image_ref, image_with_files(WASM, {"/static/c.txt": b"C\n"}))
    plain_ref = f"{oci_registry.address}/files/plain:v1"
    push_wasm(plain_ref, WASM)

    puller = ArtifactPuller(tmp_path / "oci")
    assert pull_files(puller, spin_ref, tmp_path / "spin") == {"static/a.txt": b"A\n", "b.txt": b"B\n"}
    assert pull_files(puller, image_ref, tmp_path / "image") == {"app.wasm": WASM, "static/c.txt": b"C\n"}
    # A second puller on the same cache: a hit, without the registry, still knows the files.
    again = ArtifactPuller(tmp_path / "oci")
    pulled = asyncio.run(again.pull(spin_ref))
    assert pulled.cache_hit
    (tmp_path / "again").mkdir()
    again.write_files(pulled, tmp_path / "again", 1 << 20)
    assert tree(tmp_path / "again") == {"static/a.txt": b"A\n", "b.txt": b"B\n"}
    with pytest.raises(NotWasm, match="carries no files"):
        pull_files(puller, plain_ref, tmp_path / "plain")
