"""Real guests (clang, Go, wat2wasm via hack/examples/build.sh) in real wasmtime, through the runtime.
The HTTP trigger with the same guests: test_native_http.py."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal_agent.metrics import AgentMetrics
from shoal_agent.runtime import (
    AppLimits,
    AppSpec,
    InvocationRequest,
    LoadedApp,
    NotWasmError,
    Outcome,
    UndeclaredCapabilityError,
    WasmRuntime,
)
from shoal_agent.triggers.job import JobSpec, run_job

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LIMITS = AppLimits(timeout_s=0.3, memory_bytes=32 * 1024 * 1024, stdout_bytes=256 * 1024)


@pytest.fixture(scope="module")
def guests(example_guests: Path) -> Path:
    again = subprocess.run(
        [str(REPO / "hack/examples/build.sh"), str(example_guests)], capture_output=True, text=True
    )
    assert "build " not in again.stdout, "build.sh must be idempotent"
    return example_guests


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[WasmRuntime]:
    with WasmRuntime(AgentMetrics("node-a"), cache_dir=tmp_path / "cache") as rt:
        yield rt


def load(rt: WasmRuntime, guests: Path, name: str, **kw: object) -> LoadedApp:
    spec = AppSpec("ns", name, limits=LIMITS, **kw)  # type: ignore[arg-type]
    return rt.load_app(spec, (guests / f"{name}.wasm").read_bytes())


@pytest.mark.parametrize(("guest", "greeting"), [("hello-c", "C"), ("hello-go", "Go"), ("hello-wat", "WAT")])
def test_hello_guests(runtime: WasmRuntime, guests: Path, guest: str, greeting: str) -> None:
    if not (guests / f"{guest}.wasm").exists():
        pytest.skip(f"{guest} was not built (no toolchain)")
    app = load(runtime, guests, guest)
    result = app.invoke_sync(InvocationRequest(env=[("PATH_INFO", "/x"), ("QUERY_STRING", "q=1")]))
    assert result.outcome is Outcome.OK, result
    assert result.stdout.startswith(b"Content-Type: text/plain\n\nHello from " + greeting.encode())
    if guest != "hello-wat":
        assert result.stdout.endswith(b", /x?q=1\n")


def test_job_exit_codes_and_output(runtime: WasmRuntime, guests: Path) -> None:
    app = load(runtime, guests, "job-c")
    result = app.invoke_sync(InvocationRequest(args=["3", "extra"]))
    assert (result.outcome, result.exit_code) == (Outcome.EXIT, 3)
    assert b"arg[2]=extra" in result.stdout and result.stderr == b"exiting with 3\n"
    assert app.invoke_sync(InvocationRequest(args=["0"])).outcome is Outcome.OK


async def test_job_trigger_retries_real_guest(runtime: WasmRuntime, guests: Path) -> None:
    app = load(runtime, guests, "job-c")
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    job = await run_job(JobSpec(args=("5",), backoff_limit=2), lambda req: runtime.invoke(app, req), sleep)
    assert not job.succeeded and [a.exit_code for a in job.attempts] == [5, 5, 5] and len(slept) == 2


@pytest.mark.parametrize(
    ("guest", "outcome"),
    [
        ("infinite-loop", Outcome.TIMEOUT),
        ("memory-grow", Outcome.OUT_OF_MEMORY),
        ("recursion", Outcome.TRAP),
        ("unreachable", Outcome.TRAP),
        ("stdout-flood", Outcome.STDOUT_LIMIT),
    ],
)
def test_bad_guests_are_contained(runtime: WasmRuntime, guests: Path, guest: str, outcome: Outcome) -> None:
    hello = load(runtime, guests, "hello-c")
    result = load(runtime, guests, guest).invoke_sync(InvocationRequest())
    assert result.outcome is outcome, result
    assert len(result.stdout) <= LIMITS.stdout_bytes
    assert hello.invoke_sync(InvocationRequest()).outcome is Outcome.OK


def test_bad_artifacts_fail_to_load(runtime: WasmRuntime, guests: Path) -> None:
    with pytest.raises(UndeclaredCapabilityError, match=r"shoal:redis\.get"):
        load(runtime, guests, "undeclared-import")
    with pytest.raises(NotWasmError):
        load(runtime, guests, "not-wasm")


def test_restart_loads_from_cache(guests: Path, tmp_path: Path) -> None:
    wasm = (guests / "hello-c.wasm").read_bytes()
    results = []
    for _ in range(2):
        with WasmRuntime(AgentMetrics("n"), cache_dir=tmp_path / "c") as rt:
            app = rt.load_app(AppSpec("ns", "h"), wasm)
            results.append(app.compile_result)
            assert app.invoke_sync(InvocationRequest()).outcome is Outcome.OK
    assert results == ["compiled", "cache_load"]
