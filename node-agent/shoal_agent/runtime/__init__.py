"""Wasm runtime core of the node agent: engine, module cache, per-invocation sandboxing.

No Kubernetes here: the agent shell turns placements into `AppSpec`s and requests into
`InvocationRequest`s.
"""

from .app import AppLimits, AppSpec, InvocationRequest, LoadedApp
from .engine import EngineSettings, EpochTicker, build_engine
from .errors import (
    DigestMismatchError,
    InvalidWasmError,
    LoadError,
    NotWasmError,
    UndeclaredCapabilityError,
    UnknownImportError,
)
from .hostfuncs import HostCall, HostFunction, HostFunctionRegistry, HostTrap
from .limiter import Busy, ConcurrencyLimiter
from .module_cache import ModuleCache, sha256_digest
from .outcome import InvocationResult, Outcome
from .runtime import WasmRuntime, default_cache_dir

__all__ = [
    "AppLimits",
    "AppSpec",
    "Busy",
    "ConcurrencyLimiter",
    "DigestMismatchError",
    "EngineSettings",
    "EpochTicker",
    "HostCall",
    "HostFunction",
    "HostFunctionRegistry",
    "HostTrap",
    "InvalidWasmError",
    "InvocationRequest",
    "InvocationResult",
    "LoadError",
    "LoadedApp",
    "ModuleCache",
    "NotWasmError",
    "Outcome",
    "UndeclaredCapabilityError",
    "UnknownImportError",
    "WasmRuntime",
    "build_engine",
    "default_cache_dir",
    "sha256_digest",
]
