"""The per-invocation calls into wasmtime, made through wasmtime-py's ctypes bindings directly.

Why not the public API: `Instance.exports()` builds a dict of every export, `Func.__call__`
re-reads the function type, and both route errors through a process-global "last Python
exception" slot that another thread's host function can overwrite. Going one level down keeps a
hello-world invocation within a few microseconds of a bare `InstancePre.instantiate` loop and
makes traps thread-correct. Everything that touches `wasmtime._ffi` lives in this module (and
`hostfuncs`), so a wasmtime-py upgrade that moves these names breaks here, loudly, and
`wasmtime>=50,<51` is pinned for that reason.

ctypes releases the GIL around every foreign call. That is right for the two calls that run
guest code (instantiate, which runs a start function, and the export call), but for the dozen
sub-microsecond bookkeeping calls of an invocation (store, WASI config, limits, exports) each
release lets the event loop thread grab the GIL and costs a thread switch. `held` calls go
through a `PyDLL` handle of the same library instead, which keeps the GIL; measured on 2 cores
with the C hello over HTTP, this alone is worth about 10% more requests per second.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any, cast

import wasmtime
from wasmtime import _bindings
from wasmtime import _ffi as ffi

_CharPP = ctypes.POINTER(ctypes.POINTER(ctypes.c_char))
_byref = ctypes.byref
_held_dll = ctypes.PyDLL(str(ffi.filename))


def held(name: str) -> Any:
    """libwasmtime's `name`, with wasmtime-py's prototype, called without releasing the GIL.

    Only for calls that are short, never run guest code and never call back into Python."""
    proto = getattr(_bindings, f"_{name}")
    fn = getattr(_held_dll, name)
    fn.argtypes, fn.restype = proto.argtypes, proto.restype
    return fn


_store_new = held("wasmtime_store_new")
_store_context = held("wasmtime_store_context")
_store_limiter = held("wasmtime_store_limiter")
_set_epoch_deadline = held("wasmtime_context_set_epoch_deadline")
_set_wasi = held("wasmtime_context_set_wasi")
_wasi_config_new = held("wasi_config_new")
_wasi_config_set_argv = held("wasi_config_set_argv")
_wasi_config_set_env = held("wasi_config_set_env")
_wasi_config_set_stdin_bytes = held("wasi_config_set_stdin_bytes")
_byte_vec_new = held("wasm_byte_vec_new")
_export_get = held("wasmtime_instance_export_get")
_memory_data_size = held("wasmtime_memory_data_size")
_NO_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))


class CharArray:
    """A C `char*[]` built once; the encoded strings stay alive with it."""

    __slots__ = ("_keep", "count", "ptr")

    def __init__(self, items: Sequence[bytes]) -> None:
        self._keep = (ctypes.c_char_p * len(items))(*items)
        self.ptr = ctypes.cast(self._keep, _CharPP)
        self.count = len(items)


def encode_all(items: Sequence[str]) -> list[bytes]:
    return [s.encode("utf-8") for s in items]


class RawStore:
    """A wasmtime Store for one invocation, deleted by `close()` (not left to the GC).

    Deleting it returns the instance's memory to the engine; that may take a while for a guest
    that touched a lot of memory, so it releases the GIL like wasmtime-py does."""

    __slots__ = ("ctx", "ptr")

    def __init__(self, engine: wasmtime.Engine) -> None:
        self.ptr = _store_new(engine.ptr(), None, _NO_FINALIZER)
        self.ctx = _store_context(self.ptr)

    def configure(
        self,
        *,
        argv: CharArray | None,
        env: Sequence[tuple[CharArray, CharArray]],
        stdin: bytes,
        memory_bytes: int,
        deadline_ticks: int,
    ) -> None:
        """WASI with exactly these args, env (several batches, appended) and stdin, nothing
        else; a linear-memory limit; an epoch deadline."""
        cfg = _wasi_config_new()
        if argv is not None and argv.count and not _wasi_config_set_argv(cfg, argv.count, argv.ptr):
            ffi.wasi_config_delete(cfg)
            raise wasmtime.WasmtimeError("failed to configure argv")
        for names, values in env:
            if names.count and not _wasi_config_set_env(cfg, names.count, names.ptr, values.ptr):
                ffi.wasi_config_delete(cfg)
                raise wasmtime.WasmtimeError("failed to configure environment (not UTF-8?)")
        if stdin:
            vec = ffi.wasm_byte_vec_t()
            buf = (ffi.wasm_byte_t * len(stdin)).from_buffer_copy(stdin)
            _byte_vec_new(_byref(vec), len(stdin), buf)
            _wasi_config_set_stdin_bytes(cfg, _byref(vec))  # takes ownership of vec's data
        error = _set_wasi(self.ctx, cfg)  # takes ownership of cfg
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        _store_limiter(self.ptr, memory_bytes, -1, -1, -1, -1)
        _set_epoch_deadline(self.ctx, deadline_ticks)

    def close(self) -> None:
        ptr, self.ptr = self.ptr, None
        if ptr is not None:
            ffi.wasmtime_store_delete(ptr)


def _raise(error: Any, trap: Any) -> None:
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)  # an ExitTrap for proc_exit
    if trap:
        raise wasmtime.Trap._from_ptr(trap)


def instantiate(pre: wasmtime.InstancePre, store: RawStore) -> Any:
    """Instantiate `pre` in `store`; returns the raw instance handle."""
    instance = ffi.wasmtime_instance_t()
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    error = ffi.wasmtime_instance_pre_instantiate(pre.ptr(), store.ctx, _byref(instance), _byref(trap))
    if error or trap:
        _raise(error, trap)
    return instance


def call_export(store: RawStore, instance: Any, name: bytes) -> None:
    """Call the nullary export `name` (e.g. `_start`); raises KeyError if absent."""
    ctx = store.ctx
    item = ffi.wasmtime_extern_t()
    if not _export_get(ctx, _byref(instance), name, len(name), _byref(item)):
        raise KeyError(name.decode())
    if cast(int, item.kind) != ffi.WASMTIME_EXTERN_FUNC.value:
        raise KeyError(f"{name.decode()} is not a function")
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    error = ffi.wasmtime_func_call(ctx, _byref(item.of.func), None, 0, None, 0, _byref(trap))
    if error or trap:
        _raise(error, trap)


def memory_size(store: RawStore, instance: Any, name: bytes = b"memory") -> int | None:
    """Byte size of the exported memory, or None if there is none."""
    ctx = store.ctx
    item = ffi.wasmtime_extern_t()
    if not _export_get(ctx, _byref(instance), name, len(name), _byref(item)):
        return None
    if cast(int, item.kind) != ffi.WASMTIME_EXTERN_MEMORY.value:
        return None
    return int(_memory_data_size(ctx, _byref(item.of.memory)))
