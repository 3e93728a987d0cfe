"""Host ABI v1 (docs/host-abi.md): error codes, result delivery and the guarded-call wrapper.

Every capability function returns an i32: >= 0 on success, a negative `Err` otherwise. Variable
length results go into a guest buffer when they fit; when they do not, the host keeps them for a
follow-up `result(out_ptr, out_cap)` so the operation is never run twice. Only a guest bug (a
pointer outside its memory) traps; a dependency problem is always an error code, because a guest
can handle an error code and cannot handle a trap.
"""

from __future__ import annotations

import enum
import functools
import struct
from collections.abc import Callable
from typing import Any

from ..runtime.hostfuncs import HostCall, HostTrap
from ..runtime.invocation import InvocationState, current

ABI_VERSION = 1
MAX_RESULT_BYTES = 8 * 1024 * 1024
"""Largest result the host hands a guest (a value, a row set); larger is Err.TOO_LARGE."""
MAX_ERROR_BYTES = 1024
_U32 = 0xFFFFFFFF
_PENDING = "shoal.abi.pending"
_ERROR = "shoal.abi.error"


class Err(enum.IntEnum):
    """Negative i32 results; values are part of ABI v1 and never change meaning."""

    NOT_FOUND = -1  # the key does not exist
    NO_DEPENDENCY = -2  # no dependency of that name and kind is declared for the app
    UNAVAILABLE = -3  # could not connect, or the connection broke: retry later
    TIMEOUT = -4  # the dependency did not answer in time; the outcome is unknown
    INVALID = -5  # a malformed argument (key syntax, JSON params, negative TTL, bad UTF-8 ...)
    DENIED = -6  # a key of another app that does not share with this one, or a write to it
    REJECTED = -7  # the server refused the command (SQL error, WRONGTYPE, not an integer ...)
    TOO_LARGE = -8  # the result exceeds MAX_RESULT_BYTES
    NO_RESULT = -9  # result() with nothing pending
    BUFFER_TOO_SMALL = -10  # result() with a buffer still smaller than the pending result
    INTERNAL = -11  # a bug or resource problem in the host


class CapabilityError(Exception):
    """Raised inside a host function implementation; becomes the negative return value."""

    def __init__(self, code: Err, message: str) -> None:
        super().__init__(message)
        self.code = code


ErrorMapper = Callable[[BaseException], CapabilityError | None]


def _state() -> InvocationState:
    state = current()
    if state is None:
        raise HostTrap("capability called outside an invocation")
    return state


def guarded(label: str, mapper: ErrorMapper) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Turn every failure of `impl` into an error code (remembered for `last_error`), never an
    exception escaping into wasmtime; HostTrap passes through to become a trap."""

    def wrap(impl: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(impl)
        def host(call: HostCall, *args: Any) -> int:
            try:
                result = impl(call, *args)
            except HostTrap:
                raise
            except CapabilityError as e:
                return _fail(e.code, f"{label}: {e}")
            except Exception as e:
                mapped = mapper(e)
                if mapped is None:
                    return _fail(Err.INTERNAL, f"{label}: {type(e).__name__}: {e}")
                return _fail(mapped.code, f"{label}: {mapped}")
            _state().extras.pop(_ERROR, None)
            return result

        return host

    return wrap


def _fail(code: Err, message: str) -> int:
    state = current()
    if state is not None:
        state.extras[_ERROR] = message.encode("utf-8", "replace")[:MAX_ERROR_BYTES]
    return int(code)


def read_text(call: HostCall, ptr: int, length: int, what: str) -> str:
    try:
        return call.read(ptr, length).decode("utf-8")
    except UnicodeDecodeError:
        raise CapabilityError(Err.INVALID, f"{what} is not valid UTF-8") from None


def deliver(call: HostCall, data: bytes, out_ptr: int, out_cap: int) -> int:
    """Write `data` if it fits in `out_cap`; else keep it pending. Returns its full length."""
    if len(data) > MAX_RESULT_BYTES:
        raise CapabilityError(Err.TOO_LARGE, f"result of {len(data)} bytes exceeds {MAX_RESULT_BYTES}")
    extras = _state().extras
    if len(data) <= out_cap & _U32:
        call.write(out_ptr, data)
        extras.pop(_PENDING, None)
    else:
        extras[_PENDING] = data
    return len(data)


def take_result(call: HostCall, out_ptr: int, out_cap: int) -> int:
    """`result(out_ptr, out_cap)`: copy out and forget the pending result of the last call."""
    extras = _state().extras
    data: bytes | None = extras.get(_PENDING)
    if data is None:
        return int(Err.NO_RESULT)
    if len(data) > out_cap & _U32:
        return int(Err.BUFFER_TOO_SMALL)
    call.write(out_ptr, data)
    del extras[_PENDING]
    return len(data)


def take_error(call: HostCall, out_ptr: int, out_cap: int) -> int:
    """`last_error(out_ptr, out_cap)`: the message of the last failed call (truncated to fit)."""
    message: bytes = _state().extras.get(_ERROR, b"")
    message = message[: out_cap & _U32]
    call.write(out_ptr, message)
    return len(message)


def write_i64s(call: HostCall, out_ptr: int, *values: int) -> None:
    call.write(out_ptr, struct.pack(f"<{len(values)}q", *values))


def clamp_i32(value: int) -> int:
    return max(0, min(value, 0x7FFFFFFF))
