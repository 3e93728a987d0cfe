"""Host functions: the stdout/stderr capture and the registry capability imports plug into.

Both are defined on an app's Linker with wasmtime's *unchecked* (raw-value) callback API and our
own ctypes trampoline instead of `Linker.define_func`. That is ~3x cheaper per call, and, more
importantly, a failing host function returns a real trap carrying its own message instead of
parking the Python exception in wasmtime-py's process-global slot, where a concurrent invocation
on another thread could pick it up. Host functions therefore never let an exception escape.

Capability imports live in Wasm modules named `shoal:<capability>` (e.g. `shoal:redis`.`get`).
An app may only link the capabilities it declares; anything else fails at load time with an
error naming the import and the capability.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import wasmtime
from wasmtime import _ffi as ffi

from .errors import UndeclaredCapabilityError, UnknownImportError
from .fastpath import held
from .invocation import current

ValKind = Literal["i32", "i64", "f32", "f64"]
WASI_MODULES = ("wasi_snapshot_preview1", "wasi_unstable")
CAPABILITY_PREFIX = "shoal:"

# WASI errno values used here.
ERRNO_SUCCESS = 0
ERRNO_BADF = 8
ERRNO_FAULT = 21
ERRNO_INVAL = 28
MAX_IOVS = 1024
_U32 = 0xFFFFFFFF
_MEMORY = b"memory"
_NO_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))
_string_at = ctypes.string_at
_unpack_from = struct.unpack_from
# Called from host functions, which run holding the GIL: releasing it there for a
# sub-microsecond call only invites a thread switch (see fastpath).
_trap_new = held("wasmtime_trap_new")
_caller_export_get = held("wasmtime_caller_export_get")
_caller_context = held("wasmtime_caller_context")
_memory_data = held("wasmtime_memory_data")
_memory_data_size = held("wasmtime_memory_data_size")


def _trap(message: str) -> int:
    raw = message.encode("utf-8", "replace")
    ptr = _trap_new(raw, len(raw))
    value: int = ctypes.cast(ptr, ctypes.c_void_p).value or 0
    return value


class HostTrap(Exception):
    """Raise from a host function to stop the guest with this message."""


class HostCall:
    """What a host function sees of its caller: the guest's linear memory and the invocation."""

    __slots__ = ("_base", "_caller", "_size")

    def __init__(self, caller: Any) -> None:
        self._caller = caller
        self._base = -1
        self._size = 0

    def _memory(self) -> tuple[int, int]:
        # Re-read every call: memory.grow may move it between host calls.
        item = ffi.wasmtime_extern_t()
        if not _caller_export_get(self._caller, _MEMORY, len(_MEMORY), ctypes.byref(item)):
            raise HostTrap("guest exports no memory")
        ctx = _caller_context(self._caller)
        ptr = _memory_data(ctx, ctypes.byref(item.of.memory))
        base = ctypes.cast(ptr, ctypes.c_void_p).value or 0
        return base, int(_memory_data_size(ctx, ctypes.byref(item.of.memory)))

    def read(self, ptr: int, length: int) -> bytes:
        base, size = self._memory()
        ptr &= _U32
        length &= _U32
        if ptr + length > size:
            raise HostTrap(f"read of {length} bytes at {ptr} is outside guest memory")
        return _string_at(base + ptr, length)

    def write(self, ptr: int, data: bytes) -> None:
        base, size = self._memory()
        ptr &= _U32
        if ptr + len(data) > size:
            raise HostTrap(f"write of {len(data)} bytes at {ptr} is outside guest memory")
        ctypes.memmove(base + ptr, data, len(data))

    @property
    def invocation(self) -> Any:
        return current()


HostImpl = Callable[..., Any]


@dataclass(frozen=True)
class HostFunction:
    """One import a capability provides: `impl(call: HostCall, *args)` returns None, a value or a tuple."""

    capability: str
    name: str
    params: tuple[ValKind, ...]
    results: tuple[ValKind, ...]
    impl: HostImpl
    module: str = ""

    @property
    def import_module(self) -> str:
        return self.module or CAPABILITY_PREFIX + self.capability


def _val_type(kind: ValKind) -> wasmtime.ValType:
    return {
        "i32": wasmtime.ValType.i32,
        "i64": wasmtime.ValType.i64,
        "f32": wasmtime.ValType.f32,
        "f64": wasmtime.ValType.f64,
    }[kind]()


def _make_trampoline(fn: HostFunction) -> Any:
    params = fn.params
    results = fn.results
    label = f"{fn.import_module}.{fn.name}"

    def callback(_env: Any, caller: Any, vals: Any, _n: int) -> int:
        try:
            args = [getattr(vals[i], kind) for i, kind in enumerate(params)]
            out = fn.impl(HostCall(caller), *args)
            if len(results) == 1:
                setattr(vals[0], results[0], out)
            elif results:
                for i, kind in enumerate(results):
                    setattr(vals[i], kind, out[i])
            return 0
        except BaseException as e:  # must not unwind into wasmtime
            message = f"host function {label} failed: {e}"
            state = current()
            if state is not None:
                state.host_failure = message
            return _trap(message)

    return ffi.wasmtime_func_unchecked_callback_t(callback)


def _fd_write(_env: Any, caller: Any, vals: Any, _n: int) -> int:
    """WASI fd_write for stdout/stderr into the invocation's bounded buffers; fds >= 3 do not exist."""
    try:
        state = current()
        fd = vals[0].i32
        if state is None or (fd != 1 and fd != 2):
            vals[0].i32 = ERRNO_BADF
            return 0
        iovs = vals[1].i32 & _U32
        count = vals[2].i32 & _U32
        nwritten = vals[3].i32 & _U32
        if count > MAX_IOVS:
            vals[0].i32 = ERRNO_INVAL
            return 0
        item = ffi.wasmtime_extern_t()
        if not _caller_export_get(caller, _MEMORY, 6, ctypes.byref(item)):
            vals[0].i32 = ERRNO_FAULT
            return 0
        ctx = _caller_context(caller)
        base = ctypes.cast(_memory_data(ctx, ctypes.byref(item.of.memory)), ctypes.c_void_p).value
        size = _memory_data_size(ctx, ctypes.byref(item.of.memory))
        if base is None or iovs + 8 * count > size or nwritten + 4 > size:
            vals[0].i32 = ERRNO_FAULT
            return 0
        raw = _string_at(base + iovs, 8 * count)
        buf = state.stdout if fd == 1 else state.stderr
        total = 0
        for i in range(count):
            ptr, length = _unpack_from("<II", raw, 8 * i)
            if not length:
                continue
            if ptr + length > size:
                vals[0].i32 = ERRNO_FAULT
                return 0
            if not buf.add(_string_at(base + ptr, length)) and fd == 1:
                state.stdout_limit_hit = True
                return _trap(f"stdout limit of {buf.limit} bytes exceeded")
            total += length  # stderr past its limit is dropped, not refused
        ctypes.c_uint32.from_address(base + nwritten).value = total
        vals[0].i32 = ERRNO_SUCCESS
        return 0
    except BaseException as e:  # must not unwind into wasmtime
        return _trap(f"fd_write failed in the host: {e}")


_FD_WRITE = ffi.wasmtime_func_unchecked_callback_t(_fd_write)


def _func_type(params: Iterable[ValKind], results: Iterable[ValKind]) -> wasmtime.FuncType:
    # A fresh FuncType per link: wasmtime ties a function type to the first engine it meets.
    return wasmtime.FuncType([_val_type(k) for k in params], [_val_type(k) for k in results])


def _define_raw(linker: wasmtime.Linker, module: str, name: str, ty: wasmtime.FuncType, cb: Any) -> None:
    m, n = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(), m, len(m), n, len(n), ty.ptr(), cb, None, _NO_FINALIZER
    )
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)


@dataclass
class HostFunctionRegistry:
    """Host functions by (module, name); capability plug-ins register here at agent start."""

    _functions: dict[tuple[str, str], HostFunction] = field(default_factory=dict)
    _callbacks: dict[tuple[str, str], Any] = field(default_factory=dict)

    def register(self, fn: HostFunction) -> None:
        key = (fn.import_module, fn.name)
        if key in self._functions:
            raise ValueError(f"host function {key[0]}.{key[1]} is already registered")
        self._functions[key] = fn
        # Kept for the registry's lifetime: linkers hold raw pointers to these callbacks.
        self._callbacks[key] = _make_trampoline(fn)

    def register_all(self, fns: Iterable[HostFunction]) -> None:
        for fn in fns:
            self.register(fn)

    def capabilities(self) -> set[str]:
        return {fn.capability for fn in self._functions.values()}

    def link(self, linker: wasmtime.Linker, module: wasmtime.Module, declared: frozenset[str]) -> None:
        """Define WASI (with captured stdio) and exactly the declared host functions `module` imports."""
        linker.define_wasi()
        linker.allow_shadowing = True
        for wasi in WASI_MODULES:
            _define_raw(linker, wasi, "fd_write", _func_type(("i32",) * 4, ("i32",)), _FD_WRITE)
        linker.allow_shadowing = False
        defined: set[tuple[str, str]] = set()
        for imp in module.imports:
            mod, name = imp.module, imp.name or ""
            if mod in WASI_MODULES:
                continue
            fn = self._functions.get((mod, name))
            capability = fn.capability if fn else self._capability_of_module(mod)
            if capability is None:
                raise UnknownImportError(mod, name)
            if capability not in declared:
                raise UndeclaredCapabilityError(mod, name, capability)
            if fn is None:
                raise UnknownImportError(mod, name)
            if (mod, name) not in defined:
                defined.add((mod, name))
                _define_raw(
                    linker, mod, name, _func_type(fn.params, fn.results), self._callbacks[(mod, name)]
                )

    def _capability_of_module(self, module: str) -> str | None:
        for fn in self._functions.values():
            if fn.import_module == module:
                return fn.capability
        if module.startswith(CAPABILITY_PREFIX):
            return module[len(CAPABILITY_PREFIX) :]
        return None
