"""`helm install` of charts/shoal into the local control plane, and what its pods tell us.

The operator Deployment and the agent DaemonSet land on kwok Nodes, which mark them Running without
running anything. They are still useful: their ServiceAccounts, their pods (to bind agent tokens to,
one per node) and their downward-API values (pod IP, resource requests) are exactly what the real
processes would get, so local processes can be started with them.
"""

from __future__ import annotations

import subprocess
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .controlplane import ControlPlane
from .processes import wait_until
from .tools import tool

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "shoal"


@dataclass(frozen=True)
class ChartPod:
    name: str
    uid: str
    node: str
    ip: str
    cpu_millis: int
    memory_bytes: int


@dataclass
class Release:
    plane: ControlPlane
    name: str = "shoal"
    namespace: str = "shoal-system"
    values: list[str] = field(default_factory=list)  # extra helm args: --set k=v, -f file

    @property
    def fullname(self) -> str:
        """The chart's resource prefix (shoal.fullname): the release, or <release>-shoal."""
        return self.name if "shoal" in self.name else f"{self.name}-shoal"

    def service_account(self, component: str) -> str:
        return f"{self.fullname}-{component}"

    def install(self, timeout: int = 180, *, wait: bool = True) -> str:
        """`helm upgrade --install [--wait]`: idempotent, so `make demo` can run twice."""
        done = subprocess.run(
            [
                tool("helm"),
                f"--kubeconfig={self.plane.kubeconfig}",
                "upgrade",
                "--install",
                self.name,
                str(CHART),
                "--namespace",
                self.namespace,
                "--create-namespace",
                *(["--wait"] if wait else []),
                f"--timeout={timeout}s",
                *self.values,
            ],
            capture_output=True,
            text=True,
            timeout=timeout + 30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"helm install failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def uninstall(self) -> None:
        subprocess.run(
            [
                tool("helm"),
                f"--kubeconfig={self.plane.kubeconfig}",
                "uninstall",
                self.name,
                "-n",
                self.namespace,
            ],
            capture_output=True,
            timeout=120,
        )

    def pods(self, component: str) -> list[ChartPod]:
        """Running pods of `component` ("operator" or "agent") that have a node and an IP."""
        selector = urllib.parse.quote(
            f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component={component}"
        )
        items = self.plane.get_json(f"/api/v1/namespaces/{self.namespace}/pods?labelSelector={selector}")[
            "items"
        ]
        return sorted(
            (
                _chart_pod(p)
                for p in items
                if p["status"].get("phase") == "Running" and p["status"].get("podIP")
            ),
            key=lambda p: (p.node, p.name),
        )

    def agent_pods(self, nodes: list[str], timeout: float = 60) -> dict[str, ChartPod]:
        """The DaemonSet's pod on each of `nodes`, once each is Running with an IP."""

        def on_every_node() -> bool:
            return set(nodes) <= {p.node for p in self.pods("agent")}

        wait_until(on_every_node, what=f"agent pods on {nodes}", timeout=timeout)
        return {p.node: p for p in self.pods("agent") if p.node in nodes}

    def operator_pod(self, timeout: float = 60) -> ChartPod:
        wait_until(lambda: bool(self.pods("operator")), what="an operator pod", timeout=timeout)
        return self.pods("operator")[0]


def _chart_pod(pod: dict[str, Any]) -> ChartPod:
    from shoal_api.quantity import parse_cpu_millicores, parse_memory_bytes

    requests = pod["spec"]["containers"][0].get("resources", {}).get("requests", {})
    return ChartPod(
        name=pod["metadata"]["name"],
        uid=pod["metadata"]["uid"],
        node=pod["spec"].get("nodeName", ""),
        ip=pod["status"]["podIP"],
        cpu_millis=parse_cpu_millicores(requests.get("cpu", "1")),
        memory_bytes=parse_memory_bytes(requests.get("memory", "1Gi")),
    )
