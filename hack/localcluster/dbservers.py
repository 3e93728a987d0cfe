"""Command lines for real redis-server and mariadbd, shared by the capability tests (loopback) and
`DependencyServers` (pod IPs in the test network): one place knows how to run them unprivileged of
the host's own services (own data dir, port, socket, no system config).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REDIS_SERVER = "/usr/bin/redis-server"
MARIADBD = "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB = "/usr/bin/mariadb-install-db"
SUN_PATH_MAX = 107
"""The longest unix socket path the kernel takes (sun_path is 108 bytes with its NUL)."""


def available() -> str | None:
    """Why the servers cannot run here, or None."""
    for binary in (REDIS_SERVER, MARIADBD, MARIADB_INSTALL_DB):
        if not os.access(binary, os.X_OK):
            return f"{binary} is not installed (Debian: redis-server, mariadb-server)"
    return None


def redis_argv(*, bind: str, port: int, data_dir: Path, appendonly: bool = False) -> list[str]:
    """Foreground redis-server; `appendonly` is what the operator's pods use (data survives restarts)."""
    return [
        REDIS_SERVER,
        "--port", str(port),
        "--bind", bind,
        "--protected-mode", "no",
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
        "--dir", str(data_dir),
        "--daemonize", "no",
    ]  # fmt: skip


def _as_root() -> list[str]:
    return ["--user=root"] if os.geteuid() == 0 else []


def mariadb_install(datadir: Path) -> bool:
    """Initialise `datadir` unless it already holds a database; True if it was initialised now."""
    if (datadir / "mysql").exists():
        return False
    datadir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            MARIADB_INSTALL_DB,
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *_as_root(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if done.returncode != 0:
        shutil.rmtree(datadir / "mysql", ignore_errors=True)
        raise RuntimeError(f"mariadb-install-db failed:\n{done.stdout}\n{done.stderr}")
    return True


def make_socket_dir() -> Path:
    """A fresh directory for one mariadbd's unix socket, short whatever the caller's directories are
    called: a socket under a test's tmp dir or a pod's run dir (named after the test or namespace)
    can pass `SUN_PATH_MAX`, and mariadbd then refuses to start. The caller removes it
    (`remove_socket_dir`) once the server has stopped."""
    return Path(tempfile.mkdtemp(prefix="shoal-my-", dir="/tmp"))


def remove_socket_dir(socket_dir: Path | None) -> None:
    if socket_dir is not None:
        shutil.rmtree(socket_dir, ignore_errors=True)


def mariadb_socket(socket_dir: Path) -> Path:
    return socket_dir / "mysqld.sock"


def mariadbd_argv(
    *,
    datadir: Path,
    run_dir: Path,
    socket_dir: Path,
    bind: str,
    port: int,
    init_file: Path | None = None,
) -> list[str]:
    """Foreground mariadbd, small buffers; its pid file in `run_dir`, its socket in `socket_dir`
    (from `make_socket_dir`); `init_file` runs before the first client is accepted."""
    socket_path = mariadb_socket(socket_dir)
    if len(bytes(socket_path)) > SUN_PATH_MAX:
        raise ValueError(f"mariadbd's socket path {socket_path} is longer than {SUN_PATH_MAX} bytes")
    return [
        MARIADBD,
        "--no-defaults",
        f"--datadir={datadir}",
        f"--socket={socket_path}",
        f"--pid-file={run_dir / 'mysqld.pid'}",
        f"--port={port}",
        f"--bind-address={bind}",
        "--skip-networking=0",
        "--skip-name-resolve",
        "--innodb-buffer-pool-size=16M",
        "--innodb-log-file-size=8M",
        "--performance-schema=OFF",
        "--skip-log-bin",
        *([f"--init-file={init_file}"] if init_file else []),
        *_as_root(),
    ]


def sql_string(value: str) -> str:
    """A quoted SQL string literal (for init files, which take no parameters)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_ident(value: str) -> str:
    return "`" + value.replace("`", "``") + "`"


def image_init_sql(*, root_password: str, database: str, user: str, password: str) -> str:
    """What the official MariaDB image does on an empty data dir with MARIADB_ROOT_PASSWORD,
    MARIADB_DATABASE, MARIADB_USER and MARIADB_PASSWORD (root from anywhere, like its default)."""
    lines = [
        f"ALTER USER 'root'@'localhost' IDENTIFIED BY {sql_string(root_password)};",
        f"CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY {sql_string(root_password)};",
        "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;",
    ]
    if database:
        lines.append(f"CREATE DATABASE IF NOT EXISTS {sql_ident(database)};")
    if user and password:
        lines.append(
            f"CREATE USER IF NOT EXISTS {sql_string(user)}@'%' IDENTIFIED BY {sql_string(password)};"
        )
        if database:
            lines.append(f"GRANT ALL ON {sql_ident(database)}.* TO {sql_string(user)}@'%';")
    return "\n".join(lines) + "\n"
