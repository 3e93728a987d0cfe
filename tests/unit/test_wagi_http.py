"""The aiohttp side of the HTTP trigger, with a fake invoker: routing, limits, status mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shoal_agent.metrics import AgentMetrics
from shoal_agent.runtime import InvocationRequest, InvocationResult, Outcome
from shoal_agent.triggers import HttpRoute, HttpRouter, HttpTarget, make_wagi_handler

pytestmark = pytest.mark.unit


class FakeApp:
    """Echoes what the guest would have seen, as a CGI response."""

    def __init__(self, name: str, result: InvocationResult | None = None) -> None:
        self.name = name
        self.result = result
        self.requests: list[InvocationRequest] = []

    async def __call__(self, req: InvocationRequest) -> InvocationResult:
        self.requests.append(req)
        if self.result is not None:
            return self.result
        env = dict(req.env)
        body = f"{self.name} {env['PATH_INFO']} {env['X_MATCHED_ROUTE']} {req.stdin.decode()}"
        return InvocationResult(Outcome.OK, stdout=b"Content-Type: text/plain\nX-App: y\n\n" + body.encode())


def target(app: FakeApp, **kw: object) -> HttpTarget:
    return HttpTarget("ns", app.name, app, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def client_for() -> AsyncIterator[object]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(router: HttpRouter) -> TestClient[web.Request, web.Application]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", router.handle)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


async def test_routes_by_path_and_host(client_for) -> None:
    router = HttpRouter()
    router.add(HttpRoute("/..."), target(FakeApp("root")))
    router.add(HttpRoute("/api/..."), target(FakeApp("api")))
    router.add(HttpRoute("/api/exact"), target(FakeApp("exact")))
    router.add(HttpRoute("/...", host="shop.example"), target(FakeApp("shop")))
    client = await client_for(router)

    async def get(path: str, host: str | None = None) -> str:
        headers = {"Host": host} if host else {}
        resp = await client.get(path, headers=headers)
        assert resp.status == 200
        assert resp.headers["X-App"] == "y"
        text: str = await resp.text()
        return text

    assert await get("/api/x/y") == "api /x/y /api/... "
    assert await get("/api") == "api  /api/... "
    assert await get("/apix") == "root /apix /... "
    assert await get("/api/exact") == "exact  /api/exact "
    assert (await get("/api/x", host="shop.example:8080")).startswith("shop /api/x")


async def test_no_route_is_404(client_for) -> None:
    router = HttpRouter()
    router.add(HttpRoute("/only"), target(FakeApp("a")))
    client = await client_for(router)
    assert (await client.get("/other")).status == 404
    router.remove_app("ns", "a")
    assert (await client.get("/only")).status == 404


async def test_body_is_stdin_and_size_limited(client_for) -> None:
    router = HttpRouter()
    app = FakeApp("a")
    router.add(HttpRoute("/..."), target(app, max_body_bytes=10))
    client = await client_for(router)
    resp = await client.post("/p", data=b"0123456789")
    assert await resp.text() == "a /p /... 0123456789"
    assert dict(app.requests[-1].env)["CONTENT_LENGTH"] == "10"
    assert (await client.post("/p", data=b"01234567890")).status == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"abcd"

    assert (await client.post("/p", data=chunks())).status == 413  # chunked, no Content-Length


@pytest.mark.parametrize(
    ("result", "status", "text"),
    [
        (InvocationResult(Outcome.OK, stdout=b"garbage"), 502, "malformed CGI response"),
        (
            InvocationResult(Outcome.OK, stdout=b"Status: 404 Not Found\nContent-Type: text/plain\n\nnope"),
            404,
            "nope",
        ),
        (InvocationResult(Outcome.BUSY, message="full"), 503, "busy"),
        (InvocationResult(Outcome.TIMEOUT, message="deadline"), 504, "timeout"),
        (InvocationResult(Outcome.TRAP, message="unreachable"), 500, "trap: unreachable"),
        (InvocationResult(Outcome.STDOUT_LIMIT, message="too much"), 502, "stdout_limit"),
        (InvocationResult(Outcome.EXIT, exit_code=3, message="exited with code 3"), 500, "code 3"),
    ],
)
async def test_outcomes_map_to_statuses(client_for, result: InvocationResult, status: int, text: str) -> None:
    router = HttpRouter()
    router.add(HttpRoute("/..."), target(FakeApp("a", result)))
    client = await client_for(router)
    resp = await client.get("/")
    assert resp.status == status
    assert text in await resp.text()
    if status == 503:
        assert resp.headers["Retry-After"] == "1"


async def test_single_mount_handler_and_first_byte_metric(client_for) -> None:
    metrics = AgentMetrics("n").for_app("ns", "a")
    handler = make_wagi_handler(HttpRoute("/hello"), target(FakeApp("a"), metrics=metrics))
    app = web.Application()
    app.router.add_get("/hello", handler)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/hello")
        assert await resp.text() == "a  /hello "
    registry = metrics.parent.registry
    labels = {"namespace": "ns", "app": "a", "node": "n"}
    assert registry.get_sample_value("shoal_invocation_first_byte_seconds_count", labels) == 1


def test_duplicate_route_is_rejected() -> None:
    router = HttpRouter()
    router.add(HttpRoute("/x"), target(FakeApp("a")))
    with pytest.raises(ValueError, match="already taken"):
        router.add(HttpRoute("/x"), target(FakeApp("b")))
    with pytest.raises(ValueError):
        HttpRoute("relative")
