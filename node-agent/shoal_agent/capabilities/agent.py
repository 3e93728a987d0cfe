"""Adapter from the agent shell's plug points (`apps.BindingsListener`, `apps.TriggerFactory`) to
`CapabilityHost`.

Two things the shell's per-version calls do not give directly are handled here:
* a rollout binds the new version before the old one is unbound, and both are the same
  (namespace, app): bindings are reference-counted so the old version's unbind keeps the new one;
* `shareKeysWith` is written on the *owner*, but the reader's binding needs "who shares with me".
  This agent derives it from the apps it has bound, so sharing works when the owner also runs on
  this node; for owners placed elsewhere the placement must carry the list (see the report /
  `extra_shared_by`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from shoal_api.wasmapp import RedisTrigger

from ..apps import AppBindings
from ..triggers.base import Invoker, Trigger
from .registry import CapabilityHost

SharedByLookup = Callable[[str, str], Collection[str]]


class AgentCapabilities:
    def __init__(self, host: CapabilityHost, *, extra_shared_by: SharedByLookup | None = None) -> None:
        self.host = host
        self.extra_shared_by = extra_shared_by
        self._refs: dict[tuple[str, str], int] = {}
        self._shares: dict[tuple[str, str], frozenset[str]] = {}
        self._deps: dict[tuple[str, str], AppBindings] = {}

    def _shared_by(self, namespace: str, app: str) -> frozenset[str]:
        local = {owner for (ns, owner), readers in self._shares.items() if ns == namespace and app in readers}
        extra = self.extra_shared_by(namespace, app) if self.extra_shared_by else ()
        return frozenset(local) | frozenset(extra)

    async def _rebind(self, key: tuple[str, str]) -> None:
        b = self._deps[key]
        await self.host.bind_app(
            namespace=b.namespace,
            app=b.app,
            dependencies=b.dependencies,
            shared_by=self._shared_by(b.namespace, b.app),
        )

    async def bind(self, bindings: AppBindings) -> None:
        """BindingsListener.bind: raises DependencyError if a Service or Secret cannot be resolved."""
        key = (bindings.namespace, bindings.app)
        previous = self._deps.get(key)
        self._deps[key] = bindings
        self._shares[key] = frozenset(bindings.share_keys_with)
        try:
            await self._rebind(key)
        except BaseException:
            if previous is None:
                self._deps.pop(key, None)
                self._shares.pop(key, None)
            else:
                self._deps[key] = previous
                self._shares[key] = frozenset(previous.share_keys_with)
            raise
        self._refs[key] = self._refs.get(key, 0) + 1
        await self._refresh_readers(bindings.namespace)

    async def unbind(self, bindings: AppBindings) -> None:
        key = (bindings.namespace, bindings.app)
        left = self._refs.get(key, 0) - 1
        if left > 0:
            self._refs[key] = left
            return
        self._refs.pop(key, None)
        self._deps.pop(key, None)
        self._shares.pop(key, None)
        self.host.unbind_app(namespace=bindings.namespace, app=bindings.app)
        await self._refresh_readers(bindings.namespace)

    async def _refresh_readers(self, namespace: str) -> None:
        """Sharing changed: give every bound app of the namespace its current `shared_by`."""
        for key in [k for k in self._deps if k[0] == namespace]:
            current = self.host.bindings.get(*key)
            if current is not None and current.keys.shared_by != self._shared_by(*key):
                self.host.set_shared_by(namespace=key[0], app=key[1], shared_by=self._shared_by(*key))

    def redis_trigger(self, bindings: AppBindings, raw: Mapping[str, object], invoker: Invoker) -> Trigger:
        """TriggerFactory for kind "redis": `raw` is the placement's `trigger.redis` as a dict."""
        return self.host.redis_trigger(
            namespace=bindings.namespace,
            app=bindings.app,
            trigger=RedisTrigger.model_validate(raw),
            invoker=invoker,
        )
