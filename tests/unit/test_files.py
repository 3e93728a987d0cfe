"""`spec.files`, the pure parts: guest path rules, the artifact's file trees (Spin data layers, an
image's layers with whiteouts), ConfigMap files and the node's tree store with its bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shoal_agent.files import (
    MIN_ENTRY_BYTES,
    FilesError,
    FilesPlan,
    FileTrees,
    config_map_files,
    content_key,
    inside,
    write_files,
)
from shoal_api.wasmapp import Files, WasmAppSpec, guest_paths_clash
from shoal_oci import ArtifactTooLarge, NotWasm
from shoal_oci.datafiles import extract_image_tree, place_spin_files, spin_component_files
from tests.unit.test_oci_layers import _layer

pytestmark = pytest.mark.unit

BASE: dict[str, Any] = {"module": {"image": "r.example/a:v1"}, "trigger": {"http": {"path": "/a"}}}


def spec_with(files: dict[str, Any]) -> WasmAppSpec:
    return WasmAppSpec.model_validate({**BASE, "files": files})


# --- the API --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/data", "/a/b.c", "/.hidden", "/..x", "/a/...", "/x."])
def test_guest_paths_that_are_accepted(path: str) -> None:
    spec = spec_with({"mounts": [{"path": path, "configMap": {"name": "c"}}]})
    assert spec.files is not None and spec.files.mounts[0].path == path


@pytest.mark.parametrize("path", ["data", "", "/data/", "//data", "/a//b", "/..", "/a/../b", "/.", "/a/./b"])
def test_guest_paths_that_are_refused(path: str) -> None:
    with pytest.raises(ValidationError):
        spec_with({"mounts": [{"path": path, "configMap": {"name": "c"}}]})


def test_paths_may_not_clash_and_a_mount_has_one_source() -> None:
    assert guest_paths_clash("/a", "/a/b") and guest_paths_clash("/", "/x") and guest_paths_clash("/a", "/a")
    assert not guest_paths_clash("/a", "/ab")
    with pytest.raises(ValidationError, match="paths /data and /data/sub clash"):
        spec_with(
            {
                "mounts": [
                    {"path": "/data", "artifact": {}},
                    {"path": "/data/sub", "configMap": {"name": "c"}},
                ]
            }
        )
    with pytest.raises(ValidationError, match="paths /tmp and /tmp clash"):
        spec_with({"mounts": [{"path": "/tmp", "artifact": {}}], "scratch": {"path": "/tmp"}})
    with pytest.raises(ValidationError, match="exactly one of artifact or configMap"):
        spec_with({"mounts": [{"path": "/d", "artifact": {}, "configMap": {"name": "c"}}]})
    with pytest.raises(ValidationError, match="exactly one of artifact or configMap"):
        spec_with({"mounts": [{"path": "/d"}]})


def test_scratch_size_is_bounded_and_defaults() -> None:
    files = Files.model_validate({"scratch": {"path": "/tmp"}})
    assert files.scratch is not None and files.scratch.size_bytes == 16 * 1024 * 1024
    with pytest.raises(ValidationError, match="at most 1Gi"):
        Files.model_validate({"scratch": {"path": "/tmp", "size": "2Gi"}})


# --- the artifact's files -------------------------------------------------------------------------

D1, D2, WASM = "sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "9" * 64


def test_spin_files_of_the_module_component_nested_or_flattened() -> None:
    config = {
        "components": [
            {"id": "other", "source": {"content": {"digest": "sha256:" + "0" * 64}}, "files": []},
            {
                "id": "main",
                "source": {"content_type": "application/wasm", "content": {"digest": WASM}},
                "files": [
                    {"content": {"digest": D1}, "path": "static/a.txt"},
                    {"digest": D2, "path": "/../b.txt"},  # flattened, and normalized inside the tree
                ],
            },
        ]
    }
    files = spin_component_files(config, WASM)
    assert [(f.digest, f.path) for f in files] == [(D1, "static/a.txt"), (D2, "b.txt")]
    with pytest.raises(NotWasm, match="no content digest"):
        spin_component_files({"components": [{"files": [{"path": "x", "content": {}}]}]}, WASM)


def test_spin_files_are_placed_and_bounded(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"A" * 1000)
    root = tmp_path / "root"
    root.mkdir()
    place_spin_files([(blob, "static/a.txt"), (blob, "b.txt")], root, 10_000)
    assert (root / "static" / "a.txt").read_bytes() == b"A" * 1000
    assert (root / "b.txt").stat().st_size == 1000
    with pytest.raises(ArtifactTooLarge):
        place_spin_files([(blob, "c.txt"), (blob, "d.txt")], tmp_path / "root", 1500)


def test_an_image_tree_honours_whiteouts_and_leaves_links_out(tmp_path: Path) -> None:
    bottom = _layer(
        tmp_path,
        "l1",
        {
            "app.wasm": b"\0asm",
            "static/": None,
            "static/old.txt": b"old",
            "static/keep.txt": b"keep",
            "cfg/x.txt": b"x",
            "cfg/y.txt": b"y",
        },
    )
    top = _layer(
        tmp_path,
        "l2",
        {
            "static/.wh.old.txt": b"",
            "cfg/.wh..wh..opq": b"",
            "cfg/z.txt": b"z",
            "static/keep.txt": b"newer",
            "../../etc/evil": b"e",  # normalized into the tree
        },
        link="link",
    )
    root = tmp_path / "tree"
    root.mkdir()
    extract_image_tree([bottom, top], root, 1 << 20)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["app.wasm", "cfg/z.txt", "etc/evil", "static/keep.txt"]
    assert (root / "static" / "keep.txt").read_text() == "newer"
    assert not (root / "link").exists() and not (root / "link").is_symlink()
    with pytest.raises(ArtifactTooLarge):
        extract_image_tree([_layer(tmp_path, "big", {"big": b"b" * 5000})], tmp_path / "tree", 4096)


# --- ConfigMaps and the node's trees --------------------------------------------------------------


def test_config_map_files() -> None:
    files = config_map_files({"a.txt": "A"}, {"b.bin": b"\0\1"}, "cm")
    assert files == {"a.txt": b"A", "b.bin": b"\0\1"}
    assert content_key(files) == content_key(dict(reversed(files.items())))
    assert content_key(files) != content_key({"a.txt": b"A"})
    for bad in ("..", ".", "a/b", ""):
        with pytest.raises(FilesError, match="is not a file name"):
            config_map_files({bad: "x"}, {}, "cm")
    with pytest.raises(FilesError, match="both data and binaryData"):
        config_map_files({"a": "x"}, {"a": b"y"}, "cm")


def test_inside_never_leaves_the_tree(tmp_path: Path) -> None:
    assert inside(tmp_path, "/") == tmp_path
    assert inside(tmp_path, "/static/x") == tmp_path / "static" / "x"
    assert inside(tmp_path, "/../../etc") == tmp_path / "etc"


def test_trees_are_written_once_and_bounded(tmp_path: Path) -> None:
    trees = FileTrees(tmp_path / "files", app_limit=8 * MIN_ENTRY_BYTES, total_limit=12 * MIN_ENTRY_BYTES)
    calls: list[str] = []

    def fill(name: str, size: int) -> Any:
        def write(folder: Path, limit: int) -> None:
            calls.append(name)
            write_files({"f": b"x" * size}, name, folder, limit)

        return write

    a = trees.tree("configmap", "a", fill("a", 4 * MIN_ENTRY_BYTES))
    assert trees.tree("configmap", "a", fill("a", 4 * MIN_ENTRY_BYTES)) == a
    assert calls == ["a"] and (a / "f").stat().st_size == 4 * MIN_ENTRY_BYTES
    assert not list((tmp_path / "files" / "tmp").iterdir())
    plan_a = FilesPlan(mounts=((str(a), "/a"),), trees=frozenset({a}))
    trees.use(plan_a)
    b = trees.tree("configmap", "b", fill("b", 6 * MIN_ENTRY_BYTES))
    # c does not fit next to a (in use) and b: b, unused, goes.
    c = trees.tree("configmap", "c", fill("c", 6 * MIN_ENTRY_BYTES))
    assert a.is_dir() and c.is_dir() and not b.exists()
    trees.use(FilesPlan(trees=frozenset({c})))
    with pytest.raises(FilesError, match="bound of 6144 bytes for loaded apps"):
        trees.tree("configmap", "d", fill("d", 4 * MIN_ENTRY_BYTES))
    with pytest.raises(FilesError, match="over the bound of 4096 bytes"):
        trees.tree("configmap", "e", fill("e", 9 * MIN_ENTRY_BYTES))
    trees.check_app(plan_a)
    with pytest.raises(FilesError, match="per app"):
        trees.check_app(FilesPlan(trees=frozenset({a, c})))
    trees.release(plan_a)
    trees.tree("configmap", "d", fill("d", 4 * MIN_ENTRY_BYTES))
    assert not a.exists()
    # A restarted agent counts the trees it finds (and drops unfinished ones): unused, they make room.
    (tmp_path / "files" / "tmp" / "junk").mkdir(parents=True)
    again = FileTrees(tmp_path / "files", app_limit=8 * MIN_ENTRY_BYTES, total_limit=6 * MIN_ENTRY_BYTES)
    f = again.tree("configmap", "f", fill("f", 4 * MIN_ENTRY_BYTES))
    assert sorted(p.name for p in (tmp_path / "files" / "configmap").iterdir()) == [f.name]
    assert not (tmp_path / "files" / "tmp" / "junk").exists()
