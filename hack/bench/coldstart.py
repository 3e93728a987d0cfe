"""Cold-start benchmark: a runc container vs. a Wasm request through the agent's native data plane.

One run prints `name=value` lines, in this order:
  * `runc_*`: wall time of `runc run` of a busybox `echo hi` container (fresh OCI bundle in a temp
    dir, unique container ids, private runc state dir, every container deleted);
  * `native_*`: one invocation of the C hello driven from Python (`LoadedApp.invoke_sync` in a tight
    loop, coldstart_core): admission, slot, instantiate, run, capture, without HTTP;
  * `agent_*`: HTTP at low load, the path a request really takes: `wrk -t1 -c1 --latency` against an
    agent child process (`Serving` + `AgentServers`, hello-c mounted at /hello as a placement does).
    `agent_p50_us` is arrival to response as the agent measures it (its first-byte histogram over
    that run, interpolated within buckets as histogram_quantile does); `agent_rtt_*` is the client's
    round trip (wrk, loopback, kernel), beside `aiohttp_rtt_*` of a plain aiohttp hello;
    `speedup_vs_runc` = runc p50 / agent p50;
  * `http_rps` / `aiohttp_rps`: requests per second (fresh instance per request) of that agent vs. a
    plain aiohttp hello child, same wrk and connections, rounds alternating, best round each;
  * `rss_per_app_kib`: RSS growth of a fresh runtime (in a child) loading 1,000 distinct small apps;
  * `neighbour_*` / `agent_rss_*`: hello's latency (`wrk -t1 -c2 --latency`) on an agent with a
    memory budget, alone and then while a second app on the same agent is kept saturated (more
    wrk connections than its maxConcurrency) by guests that fill their memory limit and spin until
    their deadline; the agent's peak RSS (VmHWM) against its budget, its RSS before and after the
    burst, and the admission refusals from its /metrics.
  * `module_*` / `component_*` / `js_component_*`: the C hello next to the wasi:http components in
    Python (componentize-py) and JavaScript (componentize-js), built by
    hack/examples/build-components.sh, each alone on an agent: compile vs disk-cache load,
    instantiate and first-byte p50 at low load, memory per instance (peak linear memory: p50 and mean
    of shoal_instance_memory_bytes; `component_memory_ratio` the Python component's ratio of the
    means to the module's), req/s at 16 connections;
  * `goals_missed`: the goals (GOALS below) this run did not meet.

    .venv/bin/python hack/bench/coldstart.py [--skip runc|core|http|rss|neighbour|components] [--duration 5]

Needs wrk for the HTTP parts. Loopback only; every child process and wrk run is bounded in time and
stopped before exit. wasmtime-py is never imported here: it cannot share a process with the data
plane (both install trap signal handlers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import shoal_dataplane
from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).resolve().parent
from bench.coldstart_core import core_figures, default_wasm, format_figure, percentile  # noqa: E402
from bench.coldstart_guests import hello_wat, hog_wat  # noqa: E402
from shoal_agent.metrics import AgentMetrics  # noqa: E402
from shoal_agent.runtime import AppLimits, AppSpec, EngineSettings, InvocationRequest, WasmRuntime  # noqa: E402
from shoal_agent.runtime.outcome import Outcome  # noqa: E402
from shoal_agent.server import AgentServers  # noqa: E402
from shoal_agent.serving import Serving  # noqa: E402

MiB = 1024 * 1024
CHILD_TIMEOUT_S = 120.0
HELLO_PATH = "/hello/bench"
NOISY_PATH = "/noisy/bench"
# The hello as a WasmApp with default resources is placed (api/shoal_api/wasmapp.py: 32Mi, 30s, 64).
HELLO_LIMITS = AppLimits(memory_bytes=32 * MiB, timeout_s=30.0, max_concurrency=64)
# The noisy neighbour: few, fat, long guests.
NOISY_LIMITS = AppLimits(memory_bytes=64 * MiB, timeout_s=1.0, max_concurrency=8)
RETAINED_MIB = 32.0
"""RSS the agent may keep after the burst: half of one noisy instance; more means memory stuck."""

Figures = dict[str, float]


@dataclass(frozen=True)
class Goal:
    figure: str
    met: Callable[[Mapping[str, float]], bool]
    needs: tuple[str, ...] = ()


GOALS = (
    Goal("speedup_vs_runc", lambda f: f["speedup_vs_runc"] >= 1000),
    Goal("http_ratio", lambda f: f["http_ratio"] >= 1.0),
    Goal("rss_per_app_kib", lambda f: f["rss_per_app_kib"] <= 1024),
    Goal(
        "neighbour_p99_ms_noisy",
        lambda f: f["neighbour_p99_ms_noisy"] <= 2 * f["neighbour_p99_ms_quiet"],
        ("neighbour_p99_ms_quiet",),
    ),
    Goal(
        "agent_rss_peak_mib",
        lambda f: f["agent_rss_peak_mib"] <= f["agent_memory_budget_mib"] + 64,
        ("agent_memory_budget_mib",),
    ),
    Goal(
        "agent_rss_after_mib",
        lambda f: f["agent_rss_after_mib"] <= f["agent_rss_before_mib"] + RETAINED_MIB,
        ("agent_rss_before_mib",),
    ),
)


def goals_missed(figures: Mapping[str, float]) -> list[str]:
    """Goals whose figures this run measured and did not meet (NaN, e.g. no runc, counts as missed)."""
    return [
        g.figure
        for g in GOALS
        if all(name in figures for name in (g.figure, *g.needs)) and not g.met(figures)
    ]


def emit(name: str, value: float | str) -> None:
    print(f"{name}={value}" if isinstance(value, str) else format_figure(name, value), flush=True)


def emit_all(figures: Mapping[str, float]) -> None:
    for name, value in figures.items():
        emit(name, value)


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
        try:
            for i in range(warmup + runs):
                cid = f"shoal-bench-{os.getpid()}-{i}"
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


def runc_figures(runs: int) -> tuple[Figures, str]:
    samples, error = runc_samples(runs, warmup=3)
    if not samples:
        return {"runc_p50_ms": math.nan, "runc_p99_ms": math.nan}, error
    return {
        "runc_runs": len(samples),
        "runc_p50_ms": percentile(samples, 0.5) * 1e3,
        "runc_p99_ms": percentile(samples, 0.99) * 1e3,
    }, ""


# --- servers (child processes) ------------------------------------------------------------------------


async def _serve_until_term() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(CHILD_TIMEOUT_S * 5, stop.set)  # never outlive a crashed parent for long
    await stop.wait()


async def serve_agent(port: int, metrics_port: int, wasm_path: Path, budget_mib: int, noisy: bool) -> None:
    """The agent's serving stack: hello-c at /hello (and the noisy app at /noisy), as placements
    mount HTTP apps, the data plane's listener on `port`, the ops server (/metrics) on
    `metrics_port`, and a memory budget of `budget_mib`."""
    metrics = AgentMetrics("bench")
    settings = EngineSettings(memory_budget_bytes=budget_mib * MiB)
    with tempfile.TemporaryDirectory(prefix="shoal-bench-cache-") as cache:
        runtime = WasmRuntime(metrics, cache_dir=Path(cache), settings=settings)
        try:
            serving = Serving(runtime)
            wasm = await asyncio.to_thread(wasm_path.read_bytes)
            hello = await serving.load(AppSpec("bench", "hello", limits=HELLO_LIMITS), wasm)
            serving.mount_http(hello, "/hello")
            if noisy:
                hog = shoal_dataplane.wat2wasm(hog_wat(NOISY_LIMITS.memory_bytes))
                app = await serving.load(AppSpec("bench", "noisy", limits=NOISY_LIMITS), hog)
                serving.mount_http(app, "/noisy")
            servers = AgentServers(serving, metrics, ready_checks=dict)
            await servers.start(
                http_host="127.0.0.1", http_port=port, metrics_host="127.0.0.1", metrics_port=metrics_port
            )
            try:
                await _serve_until_term()
            finally:
                await servers.stop()
        finally:
            runtime.interrupt()  # noisy guests still spinning trap now, not at their deadline
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


@dataclass(frozen=True)
class Agent:
    pid: int
    base: str
    metrics_url: str

    def status_kib(self, key: str) -> int:
        """A `kB` line of /proc/<pid>/status, e.g. VmRSS (now) or VmHWM (peak so far)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise RuntimeError(f"no {key} in /proc/{self.pid}/status")

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        text = get(self.metrics_url).decode()
        return [
            (s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        return sum(
            v for n, ls, v in self.samples() if n == name and all(ls.get(k) == x for k, x in labels.items())
        )

    def sum_count(self, name: str, app: str) -> tuple[float, float]:
        """(sum, count) of one app's histogram `name` so far."""
        samples = self.samples()

        def total(series: str) -> float:
            return sum(v for n, ls, v in samples if n == series and ls.get("app") == app)

        return total(name + "_sum"), total(name + "_count")

    def queue_wait(self, app: str) -> tuple[float, float]:
        """(sum of seconds, count) of the app's queue-wait histogram so far."""
        return self.sum_count("shoal_invocation_queue_wait_seconds", app)

    def buckets(self, name: str, app: str) -> list[tuple[float, float]]:
        """(upper bound, cumulative count) of one app's histogram `name`, +Inf last."""
        out = [
            (float(ls["le"]), v)
            for n, ls, v in self.samples()
            if n == name + "_bucket" and ls.get("app") == app
        ]
        return sorted(out)

    def wait_idle(self, timeout: float) -> None:
        """Until no instance runs: guests the load left behind run to their deadline (at most
        `timeout` from now)."""
        deadline = time.monotonic() + timeout
        while self.metric("shoal_instances_active") > 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"agent still runs instances after {timeout}s")
            time.sleep(0.1)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
        return body


@contextlib.contextmanager
def agent_process(wasm: Path, budget_mib: int, noisy: bool = False) -> Iterator[Agent]:
    port, metrics_port = free_port(), free_port()
    args = ["--role", "agent", "--port", str(port), "--metrics-port", str(metrics_port), "--wasm", str(wasm)]
    args += ["--memory-budget-mib", str(budget_mib), *(["--noisy"] if noisy else [])]
    with server_process(args, port) as proc:
        agent = Agent(proc.pid, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics")
        body = get(agent.base + HELLO_PATH)
        if not body.startswith(b"Hello from"):
            raise RuntimeError(f"agent answered {body!r}")
        yield agent


def quantile_between(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> float:
    """The q-quantile of what a histogram observed between two scrapes, interpolated linearly
    within its bucket as Prometheus' histogram_quantile does (NaN without observations)."""
    counts = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for le, cumulative in counts:
        if cumulative >= rank:
            if math.isinf(le):
                return lower
            return lower + (le - lower) * (rank - below) / max(cumulative - below, 1e-12)
        lower, below = le, cumulative
    return lower


def mean_between(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Mean of a histogram's observations between two (sum, count) snapshots."""
    count = after[1] - before[1]
    return (after[0] - before[0]) / count if count else math.nan


# --- wrk ----------------------------------------------------------------------------------------------

UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Wrk:
    """What one wrk run reported; latency percentiles (50, 75, 90, 99) in seconds with --latency."""

    rps: float
    requests: int
    non_2xx: int
    socket_errors: int
    latency: dict[int, float] = field(default_factory=dict)


def wrk_command(url: str, threads: int, connections: int, seconds: int, latency: bool) -> list[str]:
    # --timeout: the noisy app answers only at its 1 s deadline; wrk's default (2 s) is too close.
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, seconds)}s", "--timeout", "10s"]
    return [*cmd, *(["--latency"] if latency else []), url]


def parse_wrk(out: str) -> Wrk:
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    requests = re.search(r"(\d+) requests in", out)
    if rps is None or requests is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    latency = {
        int(m.group(1)): float(m.group(2)) * UNIT_S[m.group(3)]
        for m in re.finditer(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.MULTILINE)
    }
    return Wrk(
        rps=float(rps.group(1)),
        requests=int(requests.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        latency=latency,
    )


def wrk(url: str, threads: int, connections: int, seconds: int, latency: bool = False) -> Wrk:
    cmd = wrk_command(url, threads, connections, seconds, latency)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    result = parse_wrk(out)
    if latency and set(result.latency) != {50, 75, 90, 99}:
        raise RuntimeError(f"no latency distribution in wrk output:\n{out}")
    return result


@contextlib.contextmanager
def wrk_background(url: str, threads: int, connections: int, seconds: int) -> Iterator[Callable[[], Wrk]]:
    """wrk running while the block runs; yields `finish`, which waits for it and parses it. Killed
    if the block leaves without finishing it."""
    cmd = wrk_command(url, threads, connections, seconds, latency=False)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish() -> Wrk:
        out, err = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"wrk exited {proc.returncode}: {err}")
        return parse_wrk(out)

    try:
        yield finish
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=15)


# --- HTTP: latency at low load, throughput vs. aiohttp ------------------------------------------------


def http_figures(
    wasm: Path, duration: int, warmup: int, rounds: int, threads: int, connections: int, latency_s: int
) -> Figures:
    plain_port = free_port()
    plain_url = f"http://127.0.0.1:{plain_port}{HELLO_PATH}"
    budget_mib = EngineSettings().memory_budget_bytes // MiB  # the agent's default (no MEMORY_LIMIT)
    with (
        agent_process(wasm, budget_mib) as agent,
        server_process(["--role", "aiohttp", "--port", str(plain_port)], plain_port),
    ):
        agent_url = agent.base + HELLO_PATH
        # Low load, one connection. `agent_p50_us` is arrival to response as the agent sees it (its
        # first-byte histogram over this run); the client's round trip through wrk and loopback
        # is reported beside it, next to aiohttp's.
        wrk(agent_url, 1, 1, warmup)
        first_byte = "shoal_invocation_first_byte_seconds"
        before = agent.buckets(first_byte, "hello")
        low = wrk(agent_url, 1, 1, latency_s, latency=True)
        after = agent.buckets(first_byte, "hello")
        wrk(plain_url, 1, 1, warmup)
        plain_low = wrk(plain_url, 1, 1, latency_s, latency=True)
        # Throughput: the same wrk and connections against both, alternating so background load
        # hits both alike; the best round of each counts.
        wrk(agent_url, threads, connections, warmup)
        wrk(plain_url, threads, connections, warmup)
        agent_runs: list[Wrk] = []
        plain_runs: list[Wrk] = []
        for _ in range(rounds):
            agent_runs.append(wrk(agent_url, threads, connections, duration))
            plain_runs.append(wrk(plain_url, threads, connections, duration))
    best_agent = max(agent_runs, key=lambda r: r.rps)
    best_plain = max(plain_runs, key=lambda r: r.rps)
    us = 1e6
    return {
        "agent_p50_us": quantile_between(before, after, 0.5) * us,
        "agent_p99_us": quantile_between(before, after, 0.99) * us,
        "agent_rtt_p50_us": low.latency[50] * us,
        "agent_rtt_p99_us": low.latency[99] * us,
        "agent_low_load_rps": low.rps,
        "aiohttp_rtt_p50_us": plain_low.latency[50] * us,
        "aiohttp_rtt_p99_us": plain_low.latency[99] * us,
        "http_rps": best_agent.rps,
        "aiohttp_rps": best_plain.rps,
        "http_ratio": best_agent.rps / best_plain.rps,
        "http_non_2xx": sum(r.non_2xx for r in [low, *agent_runs]),
        "http_socket_errors": sum(r.socket_errors for r in [low, *agent_runs]),
        "aiohttp_non_2xx": sum(r.non_2xx for r in [plain_low, *plain_runs]),
        "http_connections": connections,
        "http_seconds_per_round": duration,
    }


# --- RSS per app (child process) ------------------------------------------------------------------------


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def rss_child(apps: int) -> dict[str, int]:
    """Load `apps` distinct modules (compiled, disk-cached, linked, pre-instantiated, invoked once)."""
    modules = [shoal_dataplane.wat2wasm(hello_wat(i)) for i in range(apps + 1)]
    with tempfile.TemporaryDirectory(prefix="shoal-bench-rss-") as cache:
        runtime = WasmRuntime(AgentMetrics("bench"), cache_dir=Path(cache))
        try:
            # One app first: one-time costs (compiler, WASI, metric families) are not per app.
            runtime.load_app(AppSpec("bench", "warm"), modules[0]).invoke_sync(InvocationRequest())
            before = rss_kib()
            for i in range(1, apps + 1):
                app = runtime.load_app(AppSpec("bench", f"app-{i}"), modules[i])
                result = app.invoke_sync(InvocationRequest())
                if result.outcome is not Outcome.OK or f"app {i:05d}".encode() not in result.stdout:
                    raise RuntimeError(f"app {i}: {result}")
            after = rss_kib()
            loaded = sum(1 for i in range(1, apps + 1) if runtime.get("bench", f"app-{i}") is not None)
        finally:
            runtime.close()
    return {"before_kib": before, "after_kib": after, "apps": loaded}


def rss_figures(apps: int) -> Figures:
    cmd = [sys.executable, __file__, "--role", "rss", "--apps", str(apps)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S * 5, check=True)
    child = json.loads(out.stdout)
    return {
        "rss_apps": int(child["apps"]),
        "rss_per_app_kib": (child["after_kib"] - child["before_kib"]) / child["apps"],
        "rss_total_mib": child["after_kib"] / 1024,
    }


# --- noisy neighbour ------------------------------------------------------------------------------------


@contextlib.contextmanager
def peak_sampler(agent: Agent, every_s: float = 0.02) -> Iterator[list[int]]:
    """Samples the agent's VmRSS while the block runs; yields the list of samples (KiB)."""
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(agent.status_kib("VmRSS"))
            stop.wait(every_s)

    thread = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(timeout=5)


def neighbour_figures(wasm: Path, seconds: int, budget_mib: int, noisy_connections: int) -> Figures:
    """Hello's p99 alone, then beside a saturated memory-and-CPU hog on the same agent."""
    ms = 1e3
    with agent_process(wasm, budget_mib, noisy=True) as agent:
        hello_url, noisy_url = agent.base + HELLO_PATH, agent.base + NOISY_PATH
        wrk(hello_url, 1, 2, 1)  # warm-up
        wait_0 = agent.queue_wait("hello")
        quiet = wrk(hello_url, 1, 2, seconds, latency=True)
        wait_quiet = agent.queue_wait("hello")
        rss_before = agent.status_kib("VmRSS")
        refused_before = {
            (app, reason): agent.metric("shoal_admission_refusals_total", app=app, reason=reason)
            for app in ("hello", "noisy")
            for reason in ("memory", "concurrency")
        }
        settle_s = 2  # the first noisy guests have filled their memory; the queue is full
        with wrk_background(noisy_url, 1, noisy_connections, settle_s + seconds + 1) as finish_noisy:
            time.sleep(settle_s)
            with peak_sampler(agent) as rss_samples:
                noisy = wrk(hello_url, 1, 2, seconds, latency=True)
            wait_noisy = agent.queue_wait("hello")
            hog = finish_noisy()
        # Guests admitted before wrk stopped still run to their deadline; then memory must go back.
        time.sleep(NOISY_LIMITS.timeout_s)
        agent.wait_idle(timeout=NOISY_LIMITS.timeout_s * 10)
        time.sleep(0.5)
        rss_after = agent.status_kib("VmRSS")
        peak = agent.status_kib("VmHWM")
        refused = {
            key: agent.metric("shoal_admission_refusals_total", app=key[0], reason=key[1]) - before
            for key, before in refused_before.items()
        }
        noisy_timeouts = agent.metric("shoal_invocations_total", app="noisy", outcome="timeout")
        noisy_other = sum(
            v
            for n, ls, v in agent.samples()
            if n == "shoal_invocations_total"
            and ls.get("app") == "noisy"
            and ls.get("outcome") not in ("timeout", "busy")
        )
    return {
        "neighbour_p50_ms_quiet": quiet.latency[50] * ms,
        "neighbour_p99_ms_quiet": quiet.latency[99] * ms,
        "neighbour_p50_ms_noisy": noisy.latency[50] * ms,
        "neighbour_p99_ms_noisy": noisy.latency[99] * ms,
        "neighbour_p99_ratio": noisy.latency[99] / quiet.latency[99],
        # Of that, the mean time hello's requests waited to run (admission, fair queue, a guest
        # thread), from the agent's shoal_invocation_queue_wait_seconds.
        "neighbour_queue_wait_mean_ms_quiet": mean_between(wait_0, wait_quiet) * ms,
        "neighbour_queue_wait_mean_ms_noisy": mean_between(wait_quiet, wait_noisy) * ms,
        "neighbour_rps_quiet": quiet.rps,
        "neighbour_rps_noisy": noisy.rps,
        "neighbour_non_2xx_quiet": quiet.non_2xx,
        "neighbour_non_2xx_noisy": noisy.non_2xx,
        "hello_refused_memory": int(refused["hello", "memory"]),
        "hello_refused_concurrency": int(refused["hello", "concurrency"]),
        "noisy_connections": noisy_connections,
        "noisy_responses": hog.requests,
        "noisy_non_2xx": hog.non_2xx,
        "noisy_timeouts": int(noisy_timeouts),
        "noisy_other_outcomes": int(noisy_other),
        "noisy_refused_memory": int(refused["noisy", "memory"]),
        "noisy_refused_concurrency": int(refused["noisy", "concurrency"]),
        "agent_memory_budget_mib": float(budget_mib),
        "agent_rss_before_mib": rss_before / 1024,
        "agent_rss_sampled_peak_mib": max(rss_samples, default=0) / 1024,
        "agent_rss_peak_mib": peak / 1024,
        "agent_rss_after_mib": rss_after / 1024,
    }


# --- components next to modules ---------------------------------------------------------------------


def default_component(name: str) -> Path:
    """A component guest of hack/examples/build-components.sh, cached outside the clone."""
    out = Path(os.environ.get("SHOAL_CACHE") or Path.home() / ".cache" / "shoal") / "examples"
    wasm = out / f"{name}.wasm"
    if not wasm.exists():
        build = HERE.parent / "examples" / "build-components.sh"
        subprocess.run([str(build), str(out), name], check=True, stdout=subprocess.DEVNULL)
    return wasm


def load_seconds(wasm: bytes) -> tuple[float, float]:
    """(compile, load from the disk cache): wall time of `load_app` in a fresh runtime, twice."""
    times = []
    with tempfile.TemporaryDirectory(prefix="shoal-bench-cache-") as cache:
        for _ in range(2):
            with WasmRuntime(AgentMetrics("bench"), cache_dir=Path(cache)) as runtime:
                start = time.perf_counter()
                runtime.load_app(AppSpec("bench", "probe", limits=HELLO_LIMITS), wasm)
                times.append(time.perf_counter() - start)
    return times[0], times[1]


def component_figures(module: Path, seconds: int) -> Figures:
    """The C hello (a core module, WAGI) and the wasi:http components in Python (componentize-py:
    `component_*`) and JavaScript (componentize-js: `js_component_*`), each alone on an agent:
    compile vs cache load, instantiate and first byte p50 and memory per instance (the agent's
    histograms over a `wrk -c1` run), and req/s (`wrk -t2 -c16`). Memory per instance
    is each instance's peak linear memory: the p50 of shoal_instance_memory_bytes, interpolated in
    its power-of-two bucket as histogram_quantile does, and the exact mean from its _sum/_count;
    `component_memory_ratio` is the Python component's ratio of the means to the module's."""
    figures: Figures = {}
    first_byte, start = "shoal_invocation_first_byte_seconds", "shoal_instance_start_seconds"
    memory = "shoal_instance_memory_bytes"
    guests = (
        ("module", module),
        ("component", default_component("hello-component-py")),
        ("js_component", default_component("hello-component-js")),
    )
    for kind, path in guests:
        compile_s, cache_s = load_seconds(path.read_bytes())
        figures[f"{kind}_compile_ms"] = compile_s * 1e3
        figures[f"{kind}_cache_load_ms"] = cache_s * 1e3
        with agent_process(path, EngineSettings().memory_budget_bytes // MiB) as agent:
            url = agent.base + HELLO_PATH
            wrk(url, 1, 1, 1)
            names = (first_byte, start, memory)
            before = {n: agent.buckets(n, "hello") for n in names}
            sum_before = agent.sum_count(memory, "hello")
            wrk(url, 1, 1, seconds, latency=True)
            after = {n: agent.buckets(n, "hello") for n in names}
            sum_after = agent.sum_count(memory, "hello")

            p50 = {n: quantile_between(before[n], after[n], 0.5) for n in names}
            figures[f"{kind}_first_byte_p50_us"] = p50[first_byte] * 1e6
            figures[f"{kind}_instantiate_p50_us"] = p50[start] * 1e6
            figures[f"{kind}_memory_per_instance_kib"] = p50[memory] / 1024
            figures[f"{kind}_memory_per_instance_mean_kib"] = mean_between(sum_before, sum_after) / 1024
            figures[f"{kind}_rps"] = wrk(url, 2, 16, seconds).rps
    figures["component_memory_ratio"] = (
        figures["component_memory_per_instance_mean_kib"] / figures["module_memory_per_instance_mean_kib"]
    )
    return figures


# --- main ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wasm", type=Path, help="the C hello guest (built if absent)")
    parser.add_argument("--runc-runs", type=int, default=30)
    parser.add_argument("-n", type=int, default=5000, help="native invoke iterations")
    parser.add_argument("--duration", type=int, default=5, help="seconds per HTTP throughput round")
    parser.add_argument("--latency-seconds", type=int, default=3, help="seconds of each latency run")
    parser.add_argument("--http-warmup", type=int, default=1, help="seconds")
    parser.add_argument("--http-rounds", type=int, default=2, help="per server; best round counts")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads for throughput")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections for throughput")
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--memory-budget-mib", type=int, default=256, help="the neighbour agent's budget")
    parser.add_argument("--noisy-connections", type=int, default=16, help="> the noisy app's concurrency")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["runc", "core", "http", "rss", "neighbour", "components"],
    )
    parser.add_argument("--role", choices=["agent", "aiohttp", "rss"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--metrics-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--noisy", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()

    if opts.role == "agent":
        asyncio.run(serve_agent(opts.port, opts.metrics_port, opts.wasm, opts.memory_budget_mib, opts.noisy))
        return
    if opts.role == "aiohttp":
        asyncio.run(serve_aiohttp(opts.port))
        return
    if opts.role == "rss":
        print(json.dumps(rss_child(opts.apps)))
        return

    wasm = opts.wasm or default_wasm()
    have_wrk = shutil.which("wrk") is not None
    if not have_wrk and not {"http", "neighbour"} <= set(opts.skip):
        emit("wrk_error", json.dumps("wrk not installed (Debian package wrk): http and neighbour skipped"))
    figures: Figures = {}
    if "runc" not in opts.skip:
        runc, error = runc_figures(opts.runc_runs)
        if error:
            emit("runc_error", json.dumps(error))
        emit_all(runc)
        figures.update(runc)
    if "core" not in opts.skip:
        core = core_figures(wasm.read_bytes(), opts.n)
        emit_all(core)
        figures.update(core)
    if "http" not in opts.skip and have_wrk:
        http = http_figures(
            wasm,
            opts.duration,
            opts.http_warmup,
            opts.http_rounds,
            opts.threads,
            opts.connections,
            opts.latency_seconds,
        )
        if "runc_p50_ms" in figures:
            http["speedup_vs_runc"] = figures["runc_p50_ms"] * 1e3 / http["agent_p50_us"]
        emit_all(http)
        figures.update(http)
    if "rss" not in opts.skip:
        rss = rss_figures(opts.apps)
        emit_all(rss)
        figures.update(rss)
    if "neighbour" not in opts.skip and have_wrk:
        neighbour = neighbour_figures(
            wasm, opts.latency_seconds, opts.memory_budget_mib, opts.noisy_connections
        )
        emit_all(neighbour)
        figures.update(neighbour)
    if "components" not in opts.skip and have_wrk:
        components = component_figures(wasm, opts.latency_seconds)
        emit_all(components)
        figures.update(components)
    emit("goals_missed", ",".join(goals_missed(figures)) or "none")


if __name__ == "__main__":
    main()
