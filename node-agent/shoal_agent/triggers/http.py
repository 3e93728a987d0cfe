"""The HTTP trigger: WAGI routes by path (and optionally Host) to apps, served through aiohttp.

The agent's server mounts `HttpRouter.handle` as a catch-all; apps are added and removed as they
are placed. `make_wagi_handler` serves a single app where the agent wants a fixed mount instead.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from ..metrics import AppMetrics
from ..runtime.app import InvocationRequest
from ..runtime.outcome import InvocationResult, Outcome
from .base import Invoker
from .wagi import CgiRequest, MalformedResponse, build_args, build_env, parse_response, split_route

DEFAULT_MAX_BODY = 4 * 1024 * 1024
_STRIPPED_RESPONSE_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
_OUTCOME_STATUS = {
    Outcome.BUSY: 503,
    Outcome.TIMEOUT: 504,
    Outcome.STDOUT_LIMIT: 502,
    Outcome.EXIT: 500,
    Outcome.TRAP: 500,
    Outcome.OUT_OF_MEMORY: 500,
    Outcome.ERROR: 500,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    """One app behind a route."""

    namespace: str
    app: str
    invoker: Invoker
    app_env: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = DEFAULT_MAX_BODY
    metrics: AppMetrics | None = None


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message.rstrip() + "\n", content_type="text/plain")


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None if it is larger than `limit`."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def cgi_request_of(request: web.Request, body_length: int) -> CgiRequest:
    host_header = request.host
    host, _, port = host_header.rpartition(":") if host_header.count(":") == 1 else (host_header, "", "")
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    default_port = 443 if request.secure else 80
    server_port = int(port) if port.isdigit() else (sockname[1] if sockname else default_port)
    return CgiRequest(
        method=request.method,
        path=request.raw_path.split("?", 1)[0],
        query=request.query_string,
        headers=list(request.headers.items()),
        body_length=body_length,
        host=host or "localhost",
        port=server_port,
        scheme=request.scheme,
        remote_addr=request.remote or "",
        protocol=f"HTTP/{request.version.major}.{request.version.minor}",
    )


def result_to_response(result: InvocationResult) -> web.Response:
    """Map an invocation to HTTP: parse the CGI output of a clean run, else an error status."""
    if result.outcome is not Outcome.OK:
        status = _OUTCOME_STATUS.get(result.outcome, 500)
        resp = _text(status, f"{result.outcome.value}: {result.message}")
        if status == 503:
            resp.headers["Retry-After"] = "1"
        return resp
    try:
        cgi = parse_response(result.stdout)
    except MalformedResponse as e:
        return _text(502, f"malformed CGI response from module: {e}")
    resp = web.Response(status=cgi.status, body=cgi.body)
    for name, value in cgi.headers:
        if name.lower() not in _STRIPPED_RESPONSE_HEADERS:
            resp.headers.add(name, value)
    return resp


async def serve(request: web.Request, route: HttpRoute, target: HttpTarget) -> web.StreamResponse:
    started = time.perf_counter()
    body = await _read_body(request, target.max_body_bytes)
    if body is None:
        return _text(413, f"request body exceeds {target.max_body_bytes} bytes")
    cgi = cgi_request_of(request, len(body))
    script_name, _ = split_route(route.route, cgi.path)
    invocation = InvocationRequest(
        stdin=body,
        env=build_env(cgi, route.route, target.app_env),
        args=build_args(script_name, cgi.query),
    )
    result = await target.invoker(invocation)
    resp = result_to_response(result)
    await resp.prepare(request)
    if target.metrics is not None:
        target.metrics.first_byte.observe(time.perf_counter() - started)
    return resp


def make_wagi_handler(route: HttpRoute, target: HttpTarget) -> Handler:
    """An aiohttp handler serving one app at one route (no path/Host matching of its own)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve(request, route, target)

    return handler


class HttpRouter:
    """Routes by Host and path to apps; mount `handle` as the server's catch-all."""

    def __init__(self) -> None:
        self._routes: list[tuple[HttpRoute, HttpTarget]] = []

    def add(self, route: HttpRoute, target: HttpTarget) -> None:
        if any(r == route for r, _ in self._routes):
            raise ValueError(f"route {route.route} (host {route.host or '*'}) is already taken")
        self._routes.append((route, target))
        self._routes.sort(key=lambda rt: rt[0].specificity(), reverse=True)

    def remove_app(self, namespace: str, app: str) -> None:
        self._routes = [(r, t) for r, t in self._routes if (t.namespace, t.app) != (namespace, app)]

    def match(self, host: str, path: str) -> tuple[HttpRoute, HttpTarget] | None:
        hostname = host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()
        for route, target in self._routes:
            if route.host is not None and route.host.lower() != hostname:
                continue
            if route.matches_path(path):
                return route, target
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        found = self.match(request.host, request.path)
        if found is None:
            return _text(404, f"no app serves {request.path}")
        return await serve(request, *found)
