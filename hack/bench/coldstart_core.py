"""Cold-start benchmark, core part: one invocation of the C hello driven from Python, one process.

Each iteration is `LoadedApp.invoke_sync`: the native data plane admits it, takes an execution
slot, builds a store, instantiates from the app's InstancePre (pooling allocator, copy-on-write
memory image), runs `_start` with the request's env, captures stdout and records metrics, all
without the GIL. This is the floor under every trigger; HTTP adds the listener and CGI on top
(measured end to end by coldstart.py). `native_async_*` adds the event loop -> waiter thread hop
of `WasmRuntime.invoke` (jobs and queued messages take it).

wasmtime-py cannot be imported next to the data plane (both install trap signal handlers), so
there is no bare-wasmtime comparison any more.

    python hack/bench/coldstart_core.py [--wasm PATH] [-n N] [--warmup N]

Prints `name=value` lines. Builds the examples with hack/examples/build.sh if PATH is absent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
from shoal_agent.metrics import AgentMetrics  # noqa: E402
from shoal_agent.runtime import AppSpec, InvocationRequest, LoadedApp, WasmRuntime  # noqa: E402
from shoal_agent.runtime.outcome import Outcome  # noqa: E402

US = 1e6


def default_wasm() -> Path:
    out = Path(os.environ.get("SHOAL_CACHE") or Path.home() / ".cache" / "shoal") / "examples"
    wasm = out / "hello-c.wasm"
    if not wasm.exists():
        subprocess.run(
            [str(REPO / "hack/examples/build.sh"), str(out)], check=True, stdout=subprocess.DEVNULL
        )
    return wasm


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(fn: Callable[[], object], n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    clock = time.perf_counter
    for _ in range(n):
        t = clock()
        fn()
        out.append(clock() - t)
    return out


async def async_samples(runtime: WasmRuntime, app: LoadedApp, n: int, warmup: int) -> list[float]:
    req = InvocationRequest(env=[("PATH_INFO", "/bench")])
    out = []
    for i in range(warmup + n):
        t = time.perf_counter()
        result = await runtime.invoke(app, req)
        if i >= warmup:
            out.append(time.perf_counter() - t)
        assert result.outcome is Outcome.OK, result
    return out


def core_figures(wasm: bytes, n: int = 5000, warmup: int = 500) -> dict[str, float]:
    """native_invoke/native_async figures (microseconds) and `iterations`, in this process."""
    with tempfile.TemporaryDirectory() as cache, WasmRuntime(AgentMetrics("bench"), Path(cache)) as runtime:
        app = runtime.load_app(AppSpec("bench", "hello-c"), wasm)
        req = InvocationRequest(env=[("PATH_INFO", "/bench")])
        probe = app.invoke_sync(req)
        assert probe.outcome is Outcome.OK and probe.stdout.startswith(b"Content-Type"), probe
        instantiate: list[float] = []

        def once() -> None:
            result = app.invoke_sync(req)
            if result.outcome is not Outcome.OK:
                raise RuntimeError(f"hello-c invocation failed: {result}")
            instantiate.append(result.instantiate_seconds)

        sync_s = measure(once, n, warmup)
        async_s = asyncio.run(async_samples(runtime, app, max(1, n // 5), warmup))

    return {
        "iterations": len(sync_s),
        "native_invoke_p50_us": percentile(sync_s, 0.5) * US,
        "native_invoke_p99_us": percentile(sync_s, 0.99) * US,
        "native_invoke_mean_us": statistics.fmean(sync_s) * US,
        # As the data plane reports it: store setup + instantiate, inside the invocation above.
        "native_instantiate_p50_us": percentile(instantiate[warmup:], 0.5) * US,
        "native_async_p50_us": percentile(async_s, 0.5) * US,
        "native_async_p99_us": percentile(async_s, 0.99) * US,
    }


def format_figure(name: str, value: float) -> str:
    """`name=value`: counts as integers, ratios to 2 decimals, milliseconds to 3, other times to 1."""
    if isinstance(value, int) or name.endswith(("_rps", "_kib")):
        return f"{name}={value:.0f}"
    if name.endswith(("_ratio", "speedup_vs_runc")):
        return f"{name}={value:.2f}"
    if name.endswith("_ms"):
        return f"{name}={value:.3f}"
    return f"{name}={value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wasm", type=Path)
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    opts = parser.parse_args()
    wasm = (opts.wasm or default_wasm()).read_bytes()
    for name, value in core_figures(wasm, opts.n, opts.warmup).items():
        print(format_figure(name, value))


if __name__ == "__main__":
    main()
