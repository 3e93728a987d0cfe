"""Spin's `fermyon:spin/key-value@2.0.0` for Spin apps (components), served by the app's Redis.

The data plane calls `SpinBackend(namespace, app, op, args)` with the GIL from the guest's thread.
A store label names a Redis dependency of the app: `default` is the dependency called `default`,
or the app's only Redis dependency; any other label must be a Redis dependency's name. Keys live
in the app's `KeySpace` (`<namespace>/<app>:<key>`), exactly where `shoal:redis` puts them, so a
Spin app and a core module of the same name see the same keys. LookupError means "no such store".
"""

from __future__ import annotations

from typing import Any

from .bindings import AppBinding, Bindings
from .namespacing import KeySpace
from .pools import HostPort, Pools

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


class SpinBackend:
    def __init__(self, bindings: Bindings, pools: Pools) -> None:
        self.bindings = bindings
        self.pools = pools

    def __call__(self, namespace: str, app: str, op: str, args: tuple[Any, ...]) -> Any:
        binding = self.bindings.get(namespace, app)
        if binding is None:
            raise LookupError("the app has no dependencies bound on this agent")
        label, *rest = args
        pool = self.pools.redis(store_dependency(binding, label))
        keys = binding.keys
        if op == "kv.open":
            return None
        if op == "kv.get":
            value = pool.run("GET", own_key(keys, rest[0], write=False))
            return None if value is None else bytes(value)
        if op == "kv.set":
            pool.run("SET", own_key(keys, rest[0], write=True), bytes(rest[1]))
            return None
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
