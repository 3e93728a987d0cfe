"""Runtime core (the native data plane) with WAT guests: containment, cache reuse, host functions,
admission and the fair queue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import shoal_dataplane

from shoal_agent.metrics import AgentMetrics
from shoal_agent.runtime import (
    AppLimits,
    AppSpec,
    HostFunction,
    HostFunctionRegistry,
    InvocationRequest,
    NotWasmError,
    Outcome,
    UndeclaredCapabilityError,
    UnknownImportError,
    WasmRuntime,
)
from shoal_agent.runtime.errors import DigestMismatchError, InvalidWasmError
from shoal_agent.runtime.module_cache import sha256_digest

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "hack" / "examples"
FAST = AppLimits(timeout_s=0.2, memory_bytes=4 * 1024 * 1024, stdout_bytes=64 * 1024)


def wat(name: str) -> bytes:
    path = EXAMPLES / "bad" / f"{name}.wat"
    if not path.exists():
        path = EXAMPLES / name / "hello.wat"
    return w2w(path.read_text())


HELLO = "hello-wat"


def w2w(text: str) -> bytes:
    return shoal_dataplane.wat2wasm(text)


ECHO_STDIN_ENV_ARGS = """
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $n i32)
    ;; echo stdin (up to 1000 bytes) to stdout
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 1000))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    ;; and "ERR" to stderr
    (i32.store8 (i32.const 2000) (i32.const 69))
    (i32.store (i32.const 0) (i32.const 2000))
    (i32.store (i32.const 4) (i32.const 1))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    ;; exit code = 10 * env count + arg count
    (drop (call $env_sizes (i32.const 16) (i32.const 20)))
    (drop (call $args_sizes (i32.const 24) (i32.const 28)))
    (call $exit (i32.add (i32.mul (i32.load (i32.const 16)) (i32.const 10)) (i32.load (i32.const 24))))))
"""


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[WasmRuntime]:
    with WasmRuntime(AgentMetrics("node-a"), cache_dir=tmp_path / "cache", tick_ms=2) as rt:
        yield rt


def load(rt: WasmRuntime, name: str, wasm: bytes, **kw: object) -> object:
    return rt.load_app(AppSpec("ns", name, limits=FAST, **kw), wasm)  # type: ignore[arg-type]


def sample(rt: WasmRuntime, metric: str, **labels: str) -> float:
    value = rt.metrics.registry.get_sample_value(metric, labels)
    return value or 0.0


def test_hello_runs_and_captures_stdout(runtime: WasmRuntime) -> None:
    app = runtime.load_app(AppSpec("ns", "hello"), wat(HELLO))
    result = app.invoke_sync(InvocationRequest())
    assert result.outcome is Outcome.OK, result
    assert result.exit_code == 0
    assert result.stdout == b"Content-Type: text/plain\n\nHello from WAT\n"
    assert (
        sample(runtime, "shoal_invocations_total", namespace="ns", app="hello", node="node-a", outcome="ok")
        == 1
    )
    labels = {"namespace": "ns", "app": "hello", "node": "node-a"}
    assert sample(runtime, "shoal_instance_start_seconds_count", **labels) == 1
    assert sample(runtime, "shoal_instances_active", **labels) == 0


def test_an_unloaded_app_leaves_the_scrape_and_returns_with_its_counts(runtime: WasmRuntime) -> None:
    """The data plane keeps every app's counters; the agent exports the loaded apps' only."""
    labels = {"namespace": "ns", "app": "hello", "node": "node-a", "outcome": "ok"}
    app = runtime.load_app(AppSpec("ns", "hello"), wat(HELLO))
    app.invoke_sync(InvocationRequest())
    runtime.unload("ns", "hello")
    assert runtime.metrics.registry.get_sample_value("shoal_invocations_total", labels) is None
    runtime.load_app(AppSpec("ns", "hello"), wat(HELLO))
    assert sample(runtime, "shoal_invocations_total", **labels) == 1, "a counter never goes back"


def test_stdin_env_args_and_stderr_are_exactly_what_was_declared(runtime: WasmRuntime) -> None:
    app = runtime.load_app(
        AppSpec("ns", "echo", env={"A": "1", "B": "2"}, args=("x",)), w2w(ECHO_STDIN_ENV_ARGS)
    )
    result = app.invoke_sync(InvocationRequest(stdin=b"ping", env=[("C", "3")]))
    assert result.stdout == b"ping"
    assert result.stderr == b"E"
    # 3 env vars (2 declared + 1 per request, none inherited from the agent), argv = [name, "x"]
    assert (result.outcome, result.exit_code) == (Outcome.EXIT, 32)
    result = app.invoke_sync(InvocationRequest(args=["p", "q", "r"]))
    assert result.exit_code == 24


@pytest.mark.parametrize(
    ("guest", "outcome", "message"),
    [
        ("infinite-loop", Outcome.TIMEOUT, "deadline"),
        ("memory-grow", Outcome.OUT_OF_MEMORY, "memory limit"),
        ("recursion", Outcome.TRAP, "stack overflow"),
        ("unreachable", Outcome.TRAP, "unreachable"),
        ("stdout-flood", Outcome.STDOUT_LIMIT, "stdout limit"),
    ],
)
def test_bad_guest_is_contained(runtime: WasmRuntime, guest: str, outcome: Outcome, message: str) -> None:
    bad = load(runtime, guest, wat(guest))
    result = bad.invoke_sync(InvocationRequest())  # type: ignore[attr-defined]
    assert result.outcome is outcome, result
    assert message in result.message
    if outcome is Outcome.STDOUT_LIMIT:
        assert len(result.stdout) == FAST.stdout_bytes and result.stdout_truncated
    if outcome is Outcome.TIMEOUT:
        assert FAST.timeout_s <= result.duration_seconds < FAST.timeout_s + 0.5
    # The runtime keeps serving another app.
    good = runtime.load_app(AppSpec("ns", "hello"), wat(HELLO))
    assert good.invoke_sync(InvocationRequest()).outcome is Outcome.OK


def test_initial_memory_above_limit_is_out_of_memory(runtime: WasmRuntime) -> None:
    big = w2w('(module (memory (export "memory") 200) (func (export "_start")))')
    result = load(runtime, "big", big).invoke_sync(InvocationRequest())  # type: ignore[attr-defined]
    assert result.outcome is Outcome.OUT_OF_MEMORY, result


def test_missing_start_export_is_a_load_error(runtime: WasmRuntime) -> None:
    # Found when the app loads (its placement fails and says why), not at every invocation.
    lib = w2w('(module (memory (export "memory") 1))')
    with pytest.raises(InvalidWasmError, match='no "_start" export'):
        load(runtime, "lib", lib)


def test_not_wasm_and_invalid_wasm_are_load_errors(runtime: WasmRuntime) -> None:
    with pytest.raises(NotWasmError, match="not a WebAssembly module"):
        runtime.load_app(AppSpec("ns", "txt"), (EXAMPLES / "bad" / "not-wasm.txt").read_bytes())
    with pytest.raises(NotWasmError):
        runtime.load_app(AppSpec("ns", "empty"), b"")
    with pytest.raises(InvalidWasmError):
        runtime.load_app(AppSpec("ns", "trunc"), wat(HELLO)[:-5])
    with pytest.raises(DigestMismatchError):
        runtime.load_app(AppSpec("ns", "dig"), wat(HELLO), digest="sha256:" + "0" * 64)


def test_undeclared_capability_import_fails_naming_it(runtime: WasmRuntime) -> None:
    with pytest.raises(UndeclaredCapabilityError) as info:
        runtime.load_app(AppSpec("ns", "redis-user"), wat("undeclared-import"))
    assert "shoal:redis.get" in str(info.value) and "'redis'" in str(info.value)
    assert info.value.capability == "redis"
    # Declared, but this agent has no implementation: still a clear load error.
    with pytest.raises(UnknownImportError, match=r"shoal:redis\.get"):
        runtime.load_app(AppSpec("ns", "r2", capabilities=frozenset({"redis"})), wat("undeclared-import"))
    odd = w2w('(module (import "env" "mystery" (func)) (func (export "_start")))')
    with pytest.raises(UnknownImportError, match=r"env\.mystery"):
        runtime.load_app(AppSpec("ns", "odd"), odd)


def test_declared_capability_host_function_is_linked(tmp_path: Path) -> None:
    calls: list[tuple[int, int, int]] = []

    def fake_get(call: object, key_ptr: int, key_len: int, out_ptr: int) -> int:
        calls.append((key_ptr, key_len, out_ptr))
        call.write(out_ptr, b"OK")  # type: ignore[attr-defined]
        return 2

    def failing(call: object, *_args: int) -> int:
        raise RuntimeError("redis is down")

    registry = HostFunctionRegistry()
    registry.register(HostFunction("redis", "get", ("i32", "i32", "i32"), ("i32",), fake_get))
    guest = """
    (module
      (import "shoal:redis" "get" (func $get (param i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 64))
        (i32.store (i32.const 4) (call $get (i32.const 1) (i32.const 2) (i32.const 64)))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
    """
    with WasmRuntime(AgentMetrics("n"), cache_dir=None, host_functions=registry) as rt:
        app = rt.load_app(AppSpec("ns", "r", capabilities=frozenset({"redis"})), w2w(guest))
        result = app.invoke_sync(InvocationRequest())
        assert (result.outcome, result.stdout, calls) == (Outcome.OK, b"OK", [(1, 2, 64)])

    registry2 = HostFunctionRegistry()
    registry2.register(HostFunction("redis", "get", ("i32", "i32", "i32"), ("i32",), failing))
    with WasmRuntime(AgentMetrics("n"), cache_dir=None, host_functions=registry2) as rt:
        app = rt.load_app(AppSpec("ns", "r", capabilities=frozenset({"redis"})), w2w(guest))
        result = app.invoke_sync(InvocationRequest())
        assert result.outcome is Outcome.TRAP
        assert "shoal:redis.get" in result.message and "redis is down" in result.message


def test_module_cache_survives_a_new_runtime_and_discards_corruption(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    wasm = wat(HELLO)
    with WasmRuntime(AgentMetrics("n"), cache_dir=cache) as first:
        assert first.load_app(AppSpec("ns", "h"), wasm).compile_result == "compiled"
        assert first.load_app(AppSpec("ns", "h"), wasm).compile_result == "memory"
        compiled = sample(
            first, "shoal_module_compile_seconds_count", namespace="ns", app="h", node="n", result="compiled"
        )
        assert compiled == 1
    files = list(cache.glob("*.cwasm"))
    assert len(files) == 1 and files[0].name.startswith(sha256_digest(wasm).split(":")[1])
    assert not list(cache.glob(".tmp-*"))

    with WasmRuntime(AgentMetrics("n"), cache_dir=cache) as second:
        app = second.load_app(AppSpec("ns", "h"), wasm)
        assert app.compile_result == "cache_load"
        assert app.invoke_sync(InvocationRequest()).outcome is Outcome.OK
        assert (
            sample(
                second,
                "shoal_module_compile_seconds_count",
                namespace="ns",
                app="h",
                node="n",
                result="cache_load",
            )
            == 1
        )

    blob = bytearray(files[0].read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    files[0].write_bytes(bytes(blob))
    with WasmRuntime(AgentMetrics("n"), cache_dir=cache) as third:
        app = third.load_app(AppSpec("ns", "h"), wasm)
        assert app.compile_result == "compiled"
        assert app.invoke_sync(InvocationRequest()).outcome is Outcome.OK
    files[0].write_bytes(b"garbage")
    with WasmRuntime(AgentMetrics("n"), cache_dir=cache) as fourth:
        assert fourth.load_app(AppSpec("ns", "h"), wasm).compile_result == "compiled"


async def test_async_invoke_runs_off_loop_and_reports_busy(runtime: WasmRuntime) -> None:
    import asyncio

    limits = AppLimits(timeout_s=0.3, max_concurrency=1, max_wait_s=0.02)
    slow = runtime.load_app(AppSpec("ns", "slow", limits=limits), wat("infinite-loop"))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    first = asyncio.create_task(runtime.invoke(slow, InvocationRequest()))
    await asyncio.sleep(0.05)
    second = await runtime.invoke(slow, InvocationRequest())
    assert second.outcome is Outcome.BUSY
    assert (await first).outcome is Outcome.TIMEOUT
    tick_task.cancel()
    assert ticks >= 10  # the loop kept running while the guest spun
    assert (
        sample(runtime, "shoal_invocations_total", namespace="ns", app="slow", node="node-a", outcome="busy")
        == 1
    )
    # The slot came back once the guest finished.
    hello = runtime.load_app(AppSpec("ns", "hello", limits=limits), wat(HELLO))
    results = await asyncio.gather(*(runtime.invoke(hello, InvocationRequest()) for _ in range(3)))
    assert all(r.outcome in (Outcome.OK, Outcome.BUSY) for r in results)
    assert (await runtime.invoke(hello, InvocationRequest())).outcome is Outcome.OK


async def test_a_queued_message_waits_for_a_slot_instead_of_being_busy(runtime: WasmRuntime) -> None:
    import asyncio

    limits = AppLimits(timeout_s=0.2, max_concurrency=1, max_wait_s=0.01)
    slow = runtime.load_app(AppSpec("ns", "slow-queue", limits=limits), wat("infinite-loop"))
    first = asyncio.create_task(runtime.invoke(slow, InvocationRequest()))
    await asyncio.sleep(0.02)
    hurried = await runtime.invoke(slow, InvocationRequest())
    patient = await runtime.invoke(slow, InvocationRequest(max_wait_s=5))
    assert hurried.outcome is Outcome.BUSY
    assert patient.outcome is Outcome.TIMEOUT, "it got the slot when the first ended, and ran"
    assert (await first).outcome is Outcome.TIMEOUT


def test_a_clients_deadline_counts_from_its_arrival(runtime: WasmRuntime) -> None:
    """A request that queues for admission gets only what is left of its deadline: the client
    never waits much past the app's timeout."""
    import concurrent.futures
    import time

    limits = AppLimits(timeout_s=0.3, max_concurrency=1, max_wait_s=0.25)
    slow = runtime.load_app(AppSpec("ns", "slow-deadline", limits=limits), wat("infinite-loop"))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(slow.invoke_sync, InvocationRequest())
        time.sleep(0.1)
        started = time.monotonic()
        second = pool.submit(slow.invoke_sync, InvocationRequest()).result()
        waited = time.monotonic() - started
        assert first.result().outcome is Outcome.TIMEOUT
    # Admitted at ~0.2 s after its arrival when the first ended, it ran out of time at ~0.3 s.
    assert second.outcome is Outcome.TIMEOUT, second
    assert waited < limits.timeout_s + 0.15


def test_memory_budget_refuses_with_a_message_naming_app_limit_and_budget(tmp_path: Path) -> None:
    from shoal_agent.runtime import EngineSettings

    settings = EngineSettings(memory_budget_bytes=10 * 1024 * 1024)
    with WasmRuntime(AgentMetrics("n"), cache_dir=None, settings=settings) as rt:
        limits = AppLimits(timeout_s=0.3, memory_bytes=8 * 1024 * 1024, max_wait_s=0.01)
        slow = rt.load_app(AppSpec("ns", "fat", limits=limits), wat("infinite-loop"))
        import concurrent.futures
        import time

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(slow.invoke_sync, InvocationRequest())
            time.sleep(0.05)
            refused = slow.invoke_sync(InvocationRequest())
            assert running.result().outcome is Outcome.TIMEOUT
        assert refused.outcome is Outcome.BUSY
        assert "ns/fat" in refused.message and str(8 * 1024 * 1024) in refused.message
        assert str(10 * 1024 * 1024) in refused.message and "budget" in refused.message
        assert rt.plane.memory_in_use == 0
        assert slow.invoke_sync(InvocationRequest()).outcome is Outcome.TIMEOUT  # admitted again
        labels = {"namespace": "ns", "app": "fat", "node": "n", "reason": "memory"}
        assert rt.metrics.registry.get_sample_value("shoal_admission_refusals_total", labels) == 1
