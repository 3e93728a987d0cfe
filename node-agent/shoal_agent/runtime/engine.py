"""The one wasmtime Engine of an agent, and the ticker thread that drives its epoch.

Epoch interruption is how invocations time out: a thread bumps the engine's epoch every `tick_ms`
and each Store gets a deadline in ticks. It costs far less than fuel metering and keeps working
while the guest spins without ever calling the host.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from importlib import metadata

import wasmtime


@dataclass(frozen=True)
class EngineSettings:
    """Everything that changes compiled code; hashed into the module-cache key."""

    cranelift_opt_level: str = "speed"
    parallel_compilation: bool = True
    # Deeper stacks let honest recursive guests run; runaway recursion still traps.
    max_wasm_stack: int = 512 * 1024

    def fingerprint(self) -> str:
        """Stable hash of the settings and the wasmtime version: serialized modules only load on a match."""
        payload = json.dumps({"wasmtime": wasmtime_version(), **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def wasmtime_version() -> str:
    return metadata.version("wasmtime")


def build_engine(settings: EngineSettings) -> wasmtime.Engine:
    cfg = wasmtime.Config()
    cfg.epoch_interruption = True
    cfg.cranelift_opt_level = settings.cranelift_opt_level
    cfg.parallel_compilation = settings.parallel_compilation
    cfg.max_wasm_stack = settings.max_wasm_stack
    return wasmtime.Engine(cfg)


class EpochTicker:
    """Daemon thread incrementing the engine epoch every `tick_ms`; `stop()` joins it."""

    def __init__(self, engine: wasmtime.Engine, tick_ms: float = 5.0) -> None:
        if tick_ms <= 0:
            raise ValueError("tick_ms must be positive")
        self.engine = engine
        self.tick_s = tick_ms / 1000.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="shoal-epoch-ticker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait = self._stop.wait
        bump = self.engine.increment_epoch
        while not wait(self.tick_s):
            bump()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def ticks_for(self, timeout_s: float) -> int:
        """Deadline in ticks that is never shorter than `timeout_s` (one extra for the partial tick)."""
        return max(1, int(timeout_s / self.tick_s + 0.999999)) + 1
