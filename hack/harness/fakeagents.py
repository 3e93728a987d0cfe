"""Simulated node agents for operator tests: a WasmNode and a heartbeat Lease per node, and
placement statuses marked Ready, the way the real agent would write them.

The operator under test cannot tell these from real agents: they write the same objects through
the same API. A thread does it, so heartbeats keep going whatever the test's event loop does.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
from datetime import UTC, datetime
from typing import Any

from harness.kubehttp import KubeHttp
from shoal_api import GROUP, VERSION
from shoal_api.naming import agent_lease_name, node_selector

AGENT_NAMESPACE = "shoal-system"
LEASE_SECONDS = 5


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeAgents:
    def __init__(
        self, kube: KubeHttp, nodes: list[str], *, cpu_millis: int = 4000, memory_bytes: int = 4 << 30
    ) -> None:
        self.kube = kube
        self.nodes = nodes
        self.alive = set(nodes)
        self.mark_ready = True
        self.capacity = {"cpuMillis": cpu_millis, "memoryBytes": memory_bytes}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fake-agents", daemon=True)
        self.errors: list[str] = []

    def start(self) -> None:
        if not self.kube.exists(f"/api/v1/namespaces/{AGENT_NAMESPACE}"):
            self.kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": AGENT_NAMESPACE}})
        for node in self.nodes:
            self.kube.apply(
                f"/apis/{GROUP}/{VERSION}/wasmnodes/{node}",
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "WasmNode",
                    "metadata": {"name": node},
                    "spec": {
                        "capacity": self.capacity,
                        "endpoint": {"host": f"{node}.agents.shoal.test", "port": 8080},
                        "runtime": {"wasmtime": "fake", "agent": "fake"},
                        "lease": {"name": agent_lease_name(node), "namespace": AGENT_NAMESPACE},
                    },
                },
            )
        self._beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._beat()
                if self.mark_ready:
                    self._mark_placements_ready()
            except (urllib.error.URLError, OSError) as e:
                self.errors.append(str(e))

    def _beat(self) -> None:
        for node in sorted(self.alive):
            self.kube.apply(
                f"/apis/coordination.k8s.io/v1/namespaces/{AGENT_NAMESPACE}/leases/{agent_lease_name(node)}",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": agent_lease_name(node), "namespace": AGENT_NAMESPACE},
                    "spec": {
                        "holderIdentity": node,
                        "leaseDurationSeconds": LEASE_SECONDS,
                        "renewTime": _now(),
                    },
                },
            )

    def _mark_placements_ready(self) -> None:
        for node in sorted(self.alive):
            listing = self.kube.get(
                f"/apis/{GROUP}/{VERSION}/wasmplacements?labelSelector={urllib.parse.quote(node_selector(node))}"
            )
            for item in listing["items"]:
                status: dict[str, Any] = item.get("status") or {}
                want = item["spec"]["templateHash"]
                if status.get("ready") and status.get("observedTemplateHash") == want:
                    continue
                meta = item["metadata"]
                self.kube.merge_patch(
                    f"/apis/{GROUP}/{VERSION}/namespaces/{meta['namespace']}/wasmplacements/{meta['name']}/status",
                    {
                        "status": {
                            "state": "Ready",
                            "ready": True,
                            "observedTemplateHash": want,
                            "message": "fake agent",
                        }
                    },
                )
