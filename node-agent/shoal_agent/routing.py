"""How HTTP requests on the agent's trigger port find an app.

Every HTTP app placed on this node is reachable in two ways, through one `HttpRouter`:

1. By path: `trigger.http.path` P is a prefix; P itself and everything below it (P/...) goes to the
   app, whatever the Host header. SCRIPT_NAME is P, PATH_INFO the rest. Paths are shared by every
   namespace on the node, so if two apps on one node claim the same P, the first one keeps it and the
   second is reachable by Host only (its status message says so).
2. By Host: `<app>.<namespace>`, `<app>.<namespace>.svc` and `<app>.<namespace>.svc.<cluster-domain>`
   (any port). Under such a Host, P/... is routed as above and any other path falls through to the app
   with SCRIPT_NAME "" (so a Service named after the app, fronting the agents' trigger ports through
   EndpointSlices, works for any URL). Host routes always win over path routes.

Switching an app to a new version replaces all of its routes in one synchronous step (no await in
between), so no request ever sees the app unrouted or routed to a mix of versions.
"""

from __future__ import annotations

from .triggers import HttpRoute, HttpRouter, HttpTarget


def host_names(app: str, namespace: str, cluster_domain: str) -> list[str]:
    return [f"{app}.{namespace}", f"{app}.{namespace}.svc", f"{app}.{namespace}.svc.{cluster_domain}"]


def prefix_route(path: str) -> str:
    """`/hello` and `/hello/` -> `/hello/...`; `/` -> `/...` (everything)."""
    return path.rstrip("/") + "/..."


def app_routes(app: str, namespace: str, path: str, cluster_domain: str) -> list[HttpRoute]:
    """Path route first, then the Host routes."""
    routes = [HttpRoute(prefix_route(path))]
    for host in host_names(app, namespace, cluster_domain):
        routes.append(HttpRoute(prefix_route(path), host=host))
        if prefix_route(path) != "/...":
            routes.append(HttpRoute("/...", host=host))
    return routes


def mount(router: HttpRouter, target: HttpTarget, routes: list[HttpRoute]) -> list[HttpRoute]:
    """Replace the app's routes with `routes` atomically; returns the routes another app already holds."""
    router.remove_app(target.namespace, target.app)
    taken: list[HttpRoute] = []
    for route in routes:
        try:
            router.add(route, target)
        except ValueError:
            taken.append(route)
    return taken


def owner_of(router: HttpRouter, route: HttpRoute) -> str:
    """`namespace/app` currently serving `route` (for the conflict message)."""
    found = router.match(route.host or "", route.route.removesuffix("/...") or "/")
    return f"{found[1].namespace}/{found[1].app}" if found else "another app"
