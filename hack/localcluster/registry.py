"""A real OCI registry (Debian's docker-registry, Distribution 2.8) on loopback, for tests and `make up`.

Tests pull and push against the same server users run, not a fake: each instance keeps its storage,
config and log under its own work folder, listens on a free 127.0.0.1 port and is stopped by PID.
An optional htpasswd mode (bcrypt entries, the only kind Distribution accepts) serves imagePullSecret
tests; the `bcrypt` package is imported only then.
"""

from __future__ import annotations

import functools
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .processes import Proc, free_port, log_tail, spawn, stop, wait_until

REGISTRY_BINARY = "/usr/bin/docker-registry"


def _v2_answers(url: str) -> bool:
    """The registry is ready once /v2/ answers 200, or 401 when it asks for credentials."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return int(resp.status) == 200
    except urllib.error.HTTPError as err:
        return err.code == 401
    except (OSError, ValueError):
        return False


def htpasswd_line(user: str, password: str) -> str:
    """One htpasswd entry with a bcrypt hash, the only format Distribution's htpasswd auth accepts."""
    import bcrypt  # only the auth mode needs it

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return f"{user}:{hashed}"


@dataclass
class Registry:
    """One docker-registry process: `start()`, use `address`, then `stop()`; also a context manager."""

    workdir: Path
    users: Mapping[str, str] | None = None  # user -> password: enables htpasswd auth
    binary: str = REGISTRY_BINARY
    ready_timeout: float = 20.0
    host: str = "127.0.0.1"
    """The address to bind: loopback, or the test network's for a real node's containerd and pods."""
    shared_storage: Path | None = None
    """Serve another registry's storage (a second listener on another address for the same images)."""
    _proc: Proc | None = field(default=None, init=False, repr=False)
    _port: int = field(default=0, init=False, repr=False)

    @property
    def address(self) -> str:
        """host:port, as used in image references."""
        if not self._port:
            raise RuntimeError("registry not started")
        return f"{self.host}:{self._port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("registry not started")
        return self._proc.pid

    @property
    def log(self) -> str:
        return str(self.workdir / "docker-registry.log")

    @property
    def storage_dir(self) -> Path:
        """Distribution's filesystem root; tests reach in here to corrupt blobs on purpose."""
        return self.shared_storage or self.workdir / "storage"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    def blob_data_path(self, digest: str) -> Path:
        """Where Distribution 2.x keeps a blob's bytes on disk."""
        algo, hexdigest = digest.split(":", 1)
        return self.storage_dir / "docker/registry/v2/blobs" / algo / hexdigest[:2] / hexdigest / "data"

    def config(self, port: int) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "fields": {"service": "registry"}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": f"{self.host}:{port}",
                "secret": secrets.token_hex(16),
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        if self.users:
            cfg["auth"] = {"htpasswd": {"realm": "shoal-test", "path": str(self.workdir / "htpasswd")}}
        return cfg

    def start(self, attempts: int = 3) -> None:
        """Start and wait for /v2/; a port lost to a race between probe and bind is retried."""
        if self._proc is not None and self._proc.alive():
            raise RuntimeError(f"registry already running as pid {self._proc.pid}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(exist_ok=True)
        if self.users:
            lines = [htpasswd_line(u, p) for u, p in self.users.items()]
            (self.workdir / "htpasswd").write_text("\n".join(lines) + "\n")
        last: Exception | None = None
        for _ in range(attempts):
            port = free_port()
            self.config_path.write_text(yaml.safe_dump(self.config(port), sort_keys=False))
            proc = spawn(
                "docker-registry", [self.binary, "serve", str(self.config_path)], log_dir=self.workdir
            )
            self._proc, self._port = proc, port
            try:
                wait_until(
                    functools.partial(_v2_answers, f"http://{self.host}:{port}/v2/"),
                    what=f"docker-registry on {self.host}:{port}",
                    timeout=self.ready_timeout,
                    proc=proc,
                )
                return
            except (RuntimeError, TimeoutError) as err:
                last = err
                stop(proc)
                self._proc, self._port = None, 0
                if "address already in use" not in log_tail(proc):
                    break
        raise RuntimeError(f"docker-registry did not start: {last}")

    def start_again(self) -> None:
        """Start a stopped registry on its old port and storage: image references name the port."""
        if self._proc is not None and self._proc.alive():
            raise RuntimeError(f"registry already running as pid {self._proc.pid}")
        port = self._port
        self._proc = spawn(
            "docker-registry", [self.binary, "serve", str(self.config_path)], log_dir=self.workdir
        )
        wait_until(
            functools.partial(_v2_answers, f"http://127.0.0.1:{port}/v2/"),
            what=f"docker-registry on 127.0.0.1:{port}",
            timeout=self.ready_timeout,
            proc=self._proc,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group we started, SIGKILL after `timeout`; idempotent."""
        if self._proc is not None:
            stop(self._proc, timeout=timeout)
            self._proc = None

    def describe(self) -> dict[str, Any]:
        """What a launcher persists to find and stop this registry from another process."""
        return {
            "name": "docker-registry",
            "pid": self.pid,
            "address": self.address,
            "workdir": str(self.workdir),
            "log": self.log,
            "auth": "htpasswd" if self.users else "none",
        }

    @staticmethod
    def stop_described(info: Mapping[str, Any], timeout: float = 10.0) -> None:
        """Stop a registry recorded by `describe()`, e.g. by `make down` in a later process."""
        stop(
            Proc(name=str(info.get("name", "docker-registry")), pid=int(info["pid"]), log=str(info["log"])),
            timeout=timeout,
        )

    def __enter__(self) -> Registry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m localcluster.registry WORKDIR [--user U:P]`: run one in the foreground until Ctrl-C."""
    import argparse
    import signal
    import time

    parser = argparse.ArgumentParser(prog="localcluster.registry", description=main.__doc__)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--user", action="append", default=[], help="USER:PASSWORD, enables htpasswd auth")
    args = parser.parse_args(argv)
    users = dict(u.split(":", 1) for u in args.user) or None
    registry = Registry(workdir=args.workdir, users=users)
    registry.start()
    print(json.dumps(registry.describe()), flush=True)

    def _interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        registry.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
