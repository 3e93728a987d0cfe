"""The agent's two HTTP servers.

- Trigger port: served by the native data plane (`Serving.listen`): every request is routed as
  routing.py says and runs a fresh instance. While the agent drains it answers 503 with
  Connection: close, so clients and Services move on.
- Metrics/health port (aiohttp, on the agent's event loop): `/metrics` (the agent's own registry),
  `/healthz` (the process is alive and its event loop turns: a ticker must have run recently),
  `/readyz` (registered with a fresh Lease and the placement watch established, and not draining),
  `/livez` (a stream the operator holds open: a line every `LIVEZ_EVERY_SECONDS` saying `ready`
  once the placements the agent started with serve, else `starting` or `draining`. The kernel closes
  it the moment this process dies, which tells the operator in milliseconds what the Lease would
  tell it only when it expires).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import AgentMetrics
from .serving import Serving

LOOP_TICK_SECONDS = 1.0
LOOP_STALL_SECONDS = 10.0
LIVEZ_EVERY_SECONDS = 0.5


class AgentServers:
    def __init__(
        self,
        serving: Serving,
        metrics: AgentMetrics,
        *,
        ready_checks: Callable[[], dict[str, bool]],
        settled: Callable[[], bool] = lambda: True,
    ) -> None:
        self.serving = serving
        self.metrics = metrics
        self.ready_checks = ready_checks
        self.settled = settled
        self._draining = False
        self._last_tick = time.monotonic()
        self._ticker: asyncio.Task[None] | None = None
        self._runners: list[web.AppRunner] = []

    @property
    def draining(self) -> bool:
        return self._draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self._draining = value
        self.serving.set_draining(value)

    # --- handlers -----------------------------------------------------------------------------------

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        lag = time.monotonic() - self._last_tick
        if lag > LOOP_STALL_SECONDS:
            return web.Response(status=503, text=f"event loop stalled for {lag:.1f}s\n")
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        checks = {"not draining": not self.draining, **self.ready_checks()}
        failing = [name for name, ok in checks.items() if not ok]
        if failing:
            return web.Response(status=503, text="not ready: " + ", ".join(failing) + "\n")
        return web.Response(text="ok\n")

    def livez_line(self) -> bytes:
        if self.draining:
            return b"draining\n"
        return b"ready\n" if self.settled() and all(self.ready_checks().values()) else b"starting\n"

    async def _livez(self, request: web.Request) -> web.StreamResponse:
        """Until the client goes away or the server stops (which cancels this handler)."""
        response = web.StreamResponse(headers={"Content-Type": "text/plain", "Cache-Control": "no-store"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while True:
                await response.write(self.livez_line())
                await asyncio.sleep(LIVEZ_EVERY_SECONDS)
        return response

    async def _tick(self) -> None:
        while True:
            self._last_tick = time.monotonic()
            await asyncio.sleep(LOOP_TICK_SECONDS)

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self, *, http_host: str, http_port: int, metrics_host: str, metrics_port: int) -> None:
        self._ticker = asyncio.create_task(self._tick(), name="loop-ticker")
        ops_app = web.Application()
        ops_app.router.add_get("/metrics", self._metrics)
        ops_app.router.add_get("/healthz", self._healthz)
        ops_app.router.add_get("/readyz", self._readyz)
        ops_app.router.add_get("/livez", self._livez)
        runner = web.AppRunner(ops_app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, metrics_host, metrics_port).start()
        self._runners.append(runner)
        if self.serving.port is None:  # the warm start may listen already
            self.serving.listen(http_host, http_port)

    async def stop(self) -> None:
        self.serving.stop_listening()
        for runner in reversed(self._runners):
            with contextlib.suppress(Exception):
                await runner.cleanup()
        self._runners.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
