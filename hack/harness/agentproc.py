"""Run the real shoal-agent as a process for one node, against the local control plane; stopped by PID.

Owns its Popen (unlike localcluster's `spawn`) so tests can read the exit code after SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from localcluster.processes import Proc, free_port, wait_until


class AgentProcess:
    def __init__(
        self,
        *,
        kubeconfig: Path,
        node: str,
        namespace: str,
        workdir: Path,
        cache_dir: Path,
        lease_seconds: int = 6,
        grace_seconds: float = 5.0,
        http_host: str = "127.0.0.1",
        advertise_host: str | None = None,
        memory_budget: int | None = None,
    ) -> None:
        """`http_host`: where triggers listen; on a test network, a `TestNet.host_address()`, which
        is also advertised (EndpointSlices reject loopback) unless `advertise_host` says otherwise."""
        self.kubeconfig = kubeconfig
        self.node = node
        self.namespace = namespace
        self.workdir = workdir
        self.cache_dir = cache_dir
        self.lease_seconds = lease_seconds
        self.grace_seconds = grace_seconds
        self.http_host = http_host
        self.advertise_host = advertise_host or http_host
        self.memory_budget = memory_budget
        self.http_port = free_port()
        self.metrics_port = free_port()
        self.popen: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"agent-{node}.log"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "shoal_agent",
                    f"--node-name={self.node}",
                    f"--namespace={self.namespace}",
                    f"--kubeconfig={self.kubeconfig}",
                    f"--http-host={self.http_host}",
                    f"--http-port={self.http_port}",
                    f"--advertise-host={self.advertise_host}",
                    "--metrics-host=127.0.0.1",
                    f"--metrics-port={self.metrics_port}",
                    "--cpu-millis=2000",
                    f"--memory-bytes={2 << 30}",
                    f"--cache-dir={self.cache_dir}",
                    f"--lease-seconds={self.lease_seconds}",
                    f"--grace-seconds={self.grace_seconds}",
                    *([f"--memory-budget={self.memory_budget}"] if self.memory_budget else []),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        proc = Proc(name=f"agent-{self.node}", pid=self.popen.pid, log=str(self.log_path))
        wait_until(self.ready, what=f"agent {self.node} /readyz", timeout=30, proc=proc)

    def _get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, OSError):
            return 0, ""

    def ready(self) -> bool:
        return self._get("/readyz")[0] == 200

    def healthy(self) -> bool:
        return self._get("/healthz")[0] == 200

    def metrics(self) -> str:
        status, body = self._get("/metrics")
        assert status == 200, status
        return body

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self) -> None:
        """SIGTERM only (the test then waits for the exit code)."""
        assert self.popen is not None
        os.kill(self.popen.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.popen is not None
        code = self.popen.wait(timeout=timeout)
        self.popen = None
        return code

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; SIGKILL the process group if it does not exit in time."""
        if self.popen is None:
            return None
        popen = self.popen
        self.popen = None
        if popen.poll() is None:
            os.kill(popen.pid, signal.SIGTERM)
        try:
            return popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout=5)
            return None
        finally:
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline and popen.poll() is None:
                time.sleep(0.05)
