"""The chaos suite's own cluster: control plane, registry, test network, the chart, the real operator
and one real agent per Node (LocalShoal), the example modules pushed. Everything is stopped by PID
when the `with` ends, passing or failing; the test network is deleted."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.clusters import control_plane_at, local_shoal
from harness.kubehttp import KubeHttp
from localcluster import examples
from localcluster.chart import Release
from localcluster.controlplane import ControlPlane
from localcluster.depservers import DependencyServers
from localcluster.processes import Proc, free_port, spawn, stop
from localcluster.registry import Registry
from localcluster.shoalprocs import LocalShoal, OperatorRun
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
    workdir: Path
    deps: DependencyServers | None = None
    """Real Redis/MariaDB servers for dependency pods, started by the first scenario that needs them."""
    standby: OperatorRun | None = None
    """A second operator (another identity), when a scenario runs one."""
    shared: dict[str, Any] = field(default_factory=dict)
    """What one scenario set up and a later one may reuse (Finicky Whiskers)."""

    def dependency_servers(self) -> DependencyServers:
        if self.deps is None:
            # A short folder of its own: MariaDB refuses a socket path over 107 bytes, and a pytest
            # tmp_path as the workdir made it that long. Removed when the cluster stops.
            folder = Path(tempfile.mkdtemp(prefix="shoal-deps-"))
            self.deps = DependencyServers(plane=self.plane, testnet=self.net, workdir=folder)
            self.deps.start()
        return self.deps

    def start_standby_operator(self) -> OperatorRun:
        """A second operator process with an identity of its own, as a Deployment's second replica
        runs: it waits on the leader Lease and writes nothing until it holds it."""
        primary = self.shoal.operator
        assert primary is not None
        run = OperatorRun(pod=primary.pod, kubeconfig=primary.kubeconfig, metrics_port=free_port())
        rel = self.release
        run.proc = spawn(
            "shoal-operator-standby",
            [
                sys.executable, "-m", "shoal_operator",
                f"--agent-namespace={rel.namespace}", f"--lease-namespace={rel.namespace}",
                f"--identity={primary.pod.name}-standby",
                "--metrics-host=127.0.0.1", f"--metrics-port={run.metrics_port}",
            ],
            log_dir=self.workdir / "shoal" / "logs",
            env={"KUBECONFIG": str(primary.kubeconfig), "PYTHONUNBUFFERED": "1",
                 "POD_NAMESPACE": rel.namespace},
        )  # fmt: skip
        self.standby = run
        return run

    def stop_standby_operator(self) -> None:
        if self.standby is not None and self.standby.proc is not None:
            stop(self.standby.proc, timeout=20)
        self.standby = None

    def lease_holder(self) -> str:
        """holderIdentity of the operators' leader Lease ("" when free or unreadable)."""
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self.release.namespace}/leases/shoal-operator"
        try:
            holder = self.kube.get(path)["spec"].get("holderIdentity")
        except Exception:  # the apiserver may be down on purpose; the caller decides what that means
            return ""
        return str(holder or "")

    def leading(self) -> dict[str, bool]:
        """operator name -> whether its /metrics says it leads now (absent: it did not answer)."""
        from chaos.figures import metric_sum
        from chaos.load import get_text

        runs = {"operator": self.shoal.operator, "standby": self.standby}
        out = {}
        for name, run in runs.items():
            if run is None or run.proc is None or not run.proc.alive():
                continue
            text = get_text(("127.0.0.1", run.metrics_port), "/metrics", timeout=1.0)
            if text:
                out[name] = metric_sum(text, "shoal_operator_leader") >= 1
        return out

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

    def kill_operator(self, run: OperatorRun | None = None) -> None:
        """SIGKILL the operator (or `run`, e.g. the standby)."""
        run = run or self.shoal.operator
        assert run is not None and run.proc is not None
        kill_proc(run.proc)
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
        kill_proc(run.proc)
        run.proc = None

    def restart_agent(self, node: str) -> None:
        """Start it again with the same ports and caches, as kubelet restarts a crashed container."""
        self.shoal.start_agent(node, self.shoal.agents[node].pod)


def kill_proc(proc: Proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while proc.alive() and time.monotonic() < deadline:
        time.sleep(0.01)


@contextlib.contextmanager
def chaos_cluster(workdir: Path) -> Iterator[Cluster]:
    with control_plane_at(workdir / "cluster") as plane, Registry(workdir=workdir / "registry") as registry:
        net = TestNet.create(name=f"c{os.getpid()}", pod_cidr=plane.pod_cidr)
        try:
            release = Release(plane)
            release.install()
            wasm = examples.build()
            with local_shoal(release, net, workdir / "shoal") as shoal:
                cluster = Cluster(plane, registry, net, release, shoal, KubeHttp(plane), wasm, workdir)
                try:
                    yield cluster
                finally:
                    cluster.stop_standby_operator()
                    if cluster.deps is not None:
                        cluster.deps.stop()
                        shutil.rmtree(cluster.deps.workdir, ignore_errors=True)
        finally:
            net.stop()
