"""Fixtures shared by integration test modules: a real redis-server and a real mariadbd (per module,
stopped by PID)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.servers import MariaDbServer, RedisServer, available


@pytest.fixture(scope="module")
def servers_ok() -> None:
    reason = available()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def redis_server(servers_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mariadb_server(servers_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDbServer]:
    """A mariadbd with no databases yet: each module creates the one it uses."""
    server = MariaDbServer(tmp_path_factory.mktemp("mariadb"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
