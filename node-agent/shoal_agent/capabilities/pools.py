"""Connection pools to dependencies, one per endpoint (and credentials) per agent.

Host functions run on the runtime's worker threads and must return before the guest's deadline,
so the clients are the *synchronous* redis-py and PyMySQL ones: an async client would need a hop
to the event loop and back for every call (and a blocked loop would stall every app), whereas a
blocking socket call with a connect and an I/O timeout is bounded by construction. Every pool has
a small circuit breaker: after a connection failure it fails calls at once for a short cool-down
instead of letting every invocation wait out a connect timeout against a dead endpoint; the first
call after the cool-down tries again, which is how a pool recovers when the dependency returns.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pymysql  # type: ignore[import-untyped, unused-ignore]  # add "pymysql.*" to mypy overrides
import redis

from shoal_api.wasmplacement import ServiceEndpoint

from .abi import CapabilityError, Err


@dataclass(frozen=True)
class PoolSettings:
    """Timeouts are well under the default 1 s app timeout: a slow dependency must not eat it."""

    connect_timeout_s: float = 0.25
    io_timeout_s: float = 0.5
    max_connections: int = 16  # per endpoint; >= the runtime's worker threads, so rarely a wait
    checkout_timeout_s: float = 0.25
    breaker_cooldown_s: float = 0.5


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int


class EndpointResolver(Protocol):
    """Where a dependency's Service is reachable from this agent."""

    async def resolve(self, service: ServiceEndpoint) -> HostPort: ...


@dataclass(frozen=True)
class ClusterDnsResolver:
    """In a cluster: the Service's DNS name; kube-proxy picks a ready endpoint per connection."""

    cluster_domain: str = ""

    async def resolve(self, service: ServiceEndpoint) -> HostPort:
        host = service.host + (f".{self.cluster_domain}" if self.cluster_domain else "")
        return HostPort(host, service.port)


@dataclass(frozen=True)
class StaticResolver:
    """Tests and local runs: (namespace, service name) -> loopback address (EndpointSlices cannot
    hold loopback IPs, so the API cannot describe servers started by a test)."""

    mapping: Mapping[tuple[str, str], HostPort]

    async def resolve(self, service: ServiceEndpoint) -> HostPort:
        try:
            return self.mapping[(service.namespace, service.name)]
        except KeyError:
            raise LookupError(f"no address for service {service.namespace}/{service.name}") from None


FailureHook = Callable[[HostPort], None]
"""Called (on a worker thread) after a connection to an endpoint failed: time to re-resolve."""


class Breaker:
    """Open for `cooldown_s` after a connection failure; thread-safe, lock-free reads."""

    def __init__(self, what: str, cooldown_s: float, on_failure: Callable[[], None] | None = None) -> None:
        self.what = what
        self.cooldown_s = cooldown_s
        self.on_failure = on_failure
        self._open_until = 0.0
        self.last_error = ""

    def check(self) -> None:
        if time.monotonic() < self._open_until:
            raise CapabilityError(Err.UNAVAILABLE, f"{self.what} is unavailable ({self.last_error})")

    def failure(self, error: BaseException) -> None:
        self.last_error = str(error) or type(error).__name__
        self._open_until = time.monotonic() + self.cooldown_s
        if self.on_failure is not None:
            self.on_failure()

    def success(self) -> None:
        self._open_until = 0.0


class RedisPool:
    """redis-py's blocking pool (LIFO, checks a reused connection for EOF before handing it out)
    with retries off: a retry would double the worst-case latency and re-run non-idempotent INCRs."""

    def __init__(
        self, where: HostPort, settings: PoolSettings, on_failure: FailureHook | None = None
    ) -> None:
        self.where = where
        hook = (lambda: on_failure(where)) if on_failure else None
        self.breaker = Breaker(f"redis {where.host}:{where.port}", settings.breaker_cooldown_s, hook)
        self.pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
            host=where.host,
            port=where.port,
            socket_connect_timeout=settings.connect_timeout_s,
            socket_timeout=settings.io_timeout_s,
            max_connections=settings.max_connections,
            timeout=settings.checkout_timeout_s,
        )
        self.client = redis.Redis(connection_pool=self.pool)

    def run(self, command: str, *args: Any) -> Any:
        self.breaker.check()
        try:
            result = self.client.execute_command(command, *args)  # type: ignore[no-untyped-call]
        except (redis.ConnectionError, redis.TimeoutError) as e:
            self.breaker.failure(e)
            raise
        self.breaker.success()
        return result

    def close(self) -> None:
        self.pool.disconnect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class MysqlTarget:
    where: HostPort
    user: str
    password: str
    database: str


# Client error codes that mean the connection itself is gone (or never came up).
CONNECTION_ERRORS = frozenset({2003, 2006, 2013, 2055})


def is_connection_error(e: BaseException) -> bool:
    if isinstance(e, pymysql.err.InterfaceError):
        return True
    return isinstance(e, pymysql.err.OperationalError) and bool(e.args) and e.args[0] in CONNECTION_ERRORS


def _stale(conn: Any) -> bool:
    """An idle connection the server closed (restart, wait_timeout) is readable (EOF)."""
    sock = getattr(conn, "_sock", None)
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class MysqlPool:
    """PyMySQL has no pool: a LIFO of idle autocommit connections under a bounded semaphore."""

    def __init__(
        self, target: MysqlTarget, settings: PoolSettings, on_failure: FailureHook | None = None
    ) -> None:
        self.target = target
        self.settings = settings
        where = target.where
        hook = (lambda: on_failure(where)) if on_failure else None
        self.breaker = Breaker(f"mysql {where.host}:{where.port}", settings.breaker_cooldown_s, hook)
        self._slots = threading.BoundedSemaphore(settings.max_connections)
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        t, s = self.target, self.settings
        return pymysql.connect(
            host=t.where.host,
            port=t.where.port,
            user=t.user,
            password=t.password,
            database=t.database,
            connect_timeout=s.connect_timeout_s,
            read_timeout=s.io_timeout_s,
            write_timeout=s.io_timeout_s,
            autocommit=True,
            charset="utf8mb4",
        )

    def _pop_idle(self) -> Any | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if not _stale(conn):
                return conn
            _close(conn)

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        self.breaker.check()
        if not self._slots.acquire(timeout=self.settings.checkout_timeout_s):
            raise CapabilityError(Err.UNAVAILABLE, "all connections to the database are busy")
        try:
            conn = self._pop_idle()
            if conn is None:
                try:
                    conn = self._connect()
                except Exception as e:
                    self.breaker.failure(e)
                    raise
            try:
                yield conn
            except Exception as e:
                if not is_connection_error(e):
                    self._give_back(conn)
                    raise
                # A server restart kills every connection: do not hand out the others either.
                _close(conn)
                self._drop_idle()
                self.breaker.failure(e)
                raise
            self._give_back(conn)
            self.breaker.success()
        finally:
            self._slots.release()

    def _give_back(self, conn: Any) -> None:
        if getattr(conn, "open", False):
            with self._lock:
                self._idle.append(conn)

    def close(self) -> None:
        self._drop_idle()


def _close(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


class Pools:
    """All pools of one agent, created on first use and shared by every app using an endpoint."""

    def __init__(self, settings: PoolSettings | None = None, on_failure: FailureHook | None = None) -> None:
        self.settings = settings or PoolSettings()
        self.on_failure = on_failure
        self._redis: dict[HostPort, RedisPool] = {}
        self._mysql: dict[MysqlTarget, MysqlPool] = {}
        self._lock = threading.Lock()

    def redis(self, where: HostPort) -> RedisPool:
        pool = self._redis.get(where)
        if pool is None:
            with self._lock:
                pool = self._redis.get(where)
                if pool is None:
                    pool = self._redis[where] = RedisPool(where, self.settings, self.on_failure)
        return pool

    def mysql(self, target: MysqlTarget) -> MysqlPool:
        pool = self._mysql.get(target)
        if pool is None:
            with self._lock:
                pool = self._mysql.get(target)
                if pool is None:
                    pool = self._mysql[target] = MysqlPool(target, self.settings, self.on_failure)
        return pool

    def close(self) -> None:
        with self._lock:
            pools: list[RedisPool | MysqlPool] = [*self._redis.values(), *self._mysql.values()]
            self._redis.clear()
            self._mysql.clear()
        for pool in pools:
            pool.close()
