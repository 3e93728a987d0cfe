"""Wasm runtime core of the node agent: the native data plane seen from Python.

No Kubernetes here: the agent shell turns placements into `AppSpec`s and requests into
`InvocationRequest`s.
"""

from .app import AppLimits, AppSpec, InvocationRequest, LoadedApp
from .engine import EngineSettings, wasmtime_version
from .errors import (
    DigestMismatchError,
    InvalidWasmError,
    LoadError,
    NotWasmError,
    UndeclaredCapabilityError,
    UnknownImportError,
)
from .hostfuncs import HostCall, HostFunction, HostFunctionRegistry, HostTrap
from .module_cache import sha256_digest
from .outcome import InvocationResult, Outcome
from .runtime import WasmRuntime, default_cache_dir

__all__ = [
    "AppLimits",
    "AppSpec",
    "DigestMismatchError",
    "EngineSettings",
    "HostCall",
    "HostFunction",
    "HostFunctionRegistry",
    "HostTrap",
    "InvalidWasmError",
    "InvocationRequest",
    "InvocationResult",
    "LoadError",
    "LoadedApp",
    "NotWasmError",
    "Outcome",
    "UndeclaredCapabilityError",
    "UnknownImportError",
    "WasmRuntime",
    "default_cache_dir",
    "sha256_digest",
    "wasmtime_version",
]
