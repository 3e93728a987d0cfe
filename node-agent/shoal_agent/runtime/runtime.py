"""The agent's Wasm runtime: one Engine, its epoch ticker, the module cache, worker threads.

`load_app` makes an app ready (compile or cache-load, link, pre-instantiate); `invoke` runs one
invocation on a worker thread behind the app's concurrency limiter, so the event loop never
blocks on guest code (wasmtime-py calls release the GIL while Wasm runs). Compiles get a pool of
their own so a large module never queues invocations behind it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from pathlib import Path

import wasmtime

from ..metrics import AgentMetrics
from .app import AppSpec, InvocationRequest, LoadedApp
from .engine import EngineSettings, EpochTicker, build_engine
from .hostfuncs import HostFunctionRegistry
from .limiter import Busy
from .module_cache import ModuleCache
from .outcome import InvocationResult, Outcome
from .workers import InvocationWorkers


def default_cache_dir() -> Path:
    base = os.environ.get("SHOAL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "shoal")
    return Path(base) / "modules"


class WasmRuntime:
    """Use as a context manager (sync) or call `close()`; both stop the ticker and the workers."""

    def __init__(
        self,
        metrics: AgentMetrics,
        cache_dir: Path | None = None,
        settings: EngineSettings | None = None,
        host_functions: HostFunctionRegistry | None = None,
        tick_ms: float = 5.0,
        workers: int | None = None,
    ) -> None:
        self.settings = settings or EngineSettings()
        self.metrics = metrics
        self.engine = build_engine(self.settings)
        self.cache = ModuleCache(self.engine, self.settings, cache_dir)
        self.host_functions = host_functions or HostFunctionRegistry()
        self.ticker = EpochTicker(self.engine, tick_ms)
        self.ticker.start()
        # About one worker per core: more threads only fight over the GIL between ctypes calls.
        self._workers = InvocationWorkers(workers or max(2, os.cpu_count() or 1))
        self._compilers = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="shoal-compile"
        )
        self._apps: dict[tuple[str, str], LoadedApp] = {}

    def load_app(self, spec: AppSpec, wasm: bytes, digest: str | None = None) -> LoadedApp:
        """Compile (or load from cache), link and pre-instantiate; raises LoadError subclasses."""
        compiled = self.cache.get(wasm, digest)
        app_metrics = self.metrics.for_app(spec.namespace, spec.name)
        if compiled.result != "memory":
            app_metrics.compile(compiled.result, compiled.seconds)
        linker = wasmtime.Linker(self.engine)
        self.host_functions.link(linker, compiled.module, spec.capabilities)
        app = LoadedApp(
            spec,
            self.engine,
            compiled.module,
            linker,
            self.ticker.ticks_for(spec.limits.timeout_s),
            app_metrics,
        )
        app.compile_result = compiled.result
        self._apps[spec.key] = app
        return app

    async def load_app_async(self, spec: AppSpec, wasm: bytes, digest: str | None = None) -> LoadedApp:
        """`load_app` on a worker thread: compiling a large module takes seconds."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._compilers, self.load_app, spec, wasm, digest)

    def get(self, namespace: str, name: str) -> LoadedApp | None:
        return self._apps.get((namespace, name))

    def unload(self, namespace: str, name: str) -> None:
        self._apps.pop((namespace, name), None)

    async def invoke(self, app: LoadedApp, request: InvocationRequest) -> InvocationResult:
        """Run one invocation off the event loop; `busy` if no slot frees up in time."""
        try:
            await app.limiter.acquire(request.max_wait_s)
        except Busy:
            app.metrics.count(Outcome.BUSY.value)
            return InvocationResult(
                Outcome.BUSY, message=f"app at its concurrency limit of {app.spec.limits.max_concurrency}"
            )
        try:
            # The slot is held until the guest really finishes, even if our caller stops waiting.
            fut = self._workers.submit(lambda: app.invoke_sync(request), done=app.limiter.release)
        except BaseException:
            app.limiter.release()
            raise
        return await fut

    def close(self) -> None:
        self.ticker.stop()
        self._workers.close()
        self._compilers.shutdown(wait=True, cancel_futures=True)
        self._apps.clear()

    def __enter__(self) -> WasmRuntime:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
