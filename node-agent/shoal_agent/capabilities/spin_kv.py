"""Spin's `fermyon:spin/key-value@2.0.0` and `fermyon:spin/redis@2.0.0` for Spin apps (components),
served by the app's Redis dependencies.

The data plane calls `SpinBackend(namespace, app, op, args)` with the GIL from the guest's thread.
A store label names a Redis dependency of the app: `default` is the dependency called `default`,
or the app's only Redis dependency; any other label must be a Redis dependency's name. Keys live
in the app's `KeySpace` (`<namespace>/<app>:<key>`), exactly where `shoal:redis` puts them, so a
Spin app and a core module of the same name see the same keys. LookupError means "no such store".
`fermyon:spin/redis` opens `redis://<dependency>`: only a declared Redis dependency, by name (the
agent knows where it is; an address the app makes up is refused, LookupError = invalid-address).
Its keys and channels go through the same `KeySpace`; WRONGTYPE and non-integer values are TypeError.
`fermyon:spin/mysql` operations go to `spin_mysql`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis

from . import spin_mysql
from .bindings import AppBinding, Bindings
from .namespacing import KeySpace
from .pools import HostPort, Pools, RedisPool

DEFAULT_STORE = "default"
SCAN_BATCH = 500


def store_dependency(binding: AppBinding, label: str) -> HostPort:
    """The Redis dependency behind store `label`; LookupError when there is none."""
    where = binding.redis.get(label)
    if where is not None:
        return where
    if label == DEFAULT_STORE and len(binding.redis) == 1:
        return next(iter(binding.redis.values()))
    declared = ", ".join(sorted(binding.redis)) or "none"
    raise LookupError(
        f"no key-value store {label!r}: the `default` store is the app's only Redis dependency or the "
        f"one named `default`, other labels name a Redis dependency (declared: {declared})"
    )


def own_key(keys: KeySpace, key: str, *, write: bool) -> bytes:
    return keys.key(key.encode(), write=write)


def redis_dependency(binding: AppBinding, address: str) -> str:
    """The Redis dependency `redis://<name>` names; LookupError for anything else."""
    parts = urlsplit(address)
    name = parts.hostname or ""
    if parts.scheme not in ("redis", "rediss") or name not in binding.redis:
        declared = ", ".join(sorted(binding.redis)) or "none"
        raise LookupError(
            f"{address!r} is not redis://<dependency> of a declared Redis dependency ({declared})"
        )
    return name


def get_or_set(pool: RedisPool, keys: KeySpace, verb: str, args: list[Any]) -> bytes | None:
    """`get` (key) or `set` (key, value) of one of the app's own keys: the same for a key-value
    store and for Spin's Redis interface."""
    if verb == "get":
        value = pool.run("GET", own_key(keys, args[0], write=False))
        return None if value is None else bytes(value)
    pool.run("SET", own_key(keys, args[0], write=True), bytes(args[1]))
    return None


class SpinBackend:
    def __init__(self, bindings: Bindings, pools: Pools) -> None:
        self.bindings = bindings
        self.pools = pools

    def __call__(self, namespace: str, app: str, op: str, args: tuple[Any, ...]) -> Any:
        binding = self.bindings.get(namespace, app)
        if binding is None:
            raise LookupError("the app has no dependencies bound on this agent")
        if op.startswith("redis."):
            return self._redis(binding, op, args)
        if op.startswith("mysql."):
            return spin_mysql.call(binding, self.pools, op, args)
        label, *rest = args
        pool = self.pools.redis(store_dependency(binding, label))
        keys = binding.keys
        if op == "kv.open":
            return None
        if op in ("kv.get", "kv.set"):
            return get_or_set(pool, keys, op.removeprefix("kv."), rest)
        if op == "kv.delete":
            pool.run("DEL", own_key(keys, rest[0], write=True))
            return None
        if op == "kv.exists":
            return bool(pool.run("EXISTS", own_key(keys, rest[0], write=False)))
        if op == "kv.keys":
            prefix = keys.prefix()
            found: list[str] = []
            cursor = 0
            while True:
                cursor, batch = pool.run("SCAN", cursor, "MATCH", prefix + b"*", "COUNT", SCAN_BATCH)
                found.extend(bytes(k)[len(prefix) :].decode(errors="replace") for k in batch)
                if int(cursor) == 0:
                    return sorted(set(found))
        raise ValueError(f"unknown Spin backend operation {op!r}")

    def _redis(self, binding: AppBinding, op: str, args: tuple[Any, ...]) -> Any:
        if op == "redis.open":
            return redis_dependency(binding, args[0])
        dependency, *rest = args
        pool, keys = self.pools.redis(binding.redis[dependency]), binding.keys
        try:
            if op == "redis.publish":
                pool.run("PUBLISH", keys.channel(rest[0].encode()), bytes(rest[1]))
                return None
            if op in ("redis.get", "redis.set"):
                return get_or_set(pool, keys, op.removeprefix("redis."), rest)
            if op == "redis.incr":
                return int(pool.run("INCR", own_key(keys, rest[0], write=True)))
            if op == "redis.del":
                return int(pool.run("DEL", *(own_key(keys, k, write=True) for k in rest[0])))
            if op in ("redis.sadd", "redis.srem"):
                command = "SADD" if op == "redis.sadd" else "SREM"
                return int(pool.run(command, own_key(keys, rest[0], write=True), *rest[1]))
            if op == "redis.smembers":
                members = pool.run("SMEMBERS", own_key(keys, rest[0], write=False))
                return sorted(bytes(m).decode(errors="replace") for m in members)
        except redis.ResponseError as e:
            if "WRONGTYPE" in str(e) or "not an integer" in str(e):
                raise TypeError(str(e)) from e
            raise
        raise ValueError(f"unknown Spin backend operation {op!r}")
