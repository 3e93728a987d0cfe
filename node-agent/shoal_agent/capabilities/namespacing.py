"""Per-app key spaces in a shared Redis, and the one explicit way to read another app's keys.

A guest's key `k` is stored as `<namespace>/<app>:k`, so two apps on one Redis never see each
other's data by accident. `@<owner>/k` addresses key `k` of app `<owner>` in the same namespace;
it is allowed for reads (get, exists) only, and only if `<owner>` lists this app in
`capabilities.shareKeysWith` (`shared_by` here). `@<self>/k` is this app's own `k`, which is also
how an app spells an own key that starts with '@'. Pub/sub channels are a namespace-wide medium
(apps talk to each other through them), so they are prefixed with `<namespace>/` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .abi import CapabilityError, Err

MAX_KEY_BYTES = 4096
MAX_CHANNEL_BYTES = 256
_OWNER = re.compile(rb"@([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)/")


@dataclass(frozen=True)
class KeySpace:
    namespace: str
    app: str
    shared_by: frozenset[str] = frozenset()
    """Apps of `namespace` whose shareKeysWith lists `app`: their keys are readable as `@owner/k`."""

    def prefix(self, owner: str | None = None) -> bytes:
        return f"{self.namespace}/{owner or self.app}:".encode()

    def key(self, key: bytes, *, write: bool) -> bytes:
        """The Redis key for guest key `key`; CapabilityError if malformed or not allowed."""
        if not key:
            raise CapabilityError(Err.INVALID, "empty key")
        if len(key) > MAX_KEY_BYTES:
            raise CapabilityError(Err.INVALID, f"key longer than {MAX_KEY_BYTES} bytes")
        if not key.startswith(b"@"):
            return self.prefix() + key
        match = _OWNER.match(key)
        if match is None or match.end() == len(key):
            raise CapabilityError(Err.INVALID, "a key starting with '@' must be '@<app>/<key>'")
        owner = match.group(1).decode()
        rest = key[match.end() :]
        if owner == self.app:
            return self.prefix() + rest
        if owner not in self.shared_by:
            raise CapabilityError(Err.DENIED, f"app {owner!r} does not share its keys with {self.app!r}")
        if write:
            raise CapabilityError(Err.DENIED, f"keys shared by app {owner!r} are read-only")
        return self.prefix(owner) + rest

    def channel(self, channel: bytes) -> bytes:
        if not channel or len(channel) > MAX_CHANNEL_BYTES:
            raise CapabilityError(Err.INVALID, f"channel must be 1..{MAX_CHANNEL_BYTES} bytes")
        return f"{self.namespace}/".encode() + channel


def channel_name(namespace: str, channel: str) -> str:
    """The Redis channel a trigger subscribes to for `channel` declared in `namespace`."""
    return f"{namespace}/{channel}"
