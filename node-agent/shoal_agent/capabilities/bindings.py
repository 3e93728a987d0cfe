"""Which dependencies the running invocation's app may use: (namespace, app) -> AppBinding.

Host functions are registered once per agent and shared by every app, so they find the caller's
app through the invocation state (`InvocationState.app`) and look its binding up here. Bindings
are replaced whole (a dict assignment is atomic under the GIL), so a worker thread never sees a
half-updated one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..runtime.invocation import current
from .abi import CapabilityError, Err
from .namespacing import KeySpace
from .pools import HostPort, MysqlTarget


@dataclass(frozen=True)
class AppBinding:
    keys: KeySpace
    redis: Mapping[str, HostPort] = field(default_factory=dict)
    mysql: Mapping[str, MysqlTarget] = field(default_factory=dict)


class Bindings:
    def __init__(self) -> None:
        self._apps: dict[tuple[str, str], AppBinding] = {}

    def set(self, binding: AppBinding) -> None:
        self._apps[(binding.keys.namespace, binding.keys.app)] = binding

    def remove(self, namespace: str, app: str) -> None:
        self._apps.pop((namespace, app), None)

    def get(self, namespace: str, app: str) -> AppBinding | None:
        return self._apps.get((namespace, app))

    def current(self) -> AppBinding:
        state = current()
        key = state.app if state is not None else None
        binding = self._apps.get(key) if key is not None else None
        if binding is None:
            raise CapabilityError(Err.NO_DEPENDENCY, "the app has no dependencies bound on this agent")
        return binding

    def dependency_name(self, raw: bytes) -> str:
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise CapabilityError(Err.NO_DEPENDENCY, "dependency names are ASCII") from None
