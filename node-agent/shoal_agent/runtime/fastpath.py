"""The per-invocation calls into wasmtime, made through wasmtime-py's ctypes bindings directly.

Why not the public API: `Instance.exports()` builds a dict of every export, `Func.__call__`
re-reads the function type, and both route errors through a process-global "last Python
exception" slot that another thread's host function can overwrite. Going one level down keeps a
hello-world invocation within a few microseconds of a bare `InstancePre.instantiate` loop and
makes traps thread-correct. Everything that touches `wasmtime._ffi` lives in this module (and
`hostfuncs`), so a wasmtime-py upgrade that moves these names breaks here, loudly, and
`wasmtime>=50,<51` is pinned for that reason.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any, cast

import wasmtime
from wasmtime import _ffi as ffi

_CharPP = ctypes.POINTER(ctypes.POINTER(ctypes.c_char))
_byref = ctypes.byref


class CharArray:
    """A C `char*[]` built once; the encoded strings stay alive with it."""

    __slots__ = ("_keep", "count", "ptr")

    def __init__(self, items: Sequence[bytes]) -> None:
        self._keep = (ctypes.c_char_p * len(items))(*items)
        self.ptr = ctypes.cast(self._keep, _CharPP)
        self.count = len(items)


def encode_all(items: Sequence[str]) -> list[bytes]:
    return [s.encode("utf-8") for s in items]


def wasi_config(
    argv: CharArray | None,
    env: Sequence[tuple[CharArray, CharArray]],
    stdin: bytes,
) -> wasmtime.WasiConfig:
    """A WasiConfig with exactly these args, env (several batches, appended) and stdin; nothing else."""
    cfg = wasmtime.WasiConfig()
    ptr = cfg.ptr()
    if argv is not None and argv.count and not ffi.wasi_config_set_argv(ptr, argv.count, argv.ptr):
        raise wasmtime.WasmtimeError("failed to configure argv")
    for names, values in env:
        if names.count and not ffi.wasi_config_set_env(ptr, names.count, names.ptr, values.ptr):
            raise wasmtime.WasmtimeError("failed to configure environment (not UTF-8?)")
    if stdin:
        vec = ffi.wasm_byte_vec_t()
        buf = (ffi.wasm_byte_t * len(stdin)).from_buffer_copy(stdin)
        ffi.wasm_byte_vec_new(_byref(vec), len(stdin), buf)
        ffi.wasi_config_set_stdin_bytes(ptr, _byref(vec))  # takes ownership of vec's data
    return cfg


def _raise(error: Any, trap: Any) -> None:
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)  # an ExitTrap for proc_exit
    if trap:
        raise wasmtime.Trap._from_ptr(trap)


def instantiate(pre: wasmtime.InstancePre, store: wasmtime.Store) -> Any:
    """Instantiate `pre` in `store`; returns the raw instance handle."""
    instance = ffi.wasmtime_instance_t()
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    error = ffi.wasmtime_instance_pre_instantiate(pre.ptr(), store._context(), _byref(instance), _byref(trap))
    if error or trap:
        _raise(error, trap)
    return instance


def call_export(store: wasmtime.Store, instance: Any, name: bytes) -> None:
    """Call the nullary export `name` (e.g. `_start`); raises KeyError if absent."""
    ctx = store._context()
    item = ffi.wasmtime_extern_t()
    if not ffi.wasmtime_instance_export_get(ctx, _byref(instance), name, len(name), _byref(item)):
        raise KeyError(name.decode())
    if cast(int, item.kind) != ffi.WASMTIME_EXTERN_FUNC.value:
        raise KeyError(f"{name.decode()} is not a function")
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    error = ffi.wasmtime_func_call(ctx, _byref(item.of.func), None, 0, None, 0, _byref(trap))
    if error or trap:
        _raise(error, trap)


def memory_size(store: wasmtime.Store, instance: Any, name: bytes = b"memory") -> int | None:
    """Byte size of the exported memory, or None if there is none."""
    ctx = store._context()
    item = ffi.wasmtime_extern_t()
    if not ffi.wasmtime_instance_export_get(ctx, _byref(instance), name, len(name), _byref(item)):
        return None
    if cast(int, item.kind) != ffi.WASMTIME_EXTERN_MEMORY.value:
        return None
    return int(ffi.wasmtime_memory_data_size(ctx, _byref(item.of.memory)))
