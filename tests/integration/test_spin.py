"""A Spin HTTP app (spin-sdk 3.4.1, componentize-py) through the data plane: `fermyon:spin/variables`
from the app's variables, `fermyon:spin/key-value`'s default store and `fermyon:spin/redis` in a real
redis-server under the app's key space, and a Spin interface Shoal lacks (LLM) that loads and traps
when called; `fermyon:spin/mysql` against a real mariadbd, to the app's declared dependency only."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from harness.loopback import get
from harness.servers import MariaDbServer, RedisServer
from shoal_agent.capabilities import CapabilityHost, HostPort, PoolSettings, StaticResolver
from shoal_agent.metrics import AgentMetrics
from shoal_agent.runtime import AppLimits, AppSpec, WasmRuntime
from shoal_agent.serving import Serving
from shoal_api.wasmplacement import DependencyEndpoint, ServiceEndpoint

pytestmark = pytest.mark.integration

NS = "spin"
LIMITS = AppLimits(timeout_s=10.0, memory_bytes=64 * 1024 * 1024, stdout_bytes=64 * 1024)


async def test_a_spin_app_counts_in_redis_and_reads_its_variable(
    redis_server: RedisServer, component_guests: Path, tmp_path: Path
) -> None:
    host = CapabilityHost(
        resolver=StaticResolver({(NS, "redis"): HostPort("127.0.0.1", redis_server.port)}),
        settings=PoolSettings(),
    )
    cache = DependencyEndpoint(
        name="cache", kind="redis", service=ServiceEndpoint(name="redis", namespace=NS, port=6379)
    )
    await host.bind_app(namespace=NS, app="counter", dependencies=[cache])
    client = redis.Redis(port=redis_server.port)
    client.delete(f"{NS}/counter:requests")
    with WasmRuntime(
        AgentMetrics("node-a"), cache_dir=tmp_path / "cache", host_functions=host.registry()
    ) as rt:
        spec = AppSpec(NS, "counter", limits=LIMITS, variables={"greeting": "Hello from Spin"})
        app = rt.load_app(spec, (component_guests / "spin-counter-py.wasm").read_bytes())
        assert app.kind == "proxy"
        # Loaded although it imports Spin interfaces Shoal lacks; they are listed.
        assert "fermyon:spin/llm@2.0.0" in app.unimplemented
        assert not any(
            i.startswith(("fermyon:spin/variables", "fermyon:spin/key-value")) for i in app.unimplemented
        )
        assert not any(i.startswith("fermyon:spin/redis@") for i in app.unimplemented)
        serving = Serving(rt)
        port = serving.listen("127.0.0.1", 0)
        try:
            serving.mount_http(app, "/counter")
            for n in (1, 2, 3):
                assert get(port, "/counter") == (200, f"Hello from Spin, request {n}\n")
            # The key lives in the app's key space, where shoal:redis would put it.
            assert client.get(f"{NS}/counter:requests") == b"3"
            # Spin's Redis interface, to the declared dependency only, in the same key space.
            assert get(port, "/counter/redis") == (200, "redis hits 1 ['/counter/redis']\n")
            assert get(port, "/counter/redis") == (200, "redis hits 2 ['/counter/redis']\n")
            assert client.get(f"{NS}/counter:hits") == b"2"
            status, body = get(port, "/counter/llm")
            assert status == 500, body
            assert "fermyon:spin/llm@2.0.0" in body and "not implemented" in body, body
        finally:
            serving.stop_listening()
    client.close()
    host.close()


DB_USER, DB_PASSWORD, DB_NAME = "visits", "v1sits-pw", "visits"


class StaticSecrets:
    async def read(self, *, namespace: str, selector: object) -> str:
        return DB_PASSWORD


@pytest.fixture(scope="module")
def mariadb(mariadb_server: MariaDbServer) -> MariaDbServer:
    mariadb_server.create_database(DB_NAME, user=DB_USER, password=DB_PASSWORD)
    return mariadb_server


async def test_a_spin_app_writes_and_reads_its_declared_mysql_dependency(
    mariadb: MariaDbServer, component_guests: Path, tmp_path: Path
) -> None:
    host = CapabilityHost(
        resolver=StaticResolver({(NS, "mysql"): HostPort("127.0.0.1", mariadb.port)}),
        secrets=StaticSecrets(),
        settings=PoolSettings(),
    )
    db = DependencyEndpoint.model_validate(
        {
            "name": "db",
            "kind": "mysql",
            "service": {"name": "mysql", "namespace": NS, "port": 3306},
            "database": DB_NAME,
            "user": DB_USER,
            "passwordSecret": {"name": "db", "key": "password"},
        }
    )
    await host.bind_app(namespace=NS, app="visits", dependencies=[db])
    with WasmRuntime(
        AgentMetrics("node-a"), cache_dir=tmp_path / "cache", host_functions=host.registry()
    ) as rt:
        spec = AppSpec(NS, "visits", limits=LIMITS)
        app = rt.load_app(spec, (component_guests / "spin-mysql-py.wasm").read_bytes())
        implemented = ("fermyon:spin/mysql", "fermyon:spin/rdbms-types")
        assert not any(i.startswith(implemented) for i in app.unimplemented), app.unimplemented
        serving = Serving(rt)
        port = serving.listen("127.0.0.1", 0)
        try:
            serving.mount_http(app, "/visits")
            columns = "['n:int64', 'last:str']"
            assert get(port, "/visits/a") == (200, f"visits 1 /visits/a {columns}\n")
            assert get(port, "/visits/a") == (200, f"visits 2 /visits/a {columns}\n")
            assert get(port, "/visits/b") == (200, f"visits 1 /visits/b {columns}\n")
            # The rows are in the dependency's database, where the app's SQL put them.
            with mariadb.root(DB_NAME) as conn, conn.cursor() as cur:
                cur.execute("SELECT path, COUNT(*) FROM spin_visits GROUP BY path ORDER BY path")
                assert cur.fetchall() == (("/visits/a", 2), ("/visits/b", 1))
            # An address that names no declared dependency is refused, naming what is declared.
            status, body = get(port, "/visits/undeclared")
            assert status == 200, body
            assert body.startswith("refused Error_ConnectionFailed("), body
            assert "not mysql://<dependency> of a declared MySQL dependency (db)" in body, body
        finally:
            serving.stop_listening()
    host.close()
