"""Cold-start benchmark (issue 4): a runc container vs. a Wasm instance through the agent, one run.

Side by side, in this order, printing `name=value` lines:
  * `runc_*`: `runc run` of a busybox `echo hi` container (fresh OCI bundle in a temp dir, unique
    container ids, private runc state dir, every container deleted);
  * `bare_*` / `agent_*`: bare wasmtime-py vs. the agent's invoke path (coldstart_core), and
    `speedup_vs_runc` = runc p50 / agent p50;
  * `http_rps` / `aiohttp_rps`: requests per second, fresh instance per request, of the C hello
    through the agent's own servers (`AgentServers` + `HttpRouter`, app mounted as placements do)
    vs. a plain aiohttp hello with the same runner settings, each in its own process, driven by
    `wrk` (else an aiohttp client pool) in another; rounds alternate between the two servers;
  * `rss_per_app_kib`: RSS growth of a fresh agent runtime loading 1,000 distinct small apps.

    .venv/bin/python hack/bench/coldstart.py [--runc-runs 30] [--duration 5] [--apps 1000]

Loopback only; every child process is bounded in time and stopped before exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # hack/: `bench.coldstart_core`, as mypy sees it

from bench.coldstart_core import core_figures, default_wasm, format_figure, percentile  # noqa: E402
from shoal_agent.apps import InFlight  # noqa: E402
from shoal_agent.metrics import AgentMetrics  # noqa: E402
from shoal_agent.routing import app_routes, mount  # noqa: E402
from shoal_agent.runtime import AppSpec, InvocationRequest, InvocationResult, WasmRuntime  # noqa: E402
from shoal_agent.runtime.outcome import Outcome  # noqa: E402
from shoal_agent.server import AgentServers  # noqa: E402
from shoal_agent.triggers import HttpRouter, HttpTarget  # noqa: E402

GOALS = {"agent_overhead": 1.5, "speedup_vs_runc": 100, "http_rps": 2000, "http_ratio": 0.4}
HTTP_PATH = "/hello/bench"
CHILD_TIMEOUT_S = 120.0


def emit(name: str, value: float | str) -> None:
    if isinstance(value, str):
        print(f"{name}={value}", flush=True)
    elif isinstance(value, int) or name.endswith(("_rps", "_kib", "iterations", "_runs")):
        print(f"{name}={value:.0f}", flush=True)
    elif name.endswith(("_ratio", "overhead", "_mib", "speedup_vs_runc")):
        print(f"{name}={value:.2f}", flush=True)
    else:
        print(format_figure(name, value), flush=True)


# --- runc ---------------------------------------------------------------------------------------------


def make_bundle(root: Path) -> Path:
    """An OCI bundle running busybox `echo hi`: read-only rootfs, no terminal, not rootless."""
    bundle = root / "bundle"
    bindir = bundle / "rootfs" / "bin"
    bindir.mkdir(parents=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy2(busybox, bindir / "busybox")
    (bindir / "echo").symlink_to("busybox")
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True, capture_output=True, timeout=30)
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/echo", "hi"]
    config["root"]["readonly"] = True
    config_path.write_text(json.dumps(config, indent=1))
    return bundle


def runc_samples(runs: int, warmup: int) -> tuple[list[float], str]:
    """Wall time of each `runc run`, or ([], why it cannot run here)."""
    if shutil.which("runc") is None:
        return [], "runc not installed (Debian package runc)"
    if os.geteuid() != 0:
        return [], "not root: this benchmark runs runc with rootless off"
    out: list[float] = []
    with tempfile.TemporaryDirectory(prefix="shoal-runc-") as tmp:
        bundle = make_bundle(Path(tmp))
        state = Path(tmp) / "state"  # private --root: nothing left in /run/runc
        base = ["runc", "--root", str(state)]
        ids: list[str] = []
        try:
            for i in range(warmup + runs):
                cid = f"shoal-bench-{os.getpid()}-{i}"
                ids.append(cid)
                t = time.perf_counter()
                proc = subprocess.run(
                    [*base, "run", "--bundle", str(bundle), cid], capture_output=True, timeout=60
                )
                elapsed = time.perf_counter() - t
                if proc.returncode != 0 or proc.stdout != b"hi\n":
                    why = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
                    return [], f"runc run exited {proc.returncode}: {why[-1] if why else 'no output'}"
                if i >= warmup:
                    out.append(elapsed)
                subprocess.run([*base, "delete", "--force", cid], capture_output=True, timeout=30)
        finally:
            leftover = subprocess.run([*base, "list", "-q"], capture_output=True, text=True, timeout=30)
            for cid in leftover.stdout.split():
                subprocess.run([*base, "delete", "--force", cid], capture_output=True, timeout=30)
    return out, ""


# --- HTTP servers (child processes) ---------------------------------------------------------------


async def _serve_until_term() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(CHILD_TIMEOUT_S * 5, stop.set)  # never outlive a crashed parent for long
    await stop.wait()


async def serve_agent(port: int, metrics_port: int, wasm_path: Path) -> None:
    """The agent's HTTP stack with hello-c placed as the agent places an HTTP app."""
    metrics = AgentMetrics("bench")
    with tempfile.TemporaryDirectory(prefix="shoal-bench-cache-") as cache:
        runtime = WasmRuntime(metrics, cache_dir=Path(cache))
        try:
            router = HttpRouter()
            wasm = await asyncio.to_thread(wasm_path.read_bytes)
            loaded = await runtime.load_app_async(AppSpec("bench", "hello"), wasm)
            inflight = InFlight()

            async def invoke(request: InvocationRequest) -> InvocationResult:
                return await runtime.invoke(loaded, request)

            target = HttpTarget("bench", "hello", inflight.wrap(invoke), metrics=loaded.metrics)
            mount(router, target, app_routes("hello", "bench", "/hello", "cluster.local"))
            servers = AgentServers(router, metrics, ready_checks=dict)
            await servers.start(
                http_host="127.0.0.1", http_port=port, metrics_host="127.0.0.1", metrics_port=metrics_port
            )
            try:
                await _serve_until_term()
            finally:
                await servers.stop()
        finally:
            await asyncio.to_thread(runtime.close)


async def serve_aiohttp(port: int) -> None:
    """A plain aiohttp hello, run with the agent's runner settings."""
    from aiohttp import web

    body = b"Hello from aiohttp, /bench\n"

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await _serve_until_term()
    finally:
        await runner.cleanup()


async def client_pool(url: str, connections: int, duration: float) -> dict[str, float]:
    """Fallback load generator: `connections` keep-alive clients in a loop for `duration` seconds."""
    import aiohttp

    done = errors = 0
    deadline = time.perf_counter() + duration

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            async with session.get(url) as resp:
                await resp.read()
                done += 1
                errors += resp.status != 200

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.perf_counter() - start
    return {"rps": done / elapsed, "non_2xx": errors, "requests": done}


# --- HTTP driver (parent) -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def server_process(args: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """This script in `--role` server mode; yields once the port accepts, always stops it."""
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server {args} exited with {proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server {args} did not listen on {port} within 60s")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def load(url: str, connections: int, duration: float) -> dict[str, float]:
    """Requests/s against `url` from another process: wrk if present, else the aiohttp client pool."""
    if shutil.which("wrk"):
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", url]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
        rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
        requests = re.search(r"(\d+) requests in", out)
        non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
        socket_errors = re.search(r"Socket errors:.*", out)
        if rps is None or requests is None:
            raise RuntimeError(f"cannot parse wrk output:\n{out}")
        return {
            "rps": float(rps.group(1)),
            "requests": float(requests.group(1)),
            "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
            "socket_errors": 1.0 if socket_errors else 0.0,
        }
    cmd = [sys.executable, __file__, "--role", "client", "--url", url]
    cmd += ["--connections", str(connections), "--duration", str(duration)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    result: dict[str, float] = json.loads(out)
    return result


def http_figures(
    wasm: Path, duration: float, warmup: float, rounds: int, connections: int
) -> dict[str, float]:
    agent_port, metrics_port, plain_port = free_port(), free_port(), free_port()
    agent_url = f"http://127.0.0.1:{agent_port}{HTTP_PATH}"
    plain_url = f"http://127.0.0.1:{plain_port}{HTTP_PATH}"
    agent_args = ["--role", "agent", "--port", str(agent_port), "--metrics-port", str(metrics_port)]
    agent_args += ["--wasm", str(wasm)]
    agent: list[dict[str, float]] = []
    plain: list[dict[str, float]] = []
    with (
        server_process(agent_args, agent_port),
        server_process(["--role", "aiohttp", "--port", str(plain_port)], plain_port),
    ):
        with urllib.request.urlopen(agent_url, timeout=10) as resp:
            body = resp.read()
        if not body.startswith(b"Hello from C"):
            raise RuntimeError(f"agent answered {body!r}")
        load(agent_url, connections, warmup)
        load(plain_url, connections, warmup)
        for _ in range(rounds):  # alternate so background load hits both alike
            agent.append(load(agent_url, connections, duration))
            plain.append(load(plain_url, connections, duration))
    best_agent = max(agent, key=lambda r: r["rps"])
    best_plain = max(plain, key=lambda r: r["rps"])
    return {
        "http_rps": best_agent["rps"],
        "aiohttp_rps": best_plain["rps"],
        "http_ratio": best_agent["rps"] / best_plain["rps"],
        "http_non_2xx": int(sum(r["non_2xx"] for r in agent + plain)),
        "http_connections": connections,
        "http_seconds_per_round": duration,
    }


# --- RSS per app (child process) --------------------------------------------------------------------


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def hello_wat(i: int) -> str:
    text = f"Content-Type: text/plain\\n\\nHello from app {i:05d}\\n"
    length = len(text.replace("\\n", "\n"))
    return f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{text}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const {length}))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def rss_child(apps: int) -> dict[str, float]:
    """Load `apps` distinct modules (compiled, disk-cached, linked, pre-instantiated, invoked once)."""
    import wasmtime

    modules = [bytes(wasmtime.wat2wasm(hello_wat(i))) for i in range(apps + 1)]
    with tempfile.TemporaryDirectory(prefix="shoal-bench-rss-") as cache:
        runtime = WasmRuntime(AgentMetrics("bench"), cache_dir=Path(cache))
        try:
            # One app first: one-time costs (compiler, WASI, metric families) are not per app.
            runtime.load_app(AppSpec("bench", "warm"), modules[0]).invoke_sync(InvocationRequest())
            gc.collect()
            before = rss_kib()
            for i in range(1, apps + 1):
                app = runtime.load_app(AppSpec("bench", f"app-{i}"), modules[i])
                result = app.invoke_sync(InvocationRequest())
                if result.outcome is not Outcome.OK or f"app {i:05d}".encode() not in result.stdout:
                    raise RuntimeError(f"app {i}: {result}")
            gc.collect()
            after = rss_kib()
            loaded = sum(1 for i in range(1, apps + 1) if runtime.get("bench", f"app-{i}") is not None)
        finally:
            runtime.close()
    return {"before_kib": before, "after_kib": after, "apps": loaded}


def rss_figures(apps: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--role", "rss", "--apps", str(apps)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S * 5, check=True)
    child = json.loads(out.stdout)
    return {
        "rss_apps": int(child["apps"]),
        "rss_per_app_kib": (child["after_kib"] - child["before_kib"]) / child["apps"],
        "rss_total_mib": child["after_kib"] / 1024,
    }


# --- main ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wasm", type=Path, help="the C hello guest (built if absent)")
    parser.add_argument("--runc-runs", type=int, default=30)
    parser.add_argument("-n", type=int, default=5000, help="bare/agent iterations")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per HTTP round")
    parser.add_argument("--http-warmup", type=float, default=1.0)
    parser.add_argument("--http-rounds", type=int, default=2, help="per server; best round counts")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--skip", action="append", default=[], choices=["runc", "core", "http", "rss"])
    parser.add_argument("--role", choices=["agent", "aiohttp", "client", "rss"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--metrics-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    opts = parser.parse_args()

    if opts.role == "agent":
        asyncio.run(serve_agent(opts.port, opts.metrics_port, opts.wasm))
        return
    if opts.role == "aiohttp":
        asyncio.run(serve_aiohttp(opts.port))
        return
    if opts.role == "client":
        print(json.dumps(asyncio.run(client_pool(opts.url, opts.connections, opts.duration))))
        return
    if opts.role == "rss":
        print(json.dumps(rss_child(opts.apps)))
        return

    wasm = opts.wasm or default_wasm()
    figures: dict[str, float] = {}
    if "runc" not in opts.skip:
        samples, error = runc_samples(opts.runc_runs, warmup=3)
        if samples:
            figures["runc_p50_ms"] = percentile(samples, 0.5) * 1e3
            figures["runc_p99_ms"] = percentile(samples, 0.99) * 1e3
            emit("runc_runs", len(samples))
        else:
            figures["runc_p50_ms"] = figures["runc_p99_ms"] = math.nan
            emit("runc_error", json.dumps(error))
        emit("runc_p50_ms", figures["runc_p50_ms"])
        emit("runc_p99_ms", figures["runc_p99_ms"])
    if "core" not in opts.skip:
        core = core_figures(wasm.read_bytes(), opts.n)
        for name, value in core.items():
            emit(name, value)
        figures.update(core)
        if "runc_p50_ms" in figures:
            figures["speedup_vs_runc"] = figures["runc_p50_ms"] * 1e3 / core["agent_p50_us"]
            emit("speedup_vs_runc", figures["speedup_vs_runc"])
    if "http" not in opts.skip:
        http = http_figures(wasm, opts.duration, opts.http_warmup, opts.http_rounds, opts.connections)
        emit("http_load_generator", "wrk" if shutil.which("wrk") else "aiohttp-client-pool")
        for name, value in http.items():
            emit(name, value)
        figures.update(http)
    if "rss" not in opts.skip:
        rss = rss_figures(opts.apps)
        for name, value in rss.items():
            emit(name, value)
        figures.update(rss)
    goals = {"rss_per_app_kib": 1024.0, **GOALS}
    missed = [
        name
        for name, goal in goals.items()
        if name in figures
        and not (
            figures[name] <= goal if name in ("agent_overhead", "rss_per_app_kib") else figures[name] >= goal
        )
    ]
    emit("goals_missed", ",".join(missed) or "none")


if __name__ == "__main__":
    main()
