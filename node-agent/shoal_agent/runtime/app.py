"""A loaded app: its linked, pre-instantiated module and the synchronous invoke path.

Everything that can be computed once per app (linker, InstancePre, encoded argv/env, epoch
ticks, metric children) is, so an invocation only builds a Store, a WasiConfig and instantiates.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import wasmtime

from ..metrics import AppMetrics
from . import fastpath
from .fastpath import CharArray, encode_all
from .invocation import BoundedBuffer, InvocationState, set_current
from .limiter import ConcurrencyLimiter
from .outcome import InvocationResult, Outcome

MiB = 1024 * 1024
WASM_PAGE = 65536


@dataclass(frozen=True)
class AppLimits:
    memory_bytes: int = 64 * MiB
    timeout_s: float = 1.0
    max_concurrency: int = 16
    max_wait_s: float = 0.1
    stdout_bytes: int = 1 * MiB
    stderr_bytes: int = 64 * 1024


@dataclass(frozen=True)
class AppSpec:
    namespace: str
    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    capabilities: frozenset[str] = frozenset()
    limits: AppLimits = AppLimits()
    entrypoint: str = "_start"

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class InvocationRequest:
    stdin: bytes = b""
    env: Sequence[tuple[str, str]] = ()
    args: Sequence[str] | None = None  # replaces the spec's args; argv[0] is always the app name
    max_wait_s: float | None = None
    """How long this invocation may wait for a concurrency slot; None is the app's short budget
    (an HTTP client is waiting). A queued message can afford to wait longer."""


def _env_arrays(pairs: Sequence[tuple[str, str]]) -> tuple[CharArray, CharArray]:
    return CharArray(encode_all([k for k, _ in pairs])), CharArray(encode_all([v for _, v in pairs]))


class LoadedApp:
    def __init__(
        self,
        spec: AppSpec,
        engine: wasmtime.Engine,
        module: wasmtime.Module,
        linker: wasmtime.Linker,
        deadline_ticks: int,
        metrics: AppMetrics,
    ) -> None:
        self.spec = spec
        self.engine = engine
        self.module = module
        self.linker = linker
        self.pre = linker.instantiate_pre(module)
        self.deadline_ticks = deadline_ticks
        self.metrics = metrics
        self.limiter = ConcurrencyLimiter(spec.limits.max_concurrency, spec.limits.max_wait_s)
        self._entry = spec.entrypoint.encode()
        self._argv0 = spec.name.encode()
        self._argv = CharArray([self._argv0, *encode_all(spec.args)])
        self.compile_result: str = "memory"
        self._env = [_env_arrays(sorted(spec.env.items()))] if spec.env else []

    def invoke_sync(self, request: InvocationRequest) -> InvocationResult:
        """Run the entrypoint in a fresh instance; never raises for guest misbehaviour."""
        limits = self.spec.limits
        state = InvocationState(
            BoundedBuffer(limits.stdout_bytes), BoundedBuffer(limits.stderr_bytes), app=self.spec.key
        )
        metrics = self.metrics
        start = time.perf_counter()
        instantiated = start
        instance = None
        store = fastpath.RawStore(self.engine)
        argv = self._argv if request.args is None else CharArray([self._argv0, *encode_all(request.args)])
        env = self._env
        if request.env:
            env = [*env, _env_arrays(request.env)]
        metrics.active.inc()
        set_current(state)
        code: int | None
        try:
            try:
                store.configure(
                    argv=argv,
                    env=env,
                    stdin=request.stdin,
                    memory_bytes=limits.memory_bytes,
                    deadline_ticks=self.deadline_ticks,
                )
                instance = fastpath.instantiate(self.pre, store)
                instantiated = time.perf_counter()
                fastpath.call_export(store, instance, self._entry)
                outcome, code, message = Outcome.OK, 0, ""
            except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
                outcome, code, message = self._classify(e, state, store, instance)
            except KeyError as e:
                outcome, code, message = Outcome.ERROR, None, f"module has no {e.args[0]!r} export to run"
        finally:
            set_current(None)
            metrics.active.dec()
            if instance is not None and instantiated == start:
                instantiated = time.perf_counter()
            store.close()
        end = time.perf_counter()
        if instance is not None:
            metrics.instance_start.observe(instantiated - start)
        metrics.duration.observe(end - start)
        metrics.count(outcome.value)
        return InvocationResult(
            outcome=outcome,
            stdout=state.stdout.value(),
            stderr=state.stderr.value(),
            exit_code=code,
            message=message,
            stdout_truncated=state.stdout.truncated,
            stderr_truncated=state.stderr.truncated,
            instantiate_seconds=instantiated - start,
            duration_seconds=end - start,
        )

    def _memory_exhausted(self, store: fastpath.RawStore, instance: object) -> bool:
        if instance is None:
            return False
        size = fastpath.memory_size(store, instance)
        return size is not None and size + WASM_PAGE > self.spec.limits.memory_bytes

    def _classify(
        self,
        exc: wasmtime.Trap | wasmtime.WasmtimeError,
        state: InvocationState,
        store: fastpath.RawStore,
        instance: object,
    ) -> tuple[Outcome, int | None, str]:
        limits = self.spec.limits
        if isinstance(exc, wasmtime.ExitTrap):
            if exc.code == 0:
                return Outcome.OK, 0, ""
            if self._memory_exhausted(store, instance):
                return Outcome.OUT_OF_MEMORY, exc.code, f"exited with code {exc.code} at the memory limit"
            return Outcome.EXIT, exc.code, f"exited with code {exc.code}"
        if state.stdout_limit_hit:
            return Outcome.STDOUT_LIMIT, None, f"stdout limit of {limits.stdout_bytes} bytes exceeded"
        if state.host_failure:
            return Outcome.TRAP, None, state.host_failure
        code = exc.trap_code if isinstance(exc, wasmtime.Trap) else None
        last = _last_line(exc)
        if code is wasmtime.TrapCode.INTERRUPT:
            return Outcome.TIMEOUT, None, f"deadline of {limits.timeout_s:g}s exceeded"
        if instance is None:
            if "memory" in last and ("limit" in last or "exceed" in last):
                return Outcome.OUT_OF_MEMORY, None, f"needs more than {limits.memory_bytes} bytes"
            return Outcome.ERROR, None, f"instantiation failed: {last}"
        if self._memory_exhausted(store, instance):
            return Outcome.OUT_OF_MEMORY, None, f"memory limit {limits.memory_bytes} reached ({last})"
        if code is wasmtime.TrapCode.STACK_OVERFLOW:
            return Outcome.TRAP, None, "stack overflow"
        return Outcome.TRAP, None, last


def _last_line(exc: BaseException) -> str:
    """wasmtime messages end with the cause ("wasm trap: ..."); the backtrace above it is noise here."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__
