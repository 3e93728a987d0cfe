"""What the runtime records and needs from the agent's metrics, without depending on the agent shell.

The data plane counts invocations in histograms with `LATENCY_BUCKETS` (instance memory with
`MEMORY_BUCKETS`) and hands back `NativeRow`s at
scrape time; the runtime reports compile times per app. The agent's `AgentMetrics` (metrics.py)
satisfies `RuntimeMetrics` and exports all of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry

# 10 us .. 10 s in a 1-2.5-5 progression: fine enough to tell a 60 us instantiation from a 150 us one.
LATENCY_BUCKETS: tuple[float, ...] = (
    *(m * 10.0**e for e in range(-5, 1) for m in (1.0, 2.5, 5.0)),
    10.0,
)

# 64 KiB (one Wasm page) .. 4 GiB (wasm32's whole address space), one bound per power of two.
MEMORY_BUCKETS: tuple[float, ...] = tuple(float(2**e) for e in range(16, 33))

# One row of the data plane's snapshot: (namespace, app, {histogram: (cumulative counts incl. +Inf,
# sum)}, {outcome: count}, {refusal reason: count}, instances active).
NativeRow = tuple[
    str, str, Mapping[str, tuple[Sequence[int], float]], Mapping[str, int], Mapping[str, int], int, int
]
"""(namespace, app, histograms, outcomes, admission refusals, running instances, outbound denied)."""
NativeSnapshot = Callable[[], Sequence[NativeRow]]


class AppRuntimeMetrics(Protocol):
    def compile(self, result: str, seconds: float) -> None: ...


class NativeExport(Protocol):
    """Where the runtime plugs in its snapshot for the scrape (None once it stopped)."""

    source: NativeSnapshot | None


class RuntimeMetrics(Protocol):
    registry: CollectorRegistry  # where everything is exported (tests read the runtime's samples here)

    @property
    def native(self) -> NativeExport: ...

    def for_app(self, namespace: str, app: str) -> AppRuntimeMetrics: ...
