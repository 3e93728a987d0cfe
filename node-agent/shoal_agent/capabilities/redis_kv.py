"""`shoal:redis`: key-value and publish on the app's Redis dependencies (ABI v1, docs/host-abi.md).

Keys go through the app's `KeySpace` (namespaced, sharing enforced); values are raw bytes.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from ..runtime.hostfuncs import HostCall, HostFunction, ValKind
from .abi import CapabilityError, Err, clamp_i32, deliver, guarded, take_error, take_result, write_i64s
from .bindings import Bindings
from .namespacing import KeySpace
from .pools import Pools, RedisPool

CAPABILITY = "redis"
_I32: ValKind = "i32"
_I64: ValKind = "i64"


def map_error(e: BaseException) -> CapabilityError | None:
    """redis-py exceptions -> ABI codes; a connect timeout is 'unavailable' (nothing was sent)."""
    if isinstance(e, redis.TimeoutError):
        if "connect" in str(e).lower():
            return CapabilityError(Err.UNAVAILABLE, str(e))
        return CapabilityError(Err.TIMEOUT, str(e) or "timed out")
    if isinstance(e, redis.ConnectionError | OSError):
        return CapabilityError(Err.UNAVAILABLE, str(e))
    if isinstance(e, redis.ResponseError):
        return CapabilityError(Err.REJECTED, str(e))
    if isinstance(e, redis.RedisError):
        return CapabilityError(Err.UNAVAILABLE, str(e))
    return None


def functions(*, bindings: Bindings, pools: Pools) -> list[HostFunction]:
    """The `shoal:redis` host functions, resolving dependencies through `bindings`."""

    def target(call: HostCall, dep_ptr: int, dep_len: int) -> tuple[RedisPool, KeySpace]:
        binding = bindings.current()
        name = bindings.dependency_name(call.read(dep_ptr, dep_len))
        where = binding.redis.get(name)
        if where is None:
            raise CapabilityError(Err.NO_DEPENDENCY, f"no redis dependency named {name!r}")
        return pools.redis(where), binding.keys

    def get(call: HostCall, dp: int, dl: int, kp: int, kl: int, out: int, cap: int) -> int:
        pool, keys = target(call, dp, dl)
        value = pool.run("GET", keys.key(call.read(kp, kl), write=False))
        if value is None:
            raise CapabilityError(Err.NOT_FOUND, "no such key")
        return deliver(call, bytes(value), out, cap)

    def set_(call: HostCall, dp: int, dl: int, kp: int, kl: int, vp: int, vl: int, ttl_ms: int) -> int:
        if ttl_ms < 0:
            raise CapabilityError(Err.INVALID, "negative ttl")
        pool, keys = target(call, dp, dl)
        key, value = keys.key(call.read(kp, kl), write=True), call.read(vp, vl)
        expiry = ("PX", ttl_ms) if ttl_ms else ()
        pool.run("SET", key, value, *expiry)
        return 0

    def del_(call: HostCall, dp: int, dl: int, kp: int, kl: int) -> int:
        pool, keys = target(call, dp, dl)
        return clamp_i32(int(pool.run("DEL", keys.key(call.read(kp, kl), write=True))))

    def exists(call: HostCall, dp: int, dl: int, kp: int, kl: int) -> int:
        pool, keys = target(call, dp, dl)
        return clamp_i32(int(pool.run("EXISTS", keys.key(call.read(kp, kl), write=False))))

    def incr(call: HostCall, dp: int, dl: int, kp: int, kl: int, delta: int, out: int) -> int:
        pool, keys = target(call, dp, dl)
        value = int(pool.run("INCRBY", keys.key(call.read(kp, kl), write=True), delta))
        write_i64s(call, out, value)
        return 0

    def publish(call: HostCall, dp: int, dl: int, cp: int, cl: int, mp: int, ml: int) -> int:
        pool, keys = target(call, dp, dl)
        receivers = pool.run("PUBLISH", keys.channel(call.read(cp, cl)), call.read(mp, ml))
        return clamp_i32(int(receivers))

    def fn(name: str, impl: Callable[..., int], params: tuple[ValKind, ...]) -> HostFunction:
        return HostFunction(
            CAPABILITY, name, params, (_I32,), guarded(f"{CAPABILITY}.{name}", map_error)(impl)
        )

    dep_key = (_I32,) * 4
    return [
        fn("get", get, (*dep_key, _I32, _I32)),
        fn("set", set_, (*dep_key, _I32, _I32, _I64)),
        fn("del", del_, dep_key),
        fn("exists", exists, dep_key),
        fn("incr", incr, (*dep_key, _I64, _I32)),
        fn("publish", publish, (*dep_key, _I32, _I32)),
        HostFunction(CAPABILITY, "result", (_I32, _I32), (_I32,), take_result),
        HostFunction(CAPABILITY, "last_error", (_I32, _I32), (_I32,), take_error),
    ]
