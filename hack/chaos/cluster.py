"""The chaos suite's own cluster: control plane, registry, test network, the chart, the real operator
and one real agent per Node (LocalShoal), the example modules pushed. Everything is stopped by PID
when the `with` ends, passing or failing; the test network is deleted."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.clusters import control_plane_at, local_shoal
from harness.kubehttp import KubeHttp
from localcluster import examples
from localcluster.chart import Release
from localcluster.controlplane import ControlPlane
from localcluster.registry import Registry
from localcluster.shoalprocs import LocalShoal
from localcluster.testnet import TestNet
from shoal_api import GROUP, VERSION

APPS = f"/apis/{GROUP}/{VERSION}"


@dataclass
class Cluster:
    plane: ControlPlane
    registry: Registry
    net: TestNet
    release: Release
    shoal: LocalShoal
    kube: KubeHttp
    wasm: Path
    """Folder of the built example modules."""

    def push(self, name: str, tag: str = "v1", *, repository: str = "") -> str:
        """Push hack/examples' `name` as <registry>/chaos/<repository or name>:<tag>; returns the image
        reference."""
        from shoal_oci import WasmFormat, push_wasm

        image = f"{self.registry.address}/chaos/{repository or name}:{tag}"
        push_wasm(image, self.wasm / f"{name}.wasm", WasmFormat.WASM_ARTIFACT)
        return image

    def placements(self, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kube.get(f"{APPS}/namespaces/{namespace}/wasmplacements")["items"]
        return items

    def apps(self, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kube.get(f"{APPS}/namespaces/{namespace}/wasmapps")["items"]
        return items

    def kill_operator(self) -> None:
        run = self.shoal.operator
        assert run is not None and run.proc is not None
        os.kill(run.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while run.proc.alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        run.proc = None

    def operator_alive(self) -> bool:
        run = self.shoal.operator
        return run is not None and run.proc is not None and run.proc.alive()

    def ensure_operator(self) -> bool:
        """Start the operator again if it exited (a leader that cannot renew its Lease stops), as its
        Deployment would; returns whether it had to."""
        if self.operator_alive():
            return False
        self.shoal.start_operator()
        return True

    def pids(self) -> dict[str, int]:
        """process name -> PID of the operator and every agent running now."""
        out = {f"agent-{n}": a.proc.pid for n, a in self.shoal.agents.items() if a.proc and a.proc.alive()}
        if self.shoal.operator is not None and self.shoal.operator.proc is not None:
            out["operator"] = self.shoal.operator.proc.pid
        return out

    def scrape(self) -> dict[str, str]:
        """process name -> its /metrics text ("" when it did not answer)."""
        from chaos.load import get_text

        out = {
            f"agent-{n}": get_text((a.http_host, a.metrics_port), "/metrics")
            for n, a in self.shoal.agents.items()
        }
        if self.shoal.operator is not None:
            out["operator"] = get_text(("127.0.0.1", self.shoal.operator.metrics_port), "/metrics")
        return out

    def namespace(self, name: str) -> str:
        if not self.kube.exists(f"/api/v1/namespaces/{name}"):
            self.kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        return name

    def apply_app(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WasmApp",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
        self.kube.apply(f"{APPS}/namespaces/{namespace}/wasmapps/{name}", body)

    def app(self, namespace: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.kube.get(f"{APPS}/namespaces/{namespace}/wasmapps/{name}")
        return obj

    def wait_ready(self, namespace: str, name: str, *, timeout: float = 120) -> None:
        examples.wait_ready(self.plane, namespace, [name], timeout=timeout)

    def agent_address(self, node: str) -> tuple[str, int]:
        run = self.shoal.agents[node]
        return run.http_host, run.http_port

    def kill_agent(self, node: str) -> None:
        """SIGKILL, as the OOM killer or a crash would: no drain, no Lease release."""
        run = self.shoal.agents[node]
        assert run.proc is not None
        os.kill(run.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while run.proc.alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        run.proc = None

    def restart_agent(self, node: str) -> None:
        """Start it again with the same ports and caches, as kubelet restarts a crashed container."""
        self.shoal.start_agent(node, self.shoal.agents[node].pod)


@contextlib.contextmanager
def chaos_cluster(workdir: Path) -> Iterator[Cluster]:
    with control_plane_at(workdir / "cluster") as plane, Registry(workdir=workdir / "registry") as registry:
        net = TestNet.create(name=f"c{os.getpid()}", pod_cidr=plane.pod_cidr)
        try:
            release = Release(plane)
            release.install()
            wasm = examples.build()
            with local_shoal(release, net, workdir / "shoal") as shoal:
                yield Cluster(plane, registry, net, release, shoal, KubeHttp(plane), wasm)
        finally:
            net.stop()
