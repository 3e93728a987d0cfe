"""Run shoal-operator as a real process against the local control plane, stopped by PID."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from harness.fakeagents import AGENT_NAMESPACE
from localcluster.processes import Proc, free_port, spawn, stop, wait_until


class OperatorProcess:
    def __init__(
        self, *, kubeconfig: Path, workdir: Path, identity: str, extra_env: dict[str, str] | None = None
    ):
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.identity = identity
        self.metrics_port = free_port()
        self.extra_env = extra_env or {}
        self.proc: Proc | None = None

    def __enter__(self) -> OperatorProcess:
        """`with OperatorProcess(...) as op:` runs it for a fixture's lifetime, stopped by PID at the end."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.proc = spawn(
            f"operator-{self.identity}",
            [
                sys.executable,
                *profile_args(self.workdir, self.identity),
                "-m",
                "shoal_operator",
                f"--agent-namespace={AGENT_NAMESPACE}",
                f"--lease-namespace={AGENT_NAMESPACE}",
                f"--identity={self.identity}",
                f"--metrics-port={self.metrics_port}",
                "--metrics-host=127.0.0.1",
            ],
            log_dir=self.workdir,
            env={"KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1", **self.extra_env},
        )
        try:
            wait_until(self._metrics_up, what=f"{self.identity} metrics endpoint", timeout=30, proc=self.proc)
        except BaseException:
            self.stop()  # never leave a half-started operator behind
            raise

    def _metrics_up(self) -> bool:
        try:
            self.metrics()
            return True
        except (urllib.error.URLError, OSError):
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def is_leader(self) -> bool:
        return "shoal_operator_leader 1.0" in self.metrics()

    def log(self) -> str:
        return Path(self.proc.log).read_text(errors="replace") if self.proc else ""

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=15)
            self.proc = None


def profile_args(workdir: Path, identity: str) -> list[str]:
    """SHOAL_PROFILE_OPERATOR=1 runs the operator under cProfile (written at exit) for benchmarks."""
    if not os.environ.get("SHOAL_PROFILE_OPERATOR"):
        return []
    return ["-m", "cProfile", "-o", str(workdir / f"operator-{identity}.prof")]
