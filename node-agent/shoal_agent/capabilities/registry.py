"""The agent's entry point to capabilities: host functions, per-app bindings, the Redis trigger.

The agent shell makes one `CapabilityHost` at start, passes `host.registry()` to `WasmRuntime`,
and for each placement calls `bind_app` (resolving Services and Secrets, async) before loading
the app with `AppSpec.capabilities = capabilities_for(dependencies)`, then `unbind_app` when the
placement goes away.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import Protocol

from shoal_api.meta import KeySelector
from shoal_api.wasmapp import RedisTrigger
from shoal_api.wasmplacement import DependencyEndpoint

from ..runtime.hostfuncs import HostFunctionRegistry
from ..triggers.base import Invoker
from ..triggers.redis_pubsub import BackoffPolicy, RedisPubSubTrigger
from . import redis_kv, sql
from .bindings import AppBinding, Bindings
from .namespacing import KeySpace
from .pools import EndpointResolver, HostPort, MysqlTarget, Pools, PoolSettings

KIND_CAPABILITY = {"redis": redis_kv.CAPABILITY, "mysql": sql.CAPABILITY}


class SecretReader(Protocol):
    """Reads one key of a Secret (the agent has RBAC for the Secrets its placements reference)."""

    async def read(self, *, namespace: str, selector: KeySelector) -> str: ...


class DependencyError(Exception):
    """A dependency could not be bound (Service not resolvable, Secret missing): the placement
    should be reported as failed with this message rather than served half-wired."""


def capabilities_for(dependencies: Sequence[DependencyEndpoint]) -> frozenset[str]:
    """The capabilities an app may import: `redis` if it has a redis dependency, `sql` for mysql."""
    return frozenset(KIND_CAPABILITY[d.kind] for d in dependencies)


class CapabilityHost:
    def __init__(
        self,
        *,
        resolver: EndpointResolver,
        secrets: SecretReader | None = None,
        settings: PoolSettings | None = None,
    ) -> None:
        self.resolver = resolver
        self.secrets = secrets
        self.pools = Pools(settings)
        self.bindings = Bindings()

    def register_into(self, registry: HostFunctionRegistry) -> None:
        registry.register_all(redis_kv.functions(bindings=self.bindings, pools=self.pools))
        registry.register_all(sql.functions(bindings=self.bindings, pools=self.pools))

    def registry(self) -> HostFunctionRegistry:
        """A registry with `shoal:redis` and `shoal:sql`, for `WasmRuntime(host_functions=...)`."""
        registry = HostFunctionRegistry()
        self.register_into(registry)
        return registry

    async def bind_app(
        self,
        *,
        namespace: str,
        app: str,
        dependencies: Sequence[DependencyEndpoint],
        shared_by: Collection[str] = (),
    ) -> AppBinding:
        """Resolve and install what the app's invocations may reach; replaces an earlier binding.

        `shared_by`: apps in `namespace` whose `capabilities.shareKeysWith` lists `app`.
        Raises DependencyError when a Service or Secret cannot be resolved.
        """
        redis_deps: dict[str, HostPort] = {}
        mysql_deps: dict[str, MysqlTarget] = {}
        for dep in dependencies:
            try:
                where = await self.resolver.resolve(dep.service)
            except Exception as e:
                raise DependencyError(f"dependency {dep.name}: cannot resolve its Service: {e}") from e
            if dep.kind == "redis":
                redis_deps[dep.name] = where
                continue
            if not dep.database:
                raise DependencyError(f"dependency {dep.name}: mysql needs a database")
            password = await self._password(namespace, dep)
            mysql_deps[dep.name] = MysqlTarget(where, dep.user or app, password, dep.database)
        binding = AppBinding(KeySpace(namespace, app, frozenset(shared_by)), redis_deps, mysql_deps)
        self.bindings.set(binding)
        return binding

    async def _password(self, namespace: str, dep: DependencyEndpoint) -> str:
        if dep.password_secret is None:
            return ""
        if self.secrets is None:
            raise DependencyError(f"dependency {dep.name}: no secret reader to read its password")
        try:
            return await self.secrets.read(namespace=namespace, selector=dep.password_secret)
        except Exception as e:
            raise DependencyError(
                f"dependency {dep.name}: cannot read Secret {dep.password_secret.name}: {e}"
            ) from e

    def set_shared_by(self, *, namespace: str, app: str, shared_by: Collection[str]) -> None:
        """Change who shares keys with a bound app, without resolving anything again."""
        binding = self.bindings.get(namespace, app)
        if binding is not None:
            keys = dataclasses.replace(binding.keys, shared_by=frozenset(shared_by))
            self.bindings.set(dataclasses.replace(binding, keys=keys))

    def unbind_app(self, *, namespace: str, app: str) -> None:
        self.bindings.remove(namespace, app)

    def redis_trigger(
        self,
        *,
        namespace: str,
        app: str,
        trigger: RedisTrigger,
        invoker: Invoker,
        backoff: BackoffPolicy | None = None,
    ) -> RedisPubSubTrigger:
        """The pub/sub trigger of a bound app; the caller `start()`s and `stop()`s it."""
        binding = self.bindings.get(namespace, app)
        if binding is None:
            raise DependencyError(f"app {namespace}/{app} is not bound: call bind_app first")
        where = binding.redis.get(trigger.dependency)
        if where is None:
            raise DependencyError(f"trigger dependency {trigger.dependency!r} is not a redis dependency")
        return RedisPubSubTrigger(
            namespace=namespace,
            app=app,
            channel=trigger.channel,
            where=where,
            invoker=invoker,
            backoff=backoff or BackoffPolicy(),
            settings=self.pools.settings,
        )

    def close(self) -> None:
        self.pools.close()
