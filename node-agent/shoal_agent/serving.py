"""The agent's serving object: app versions in, routes and a listener out.

    load(spec, wasm) -> LoadedApp -> mount_http(app, path) / unmount(app) ; invoke(app, request)

One object owns the data plane (through `WasmRuntime`), the HTTP route table and the trigger
listener, so the placement worker, the agent's servers and the benchmarks all drive the same
thing, and every route change reaches the data plane in one swap (routing.py has the rules).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import Checkpoint, Entry, WarmApp, checkpointable
from .routing import app_routes, mount, owner_of
from .runtime import AppSpec, InvocationRequest, InvocationResult, LoadedApp, WasmRuntime
from .triggers import HttpRouter, HttpTarget
from .triggers.http import DEFAULT_MAX_BODY


@dataclass(frozen=True)
class Mounted:
    """What `mount_http` did: the routes another app on this node already held."""

    taken_by: tuple[str, ...] = ()


class Serving:
    def __init__(
        self,
        runtime: WasmRuntime,
        *,
        cluster_domain: str = "cluster.local",
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.runtime = runtime
        self.router = HttpRouter()
        self.cluster_domain = cluster_domain
        self.port: int | None = None
        self.checkpoint = checkpoint
        """Where mounted HTTP apps are recorded for the next warm start (warmstart.py); None: nowhere."""
        self.warm: dict[tuple[str, str], WarmApp] = {}
        """Apps served from the checkpoint that no placement has claimed yet."""
        self._origins: weakref.WeakKeyDictionary[LoadedApp, tuple[str, Path]] = weakref.WeakKeyDictionary()

    # --- app versions -------------------------------------------------------------------------------

    async def load(
        self, spec: AppSpec, wasm: bytes, digest: str | None = None, *, source: Path | None = None
    ) -> LoadedApp:
        """`source`: the local file `wasm` was read from, when the app may be checkpointed (None for
        apps whose env holds Secret values). The warm app of exactly this spec and digest is
        claimed instead of loaded again."""
        warm = self.warm.get(spec.key)
        if warm is not None and warm.entry.spec == spec and warm.entry.digest == digest:
            del self.warm[spec.key]
            loaded = warm.loaded
        else:
            loaded = await self.runtime.load_app_async(spec, wasm, digest)
        if digest is not None and checkpointable(spec, source):
            assert source is not None
            self._origins[loaded] = (digest, source)
        return loaded

    def serve_warm(self, app: LoadedApp, entry: Entry) -> None:
        """Mount an app version loaded from the checkpoint, until a placement claims it (`load`)."""
        self.warm[app.spec.key] = WarmApp(app, entry)
        self._origins[app] = (entry.digest, Path(entry.source))
        self.mount_http(app, entry.path, app_env=entry.app_env, max_body_bytes=entry.max_body_bytes)

    def release_unclaimed(self) -> list[tuple[str, str]]:
        """Unmount and unload the warm apps no placement claimed (the agent has settled on what the
        apiserver says it runs); returns their keys."""
        released = list(self.warm)
        for key in released:
            self._release(key)
        return released

    def _release(self, key: tuple[str, str]) -> None:
        warm = self.warm.pop(key)
        self.unmount(*key, only=warm.loaded)
        if self.runtime.get(*key) is warm.loaded:
            self.runtime.unload(*key)

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
        for key, warm in list(self.warm.items()):
            if key != (ns, name) and warm.loaded is not app and warm.entry.path == path:
                self._release(key)  # what the apiserver places wins over what this agent remembered
        routes = app_routes(name, ns, path, self.cluster_domain)
        self.router.remove_app(ns, name)
        owners = {r: owner_of(self.router, r) for r in routes if r.host is None}
        target = HttpTarget(ns, name, app, dict(app_env or {}), max_body_bytes)
        taken = mount(self.router, target, routes)
        self._publish()
        self._record(app, path, app_env, max_body_bytes)
        return Mounted(tuple(sorted({owners.get(r, "another app") for r in taken})))

    def mounted(self, namespace: str, name: str) -> LoadedApp | None:
        """The app version the app's routes lead to now."""
        return self.router.mounted(namespace, name)

    def unmount(self, namespace: str, name: str, *, only: LoadedApp | None = None) -> None:
        """`only`: unless another version of the app is mounted now (a new placement of the same
        app took over while this one drained)."""
        if only is not None and self.router.mounted(namespace, name) not in (None, only):
            return
        self.router.remove_app(namespace, name)
        self._publish()
        if self.checkpoint is not None:
            self.checkpoint.drop((namespace, name))

    def keep_checkpoint(self) -> None:
        """Stop updating the checkpoint: the agent is shutting down, and its next start should serve
        what it served until now (the apiserver still places those apps here)."""
        self.checkpoint = None

    def _record(
        self, app: LoadedApp, path: str, app_env: Mapping[str, str] | None, max_body_bytes: int
    ) -> None:
        if self.checkpoint is None:
            return
        origin = self._origins.get(app)
        if origin is None:  # not checkpointable: a restart must not serve an older version of it
            self.checkpoint.drop(app.spec.key)
            return
        digest, source = origin
        entry = Entry(app.spec, digest, str(source), path, dict(app_env or {}), max_body_bytes)
        if self.checkpoint.entries.get(app.spec.key) != entry:
            self.checkpoint.put(entry)

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
