"""The HTTP trigger's route table: which app serves which path (and optionally Host).

Requests themselves are served by the native data plane's listener (WAGI: CGI over the guest's
stdio, node-agent/dataplane/src/cgi.rs); this table decides the routes, and `Serving` hands the
whole table to the data plane after every change, which swaps it in one step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..runtime.app import LoadedApp

DEFAULT_MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True)
class HttpRoute:
    """`/exact`, or `/prefix/...` for a prefix and everything below it; `host` None = any Host."""

    route: str
    host: str | None = None

    def __post_init__(self) -> None:
        if not self.route.startswith("/"):
            raise ValueError(f"route must start with '/': {self.route!r}")

    @property
    def wildcard(self) -> bool:
        return self.route.endswith("/...")

    def matches_path(self, path: str) -> bool:
        if not self.wildcard:
            return path == self.route
        prefix = self.route[: -len("/...")]
        return path == prefix or path.startswith(prefix + "/") or prefix == ""

    def specificity(self) -> tuple[int, int, int]:
        """Sort key: Host-bound over any-Host, exact over wildcard, longer prefix first."""
        return (self.host is not None, not self.wildcard, len(self.route))


@dataclass
class HttpTarget:
    """One app version behind a route."""

    namespace: str
    app: str
    loaded: LoadedApp
    app_env: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = DEFAULT_MAX_BODY


# What the data plane takes: (route, host, app handle, app env, max body bytes).
NativeRoute = tuple[str, str | None, object, list[tuple[str, str]], int]


class HttpRouter:
    """Routes by Host and path to apps, most specific first (the data plane matches the same way)."""

    def __init__(self) -> None:
        self._routes: list[tuple[HttpRoute, HttpTarget]] = []

    def add(self, route: HttpRoute, target: HttpTarget) -> None:
        if any(r == route for r, _ in self._routes):
            raise ValueError(f"route {route.route} (host {route.host or '*'}) is already taken")
        self._routes.append((route, target))
        self._routes.sort(key=lambda rt: rt[0].specificity(), reverse=True)

    def remove_app(self, namespace: str, app: str) -> None:
        self._routes = [(r, t) for r, t in self._routes if (t.namespace, t.app) != (namespace, app)]

    def mounted(self, namespace: str, app: str) -> LoadedApp | None:
        """The version behind the app's routes (one per app: a mount replaces the previous)."""
        for _, target in self._routes:
            if (target.namespace, target.app) == (namespace, app):
                return target.loaded
        return None

    def match(self, host: str, path: str) -> tuple[HttpRoute, HttpTarget] | None:
        hostname = host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()
        for route, target in self._routes:
            if route.host is not None and route.host.lower() != hostname:
                continue
            if route.matches_path(path):
                return route, target
        return None

    def native_table(self) -> list[NativeRoute]:
        return [
            (r.route, r.host, t.loaded.native, sorted(t.app_env.items()), t.max_body_bytes)
            for r, t in self._routes
        ]
