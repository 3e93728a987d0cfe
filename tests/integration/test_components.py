"""Components (WASI preview 2) through the data plane: Python (componentize-py) and JavaScript
(componentize-js) `wasi:http/proxy` components served per request by the native listener (and what
the log says when a client hangs up first), a Python
`wasi:cli/run` component as a WAGI route and as a job, and their compiled form cached on disk like a
module's."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from harness.loopback import request
from harness.netcluster import eventually
from shoal_agent.metrics import AgentMetrics
from shoal_agent.runtime import AppLimits, AppSpec, EngineSettings, InvocationRequest, LoadedApp, WasmRuntime
from shoal_agent.runtime.errors import UnsupportedComponentError
from shoal_agent.runtime.outcome import Outcome
from shoal_agent.serving import Serving
from shoal_api.egress import parse_allowed_host
from tests.conftest import Upstream

pytestmark = pytest.mark.integration

# componentize-py components embed CPython: about 12 MiB of linear memory per instance.
LIMITS = AppLimits(timeout_s=10.0, memory_bytes=64 * 1024 * 1024, stdout_bytes=64 * 1024)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[WasmRuntime]:
    settings = EngineSettings(memory_budget_bytes=512 * 1024 * 1024)
    with WasmRuntime(AgentMetrics("node-a"), cache_dir=tmp_path / "cache", settings=settings) as rt:
        yield rt


@pytest.fixture
def listening(runtime: WasmRuntime) -> Iterator[tuple[Serving, int]]:
    """The runtime's native listener on a free port, stopped afterwards."""
    s = Serving(runtime)
    port = s.listen("127.0.0.1", 0)
    try:
        yield s, port
    finally:
        s.stop_listening()


@pytest.fixture
def serve_guest(
    runtime: WasmRuntime, listening: tuple[Serving, int], component_guests: Path
) -> Callable[[str, str, str], tuple[LoadedApp, int]]:
    """serve_guest(guest, app name, path): the component guest loaded as an app, mounted at path on
    the listener; the app and the listener's port."""

    def serve(guest: str, name: str, path: str) -> tuple[LoadedApp, int]:
        wasm = (component_guests / f"{guest}.wasm").read_bytes()
        app = runtime.load_app(AppSpec("ns", name, limits=LIMITS), wasm)
        s, port = listening
        s.mount_http(app, path)
        return app, port

    return serve


def memory_per_instance(runtime: WasmRuntime, name: str, ok: int) -> float:
    """Once app `name` has `ok` successful invocations, each of which started an instance of its own:
    the mean of the instances' peak linear memory. An instance is counted when its guest returns,
    which may be after the client has the whole response (and later still once a guest has moved to
    the background lane)."""
    row = eventually(
        lambda: next((r for r in runtime.plane.metrics() if r[1] == name and r[3]["ok"] == ok), None),
        within=10,
        what=f"{ok} ok invocations of {name}",
    )
    assert row is not None and row[2]["instance_start"][0][-1] == ok
    counts, total = row[2]["instance_memory"]
    assert counts[-1] == ok
    return float(total) / ok


def test_a_wasi_http_component_serves_each_request_from_a_fresh_instance(
    runtime: WasmRuntime, serve_guest: Callable[[str, str, str], tuple[LoadedApp, int]]
) -> None:
    app, port = serve_guest("hello-component-py", "pyhttp", "/py")
    assert app.kind == "proxy"
    for i in range(3):
        assert request(port, "GET", f"/py/hi?n={i}") == (
            200,
            f"Hello from a Python component, GET /py/hi?n={i}\n",
        )
    status, body = request(port, "POST", "/py/echo", b"a body")
    assert (status, body) == (200, "Hello from a Python component, OTHER /py/echo\na body")
    # A component app answers HTTP only: a job or message gets an error that says so.
    r = app.invoke_sync(InvocationRequest())
    assert r.outcome is Outcome.ERROR and "only serves HTTP requests" in r.message
    # Four requests, each its own instance; CPython in the component takes megabytes, within the limit.
    assert 4 * 1024 * 1024 < memory_per_instance(runtime, "pyhttp", 4) <= LIMITS.memory_bytes


def test_a_javascript_wasi_http_component_serves_each_request_from_a_fresh_instance(
    runtime: WasmRuntime, serve_guest: Callable[[str, str, str], tuple[LoadedApp, int]]
) -> None:
    """componentize-js: SpiderMonkey inside the component, the JS `fetch` handler exported as
    `wasi:http/incoming-handler@0.2.10`, served by the host's wasi:http 0.2.12 (semver-compatible)."""
    app, port = serve_guest("hello-component-js", "jshttp", "/js")
    assert app.kind == "proxy"
    # `served` counts requests in the guest's globals: 1 every time, as no instance is reused.
    for i in range(3):
        assert request(port, "GET", f"/js/hi?n={i}", headers={"x-name": f"r{i}"}) == (
            200,
            f"Hello from JS, GET /js/hi?n={i} x-name=r{i} served=1\n",
        )
    status, body = request(port, "POST", "/js/echo", b"a body")
    assert (status, body) == (200, "Hello from JS, POST /js/echo x-name=- served=1\na body")
    status, body = request(port, "GET", "/js/gone?status=404")
    assert (status, body) == (404, "Hello from JS, GET /js/gone?status=404 x-name=- served=1\n")
    # SpiderMonkey's heap lives in the component's linear memory: megabytes, within the limit.
    assert 1024 * 1024 < memory_per_instance(runtime, "jshttp", 5) <= LIMITS.memory_bytes


def test_a_client_that_hangs_up_is_one_line_in_the_log_and_a_guest_error_stays_loud(
    runtime: WasmRuntime,
    listening: tuple[Serving, int],
    component_guests: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The client goes away while the guest sleeps before it answers: the guest's write to the closed
    body raises (`StreamError_Closed`) and the handler traps; that is one INFO line naming the
    hang-up, not the guest's traceback. A guest that fails while its client waits is still logged
    in full as a WARNING."""
    wasm = (component_guests / "hello-component-py.wasm").read_bytes()
    app = runtime.load_app(AppSpec("ns", "hangup", limits=LIMITS), wasm)
    s, port = listening
    s.mount_http(app, "/py")
    capfd.readouterr()

    def counted(histogram: str = "", outcome: str = "") -> bool:
        row = next((r for r in runtime.plane.metrics() if r[1] == "hangup"), None)
        if row is None:
            return False
        return (row[2][histogram][0][-1] if histogram else row[3][outcome]) == 1

    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(b"GET /py/slow?sleep=1 HTTP/1.1\r\nHost: test\r\n\r\n")
        # Hang up once the guest runs (it has its slot): a client that closed before hyper had read
        # its request would still be answered (the response's first write does not fail).
        eventually(lambda: counted(histogram="queue_wait"), within=20, what="the guest to start")
    # Still counted as the trap it is (the invocation did not complete), only logged as what it is.
    eventually(lambda: counted(outcome="trap"), within=20, what="the abandoned invocation to end")
    err = capfd.readouterr().err
    said = [line for line in err.splitlines() if "app ns/hangup:" in line]
    assert len(said) == 1, err
    assert said[0].startswith("INFO shoal_dataplane: app ns/hangup: the client hung up before"), said
    assert "StreamError_Closed" in said[0], said
    assert "Traceback" not in err
    # A guest's own error, its client still waiting: an error status and the traceback in the log.
    status, body = request(port, "GET", "/py/bad?sleep=never")
    assert status == 500 and body.startswith("trap:"), (status, body)
    err = capfd.readouterr().err
    assert "WARNING shoal_dataplane: app ns/hangup: output: Traceback (most recent call last):" in err, err
    assert "ValueError: could not convert string to float: 'never'" in err, err
    assert "hung up" not in err


def test_a_wasi_cli_component_runs_as_a_wagi_route_and_as_a_job(
    runtime: WasmRuntime, listening: tuple[Serving, int], component_guests: Path
) -> None:
    wasm = (component_guests / "cli-component-py.wasm").read_bytes()
    app = runtime.load_app(AppSpec("ns", "pycli", limits=LIMITS), wasm)
    assert app.kind == "command"
    r = app.invoke_sync(InvocationRequest(stdin=b"hello", args=["x", "y"]))
    assert r.outcome is Outcome.OK, r
    assert "args=['x', 'y']" in r.stdout.decode() and "stdin='hello'" in r.stdout.decode()
    s, port = listening
    s.mount_http(app, "/cli")
    status, body = request(port, "GET", "/cli/x?a+b")
    assert status == 200
    assert body == "Hello from a Python command component, args=['a', 'b'] path=/x stdin=''\n"


def test_compiled_components_load_from_the_disk_cache(tmp_path: Path, component_guests: Path) -> None:
    wasm = (component_guests / "cli-component-py.wasm").read_bytes()
    results = []
    for _ in range(2):
        with WasmRuntime(AgentMetrics("node-a"), cache_dir=tmp_path / "cache") as rt:
            results.append(rt.load_app(AppSpec("ns", "pycli", limits=LIMITS), wasm).compile_result)
    assert results == ["compiled", "cache_load"]


def test_outbound_http_goes_only_where_the_allow_list_says(
    runtime: WasmRuntime,
    listening: tuple[Serving, int],
    component_guests: Path,
    upstream_http: Callable[[str], Upstream],
) -> None:
    allowed, other = upstream_http("allowed"), upstream_http("other")
    hosts = (f"http://127.0.0.1:{allowed.port}", f"http://localhost:{other.port}")
    wasm = (component_guests / "fetch-component-py.wasm").read_bytes()
    spec = AppSpec("ns", "fetch", limits=LIMITS, allowed_outbound=tuple(map(parse_allowed_host, hosts)))
    app = runtime.load_app(spec, wasm)
    s, port = listening
    s.mount_http(app, "/f")

    def fetch(url: str, host: str = "") -> tuple[int, str]:
        query = urlencode({"url": url, **({"host": host} if host else {})})
        return request(port, "GET", f"/f?{query}")

    # Listed as an IP literal: loopback is reachable.
    assert fetch(f"http://127.0.0.1:{allowed.port}/hello.txt") == (200, "fetched 200: hello from allowed")
    # Not listed at all (another port of the same address).
    status, body = fetch(f"http://127.0.0.1:{other.port}/denied.txt")
    assert (status, body) == (502, "refused: ErrorCode_HttpRequestDenied()")
    # Listed by name, but the name resolves to loopback, which only a literal pattern unlocks.
    status, body = fetch(f"http://localhost:{other.port}/by-name.txt")
    assert (status, body) == (502, "refused: ErrorCode_DestinationIpProhibited()")
    # An allowed Host header does not make a disallowed address reachable.
    status, body = fetch(f"http://127.0.0.1:{other.port}/bypass.txt", host=f"127.0.0.1:{allowed.port}")
    assert status == 502 and body.startswith("refused:"), body
    assert allowed.paths() == ["/hello.txt"]
    assert other.paths() == []
    row = next(r for r in runtime.plane.metrics() if r[1] == "fetch")
    assert row[6] >= 2  # the two calls that reached send_request; the bypass may fail earlier


def test_a_wasi_preview_3_component_is_refused_at_load_saying_so(
    runtime: WasmRuntime, component_guests: Path
) -> None:
    """What Spin SDK 4+ emits (`wasi:http@0.3.0`) is refused before compiling, by name, instead of
    failing to link a `wasi:http/types@0.3.0` instance that this WASI 0.2 host never provides."""
    wasm = (component_guests / "http-p3.wasm").read_bytes()
    with pytest.raises(UnsupportedComponentError) as refused:
        runtime.load_app(AppSpec("ns", "p3", limits=LIMITS), wasm)
    message = str(refused.value)
    assert message.startswith(
        "WASI preview 3 (wasi:*@0.3.x, e.g. wasi:http@0.3.0) components are not supported"
    )
    assert "wasmtime 48, a WASI preview 2 host" in message
    assert "it uses wasi:http/types@0.3.0, wasi:http/handler@0.3.0;" in message
    assert "invalid WebAssembly module" not in message


def test_a_c_module_made_a_wasi_cli_component_runs_as_a_job_and_a_wagi_route(
    runtime: WasmRuntime, listening: tuple[Serving, int], component_guests: Path
) -> None:
    """C core modules (wasm32-wasi) wrapped by `wasm-tools component new` with wasmtime 48's command
    adapter: about 55 KB each, `wasi:cli/run` components."""
    job = runtime.load_app(AppSpec("ns", "cjob"), (component_guests / "job-c-component.wasm").read_bytes())
    assert job.kind == "command"
    r = job.invoke_sync(InvocationRequest(args=["0", "x"]))
    assert (r.outcome, r.exit_code) == (Outcome.OK, 0), r
    assert (
        r.stdout == b"job-c ran with 2 argument(s)\narg[1]=0\narg[2]=x\n" and r.stderr == b"exiting with 0\n"
    )
    # WASI 0.2's exit takes ok or error only: any non-zero exit code of the C program becomes 1.
    r = job.invoke_sync(InvocationRequest(args=["3"]))
    assert (r.outcome, r.exit_code) == (Outcome.EXIT, 1), r
    hello = runtime.load_app(
        AppSpec("ns", "chello"), (component_guests / "hello-c-component.wasm").read_bytes()
    )
    s, port = listening
    s.mount_http(hello, "/hc")
    assert request(port, "GET", "/hc/x?a=b") == (200, "Hello from C, /x?a=b\n")
