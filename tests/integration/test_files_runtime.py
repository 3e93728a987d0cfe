"""`spec.files` in the data plane: a real C guest (hack/examples/cat-file) in real wasmtime sees its
read-only directories and its scratch directory, and nothing else of the host; so do a Python
`wasi:cli/run` component and a Python `wasi:http/proxy` component (served by the native listener)
through wasi:filesystem."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from harness.loopback import get
from shoal_agent.metrics import AgentMetrics
from shoal_agent.runtime import (
    AppLimits,
    AppSpec,
    InvocationRequest,
    InvocationResult,
    LoadedApp,
    WasmRuntime,
)
from shoal_agent.serving import Serving

pytestmark = pytest.mark.integration

LIMITS = AppLimits(timeout_s=2.0, memory_bytes=32 * 1024 * 1024, stdout_bytes=256 * 1024)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[WasmRuntime]:
    with WasmRuntime(AgentMetrics("node-a"), cache_dir=tmp_path / "cache") as rt:
        yield rt


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A host tree: `data/` is shown to the guest, `secret.txt` beside it must stay invisible."""
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "hello.txt").write_text("hello from the data dir\n")
    (tmp_path / "data" / "sub" / "deep.txt").write_text("deep\n")
    (tmp_path / "secret.txt").write_text("host secret\n")
    (tmp_path / "data" / "escape").symlink_to(tmp_path / "secret.txt")
    return tmp_path


def load(rt: WasmRuntime, guests: Path, **kw: object) -> LoadedApp:
    spec = AppSpec("ns", "cat-file", limits=LIMITS, **kw)  # type: ignore[arg-type]
    return rt.load_app(spec, (guests / "cat-file.wasm").read_bytes())


def run(app: LoadedApp, *args: str) -> InvocationResult:
    return app.invoke_sync(InvocationRequest(args=list(args)))


def body(result: InvocationResult) -> str:
    out = result.stdout.decode()
    return out.split("\r\n\r\n", 1)[-1] if "\r\n\r\n" in out else out.split("\n\n", 1)[-1]


def test_a_guest_reads_its_mounts_and_nothing_else(
    runtime: WasmRuntime, example_guests: Path, host: Path
) -> None:
    app = load(runtime, example_guests, mounts=((str(host / "data"), "/data"),))
    assert body(run(app, "/data/hello.txt")) == "hello from the data dir\n"
    assert body(run(app, "/data/sub/deep.txt")) == "deep\n"
    assert sorted(body(run(app, "ls", "/data")).split()) == ["escape", "hello.txt", "sub"]
    for outside in (
        "/data/../secret.txt",
        "/data/sub/../../secret.txt",
        "/data/escape",  # a symlink out of the tree
        str(host / "secret.txt"),
        "/etc/passwd",
        "../secret.txt",
    ):
        result = run(app, outside)
        assert result.stdout.startswith(b"Status: 404"), (outside, result)
        assert "host secret" not in result.stdout.decode(), outside
        assert f"cannot open {outside}:" in body(result), (outside, body(result))
    # Read-only: no file can be made in a mount.
    assert body(run(app, "write", "/data/new.txt", "10")).startswith("cannot create /data/new.txt:")
    assert not (host / "data" / "new.txt").exists()


def test_without_files_there_is_no_filesystem(runtime: WasmRuntime, example_guests: Path) -> None:
    app = load(runtime, example_guests)
    assert body(run(app, "/etc/passwd")).startswith("cannot open /etc/passwd:")
    assert body(run(app, "ls", "/")).startswith("cannot list /:")


def test_scratch_is_fresh_per_invocation_bounded_and_removed(
    runtime: WasmRuntime, example_guests: Path, tmp_path: Path
) -> None:
    root = tmp_path / "scratch"
    app = load(runtime, example_guests, scratch=("/tmp", 64 * 1024, str(root)))
    first = run(app, "write", "/tmp/a.txt", "1000")
    assert body(first) == "wrote 1000 bytes to /tmp/a.txt\n", first
    # The next invocation starts empty, and nothing is left on the host.
    assert body(run(app, "ls", "/tmp")) == ""
    assert list(root.iterdir()) == []
    over = run(app, "write", "/tmp/big.bin", str(1024 * 1024))
    assert over.outcome.value == "trap", over
    assert "scratch directory /tmp holds" in over.message and "bound of 65536 bytes" in over.message, over
    assert list(root.iterdir()) == []
    # A guest that goes on writing is stopped while it runs (measured every 5 ms), long before the end.
    flood = run(app, "write", "/tmp/flood.bin", str(1 << 30))
    assert flood.outcome.value == "trap", flood
    held = int(flood.message.split(" holds ", 1)[1].split(" bytes", 1)[0])
    assert 65536 < held < 256 * 1024 * 1024, flood.message
    assert list(root.iterdir()) == []


def test_a_missing_mount_fails_the_load(runtime: WasmRuntime, example_guests: Path, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="the directory for /data"):
        load(runtime, example_guests, mounts=((str(tmp_path / "absent"), "/data"),))


def load_component(rt: WasmRuntime, wasm: Path, host: Path) -> LoadedApp:
    """A Python component (CPython in it: about 12 MiB per instance) with the host's `data/` at /data."""
    limits = AppLimits(timeout_s=10.0, memory_bytes=64 * 1024 * 1024)
    spec = AppSpec("ns", wasm.stem, limits=limits, mounts=((str(host / "data"), "/data"),))
    return rt.load_app(spec, wasm.read_bytes())


def test_a_component_reads_its_mounts_through_wasi_filesystem(
    runtime: WasmRuntime, component_guests: Path, host: Path
) -> None:
    app = load_component(runtime, component_guests / "cli-component-py.wasm", host)
    assert app.kind == "command"
    assert body(run(app, "cat", "/data/hello.txt")) == "hello from the data dir\n"
    for outside in ("/data/../secret.txt", "/data/escape", str(host / "secret.txt"), "/etc/passwd"):
        text = body(run(app, "cat", outside))
        assert text.startswith(f"cannot open {outside}:"), (outside, text)


def test_a_wasi_http_component_reads_its_mounts_through_wasi_filesystem(
    runtime: WasmRuntime, component_guests: Path, host: Path
) -> None:
    app = load_component(runtime, component_guests / "hello-component-py.wasm", host)
    assert app.kind == "proxy"
    serving = Serving(runtime)
    port = serving.listen("127.0.0.1", 0)
    try:
        serving.mount_http(app, "/py")

        def cat(path: str) -> tuple[int, str]:
            return get(port, "/py?cat=" + quote(path, safe=""))

        assert cat("/data/hello.txt") == (200, "hello from the data dir\n")
        assert cat("/data/sub/deep.txt") == (200, "deep\n")
        for outside in (
            "/data/../secret.txt",
            "/data/escape",  # a symlink out of the tree
            str(host / "secret.txt"),
            "/etc/passwd",
        ):
            status, text = cat(outside)
            assert status == 404 and text.startswith(f"cannot open {outside}:"), (outside, status, text)
            assert "host secret" not in text
    finally:
        serving.stop_listening()
