"""Run shoal-operator and one shoal-agent per node as local processes, as the chart's ServiceAccounts.

Each process gets a kubeconfig of its own holding a TokenRequest token: the operator's is a token of
the operator ServiceAccount, each agent's is bound to the DaemonSet's pod on its node (so the chart's
nodeRestriction policy sees the right node). Agents take their budget and advertised address from
that pod, as the downward API would give them. Every process is stopped by PID.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .chart import ChartPod, Release
from .processes import Proc, free_port, spawn, stop, wait_until
from .prometheus import Target
from .tokens import BoundPod, request_token, write_token_kubeconfig


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return 0


@dataclass
class AgentRun:
    node: str
    pod: ChartPod
    kubeconfig: Path
    http_host: str = "127.0.0.1"
    http_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.http_host}:{self.metrics_port}/metrics"


@dataclass
class OperatorRun:
    pod: ChartPod
    kubeconfig: Path
    metrics_port: int = field(default_factory=free_port)
    proc: Proc | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


@dataclass
class LocalShoal:
    """The operator and agents of `release`, run here. `wrap` may prefix an agent's argv (a netns)."""

    release: Release
    workdir: Path
    nodes: Sequence[str]
    agent_hosts: dict[str, str] = field(default_factory=dict)  # node -> bind/advertise address
    wrap: Callable[[str, list[str]], list[str]] | None = None
    operator: OperatorRun | None = None
    agents: dict[str, AgentRun] = field(default_factory=dict)

    @property
    def procs(self) -> list[Proc]:
        runs: list[OperatorRun | AgentRun] = [*self.agents.values()]
        if self.operator is not None:
            runs.insert(0, self.operator)
        return [r.proc for r in runs if r.proc is not None]

    def start(self) -> None:
        try:
            self.start_agents()
            self.start_operator()
        except BaseException:
            self.stop()
            raise

    def start_operator(self) -> OperatorRun:
        rel, plane = self.release, self.release.plane
        pod = rel.operator_pod()
        token = request_token(
            plane, rel.namespace, rel.service_account("operator"), pod=BoundPod(pod.name, pod.uid)
        )
        kubeconfig = write_token_kubeconfig(
            self.workdir / "kubeconfigs" / "operator.kubeconfig",
            plane,
            token,
            user=rel.service_account("operator"),
        )
        run = OperatorRun(pod=pod, kubeconfig=kubeconfig)
        run.proc = spawn(
            "shoal-operator",
            [
                sys.executable,
                "-m",
                "shoal_operator",
                f"--agent-namespace={rel.namespace}",
                f"--lease-namespace={rel.namespace}",
                f"--identity={pod.name}",
                "--metrics-host=127.0.0.1",
                f"--metrics-port={run.metrics_port}",
            ],
            log_dir=self.workdir / "logs",
            env={"KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1", "POD_NAMESPACE": rel.namespace},
        )
        self.operator = run
        wait_until(
            lambda: _http_status(run.metrics_url) == 200, what="operator metrics", timeout=60, proc=run.proc
        )
        return run

    def start_agents(self) -> None:
        pods = self.release.agent_pods(list(self.nodes))
        for node in self.nodes:
            self.start_agent(node, pods[node])
        for run in self.agents.values():
            self._wait_agent(run)

    def _wait_agent(self, run: AgentRun) -> None:
        ready = f"http://{run.http_host}:{run.metrics_port}/readyz"
        wait_until(
            lambda: _http_status(ready) == 200, what=f"agent {run.node} /readyz", timeout=60, proc=run.proc
        )

    def start_agent(self, node: str, pod: ChartPod, *, wait: bool = False) -> AgentRun:
        """Start (or restart, keeping ports and cache) the agent of `node`."""
        rel, plane = self.release, self.release.plane
        previous = self.agents.get(node)
        if previous is not None and previous.proc is not None and previous.proc.alive():
            raise RuntimeError(f"agent {node} is running")
        sa = rel.service_account("agent")
        token = request_token(plane, rel.namespace, sa, pod=BoundPod(pod.name, pod.uid))
        kubeconfig = write_token_kubeconfig(
            self.workdir / "kubeconfigs" / f"agent-{node}.kubeconfig", plane, token, user=sa
        )
        host = self.agent_hosts.get(node, "127.0.0.1")
        run = previous or AgentRun(node=node, pod=pod, kubeconfig=kubeconfig, http_host=host)
        run.pod, run.kubeconfig = pod, kubeconfig
        # Advertise the pod IP (what the DaemonSet's POD_IP would be) unless the agent binds a real one.
        advertise = host if host != "127.0.0.1" else pod.ip
        argv = [
            sys.executable,
            "-m",
            "shoal_agent",
            f"--node-name={node}",
            f"--namespace={rel.namespace}",
            f"--kubeconfig={kubeconfig}",
            f"--http-host={host}",
            f"--http-port={run.http_port}",
            f"--advertise-host={advertise}",
            f"--metrics-host={host}",
            f"--metrics-port={run.metrics_port}",
            f"--cpu-millis={pod.cpu_millis}",
            f"--memory-bytes={pod.memory_bytes}",
            f"--cache-dir={self.workdir / 'agent-cache' / node}",
        ]
        if self.wrap is not None:
            argv = self.wrap(node, argv)
        run.proc = spawn(
            f"shoal-agent-{node}", argv, log_dir=self.workdir / "logs", env={"PYTHONUNBUFFERED": "1"}
        )
        self.agents[node] = run
        if wait:
            self._wait_agent(run)
        return run

    def stop_agent(self, node: str) -> None:
        run = self.agents.get(node)
        if run is not None and run.proc is not None:
            stop(run.proc, timeout=20)
            run.proc = None

    def stop_operator(self) -> None:
        if self.operator is not None and self.operator.proc is not None:
            stop(self.operator.proc, timeout=20)
            self.operator.proc = None

    def stop(self) -> None:
        self.stop_operator()
        for node in list(self.agents):
            self.stop_agent(node)

    def scrape_targets(self) -> list[Target]:
        """The operator and agents, labelled as the chart's ServiceMonitors label them (job, node, pod),
        so the shipped PromQL runs unchanged against a local Prometheus."""
        assert self.operator is not None
        op = self.operator
        targets = [
            Target(
                f"127.0.0.1:{op.metrics_port}",
                {"job": "shoal-operator", "node": op.pod.node, "pod": op.pod.name},
            )
        ]
        targets += [
            Target(f"{a.http_host}:{a.metrics_port}", {"job": "shoal-agent", "node": n, "pod": a.pod.name})
            for n, a in self.agents.items()
        ]
        return targets

    def logs(self) -> dict[str, str]:
        """name -> log text of every process started so far."""
        out: dict[str, str] = {}
        for path in sorted((self.workdir / "logs").glob("*.log")):
            out[path.stem] = path.read_text(errors="replace")
        return out

    def describe(self) -> dict[str, Any]:
        """Addresses for `make demo` users and for Prometheus targets."""
        return {
            "operator": {"metrics": self.operator.metrics_url} if self.operator else {},
            "agents": {n: {"url": a.url, "metrics": a.metrics_url} for n, a in self.agents.items()},
        }
