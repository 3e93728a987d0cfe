"""`shoal push` / `shoal scaffold` against the real OCI registry; the agent's puller reads the result back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from localcluster.registry import Registry

REPO = Path(__file__).resolve().parents[2]

from shoal_api import WasmApp  # noqa: E402
from shoal_cli.__main__ import main  # noqa: E402
from shoal_cli.scaffold import SOURCE_ANNOTATION  # noqa: E402
from shoal_oci import ArtifactPuller, Resolver, WasmFormat  # noqa: E402

pytestmark = pytest.mark.integration

FORMATS = {"cncf": WasmFormat.WASM_ARTIFACT, "spin": WasmFormat.SPIN, "docker": WasmFormat.DOCKER_IMAGE}


def module(tag: str) -> bytes:
    """An empty core module plus a custom section named `tag`, so every push has its own digest."""
    name = tag.encode()
    payload = bytes([len(name)]) + name
    return b"\x00asm\x01\x00\x00\x00" + b"\x00" + bytes([len(payload)]) + payload


@pytest.mark.parametrize("fmt", sorted(FORMATS))
async def test_push_then_pull(
    oci_registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    wasm = module(f"cli-{fmt}")
    path = tmp_path / "app.wasm"
    path.write_bytes(wasm)
    ref = f"{oci_registry.address}/cli/{fmt}:v1"
    assert main(["push", str(path), ref, "--format", fmt]) == 0
    out, err = capsys.readouterr()
    digest = out.strip()
    assert digest.startswith("sha256:") and len(digest) == 71
    assert f"{oci_registry.address}/cli/{fmt}@{digest}" in err

    pulled = await ArtifactPuller(cache_root=tmp_path / "cache").pull(ref)
    assert pulled.digest == digest
    assert pulled.format is FORMATS[fmt]
    assert pulled.module_path.read_bytes() == wasm


def test_scaffold_resolves_the_tag(
    oci_registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hello.wasm"
    path.write_bytes(module("cli-scaffold"))
    ref = f"{oci_registry.address}/cli/hello:v2"
    assert main(["push", str(path), ref]) == 0
    digest = capsys.readouterr().out.strip()

    assert main(["scaffold", ref, "--replicas", "2", "--http-path", "/hi"]) == 0
    text = capsys.readouterr().out
    app = WasmApp.model_validate(yaml.safe_load(text))
    assert app.metadata.name == "hello"
    assert app.spec.module.image == f"{oci_registry.address}/cli/hello@{digest}"
    assert (app.metadata.annotations or {})[SOURCE_ANNOTATION] == ref
    assert f"resolves to {digest}" in text


def test_scaffold_unknown_tag(oci_registry: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scaffold", f"{oci_registry.address}/cli/missing:v9"]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("shoal: cannot resolve") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("guest", "trigger", "export", "streams"),
    [
        ("cli-component-py", "job", "wasi:cli/run@0.2.0", "wasi:io/streams@0.2.0"),
        ("hello-component-py", "http", "wasi:http/incoming-handler@0.2.0", "wasi:io/streams@0.2.0"),
        # componentize-js's engine speaks wasi:http 0.2.10; its preview 1 adapter wasi:io 0.2.12.
        ("hello-component-js", "http", "wasi:http/incoming-handler@0.2.10", "wasi:io/streams@0.2.12"),
    ],
)
def test_push_describes_a_component_and_scaffold_picks_its_trigger(
    oci_registry: Registry,
    component_guests: Path,
    capsys: pytest.CaptureFixture[str],
    guest: str,
    trigger: str,
    export: str,
    streams: str,
) -> None:
    ref = f"{oci_registry.address}/cli/{guest}:v1"
    assert main(["push", str(component_guests / f"{guest}.wasm"), ref]) == 0
    digest = capsys.readouterr().out.strip()
    config = asyncio.run(Resolver().wasm_config(ref))
    assert config is not None and config["os"] == "wasip2"
    assert export in config["component"]["exports"]
    assert streams in config["component"]["imports"]

    assert main(["scaffold", ref]) == 0
    text = capsys.readouterr().out
    app = WasmApp.model_validate(yaml.safe_load(text))
    assert app.spec.trigger.kind == trigger
    assert app.spec.module.image == f"{oci_registry.address}/cli/{guest}@{digest}"
    assert f"a component exporting {', '.join(config['component']['exports'])}" in text
