"""Cold-start benchmark, core part: bare wasmtime-py vs. the agent's invoke path, one process.

Both sides instantiate a fresh instance per iteration from an InstancePre and run `_start` of the
C hello guest. The bare side discards stdout (no WASI stdio configured); the agent side captures
it, applies memory limits, epoch deadline, env and argv, and records metrics, exactly as serving
does. `agent_async_*` adds the event-loop -> worker-thread hop of `WasmRuntime.invoke`.

    python hack/bench/coldstart_core.py [--wasm PATH] [-n N] [--warmup N]

Prints `name=value` lines. Builds the examples with hack/examples/build.sh if PATH is absent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "node-agent"))

from shoal_agent.metrics import AgentMetrics  # noqa: E402
from shoal_agent.runtime import AppSpec, InvocationRequest, WasmRuntime  # noqa: E402
from shoal_agent.runtime.outcome import Outcome  # noqa: E402


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


def bare_loop(engine: wasmtime.Engine, wasm: bytes) -> Callable[[], object]:
    module = wasmtime.Module(engine, wasm)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    pre = linker.instantiate_pre(module)

    def run() -> None:
        store = wasmtime.Store(engine)
        store.set_wasi(wasmtime.WasiConfig())
        store.set_epoch_deadline(1_000_000)
        instance = pre.instantiate(store)
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        try:
            start(store)
        except wasmtime.ExitTrap as e:
            assert e.code == 0

    return run


async def async_samples(runtime: WasmRuntime, app: object, n: int, warmup: int) -> list[float]:
    req = InvocationRequest(env=[("PATH_INFO", "/bench")])
    out = []
    for i in range(warmup + n):
        t = time.perf_counter()
        result = await runtime.invoke(app, req)  # type: ignore[arg-type]
        if i >= warmup:
            out.append(time.perf_counter() - t)
        assert result.outcome is Outcome.OK, result
    return out


def core_figures(wasm: bytes, n: int = 5000, warmup: int = 500, rounds: int = 3) -> dict[str, float]:
    """bare/agent/agent_async figures (microseconds, `iterations`, `agent_overhead`) in one process."""
    with tempfile.TemporaryDirectory() as cache, WasmRuntime(AgentMetrics("bench"), Path(cache)) as runtime:
        app = runtime.load_app(AppSpec("bench", "hello-c"), wasm)
        req = InvocationRequest(env=[("PATH_INFO", "/bench")])
        probe = app.invoke_sync(req)
        assert probe.outcome is Outcome.OK and probe.stdout.startswith(b"Content-Type"), probe
        bare = bare_loop(runtime.engine, wasm)  # same engine (epoch interruption on) for both
        bare_s: list[float] = []
        agent_s: list[float] = []
        for _ in range(rounds):  # interleave so background load hits both sides alike
            bare_s += measure(bare, n // rounds, warmup)
            agent_s += measure(lambda: app.invoke_sync(req), n // rounds, warmup)
        async_s = asyncio.run(async_samples(runtime, app, n // rounds, warmup))

    us = 1e6
    bare_p50, agent_p50 = percentile(bare_s, 0.5), percentile(agent_s, 0.5)
    return {
        "iterations": len(bare_s),
        "bare_p50_us": bare_p50 * us,
        "bare_p99_us": percentile(bare_s, 0.99) * us,
        "agent_p50_us": agent_p50 * us,
        "agent_p99_us": percentile(agent_s, 0.99) * us,
        "agent_overhead": agent_p50 / bare_p50,
        "agent_async_p50_us": percentile(async_s, 0.5) * us,
        "agent_async_p99_us": percentile(async_s, 0.99) * us,
        "agent_mean_us": statistics.fmean(agent_s) * us,
    }


def format_figure(name: str, value: float) -> str:
    """`name=value`: counts as integers, ratios to 2 decimals, times to 1."""
    if name == "iterations":
        return f"{name}={value:.0f}"
    if name.endswith("overhead"):
        return f"{name}={value:.2f}"
    return f"{name}={value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wasm", type=Path)
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="alternate bare/agent rounds; best p50 wins")
    opts = parser.parse_args()
    wasm = (opts.wasm or default_wasm()).read_bytes()
    figures = core_figures(wasm, opts.n, opts.warmup, opts.rounds)
    for name, value in figures.items():
        print(format_figure(name, value))


if __name__ == "__main__":
    main()
