"""The `shoal` CLI without a registry: argument handling, file checks, manifests, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

from shoal_api import WasmApp  # noqa: E402
from shoal_cli.__main__ import main  # noqa: E402
from shoal_cli.component import read_world, trigger_for  # noqa: E402
from shoal_cli.errors import CliError  # noqa: E402
from shoal_cli.push import repository_of  # noqa: E402
from shoal_cli.scaffold import SOURCE_ANNOTATION, is_job  # noqa: E402

pytestmark = pytest.mark.unit

MODULE = b"\x00asm\x01\x00\x00\x00"
DIGEST = "sha256:" + "ab" * 32


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("shoal: ") and "Traceback" not in err
    return err


def test_push_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["push", str(tmp_path / "nope.wasm"), "127.0.0.1:1/a/b:v1"]) == 2
    assert "no such file" in one_line_error(capsys)


def test_push_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["push", str(tmp_path), "127.0.0.1:1/a/b:v1"]) == 2
    assert "is a directory" in one_line_error(capsys)


@pytest.mark.parametrize("content", [b"", b"hello world\n", b"\x00asm\x02\x00\x00\x00", b"\x7fELF\x02\x01"])
def test_push_not_wasm(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    path = tmp_path / "app.wasm"
    path.write_bytes(content)
    assert main(["push", str(path), "127.0.0.1:1/a/b:v1"]) == 2
    assert "not a WebAssembly module" in one_line_error(capsys)


def test_push_unreachable_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.wasm"
    path.write_bytes(MODULE)
    # Port 1 on loopback: connection refused at once, no DNS, no timeout.
    assert main(["push", str(path), "127.0.0.1:1/demo/app:v1"]) == 2
    assert "registry unreachable" in one_line_error(capsys)


def test_push_invalid_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.wasm"
    path.write_bytes(MODULE)
    assert main(["push", str(path), "127.0.0.1:1/demo/app@sha256:" + "ab" * 32]) == 2
    assert "reference" in one_line_error(capsys)


def test_push_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["push", str(tmp_path / "a.wasm"), "r/a:v1", "--format", "zip"])
    assert exc.value.code == 2  # argparse's own usage error


@pytest.mark.parametrize(
    ("ref", "repository"),
    [
        ("localhost:5000/demo/app:v1", "localhost:5000/demo/app"),
        ("localhost:5000/demo/app", "localhost:5000/demo/app"),
        ("registry.example/app@" + DIGEST, "registry.example/app"),
        ("registry.example:443/a/b/c:v1@" + DIGEST, "registry.example:443/a/b/c"),
        ("app:latest", "app"),
    ],
)
def test_repository_of(ref: str, repository: str) -> None:
    assert repository_of(ref) == repository


def scaffold(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[WasmApp, str]:
    assert main(["scaffold", *args]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return WasmApp.model_validate(yaml.safe_load(out)), out


def test_scaffold_http_app_without_resolving(capsys: pytest.CaptureFixture[str]) -> None:
    app, text = scaffold(capsys, "registry.example/demo/hello:v1", "--no-resolve", "--replicas", "3")
    assert app.metadata.name == "hello"
    assert app.spec.module.image == "registry.example/demo/hello:v1"
    assert app.spec.replicas == 3
    assert app.spec.trigger.http is not None and app.spec.trigger.http.path == "/hello"
    assert text.startswith("# registry.example/demo/hello:v1 (tag not resolved")
    body = yaml.safe_load(text)
    assert body["apiVersion"] == "shoal.dev/v1alpha1" and body["kind"] == "WasmApp"


def test_scaffold_pinned_reference_needs_no_registry(capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"127.0.0.1:1/demo/job@{DIGEST}"
    app, text = scaffold(
        capsys,
        ref,
        "--name",
        "nightly",
        "--namespace",
        "batch",
        "--job",
        "--memory",
        "64Mi",
        "--timeout",
        "5s",
    )
    assert app.spec.module.image == ref
    assert app.metadata.namespace == "batch"
    assert app.spec.trigger.kind == "job"
    assert app.spec.resources.memory == "64Mi" and app.spec.resources.timeout == "5s"
    assert SOURCE_ANNOTATION not in (app.metadata.annotations or {})
    assert f"resolves to {DIGEST}" in text


def test_scaffold_keeps_replicas_one(capsys: pytest.CaptureFixture[str]) -> None:
    _, text = scaffold(capsys, "r.example/a:v1", "--no-resolve")
    assert yaml.safe_load(text)["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "Bad_Name"], "invalid name"),
        (["--http-path", "no-slash"], "invalid WasmApp: spec.trigger.http.path"),
        (["--replicas", "-1"], "invalid WasmApp: spec.replicas"),
        (["--memory", "lots"], "invalid WasmApp: spec.resources.memory"),
    ],
)
def test_scaffold_invalid_options(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["scaffold", "r.example/a:v1", "--no-resolve", *args]) == 2
    assert message in one_line_error(capsys)


def test_scaffold_unreachable_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scaffold", "127.0.0.1:1/demo/app:v1"]) == 2
    assert "registry unreachable" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("guest", "export", "trigger"),
    [
        ("hello-component-py", "wasi:http/incoming-handler@0.2.0", "http"),
        ("spin-counter-py", "wasi:http/incoming-handler@0.2.0", "http"),
        ("cli-component-py", "wasi:cli/run@0.2.0", "job"),
        ("http-p3", "wasi:http/handler@0.3.0", None),
    ],
)
def test_a_components_world_is_read_with_wasm_tools(
    component_guests: Path, guest: str, export: str, trigger: str | None
) -> None:
    world = read_world(component_guests / f"{guest}.wasm")
    assert export in world.exports
    assert trigger_for(world.exports) == trigger
    if guest == "http-p3":
        assert world.imports == ("wasi:http/types@0.3.0",)
    else:
        assert "wasi:cli/environment@0.2.0" in world.imports and "wasi:io/streams@0.2.0" in world.imports
    assert world.to_config() == {"exports": list(world.exports), "imports": list(world.imports)}


def test_a_core_module_is_not_a_readable_component(tmp_path: Path) -> None:
    path = tmp_path / "core.wasm"
    path.write_bytes(MODULE)
    with pytest.raises(CliError, match="not a readable component"):
        read_world(path)


def test_scaffold_picks_the_trigger_the_exports_support() -> None:
    assert is_job(["wasi:cli/run@0.2.0"]) is True
    assert is_job(["wasi:http/incoming-handler@0.2.3"]) is False
    assert is_job(None) is False  # a core module, or an artifact that does not say: WAGI over HTTP
    with pytest.raises(CliError, match=r"exports neither .* \(it exports wasi:http/handler@0.3.0\)"):
        is_job(["wasi:http/handler@0.3.0"])
