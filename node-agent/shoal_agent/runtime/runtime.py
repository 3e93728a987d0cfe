"""The agent's Wasm runtime: the native data plane, seen from Python.

`load_app` makes an app version ready (compile or cache-load, link, pre-instantiate) and `invoke`
runs one invocation; both run in the `shoal_dataplane` extension without the GIL. HTTP requests
never come through here: the data plane's own listener serves them (see serving.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import shoal_dataplane

from .app import AppSpec, InvocationRequest, LoadedApp
from .engine import EngineSettings
from .errors import DigestMismatchError, InvalidWasmError, UnsupportedComponentError
from .hostfuncs import HostFunctionRegistry
from .metrics import LATENCY_BUCKETS, MEMORY_BUCKETS, NativeRow, RuntimeMetrics
from .module_cache import check_wasm_bytes, normalize_digest, sha256_digest
from .outcome import InvocationResult

# Threads that wait (without the GIL) for invocations the event loop asked for: jobs and queued
# messages. Each waits at most its max_wait plus the app's timeout.
WAITER_THREADS = 64


def default_cache_dir() -> Path:
    base = os.environ.get("SHOAL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "shoal")
    return Path(base) / "modules"


class WasmRuntime:
    """Use as a context manager (sync) or call `close()`; both stop the data plane."""

    def __init__(
        self,
        metrics: RuntimeMetrics,
        cache_dir: Path | None = None,
        settings: EngineSettings | None = None,
        host_functions: HostFunctionRegistry | None = None,
        tick_ms: float | None = None,
    ) -> None:
        s = settings or EngineSettings()
        if tick_ms is not None:
            s = dataclasses.replace(s, tick_ms=tick_ms)
        self.settings = s
        self.metrics = metrics
        self.plane = shoal_dataplane.DataPlane(
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            memory_budget=s.memory_budget_bytes,
            buckets=list(LATENCY_BUCKETS),
            memory_buckets=list(MEMORY_BUCKETS),
            guest_threads=s.guest_threads,
            tick_ms=s.tick_ms,
            keep_resident_bytes=s.keep_resident_bytes,
            max_instances=s.max_instances,
            app_memory_share=s.app_memory_share,
            demote_after_ms=s.demote_after_ms,
        )
        self.use_host_functions(host_functions or HostFunctionRegistry())
        metrics.native.source = self._loaded_rows
        self._waiters = concurrent.futures.ThreadPoolExecutor(
            WAITER_THREADS, thread_name_prefix="shoal-invoke"
        )
        self._compilers = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="shoal-compile")
        self._apps: dict[tuple[str, str], LoadedApp] = {}

    def use_host_functions(self, host_functions: HostFunctionRegistry) -> None:
        """Serve host calls from `host_functions` from now on (apps loaded before link none of the
        old registry's functions: the warm start loads only apps without dependencies)."""
        self.host_functions = host_functions
        self.plane.set_host(host_functions.dispatch, host_functions.new_state)
        # The agent's warm start builds the runtime before the capabilities exist: Spin's stores
        # come with them.
        if host_functions.spin_backend is not None:
            self.plane.set_spin_backend(host_functions.spin_backend)

    def load_app(self, spec: AppSpec, wasm: bytes, digest: str | None = None) -> LoadedApp:
        """Compile (or load from cache), link and pre-instantiate; raises LoadError subclasses."""
        actual = sha256_digest(wasm)
        if digest is not None and normalize_digest(digest) != actual.split(":", 1)[1]:
            raise DigestMismatchError(f"artifact hashes to {actual}, expected {digest}")
        check_wasm_bytes(wasm)
        try:
            compiled = self.plane.compile(wasm, actual)  # hashed once: the data plane's cache key
        except ValueError as e:
            if str(e).startswith(UnsupportedComponentError.PREFIX):
                raise UnsupportedComponentError(str(e)) from e
            raise InvalidWasmError(f"invalid WebAssembly module: {e}") from e
        app_metrics = self.metrics.for_app(spec.namespace, spec.name)
        if compiled.result != "memory":
            app_metrics.compile(compiled.result, compiled.seconds)
        # Components import WASI preview 2 interfaces, which the data plane links itself; Shoal's
        # capability host functions exist for core modules only.
        if compiled.kind == "component":
            linked = []
        else:
            linked = self.host_functions.plan(compiled.imports, spec.capabilities)
        limits = spec.limits
        try:
            native = self.plane.load(
                compiled,
                namespace=spec.namespace,
                name=spec.name,
                args=list(spec.args),
                env=sorted(spec.env.items()),
                entrypoint=spec.entrypoint,
                memory_bytes=limits.memory_bytes,
                timeout_s=limits.timeout_s,
                max_concurrency=limits.max_concurrency,
                max_wait_s=limits.max_wait_s,
                stdout_bytes=limits.stdout_bytes,
                stderr_bytes=limits.stderr_bytes,
                host_functions=linked,
                allowed_outbound=[host.parts() for host in spec.allowed_outbound],
                variables=sorted(spec.variables.items()),
                mounts=list(spec.mounts),
                scratch=spec.scratch,
            )
        except ValueError as e:
            raise InvalidWasmError(f"cannot link the {compiled.kind}: {e}") from e
        app = LoadedApp(spec, self.plane, native, app_metrics, compiled.result)
        self._apps[spec.key] = app
        return app

    async def load_app_async(self, spec: AppSpec, wasm: bytes, digest: str | None = None) -> LoadedApp:
        """`load_app` on a worker thread: compiling a large module takes seconds."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._compilers, self.load_app, spec, wasm, digest)

    def _loaded_rows(self) -> Sequence[NativeRow]:
        """The data plane keeps the counters of every app it ever ran (its registry has no removal):
        export only the apps loaded now, so the scrape follows the apps on this node and stays
        bounded under churn (the chaos soak counted ~140 series per app ever created)."""
        loaded = self._apps.copy()  # one C call under the GIL: compile threads add apps meanwhile
        return [row for row in self.plane.metrics() if (row[0], row[1]) in loaded]

    def get(self, namespace: str, name: str) -> LoadedApp | None:
        return self._apps.get((namespace, name))

    def unload(self, namespace: str, name: str) -> None:
        self._apps.pop((namespace, name), None)

    def forget_module(self, digest: str) -> None:
        """Drop a compiled module from memory (the on-disk cache keeps it)."""
        self.plane.forget(digest)

    async def invoke(self, app: LoadedApp, request: InvocationRequest) -> InvocationResult:
        """Run one invocation off the event loop; `busy` if admission refused it in time."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._waiters, app.invoke_sync, request)

    def interrupt(self) -> None:
        """Guests still running trap at their next epoch tick (shutdown, after the grace period)."""
        self.plane.interrupt()

    def close(self) -> None:
        self.plane.close()
        self._waiters.shutdown(wait=True, cancel_futures=True)
        self._compilers.shutdown(wait=True, cancel_futures=True)
        self.metrics.native.source = None
        self._apps.clear()

    def __enter__(self) -> WasmRuntime:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
