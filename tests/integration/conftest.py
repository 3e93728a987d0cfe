"""Fixtures shared by integration test modules: a real redis-server (per module, stopped by PID)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.servers import RedisServer, available


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
