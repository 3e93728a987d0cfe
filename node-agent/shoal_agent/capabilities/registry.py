"""The agent's entry point to capabilities: host functions, per-app bindings, the Redis trigger.

The agent shell makes one `CapabilityHost` at start, passes `host.registry()` to `WasmRuntime`,
and for each placement calls `bind_app` (resolving Services and Secrets, async) before loading
the app with `AppSpec.capabilities = capabilities_for(dependencies)`, then `unbind_app` when the
placement goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Collection, Sequence
from typing import Protocol

from shoal_api.meta import KeySelector
from shoal_api.wasmapp import RedisTrigger
from shoal_api.wasmplacement import DependencyEndpoint

from ..runtime.hostfuncs import HostFunctionRegistry
from ..triggers.base import Invoker
from . import redis_kv, sql
from .bindings import AppBinding, Bindings
from .namespacing import KeySpace
from .pools import EndpointResolver, HostPort, MysqlTarget, Pools, PoolSettings
from .redis_pubsub import BackoffPolicy, RedisPubSubTrigger
from .spin_kv import SpinBackend

log = logging.getLogger(__name__)

KIND_CAPABILITY = {"redis": redis_kv.CAPABILITY, "mysql": sql.CAPABILITY}


class PasswordReader(Protocol):
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
        secrets: PasswordReader | None = None,
        settings: PoolSettings | None = None,
    ) -> None:
        self.resolver = resolver
        self.secrets = secrets
        self.pools = Pools(settings, on_failure=self._endpoint_failed)
        self.bindings = Bindings()
        self._requested: dict[tuple[str, str], tuple[DependencyEndpoint, ...]] = {}
        self._failed: set[HostPort] = set()
        self._failed_lock = threading.Lock()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def register_into(self, registry: HostFunctionRegistry) -> None:
        registry.register_all(redis_kv.functions(bindings=self.bindings, pools=self.pools))
        registry.register_all(sql.functions(bindings=self.bindings, pools=self.pools))
        registry.spin_backend = SpinBackend(self.bindings, self.pools)

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
        self._requested[(namespace, app)] = tuple(dependencies)
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
        self._requested.pop((namespace, app), None)

    # --- keeping addresses current --------------------------------------------------------------

    def _endpoint_failed(self, where: HostPort) -> None:
        """Pool hook (worker thread): a connection to `where` failed; re-resolve soon."""
        forget = getattr(self.resolver, "forget", None)
        if callable(forget):
            forget(where)
        with self._failed_lock:
            self._failed.add(where)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(wake.set)

    async def refresh(self) -> list[tuple[str, str]]:
        """Resolve every bound app's dependencies again; rebind those whose address changed (a pod
        moved). Keeps the old address when resolving fails. Returns the apps rebound."""
        with self._failed_lock:
            self._failed.clear()
        changed = []
        for key, deps in list(self._requested.items()):
            binding = self.bindings.get(*key)
            if binding is None:
                continue
            redis_deps, mysql_deps = dict(binding.redis), dict(binding.mysql)
            for dep in deps:
                try:
                    where = await self.resolver.resolve(dep.service)
                except Exception as e:
                    log.warning("re-resolving %s of %s/%s: %s", dep.name, *key, e)
                    continue
                if dep.name in redis_deps and redis_deps[dep.name] != where:
                    redis_deps[dep.name] = where
                elif dep.name in mysql_deps and mysql_deps[dep.name].where != where:
                    mysql_deps[dep.name] = dataclasses.replace(mysql_deps[dep.name], where=where)
            if redis_deps != binding.redis or mysql_deps != binding.mysql:
                log.info("dependencies of %s/%s moved: %s %s", *key, redis_deps, mysql_deps)
                self.bindings.set(dataclasses.replace(binding, redis=redis_deps, mysql=mysql_deps))
                changed.append(key)
        return changed

    async def keep_fresh(self, *, interval_s: float = 5.0) -> None:
        """Run until cancelled: refresh() every `interval_s`, and at once after a connection
        failure (the resolver's cache is dropped for that address, so the cluster is asked)."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=interval_s)
                self._wake.clear()
                try:
                    await self.refresh()
                except Exception:
                    log.exception("refreshing dependency addresses")
                await asyncio.sleep(min(1.0, interval_s))  # a dead endpoint must not spin us
        finally:
            self._loop = self._wake = None

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
        first = binding.redis.get(trigger.dependency)
        if first is None:
            raise DependencyError(f"trigger dependency {trigger.dependency!r} is not a redis dependency")

        def where() -> HostPort:
            """The dependency's address now: `refresh` rebinds the app when its pod moves."""
            current = self.bindings.get(namespace, app)
            found = current.redis.get(trigger.dependency) if current is not None else None
            return found or first

        return RedisPubSubTrigger(
            namespace=namespace,
            app=app,
            channel=trigger.channel,
            where=where,
            invoker=invoker,
            on_failure=self._endpoint_failed,
            backoff=backoff or BackoffPolicy(),
            settings=self.pools.settings,
        )

    def close(self) -> None:
        self.pools.close()
