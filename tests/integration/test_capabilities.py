"""Host ABI v1 against a real redis-server and mariadbd: every host function through real guests,
key namespacing and sharing, capability refusal, a Redis outage, the pub/sub trigger and the
three Finicky Whiskers modules chained in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
import redis

from harness.servers import MariaDbServer, RedisServer
from localcluster.whiskers import count_click_rows
from shoal_agent.capabilities import CapabilityHost, Err, HostPort, PoolSettings, StaticResolver
from shoal_agent.capabilities.redis_pubsub import BackoffPolicy, RedisPubSubTrigger
from shoal_agent.metrics import AgentMetrics
from shoal_agent.runtime import (
    AppLimits,
    AppSpec,
    InvocationRequest,
    InvocationResult,
    LoadedApp,
    Outcome,
    UndeclaredCapabilityError,
    WasmRuntime,
)
from shoal_api.wasmapp import RedisTrigger
from shoal_api.wasmplacement import DependencyEndpoint, ServiceEndpoint

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NS = "shop"
LIMITS = AppLimits(timeout_s=2.0, memory_bytes=64 * 1024 * 1024, max_concurrency=4, max_wait_s=2.0)
DB_USER, DB_PASSWORD, DB_NAME = "whiskers", "s3cret-pw", "whiskers"


class StaticSecrets:
    async def read(self, *, namespace: str, selector: object) -> str:
        return DB_PASSWORD


def redis_dep(name: str = "cache") -> DependencyEndpoint:
    return DependencyEndpoint(
        name=name, kind="redis", service=ServiceEndpoint(name="redis", namespace=NS, port=6379)
    )


def mysql_dep(name: str = "db") -> DependencyEndpoint:
    return DependencyEndpoint.model_validate(
        {
            "name": name,
            "kind": "mysql",
            "service": {"name": "mysql", "namespace": NS, "port": 3306},
            "database": DB_NAME,
            "user": DB_USER,
            "passwordSecret": {"name": "db", "key": "password"},
        }
    )


@pytest.fixture(scope="module")
def guests(example_guests: Path) -> Path:
    if shutil.which("go") is None:
        pytest.skip("go is needed to build the capability guests")
    return example_guests


@pytest.fixture(scope="module")
def mariadb(mariadb_server: MariaDbServer) -> MariaDbServer:
    mariadb_server.create_database(DB_NAME, user=DB_USER, password=DB_PASSWORD)
    return mariadb_server


@pytest.fixture
def rclient(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_server.port)
    client.flushall()
    yield client
    client.close()


def make_host(redis_port: int, mysql_port: int | None = None) -> CapabilityHost:
    mapping = {(NS, "redis"): HostPort("127.0.0.1", redis_port)}
    if mysql_port is not None:
        mapping[(NS, "mysql")] = HostPort("127.0.0.1", mysql_port)
    return CapabilityHost(resolver=StaticResolver(mapping), secrets=StaticSecrets(), settings=PoolSettings())


@pytest.fixture
def host(redis_server: RedisServer, mariadb: MariaDbServer) -> Iterator[CapabilityHost]:
    h = make_host(redis_server.port, mariadb.port)
    yield h
    h.close()


@pytest.fixture
def runtime(host: CapabilityHost, tmp_path: Path) -> Iterator[WasmRuntime]:
    with WasmRuntime(
        AgentMetrics("node-a"), cache_dir=tmp_path / "cache", host_functions=host.registry()
    ) as rt:
        yield rt


async def place(
    rt: WasmRuntime,
    host: CapabilityHost,
    guests: Path,
    *,
    app: str,
    module: str,
    deps: list[DependencyEndpoint],
    shared_by: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    capabilities: frozenset[str] | None = None,
) -> LoadedApp:
    """What the agent shell does for a placement: bind, then load with the derived capabilities."""
    from shoal_agent.capabilities import capabilities_for

    await host.bind_app(namespace=NS, app=app, dependencies=deps, shared_by=shared_by)
    declared = capabilities_for(deps) if capabilities is None else capabilities
    spec = AppSpec(NS, app, env=env or {}, capabilities=declared, limits=LIMITS)
    return rt.load_app(spec, (guests / f"{module}.wasm").read_bytes())


def probe(app: LoadedApp, *args: str) -> str:
    result = app.invoke_sync(InvocationRequest(args=list(args)))
    assert result.outcome is Outcome.OK, result
    return result.stdout.decode().strip()


def code_of(line: str) -> int:
    assert line.startswith("err "), line
    return int(line.split()[1])


async def test_redis_functions(
    runtime: WasmRuntime, host: CapabilityHost, guests: Path, rclient: redis.Redis
) -> None:
    app = await place(runtime, host, guests, app="probe", module="capprobe", deps=[redis_dep(), mysql_dep()])
    assert code_of(probe(app, "get", "cache", "greeting")) == Err.NOT_FOUND
    assert probe(app, "set", "cache", "greeting", "hello") == "ok"
    assert rclient.get(f"{NS}/probe:greeting") == b"hello"  # namespaced in Redis
    assert probe(app, "get", "cache", "greeting") == "ok hello"
    assert probe(app, "exists", "cache", "greeting") == "ok 1"
    assert probe(app, "del", "cache", "greeting") == "ok 1"
    assert probe(app, "del", "cache", "greeting") == "ok 0"
    assert probe(app, "exists", "cache", "greeting") == "ok 0"
    assert probe(app, "incr", "cache", "n", "5") == "ok 5"
    assert probe(app, "incr", "cache", "n", "-7") == "ok -2"
    # TTL in milliseconds.
    assert probe(app, "set", "cache", "short", "v", "60000") == "ok"
    assert 0 < cast(int, rclient.pttl(f"{NS}/probe:short")) <= 60000
    assert rclient.ttl(f"{NS}/probe:greeting") == -2
    # A result larger than the guest's buffer: result() too small, then fetched, then gone.
    value = "x" * 1000
    assert probe(app, "set", "cache", "big", value) == "ok"
    assert (
        probe(app, "getcap", "cache", "big", "10")
        == f"ok fetched {Err.BUFFER_TOO_SMALL} 1000 {Err.NO_RESULT} {value}"
    )
    assert probe(app, "getcap", "cache", "big", "1000") == f"ok fit {value}"
    assert probe(app, "get", "cache", "big") == f"ok {value}"  # the C helper's own fetch path
    # Publish reaches `<namespace>/<channel>` subscribers.
    sub = rclient.pubsub()  # type: ignore[no-untyped-call]
    sub.subscribe(f"{NS}/clicks")
    assert sub.get_message(timeout=1)["type"] == "subscribe"
    assert probe(app, "publish", "cache", "clicks", "meow") == "ok 1"
    message = sub.get_message(timeout=1)
    assert message is not None and message["data"] == b"meow"
    sub.close()
    # Errors are codes with a message, never traps.
    line = probe(app, "get", "nope", "k")
    assert code_of(line) == Err.NO_DEPENDENCY and "nope" in line
    assert code_of(probe(app, "get", "db", "k")) == Err.NO_DEPENDENCY  # a mysql dep is not a redis one
    assert code_of(probe(app, "incr", "cache", "big", "1")) == Err.REJECTED
    assert code_of(probe(app, "get", "cache", "@bad name/k")) == Err.INVALID


async def test_guest_bug_traps_and_runtime_stays_healthy(
    runtime: WasmRuntime, host: CapabilityHost, guests: Path, rclient: redis.Redis
) -> None:
    app = await place(runtime, host, guests, app="probe", module="capprobe", deps=[redis_dep(), mysql_dep()])
    result = app.invoke_sync(InvocationRequest(args=["badptr", "cache"]))
    assert result.outcome is Outcome.TRAP and "outside guest memory" in result.message, result
    assert probe(app, "incr", "cache", "after", "1") == "ok 1"


async def test_sql_functions(
    runtime: WasmRuntime, host: CapabilityHost, guests: Path, mariadb: MariaDbServer
) -> None:
    app = await place(runtime, host, guests, app="probe", module="capprobe", deps=[redis_dep(), mysql_dep()])
    assert probe(app, "execute", "db", "DROP TABLE IF EXISTS pets", "") == "ok 0 0"
    create = (
        "CREATE TABLE pets (id INT AUTO_INCREMENT PRIMARY KEY,"
        " name VARCHAR(64), weight DECIMAL(5,2), seen DATE)"
    )
    assert probe(app, "execute", "db", create, "") == "ok 0 0"
    insert = "INSERT INTO pets (name, weight, seen) VALUES (?, ?, ?)"
    assert probe(app, "execute", "db", insert, '["Mochi", 4.25, "2024-05-01"]') == "ok 1 1"
    assert probe(app, "execute", "db", insert, """["O'Malley ? -- \\\\", null, null]""") == "ok 1 2"
    line = probe(
        app, "query", "db", "SELECT id, name, weight, seen FROM pets WHERE id >= ? ORDER BY id", "[1]"
    )
    assert line.startswith("ok ")
    assert json.loads(line[3:]) == [
        {"id": 1, "name": "Mochi", "weight": "4.25", "seen": "2024-05-01"},
        {"id": 2, "name": "O'Malley ? -- \\", "weight": None, "seen": None},
    ]
    # Large results go through result(): the C helper's 1 KiB buffer is too small for these.
    many = "INSERT INTO pets (name) VALUES " + ",".join(["(?)"] * 50)
    assert probe(app, "execute", "db", many, json.dumps([f"cat-{i:03}" for i in range(50)])).startswith(
        "ok 50 "
    )
    rows = json.loads(
        probe(app, "query", "db", "SELECT name FROM pets WHERE name LIKE 'cat-%' ORDER BY name", "")[3:]
    )
    assert [r["name"] for r in rows] == [f"cat-{i:03}" for i in range(50)]
    assert (
        probe(app, "execute", "db", "UPDATE pets SET weight = 1 WHERE name LIKE ?", '["cat-%"]') == "ok 50 0"
    )
    # Errors.
    line = probe(app, "query", "db", "SELECT nope FROM pets", "")
    assert code_of(line) == Err.REJECTED and "nope" in line
    assert code_of(probe(app, "query", "db", "SELECT ?", "[1, 2]")) == Err.INVALID
    assert code_of(probe(app, "query", "db", "SELECT ?", '[{"a": 1}]')) == Err.INVALID
    assert code_of(probe(app, "query", "db", "SELECT 1", "not json")) == Err.INVALID
    assert code_of(probe(app, "query", "cache", "SELECT 1", "")) == Err.NO_DEPENDENCY


async def test_key_namespacing_and_sharing(
    runtime: WasmRuntime, host: CapabilityHost, guests: Path, rclient: redis.Redis
) -> None:
    alice = await place(
        runtime, host, guests, app="alice", module="capprobe", deps=[redis_dep(), mysql_dep()]
    )
    bob = await place(runtime, host, guests, app="bob", module="capprobe", deps=[redis_dep(), mysql_dep()])
    assert probe(alice, "set", "cache", "k", "from-alice") == "ok"
    assert probe(bob, "set", "cache", "k", "from-bob") == "ok"
    assert probe(alice, "get", "cache", "k") == "ok from-alice"
    assert probe(bob, "get", "cache", "k") == "ok from-bob"
    assert sorted(cast(list[bytes], rclient.keys("*"))) == [f"{NS}/alice:k".encode(), f"{NS}/bob:k".encode()]
    # Not shared: bob cannot address alice's keys at all.
    assert code_of(probe(bob, "get", "cache", "@alice/k")) == Err.DENIED
    assert code_of(probe(bob, "exists", "cache", "@alice/k")) == Err.DENIED
    # alice lists bob in shareKeysWith: the shell rebinds bob with shared_by={"alice"}; reads only.
    await host.bind_app(namespace=NS, app="bob", dependencies=[redis_dep(), mysql_dep()], shared_by=["alice"])
    assert probe(bob, "get", "cache", "@alice/k") == "ok from-alice"
    assert probe(bob, "exists", "cache", "@alice/k") == "ok 1"
    for write in (
        ["set", "cache", "@alice/k", "x"],
        ["del", "cache", "@alice/k"],
        ["incr", "cache", "@alice/n", "1"],
    ):
        assert code_of(probe(bob, *write)) == Err.DENIED
    assert rclient.get(f"{NS}/alice:k") == b"from-alice"
    # Sharing is one-way, and `@self/k` is one's own key.
    assert code_of(probe(alice, "get", "cache", "@bob/k")) == Err.DENIED
    assert probe(bob, "get", "cache", "@bob/k") == "ok from-bob"
    # An app of another namespace with the same name gets its own key space.
    await host.bind_app(namespace="other", app="alice", dependencies=[redis_dep()])
    spec = AppSpec("other", "alice", capabilities=frozenset({"redis", "sql"}), limits=LIMITS)
    other = runtime.load_app(spec, (guests / "capprobe.wasm").read_bytes())
    assert code_of(probe(other, "get", "cache", "k")) == Err.NOT_FOUND


async def test_undeclared_sql_capability_is_refused(
    runtime: WasmRuntime, host: CapabilityHost, guests: Path
) -> None:
    with pytest.raises(UndeclaredCapabilityError) as info:
        await place(runtime, host, guests, app="mixed", module="redis-and-sql", deps=[redis_dep()])
    assert info.value.capability == "sql"
    assert "shoal:sql.query" in str(info.value) and "'sql'" in str(info.value)
    # Declaring both makes it load and run.
    app = await place(
        runtime, host, guests, app="mixed", module="redis-and-sql", deps=[redis_dep(), mysql_dep()]
    )
    assert app.invoke_sync(InvocationRequest()).outcome is Outcome.OK


async def test_redis_outage_gives_error_codes_fast_and_recovers(
    servers_ok: None, guests: Path, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    host = make_host(server.port)
    try:
        with WasmRuntime(
            AgentMetrics("node-a"), cache_dir=tmp_path / "cache", host_functions=host.registry()
        ) as rt:
            # capprobe also imports shoal:sql; this agent has no MariaDB, so declare sql unbound.
            everything = frozenset({"redis", "sql"})
            app = await place(
                rt, host, guests, app="probe", module="capprobe", deps=[redis_dep()], capabilities=everything
            )
            assert probe(app, "incr", "cache", "n", "1") == "ok 1"
            # Invocations hammering Redis while it goes away: each ends with an error code.
            running = [
                rt.invoke(app, InvocationRequest(args=["incrloop", "cache", "n", "100000000"]))
                for _ in range(3)
            ]
            tasks = [asyncio.ensure_future(r) for r in running]
            await asyncio.sleep(0.3)
            server.stop()
            results: list[InvocationResult] = await asyncio.gather(*tasks)
            for result in results:
                assert result.outcome is Outcome.OK, result
                line = result.stdout.decode()
                assert line.startswith("after ") and code_of(line.split(" ", 2)[2]) in (
                    Err.UNAVAILABLE,
                    Err.TIMEOUT,
                ), line
            # While it is down: an error code, well before the app's 2 s timeout.
            for _ in range(5):
                started = time.monotonic()
                result = await rt.invoke(app, InvocationRequest(args=["get", "cache", "n"]))
                assert result.outcome is Outcome.OK and code_of(result.stdout.decode()) == Err.UNAVAILABLE, (
                    result
                )
                assert time.monotonic() - started < 0.75
            # The runtime is fine, and once Redis is back on its port calls succeed again.
            server.start()
            deadline = time.monotonic() + 10
            while True:
                line = probe(app, "incr", "cache", "fresh", "1")
                if line.startswith("ok ") or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert line == "ok 1"
    finally:
        host.close()
        server.stop()


@pytest.fixture
async def clean_clicks(mariadb: MariaDbServer) -> AsyncIterator[None]:
    conn = mariadb.root(DB_NAME)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS clicks")
    conn.close()
    yield


def count_clicks(mariadb: MariaDbServer) -> int:
    return count_click_rows(mariadb.root(DB_NAME))


async def wait_for(check: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_pubsub_trigger_runs_scoreboard_per_message(
    runtime: WasmRuntime,
    host: CapabilityHost,
    guests: Path,
    mariadb: MariaDbServer,
    rclient: redis.Redis,
    clean_clicks: None,
) -> None:
    deps = [redis_dep(), mysql_dep()]
    app = await place(runtime, host, guests, app="scoreboard", module="scoreboard", deps=deps)
    trigger = host.redis_trigger(
        namespace=NS,
        app="scoreboard",
        trigger=RedisTrigger(dependency="cache", channel="clicks"),
        invoker=lambda request: runtime.invoke(app, request),
    )
    await trigger.start()
    try:
        await asyncio.wait_for(trigger.subscribed.wait(), 10)
        n = 12
        for i in range(n):
            assert rclient.publish(f"{NS}/clicks", json.dumps({"count": i + 1})) == 1
        await wait_for(
            lambda: trigger.stats.succeeded + trigger.stats.failed + trigger.stats.dropped_busy >= n
        )
        assert trigger.stats.succeeded == n, trigger.stats
        assert count_clicks(mariadb) == n
        assert rclient.publish("clicks", "not namespaced") == 0  # the trigger listens on shop/clicks only
    finally:
        await trigger.stop()
    assert not trigger.subscribed.is_set()

    # stop() closes the subscriber's connection; Redis drops the subscription when it reads the close,
    # a moment later, so wait (bounded) for the server to count no subscriber before publishing.
    def no_subscriber() -> bool:
        ((_, count),) = cast(list[tuple[bytes, int]], rclient.pubsub_numsub(f"{NS}/clicks"))
        return count == 0

    await wait_for(no_subscriber, within=5)
    assert rclient.publish(f"{NS}/clicks", "{}") == 0  # unsubscribed


@contextlib.asynccontextmanager
async def scoreboard_trigger(
    host: CapabilityHost, guests: Path, cache: Path
) -> AsyncIterator[RedisPubSubTrigger]:
    """The scoreboard placed on `host` with its Redis trigger started and subscribed; stopped after."""
    with WasmRuntime(AgentMetrics("node-a"), cache_dir=cache, host_functions=host.registry()) as rt:
        app = await place(
            rt, host, guests, app="scoreboard", module="scoreboard", deps=[redis_dep(), mysql_dep()]
        )
        trigger = host.redis_trigger(
            namespace=NS,
            app="scoreboard",
            trigger=RedisTrigger(dependency="cache", channel="clicks"),
            invoker=lambda request: rt.invoke(app, request),
            backoff=BackoffPolicy(initial_s=0.05, max_s=0.2),
        )
        await trigger.start()
        try:
            await asyncio.wait_for(trigger.subscribed.wait(), 10)
            yield trigger
        finally:
            await trigger.stop()


async def test_pubsub_trigger_resubscribes_after_redis_restart(
    servers_ok: None, guests: Path, tmp_path: Path, mariadb: MariaDbServer, clean_clicks: None
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    host = make_host(server.port, mariadb.port)
    try:
        async with scoreboard_trigger(host, guests, tmp_path / "cache") as trigger:
            server.stop()
            await wait_for(lambda: not trigger.subscribed.is_set(), within=10)
            server.start()
            await asyncio.wait_for(trigger.subscribed.wait(), 10)
            client = redis.Redis(port=server.port)
            assert client.publish(f"{NS}/clicks", '{"count": 1}') == 1
            client.close()
            await wait_for(lambda: trigger.stats.succeeded == 1)
            assert trigger.stats.connects == 2 and trigger.stats.disconnects == 1
    finally:
        host.close()
        server.stop()


async def test_pubsub_trigger_follows_redis_to_its_new_address(
    servers_ok: None, guests: Path, tmp_path: Path, mariadb: MariaDbServer, clean_clicks: None
) -> None:
    """A Redis pod that moves gets a new IP: the trigger's failed resubscription makes the agent
    resolve the Service again, and it subscribes where Redis is now."""
    old, new = RedisServer(tmp_path / "old"), RedisServer(tmp_path / "new")
    old.start()
    new.start()
    host = make_host(old.port, mariadb.port)
    refresher = asyncio.create_task(host.keep_fresh(interval_s=60))  # only failures wake it
    try:
        async with scoreboard_trigger(host, guests, tmp_path / "cache") as trigger:
            assert isinstance(host.resolver, StaticResolver)
            host.resolver.mapping[(NS, "redis")] = HostPort("127.0.0.1", new.port)  # type: ignore[index]
            old.stop()
            client = redis.Redis(port=new.port)
            try:

                def subscribed_at_new() -> bool:
                    ((_, count),) = cast(list[tuple[bytes, int]], client.pubsub_numsub(f"{NS}/clicks"))
                    return count == 1

                await wait_for(subscribed_at_new, within=10)
                assert client.publish(f"{NS}/clicks", '{"count": 1}') == 1
            finally:
                client.close()
            await wait_for(lambda: trigger.stats.succeeded == 1)
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        host.close()
        old.stop()
        new.stop()


async def test_finicky_whiskers_chain(
    runtime: WasmRuntime,
    host: CapabilityHost,
    guests: Path,
    mariadb: MariaDbServer,
    rclient: redis.Redis,
    clean_clicks: None,
) -> None:
    tally = await place(runtime, host, guests, app="tally", module="tally", deps=[redis_dep()])
    scoreboard = await place(
        runtime, host, guests, app="scoreboard", module="scoreboard", deps=[redis_dep(), mysql_dep()]
    )
    leaderboard = await place(
        runtime, host, guests, app="leaderboard", module="leaderboard", deps=[mysql_dep()]
    )
    trigger = host.redis_trigger(
        namespace=NS,
        app="scoreboard",
        trigger=RedisTrigger(dependency="cache", channel="clicks"),
        invoker=lambda request: runtime.invoke(scoreboard, request),
    )
    # Before anyone clicked: an empty leaderboard, not an error.
    empty = await runtime.invoke(leaderboard, InvocationRequest(env=[("QUERY_STRING", "")]))
    assert empty.stdout.endswith(b"\n\n[]\n"), empty
    await trigger.start()
    try:
        await asyncio.wait_for(trigger.subscribed.wait(), 10)
        n = 20
        for i in range(n):
            result = await runtime.invoke(tally, InvocationRequest(env=[("PATH_INFO", "/")]))
            assert result.outcome is Outcome.OK, result
            body = json.loads(result.stdout.split(b"\n\n", 1)[1])
            assert body == {"count": i + 1, "published": True}
        assert rclient.get(f"{NS}/tally:count") == str(n).encode()
        await wait_for(lambda: trigger.stats.succeeded >= n)
        assert trigger.stats.received == n and trigger.stats.succeeded == n, trigger.stats
        assert count_clicks(mariadb) == n
        result = await runtime.invoke(leaderboard, InvocationRequest(env=[("QUERY_STRING", "limit=500")]))
        assert result.outcome is Outcome.OK, result
        head, body = result.stdout.split(b"\n\n", 1)
        assert b"application/json" in head
        rows = json.loads(body)
        assert sorted(r["count"] for r in rows) == list(range(1, n + 1))
        assert {json.loads(r["payload"])["count"] for r in rows} == set(range(1, n + 1))
    finally:
        await trigger.stop()
