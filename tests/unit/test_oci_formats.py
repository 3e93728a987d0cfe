"""Format detection from manifests and configs, for the three packagings and the ones we refuse."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shoal_oci import NotWasm, WasmFormat, build
from shoal_oci import mediatypes as mt
from shoal_oci.formats import (
    check_wasm_bytes,
    locate_module,
    manifest_media_type,
    select_wasm_manifest,
)
from shoal_oci.push import Artifact

pytestmark = pytest.mark.unit

MODULE = b"\0asm\x01\0\0\0"
COMPONENT = b"\0asm\x0d\0\x01\0"
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _docs(artifact: Artifact) -> tuple[dict[str, Any], dict[str, Any]]:
    image = next(m for m in artifact.manifests if m.media_type in mt.IMAGE_MANIFESTS)
    config = artifact.blobs[0]
    return json.loads(image.data), json.loads(config.data)


def _digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def test_cncf_artifact_is_detected_with_its_config() -> None:
    artifact = build(MODULE, WasmFormat.WASM_ARTIFACT, created=WHEN)
    manifest, config = _docs(artifact)
    loc = locate_module(manifest, config)
    assert loc.format is WasmFormat.WASM_ARTIFACT
    assert [d.digest for d in loc.layers] == [artifact.blobs[1].digest]
    assert manifest["config"]["mediaType"] == mt.WASM_CONFIG
    assert config == {
        "created": "2026-01-02T03:04:05Z",
        "architecture": "wasm",
        "os": "wasip1",
        "layerDigests": [artifact.blobs[1].digest],
    }


def test_component_gets_wasip2_and_a_component_section() -> None:
    _, config = _docs(
        build(COMPONENT, WasmFormat.WASM_ARTIFACT, component={"exports": ["wasi:cli/run@0.2.0"]})
    )
    assert config["os"] == "wasip2"
    assert config["component"] == {"exports": ["wasi:cli/run@0.2.0"]}


def test_spin_uses_the_layer_the_config_names() -> None:
    first, named = _digest(1), _digest(2)
    manifest = {
        "config": {"mediaType": mt.SPIN_CONFIG, "digest": _digest(9), "size": 10},
        "layers": [
            {"mediaType": mt.SPIN_WASM_LAYER, "digest": first, "size": 8},
            {
                "mediaType": "application/vnd.fermyon.spin.application.v1+data",
                "digest": _digest(3),
                "size": 5,
            },
            {"mediaType": mt.SPIN_WASM_LAYER, "digest": named, "size": 8},
        ],
    }
    config = {"components": [{"id": "web", "source": {"content": {"digest": named}}}]}
    assert locate_module(manifest, config).layers[0].digest == named
    assert locate_module(manifest, {"components": []}).layers[0].digest == first


def test_spin_built_by_push_round_trips() -> None:
    artifact = build(MODULE, WasmFormat.SPIN)
    loc = locate_module(*_docs(artifact))
    assert loc.format is WasmFormat.SPIN and loc.layers[0].digest == artifact.blobs[1].digest


@pytest.mark.parametrize("docker_types", [False, True])
def test_docker_wasm_image_points_at_the_entrypoint(docker_types: bool) -> None:
    artifact = build(
        MODULE, WasmFormat.DOCKER_IMAGE, entrypoint="/bin/app.wasm", docker_media_types=docker_types
    )
    loc = locate_module(*_docs(artifact))
    assert loc.format is WasmFormat.DOCKER_IMAGE
    assert loc.path == "/bin/app.wasm"
    assert loc.layers[0].media_type == (mt.DOCKER_LAYER_TAR_GZIP if docker_types else mt.OCI_LAYER_TAR_GZIP)


def test_image_without_entrypoint_falls_back_to_cmd_else_refuses() -> None:
    manifest, config = _docs(build(MODULE, WasmFormat.DOCKER_IMAGE))
    config["config"] = {"Cmd": ["/cmd.wasm"]}
    assert locate_module(manifest, config).path == "/cmd.wasm"
    config["config"] = {}
    with pytest.raises(NotWasm, match="Entrypoint"):
        locate_module(manifest, config)


def test_index_picks_the_wasm_platform() -> None:
    index = {
        "manifests": [
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": _digest(1),
                "size": 1,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": _digest(2),
                "size": 1,
                "platform": {"os": "wasip1", "architecture": "wasm32"},
            },
        ]
    }
    assert select_wasm_manifest(index).digest == _digest(2)
    index["manifests"].pop()
    with pytest.raises(NotWasm, match="linux/amd64"):
        select_wasm_manifest(index)


def test_built_index_is_an_index_whose_entry_is_wasm() -> None:
    artifact = build(MODULE, WasmFormat.DOCKER_IMAGE, as_index=True)
    index = json.loads(artifact.manifests[-1].data)
    assert manifest_media_type(index, None) == mt.OCI_INDEX
    assert select_wasm_manifest(index).digest == artifact.manifests[0].digest


@pytest.mark.parametrize(
    ("config_type", "layer_type"),
    [
        ("application/vnd.oci.image.config.v1+json", "text/plain"),
        ("application/vnd.unknown.config.v1+json", "application/octet-stream"),
        (mt.WASM_CONFIG, "application/octet-stream"),
    ],
)
def test_unknown_layers_are_not_wasm(config_type: str, layer_type: str) -> None:
    manifest = {
        "config": {"mediaType": config_type, "digest": _digest(1), "size": 2},
        "layers": [{"mediaType": layer_type, "digest": _digest(2), "size": 3}],
    }
    with pytest.raises(NotWasm):
        locate_module(manifest, {})


def test_media_type_prefers_the_document_over_the_header() -> None:
    assert manifest_media_type({"mediaType": mt.OCI_INDEX}, mt.OCI_MANIFEST) == mt.OCI_INDEX
    assert manifest_media_type({}, f"{mt.DOCKER_MANIFEST}; charset=utf-8") == mt.DOCKER_MANIFEST
    assert manifest_media_type({"manifests": []}, None) == mt.OCI_INDEX


@pytest.mark.parametrize("data", [b"", b"\0asm", b"\x7fELF\x02\x01\x01\0", b"\0asm\x02\0\0\0"])
def test_wasm_preamble_is_checked(data: bytes) -> None:
    with pytest.raises(NotWasm):
        check_wasm_bytes(data, "x")
    check_wasm_bytes(MODULE, "module")
    check_wasm_bytes(COMPONENT, "component")


def test_build_refuses_non_wasm_input() -> None:
    with pytest.raises(NotWasm):
        build(b"#!/bin/sh\n", WasmFormat.WASM_ARTIFACT)
