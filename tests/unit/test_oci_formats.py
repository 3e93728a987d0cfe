"""Format detection from manifests and configs, for the three packagings and the ones we refuse."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shoal_oci import NotWasm, UnsupportedSpinApp, WasmFormat, build
from shoal_oci import mediatypes as mt
from shoal_oci.formats import (
    check_wasm_bytes,
    locate_module,
    locate_spin,
    manifest_media_type,
    select_wasm_manifest,
)
from shoal_oci.push import Artifact, spin_locked_app
from shoal_oci.spinapp import spin_component

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
                "mediaType": "application/vnd.wasm.content.layer.v1+data",
                "digest": _digest(3),
                "size": 5,
            },
            {"mediaType": mt.SPIN_WASM_LAYER, "digest": named, "size": 8},
        ],
    }
    # Spin flattens the content reference into `source`; Shoal's own builder once nested it.
    for source in ({"content_type": "application/wasm", "digest": named}, {"content": {"digest": named}}):
        config = {"components": [{"id": "web", "source": source}]}
        assert locate_module(manifest, config).layers[0].digest == named
    with pytest.raises(NotWasm, match="lists no components"):
        locate_module(manifest, {"components": []})
    gone = {"components": [{"id": "web", "source": {"digest": _digest(7)}}]}
    with pytest.raises(NotWasm, match=r"names layer sha256:0+7, which the manifest lacks"):
        locate_module(manifest, gone)


@pytest.mark.parametrize("as_config", [False, True], ids=["locked-app-layer", "locked-app-config"])
def test_spin_built_by_push_round_trips(as_config: bool) -> None:
    artifact = build(COMPONENT, WasmFormat.SPIN, app_name="counter", spin_locked_app_as_config=as_config)
    manifest, config = _docs(artifact)
    wasm = next(b for b in artifact.blobs if b.media_type == mt.SPIN_WASM_LAYER)
    loc = locate_module(manifest, config)
    assert loc.format is WasmFormat.SPIN
    if as_config:
        assert manifest["config"]["mediaType"] == mt.SPIN_CONFIG
    else:
        # Newer Spin: an OCI image config that names the locked app, which is a layer to fetch.
        assert manifest["config"]["mediaType"] == mt.OCI_IMAGE_CONFIG
        assert loc.locked_app is not None and loc.locked_app.media_type == mt.SPIN_CONFIG
        assert config["config"]["Labels"]["com.fermyon.spin.lockedAppDigest"] == loc.locked_app.digest
        locked = next(b for b in artifact.blobs if b.digest == loc.locked_app.digest)
        loc = locate_spin(loc.layers, json.loads(locked.data))
    assert loc.layers[0].digest == wasm.digest
    assert loc.spin is not None and (loc.spin.app, loc.spin.id, loc.spin.route) == (
        "counter",
        "counter",
        "/...",
    )


def _locked(**changes: Any) -> dict[str, Any]:
    return {**spin_locked_app("shop", _digest(1)), **changes}


@pytest.mark.parametrize(
    ("locked", "reason"),
    [
        (
            _locked(
                components=[{"id": "web", "source": {"digest": _digest(1)}}, {"id": "api", "source": {}}]
            ),
            "Spin app 'shop' has 2 components (web, api); Shoal runs a Spin app of one component",
        ),
        (
            _locked(triggers=[{"id": "t", "trigger_type": "redis", "trigger_config": {"component": "shop"}}]),
            "Spin app 'shop' has a redis trigger; Shoal runs Spin HTTP apps only",
        ),
        (
            _locked(metadata={"name": "shop", "trigger": {"type": "cron"}}),
            "has a cron trigger",
        ),
        (
            _locked(
                components=[{"id": "shop", "source": {"digest": _digest(1)}, "dependencies": {"a:b/c": {}}}]
            ),
            "Spin component 'shop' has component dependencies (a:b/c) that are not composed",
        ),
    ],
    ids=["two-components", "redis-trigger", "app-trigger-type", "dependencies"],
)
def test_spin_apps_that_are_not_one_http_component_are_refused_saying_why(
    locked: dict[str, Any], reason: str
) -> None:
    with pytest.raises(UnsupportedSpinApp) as err:
        spin_component(locked)
    assert reason in str(err.value)
    assert not err.value.retryable


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
