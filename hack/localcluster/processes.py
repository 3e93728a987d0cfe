"""Start, wait for and stop the servers of the local cluster, always by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


def stop_cleanly_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so every `with` that started a server stops it: by default
    SIGTERM ends Python at once and leaves the servers of a bench, chaos run or probe behind."""

    def interrupt(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, interrupt)


def free_port() -> int:
    """A loopback port that is free now (the server binds it a moment later; collisions are rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Proc:
    """A server we started: enough to find it again and stop it, even from another process."""

    name: str
    pid: int
    log: str
    stop_timeout: float = 10.0
    """How long `stop()` waits after SIGTERM before SIGKILL (longer for servers that stop children)."""

    def alive(self) -> bool:
        return pid_alive(self.pid)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "pid": self.pid, "log": self.log}
        if self.stop_timeout != Proc.stop_timeout:
            out["stop_timeout"] = self.stop_timeout
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> Proc:
        timeout = raw.get("stop_timeout", cls.stop_timeout)
        assert isinstance(timeout, int | float)
        return cls(name=str(raw["name"]), pid=int(str(raw["pid"])), log=str(raw["log"]), stop_timeout=timeout)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Exited but not reaped yet by its parent (init, for a server started by an earlier command)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_dir: Path,
    env: dict[str, str] | None = None,
    stop_timeout: float = Proc.stop_timeout,
) -> Proc:
    """Start a server in its own session so a Ctrl-C on the caller does not reach it half-way."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return Proc(name=name, pid=popen.pid, log=str(log_path), stop_timeout=stop_timeout)


def stop(proc: Proc, *, timeout: float | None = None) -> None:
    """SIGTERM, wait (`timeout`, default the proc's own), then SIGKILL: the server's own children
    go with its process group."""
    timeout = proc.stop_timeout if timeout is None else timeout
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not proc.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                return
            time.sleep(0.05)


def wait_until(
    check: Callable[[], bool], *, what: str, timeout: float, proc: Proc | None = None, interval: float = 0.1
) -> None:
    """Poll `check` until it is true; fail early, with the log's tail, if the server died."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited while waiting for {what}; log tail:\n{log_tail(proc)}")
        if time.monotonic() > deadline:
            tail = f"; log tail:\n{log_tail(proc)}" if proc else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        time.sleep(interval)


def log_tail(proc: Proc, lines: int = 30) -> str:
    try:
        return "\n".join(Path(proc.log).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
