"""The test servers themselves: a real mariadbd started under a directory deeper than a unix socket
path may be (as a long test name makes a test's tmp dir) starts, answers on its socket and on TCP,
and leaves nothing behind once stopped."""

from __future__ import annotations

from pathlib import Path

import pymysql  # type: ignore[import-untyped, unused-ignore]
import pytest

from harness.servers import MariaDbServer
from localcluster.dbservers import SUN_PATH_MAX

pytestmark = pytest.mark.integration


def test_mariadbd_starts_under_a_work_dir_whose_socket_path_would_overflow_sun_path_of_the_kernel(
    servers_ok: None, tmp_path: Path
) -> None:
    workdir = tmp_path / ("deep-" * 12) / ("deeper-" * 10)
    # Where the socket used to go: past what the kernel takes, so mariadbd could not have started.
    assert len(bytes(workdir / "mysqld.sock")) > SUN_PATH_MAX
    server = MariaDbServer(workdir)
    server.start()
    try:
        socket_path = server.socket_path
        assert socket_path.is_socket() and len(bytes(socket_path)) <= SUN_PATH_MAX, socket_path
        assert socket_path.parent.parent == Path("/tmp"), socket_path
        over_socket = pymysql.connect(unix_socket=str(socket_path), user="root", password="")
        try:
            with over_socket.cursor() as cur:
                cur.execute("SELECT @@socket, 41 + 1")
                assert cur.fetchone() == (str(socket_path), 42)
        finally:
            over_socket.close()
        with server.root() as over_tcp, over_tcp.cursor() as cur:  # and TCP, as the guests use it
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        proc = server.proc
        assert proc is not None
    finally:
        server.stop()
    assert not proc.alive()
    assert not socket_path.parent.exists()
