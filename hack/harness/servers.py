"""Real redis-server and mariadbd on loopback for capability tests, each in a temp dir, stopped by PID.

Never the system services: every server gets its own data dir, port and socket, so tests run
next to whatever the host runs. mariadbd's socket lives in a short directory under /tmp of its own
(removed when it stops), so a test's tmp dir may be as deep as its name makes it.
`RedisServer.stop()`/`start()` keep the port, which is what the outage tests need to check that
pools recover.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import pymysql  # type: ignore[import-untyped, unused-ignore]

from localcluster.dbservers import (
    available,
    make_socket_dir,
    mariadb_install,
    mariadb_socket,
    mariadbd_argv,
    redis_argv,
    remove_socket_dir,
)
from localcluster.processes import Proc, free_port, log_tail, spawn, stop, wait_until

__all__ = ["MariaDbServer", "RedisServer", "available"]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class RedisServer:
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: Proc | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = redis_argv(bind="127.0.0.1", port=self.port, data_dir=self.workdir)
        self.proc = spawn(f"redis-{self.port}", argv, log_dir=self.workdir)
        wait_until(lambda: self._ping(), what=f"redis on port {self.port}", timeout=15, proc=self.proc)

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=5)
            self.proc = None


@dataclass
class MariaDbServer:
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: Proc | None = None
    socket_dir: Path | None = None

    @property
    def socket_path(self) -> Path:
        if self.socket_dir is None:
            raise RuntimeError("mariadbd is not running")
        return mariadb_socket(self.socket_dir)

    def start(self) -> None:
        datadir = self.workdir / "data"
        self.workdir.mkdir(parents=True, exist_ok=True)
        mariadb_install(datadir)
        self.socket_dir = make_socket_dir()
        argv = mariadbd_argv(
            datadir=datadir,
            run_dir=self.workdir,
            socket_dir=self.socket_dir,
            bind="127.0.0.1",
            port=self.port,
        )
        try:
            self.proc = spawn(f"mariadb-{self.port}", argv, log_dir=self.workdir)
            wait_until(self._ready, what=f"mariadbd on port {self.port}", timeout=60, proc=self.proc)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if not _accepts(self.port):
            return False
        try:
            self.root().close()
            return True
        except pymysql.err.MySQLError:
            return False

    def root(self, database: str | None = None) -> pymysql.Connection:
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user="root", password="", database=database, autocommit=True
        )

    def create_database(self, name: str, *, user: str, password: str) -> None:
        """A database and a user allowed into it from anywhere (the capability connects over TCP)."""
        conn = self.root()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
                cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))
                cur.execute(f"GRANT ALL ON `{name}`.* TO %s@'%%'", (user,))
        finally:
            conn.close()

    def log_tail(self) -> str:
        return log_tail(self.proc) if self.proc else ""

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=20)
            self.proc = None
        remove_socket_dir(self.socket_dir)
        self.socket_dir = None
