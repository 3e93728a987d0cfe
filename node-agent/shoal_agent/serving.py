"""The agent's serving object: app versions in, routes and a listener out.

    load(spec, wasm) -> LoadedApp -> mount_http(app, path) / unmount(app) ; invoke(app, request)

One object owns the data plane (through `WasmRuntime`), the HTTP route table and the trigger
listener, so the placement worker, the agent's servers and the benchmarks all drive the same
thing, and every route change reaches the data plane in one swap (routing.py has the rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .routing import app_routes, mount, owner_of
from .runtime import AppSpec, InvocationRequest, InvocationResult, LoadedApp, WasmRuntime
from .triggers import HttpRouter, HttpTarget
from .triggers.http import DEFAULT_MAX_BODY


@dataclass(frozen=True)
class Mounted:
    """What `mount_http` did: the routes another app on this node already held."""

    taken_by: tuple[str, ...] = ()


class Serving:
    def __init__(self, runtime: WasmRuntime, *, cluster_domain: str = "cluster.local") -> None:
        self.runtime = runtime
        self.router = HttpRouter()
        self.cluster_domain = cluster_domain
        self.port: int | None = None

    # --- app versions -------------------------------------------------------------------------------

    async def load(self, spec: AppSpec, wasm: bytes, digest: str | None = None) -> LoadedApp:
        return await self.runtime.load_app_async(spec, wasm, digest)

    async def invoke(self, app: LoadedApp, request: InvocationRequest) -> InvocationResult:
        return await self.runtime.invoke(app, request)

    def forget_module(self, digest: str) -> None:
        self.runtime.forget_module(digest)

    # --- routes -------------------------------------------------------------------------------------

    def mount_http(
        self,
        app: LoadedApp,
        path: str,
        *,
        app_env: Mapping[str, str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY,
    ) -> Mounted:
        """Route `path` (and the app's Host names) to `app`, replacing its previous version's routes
        in one swap."""
        ns, name = app.spec.namespace, app.spec.name
        routes = app_routes(name, ns, path, self.cluster_domain)
        self.router.remove_app(ns, name)
        owners = {r: owner_of(self.router, r) for r in routes if r.host is None}
        target = HttpTarget(ns, name, app, dict(app_env or {}), max_body_bytes)
        taken = mount(self.router, target, routes)
        self._publish()
        return Mounted(tuple(sorted({owners.get(r, "another app") for r in taken})))

    def unmount(self, namespace: str, name: str) -> None:
        self.router.remove_app(namespace, name)
        self._publish()

    def _publish(self) -> None:
        self.runtime.plane.set_routes(self.router.native_table())

    # --- the trigger listener -----------------------------------------------------------------------

    def listen(self, host: str, port: int) -> int:
        """Serve the trigger port (0 picks one); returns the port."""
        self.port = int(self.runtime.plane.listen(host, port))
        return self.port

    def set_draining(self, draining: bool) -> None:
        """While draining every trigger request answers 503 with `Connection: close`."""
        self.runtime.plane.set_draining(draining)

    def stop_listening(self) -> None:
        self.runtime.plane.stop_listening()
