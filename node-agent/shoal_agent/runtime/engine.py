"""Settings of the native data plane's engine, and its version.

The engine itself (wasmtime with the pooling allocator, copy-on-write memory images, epoch
interruption, async guests) lives in the `shoal_dataplane` extension; see
node-agent/dataplane/src/engine.rs for why each setting is what it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import shoal_dataplane

MiB = 1024 * 1024


@dataclass(frozen=True)
class EngineSettings:
    guest_threads: int = max(2, os.cpu_count() or 1)
    """Threads of the data plane's foreground (listener and guests); also its execution slots.
    As many again run the background lane, at a low priority."""
    demote_after_ms: float = float(os.environ.get("SHOAL_DEMOTE_AFTER_MS", "5"))
    """A guest that has been on the CPU this long moves to the background lane at its next tick:
    it no longer takes an execution slot, so short requests never queue behind it
    (`SHOAL_DEMOTE_AFTER_MS` overrides it, for measurements)."""
    app_memory_share: float = 0.5
    """The most of the memory budget one app may hold once it runs an instance, so one app's
    memory-hungry guests leave room for the others (an app may always run one instance)."""
    tick_ms: float = 0.25
    """Epoch tick: how often a running guest yields its slot and its deadline is checked; what a
    request waits at most for a slot while long guests hold them all (bench-coldstart's neighbour
    figures)."""
    keep_resident_bytes: int = 128 * 1024
    """Bytes of each pooled linear memory kept mapped (zeroed) between instances."""
    max_instances: int = 1000
    """Instance slots of the pooling allocator: the most instances alive at once."""
    memory_budget_bytes: int = 1024 * MiB
    """Sum of the memory limits of in-flight instances the agent admits (`--memory-budget`)."""


def wasmtime_version() -> str:
    return str(shoal_dataplane.wasmtime_version())
