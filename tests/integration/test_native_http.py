"""The HTTP trigger as the data plane serves it: real guests behind the native listener.

Routing by path and Host, WAGI in (CGI variables, argv, body on stdin, its size limit) and out (the
CGI response, malformed ones), what each outcome answers, admission, draining and metrics.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import shoal_dataplane

from harness.netcluster import eventually
from shoal_agent.metrics import AgentMetrics
from shoal_agent.runtime import AppLimits, AppSpec, EngineSettings, LoadedApp, WasmRuntime
from shoal_agent.runtime.errors import InvalidWasmError
from shoal_agent.serving import Serving

pytestmark = pytest.mark.integration

LIMITS = AppLimits(timeout_s=0.3, memory_bytes=16 * 1024 * 1024, stdout_bytes=64 * 1024)


class Client:
    """A tiny blocking HTTP/1.1 client (the listener is native: no event loop needed here)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode()
        finally:
            conn.close()

    def get(self, path: str, **kw: dict[str, str]) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path, **kw)  # type: ignore[arg-type]


@pytest.fixture
def serving(example_guests: Path, tmp_path: Path) -> Iterator[tuple[Serving, Client]]:
    settings = EngineSettings(memory_budget_bytes=64 * 1024 * 1024)
    with WasmRuntime(AgentMetrics("node-a"), cache_dir=tmp_path / "cache", settings=settings) as rt:
        s = Serving(rt)
        port = s.listen("127.0.0.1", 0)
        yield s, Client(port)
        s.stop_listening()


def load(s: Serving, guests: Path, name: str, app: str | None = None, **kw: object) -> LoadedApp:
    spec = AppSpec("ns", app or name, limits=kw.pop("limits", LIMITS), **kw)  # type: ignore[arg-type]
    return s.runtime.load_app(spec, (guests / f"{name}.wasm").read_bytes())


def fields(body: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


def test_routes_by_path_and_host_with_cgi_variables(
    serving: tuple[Serving, Client], example_guests: Path
) -> None:
    s, c = serving
    s.mount_http(load(s, example_guests, "cgi-echo", "api"), "/api")
    s.mount_http(load(s, example_guests, "hello-c", "root"), "/")
    status, headers, body = c.get("/api/items/a%20b?x=1", headers={"Authorization": "secret"})
    assert status == 200 and headers["x-echo"] == "yes" and headers["content-type"] == "text/plain"
    f = fields(body)
    assert (f["path_info"], f["script_name"], f["route"]) == ("/items/a b", "/api", "/api/...")
    assert f["method"] == "GET" and f["authorization"] == ""  # credentials never reach guests
    assert f["full_url"] == f"http://127.0.0.1:{c.port}/api/items/a%20b?x=1"
    assert c.get("/apix")[2].startswith("Hello from C, /apix")
    # By Host: the app's Service names, any path.
    f = fields(c.get("/anything", headers={"Host": "api.ns.svc.cluster.local:80"})[2])
    assert (f["script_name"], f["path_info"], f["route"]) == ("", "/anything", "/...")
    # ISINDEX queries are argv.
    assert fields(c.get("/api?a+b%21")[2])["args"] == "a,b!"


def test_an_http_app_sets_argv_and_names_its_entry_point(
    serving: tuple[Serving, Client], example_guests: Path
) -> None:
    s, c = serving
    s.mount_http(load(s, example_guests, "cgi-echo", "argv", args=("--verbose", "x y")), "/argv")
    assert fields(c.get("/argv/p")[2])["args"] == "--verbose,x y"
    # A WAGI query's args come after the app's own.
    assert fields(c.get("/argv/p?more+args")[2])["args"] == "--verbose,x y,more,args"
    s.mount_http(load(s, example_guests, "cgi-echo", "shout", entrypoint="shout"), "/shout")
    status, _, body = c.get("/shout/here")
    assert (status, body) == (200, "SHOUT from /here\n")
    with pytest.raises(InvalidWasmError, match='no "nowhere" export'):
        load(s, example_guests, "cgi-echo", "nowhere", entrypoint="nowhere")


def test_unrouted_is_404_and_unmount_takes_effect_at_once(
    serving: tuple[Serving, Client], example_guests: Path
) -> None:
    s, c = serving
    s.mount_http(load(s, example_guests, "hello-c", "only"), "/only")
    assert c.get("/other")[0] == 404 and "no app serves /other" in c.get("/other")[2]
    assert c.get("/only")[0] == 200
    s.unmount("ns", "only")
    assert c.get("/only")[0] == 404


def test_body_is_stdin_and_size_limited(serving: tuple[Serving, Client], example_guests: Path) -> None:
    s, c = serving
    s.mount_http(load(s, example_guests, "cgi-echo", "echo"), "/e", max_body_bytes=10)
    status, _, body = c.request("POST", "/e/p", body=b"0123456789")
    assert status == 200 and fields(body)["stdin"] == "0123456789" and fields(body)["content_length"] == "10"
    status, _, body = c.request("POST", "/e/p", body=b"01234567890")
    assert status == 413 and "request body exceeds 10 bytes" in body

    # Chunked: no Content-Length to refuse it by. Sent in one write, so the server's early 413
    # (it answers and closes once the body passes the limit) cannot race the client's sending.
    chunked = b"".join(b"4\r\nabcd\r\n" for _ in range(5)) + b"0\r\n\r\n"
    head = b"POST /e/p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(("127.0.0.1", c.port), timeout=10) as raw:
        raw.sendall(head + chunked)
        assert raw.recv(4096).startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize(
    ("guest", "status", "text"),
    [
        ("malformed-cgi", 502, "malformed CGI response"),
        ("infinite-loop", 504, "timeout: deadline of 0.3s exceeded"),
        ("unreachable", 500, "trap: wasm trap: wasm `unreachable` instruction executed"),
        ("recursion", 500, "trap: stack overflow"),
        ("memory-grow", 500, "out_of_memory"),
    ],
)
def test_outcomes_map_to_statuses(
    serving: tuple[Serving, Client], example_guests: Path, guest: str, status: int, text: str
) -> None:
    s, c = serving
    s.mount_http(load(s, example_guests, guest), "/x")
    got, _, body = c.get("/x")
    assert (got, text in body) == (status, True), body


def test_a_flood_says_how_many_bytes_and_the_limit(
    serving: tuple[Serving, Client], example_guests: Path
) -> None:
    s, c = serving
    s.mount_http(load(s, example_guests, "stdout-flood"), "/flood")
    status, _, body = c.get("/flood")
    assert status == 502
    assert f"stdout limit of {LIMITS.stdout_bytes} bytes exceeded" in body
    wrote = int(body.split("the module wrote ")[1].split(" bytes")[0])
    assert wrote > LIMITS.stdout_bytes


def test_status_header_and_first_byte_metric(serving: tuple[Serving, Client], example_guests: Path) -> None:
    s, c = serving
    s.mount_http(load(s, example_guests, "cgi-echo", "st"), "/st")
    assert c.get("/st?status=418")[0] == 418
    registry = s.runtime.metrics.registry
    labels = {"namespace": "ns", "app": "st", "node": "node-a"}
    assert registry.get_sample_value("shoal_invocation_first_byte_seconds_count", labels) == 1
    assert registry.get_sample_value("shoal_instance_start_seconds_count", labels) == 1
    assert registry.get_sample_value("shoal_invocations_total", {**labels, "outcome": "ok"}) == 1
    assert registry.get_sample_value("shoal_instances_active", labels) == 0


# A WAGI hello that starts with 2 pages of linear memory and grows 3 more: 5 pages, 320 KiB.
GROWS_TO_FIVE_PAGES = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "Content-Type: text/plain\\n\\ngrew\\n")
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 3)) (i32.const -1)) (then unreachable))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 31))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""


def test_each_instance_is_counted_with_the_linear_memory_it_peaked_at(
    serving: tuple[Serving, Client],
) -> None:
    s, c = serving
    wasm = shoal_dataplane.wat2wasm(GROWS_TO_FIVE_PAGES)
    s.mount_http(s.runtime.load_app(AppSpec("ns", "mem", limits=LIMITS), wasm), "/mem")
    for _ in range(2):
        assert c.get("/mem")[::2] == (200, "grew\n")
    registry = s.runtime.metrics.registry
    labels = {"namespace": "ns", "app": "mem", "node": "node-a"}

    def bucket(le: str) -> float | None:
        return registry.get_sample_value("shoal_instance_memory_bytes_bucket", {**labels, "le": le})

    assert registry.get_sample_value("shoal_instance_memory_bytes_count", labels) == 2
    assert registry.get_sample_value("shoal_instance_memory_bytes_sum", labels) == 2 * 5 * 65536
    # Powers of two from 64 KiB: 320 KiB is above 256 KiB and within 512 KiB.
    assert (bucket("262144.0"), bucket("524288.0")) == (0, 2)


async def test_busy_is_503_with_retry_after(serving: tuple[Serving, Client], example_guests: Path) -> None:
    s, c = serving
    limits = AppLimits(timeout_s=0.5, max_concurrency=1, max_wait_s=0.02)
    s.mount_http(load(s, example_guests, "infinite-loop", "one", limits=limits), "/one")
    first = asyncio.create_task(asyncio.to_thread(c.get, "/one"))
    await asyncio.sleep(0.1)
    status, headers, body = await asyncio.to_thread(c.get, "/one")
    assert status == 503 and headers["retry-after"] == "1" and "concurrency limit of 1" in body
    assert (await first)[0] == 504


def test_memory_budget_refusal_is_503_naming_app_limit_and_budget(
    serving: tuple[Serving, Client], example_guests: Path
) -> None:
    s, c = serving
    big = AppLimits(timeout_s=0.2, memory_bytes=48 * 1024 * 1024, max_wait_s=0.02)
    s.mount_http(load(s, example_guests, "infinite-loop", "big", limits=big), "/big")
    with socket.create_connection(("127.0.0.1", c.port)) as first:
        first.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.05)
        status, _, body = c.get("/big")
        assert status == 503
        assert "ns/big needs 50331648 bytes" in body and "budget of 67108864 bytes" in body
        assert b" 504 " in first.recv(4096)
    # The instance is torn down (and its memory given back) just after its response is written.
    eventually(lambda: s.runtime.plane.memory_in_use == 0, within=5, what="the budget given back")


def test_draining_answers_503_and_closes(serving: tuple[Serving, Client], example_guests: Path) -> None:
    s, c = serving
    s.mount_http(load(s, example_guests, "hello-c", "d"), "/d")
    s.set_draining(True)
    status, headers, body = c.get("/d")
    assert status == 503 and headers["connection"] == "close" and "shutting down" in body
    s.set_draining(False)
    assert c.get("/d")[0] == 200


def test_a_draining_version_unmounts_only_itself(
    serving: tuple[Serving, Client], example_guests: Path
) -> None:
    """A placement drains (lingering) while a new placement of the same app mounts its version: the
    old one's unmount must not take the new one's routes."""
    s, c = serving
    old = load(s, example_guests, "hello-c", "app")
    s.mount_http(old, "/app")
    assert s.mounted("ns", "app") is old
    new = load(s, example_guests, "hello-c", "app", env={"V": "2"})
    s.mount_http(new, "/app")
    s.unmount("ns", "app", only=old)
    assert s.mounted("ns", "app") is new and c.get("/app")[0] == 200
    s.unmount("ns", "app", only=new)
    assert s.mounted("ns", "app") is None and c.get("/app")[0] == 404
