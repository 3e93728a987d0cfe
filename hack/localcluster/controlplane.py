"""The local control plane: etcd, kube-apiserver (RBAC on), kube-controller-manager, kube-scheduler and
kwok managing N fake Nodes, all on loopback, all stopped by PID.

kwok marks pods bound to its Nodes Running without running anything, which is what an operator's
tests need: the real apiserver, admission, RBAC, garbage collector and scheduler, minus kubelets.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import pki
from .processes import Proc, free_port, spawn, stop, wait_until
from .tools import ensure_tools

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
ZONES = ("zone-a", "zone-b", "zone-c")


@dataclass(frozen=True)
class NodeShape:
    """What a fake Node offers; kwok keeps these as its capacity and allocatable."""

    cpu: str = "8"
    memory: str = "16Gi"
    pods: str = "110"


@dataclass
class ControlPlane:
    workdir: Path
    nodes: int = 3
    node_shape: NodeShape = field(default_factory=NodeShape)
    pod_cidr: str = POD_CIDR
    """kwok's pod IP range; a cluster used with a test network gets its own (testnet.pick_pod_cidr)."""
    procs: list[Proc] = field(default_factory=list)
    api_port: int = 0
    kubeconfig: Path = field(init=False)
    bind_address: str = "127.0.0.1"
    """Where kube-apiserver binds and what it advertises: loopback, or (with a real node) the test
    network's root-side address, which the node and its pods reach; the `kubernetes` Service then gets
    that endpoint and kubelets are reached at their InternalIP (`kubectl logs`)."""
    kwok_node_selector: str | None = None
    """kwok manages only Nodes with this label (`type=kwok`) instead of every Node: with a real kubelet
    in the cluster kwok must not take its Node over (fake pod status, a fight for the Lease)."""
    _component_argv: dict[str, list[str]] = field(default_factory=dict, repr=False)
    """kube-controller-manager's and kube-scheduler's command lines, without the port and extra flags."""

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.kubeconfig = self.workdir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{self.bind_address}:{self.api_port}"

    @property
    def pki_dir(self) -> Path:
        return self.workdir / "pki"

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Bring everything up and wait until Nodes are Ready; on any failure, stop what started."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()

    def _start(self) -> None:
        bins = ensure_tools()
        self.workdir.mkdir(parents=True, exist_ok=True)
        logs = self.workdir / "logs"
        ca, sa = self._make_pki()

        etcd_port, peer_port = free_port(), free_port()
        etcd = spawn(
            "etcd",
            [
                str(bins / "etcd"),
                "--name=shoal",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=shoal=http://127.0.0.1:{peer_port}",
                "--listen-metrics-urls=",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            log_dir=logs,
        )
        self.procs.append(etcd)
        wait_until(
            lambda: _http_ok(f"http://127.0.0.1:{etcd_port}/health"),
            what="etcd /health",
            timeout=60,
            proc=etcd,
        )

        self.api_port = free_port()
        p = self.pki_dir
        apiserver = spawn(
            "kube-apiserver",
            [
                str(bins / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--bind-address={self.bind_address}",
                f"--advertise-address={self.bind_address}",
                f"--secure-port={self.api_port}",
                f"--cert-dir={p}",
                f"--tls-cert-file={p / 'apiserver.crt'}",
                f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--client-ca-file={ca.cert}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=RBAC" if self._loopback else "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                "--allow-privileged=true",
                # The `kubernetes` Service's endpoint would be 127.0.0.1, which Endpoints reject.
                *(["--endpoint-reconciler-type=none"] if self._loopback else self._real_node_args()),
                "--v=1",
            ],
            log_dir=logs,
        )
        self.procs.append(apiserver)
        self._write_kubeconfig(self.kubeconfig, "admin")
        wait_until(
            lambda: self._get_ok("/readyz"), what="kube-apiserver /readyz", timeout=120, proc=apiserver
        )

        for component in ("kube-controller-manager", "kube-scheduler"):
            kubeconfig = self.workdir / f"{component}.kubeconfig"
            self._write_kubeconfig(kubeconfig, component)
            argv = [
                str(bins / component),
                f"--kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                "--leader-elect=false",
                # The scheduler at 2 logs each attempt's outcome per pod ("Unable to schedule pod",
                # "Successfully bound pod"): what a test needs to say why a pod stayed Pending.
                "--v=2" if component == "kube-scheduler" else "--v=1",
            ]
            if component == "kube-controller-manager":
                argv += [
                    f"--service-account-private-key-file={sa.key}",
                    f"--root-ca-file={ca.cert}",
                    f"--cluster-signing-cert-file={ca.cert}",
                    f"--cluster-signing-key-file={ca.key}",
                    f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}",
                    "--use-service-account-credentials=true",
                    "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
                ]
            else:
                argv += [
                    f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}",
                ]
            self._component_argv[component] = argv
            self.procs.append(self._spawn_component(component, ()))

        kwok_kubeconfig = self.workdir / "kwok.kubeconfig"
        self._write_kubeconfig(kwok_kubeconfig, "kwok")
        kwok = spawn(
            "kwok",
            [
                str(bins / "kwok"),
                f"--kubeconfig={kwok_kubeconfig}",
                *(
                    [f"--manage-nodes-with-label-selector={self.kwok_node_selector}"]
                    if self.kwok_node_selector
                    else ["--manage-all-nodes=true"]
                ),
                f"--server-address=127.0.0.1:{free_port()}",
                f"--cidr={self.pod_cidr}",
                "--node-ip=10.240.0.1",
                "--node-lease-duration-seconds=40",
            ],
            log_dir=logs,
        )
        self.procs.append(kwok)

        self.kubectl("apply", "-f", "-", input=json.dumps(self._node_list()))
        # kube-controller-manager lifts each Node's not-ready taint through its 20 QPS client:
        # a thousand Nodes need about a minute for that alone, and 200 took 35-50 s here (once more
        # than 60 s, right after another cluster of the bench had stopped).
        wait_until(
            self._nodes_ready,
            what=f"{self.nodes} Ready nodes",
            timeout=max(120, self.nodes * 0.25),
            proc=kwok,
        )
        wait_until(
            lambda: self._get_ok("/api/v1/namespaces/default/serviceaccounts/default"),
            what="the default ServiceAccount",
            timeout=60,
        )

    @property
    def _loopback(self) -> bool:
        return self.bind_address.startswith("127.")

    def _real_node_args(self) -> list[str]:
        p = self.pki_dir
        return [
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
        ]

    def restart(self, component: str, extra_args: Sequence[str] = ()) -> None:
        """Restart kube-controller-manager or kube-scheduler with `extra_args` added to its usual
        flags (e.g. `--kube-api-qps=200`), and wait until it answers /healthz. Benchmarks use it to
        compare the default client limits with raised ones on the same cluster."""
        index = next(i for i, p in enumerate(self.procs) if p.name == component)
        stop(self.procs[index])
        self.procs[index] = self._spawn_component(component, extra_args)

    def restart_server(self, name: str) -> float:
        """Stop etcd or kube-apiserver (SIGTERM, as a control-plane upgrade does) and start it again
        with the same command line (read back from /proc: same ports, same data); returns the
        seconds until the apiserver answered /readyz again."""
        index = next(i for i, p in enumerate(self.procs) if p.name == name)
        argv = Path(f"/proc/{self.procs[index].pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        started = time.monotonic()
        # kube-apiserver stops listening at once on SIGTERM but then lingers for long-running
        # requests (watches) until killed; 5 s, then SIGKILL, keeps the outage a restart's length.
        stop(self.procs[index], timeout=5)
        self.procs[index] = spawn(name, [a.decode() for a in argv], log_dir=self.workdir / "logs")
        wait_until(lambda: self._get_ok("/readyz"), what="kube-apiserver /readyz", timeout=120)
        return time.monotonic() - started

    def _spawn_component(self, component: str, extra_args: Sequence[str]) -> Proc:
        port = free_port()
        proc = spawn(
            component,
            [*self._component_argv[component], f"--secure-port={port}", *extra_args],
            log_dir=self.workdir / "logs",
        )
        if extra_args:  # at start-up nothing waits for them (kwok's Nodes going Ready does, later)
            wait_until(
                lambda: _https_ok(f"https://127.0.0.1:{port}/healthz"),
                what=f"{component} /healthz",
                timeout=60,
                proc=proc,
            )
        return proc

    # --- helpers ------------------------------------------------------------------------------------

    def _make_pki(self) -> tuple[pki.CertFiles, pki.CertFiles]:
        d = self.pki_dir
        d.mkdir(parents=True, exist_ok=True)
        ca = pki.make_ca(d)
        pki.issue(
            ca,
            d,
            "apiserver",
            cn="kube-apiserver",
            server=True,
            dns=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ips=tuple(dict.fromkeys(("127.0.0.1", "10.96.0.1", self.bind_address))),
        )
        pki.issue(ca, d, "admin", cn="shoal-admin", orgs=("system:masters",))
        # The controller-manager mints one ServiceAccount per controller (use-service-account-credentials)
        # and needs only its bootstrap role to do so.
        pki.issue(ca, d, "kube-controller-manager", cn="system:kube-controller-manager")
        pki.issue(ca, d, "kube-scheduler", cn="system:kube-scheduler")
        # kwok plays every kubelet at once; the Node authorizer's per-node identities do not fit it.
        pki.issue(ca, d, "kwok", cn="kwok", orgs=("system:masters",))
        if not self._loopback:  # the apiserver's client certificate towards kubelets (logs, exec)
            pki.issue(
                ca,
                d,
                "apiserver-kubelet-client",
                cn="kube-apiserver-kubelet-client",
                orgs=("system:masters",),
            )
        return ca, pki.make_service_account_key(d)

    def _write_kubeconfig(self, path: Path, user: str) -> None:
        p = self.pki_dir
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "shoal",
                    "cluster": {"server": self.server, "certificate-authority": str(p / "ca.crt")},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate": str(p / f"{user}.crt"),
                        "client-key": str(p / f"{user}.key"),
                    },
                }
            ],
            "contexts": [{"name": "shoal", "context": {"cluster": "shoal", "user": user}}],
            "current-context": "shoal",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        ctx.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
        return ctx

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.server + path, context=self.ssl_context(), timeout=10) as resp:
            return json.loads(resp.read())

    def _get_ok(self, path: str) -> bool:
        try:
            self.get_json(path) if path != "/readyz" else urllib.request.urlopen(
                self.server + path, context=self.ssl_context(), timeout=5
            ).read()
            return True
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            return False

    def kubectl(self, *args: str, input: str | None = None) -> str:
        argv = [str(ensure_tools() / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def scheduler_said(self, about: str) -> list[str]:
        """kube-scheduler's log lines that mention `about` (e.g. "ns/pod" or "ns/"): at -v=2 one
        per scheduling attempt, which is what says why a pod stayed Pending."""
        log = self.workdir / "logs" / "kube-scheduler.log"
        if not log.exists():
            return []
        return [ln for ln in log.read_text(errors="replace").splitlines() if about in ln]

    def node_names(self) -> list[str]:
        return [f"node-{i + 1}" for i in range(self.nodes)]

    def _node_list(self) -> dict[str, Any]:
        shape = self.node_shape
        resources = {"cpu": shape.cpu, "memory": shape.memory, "pods": shape.pods}
        items = [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": ZONES[i % len(ZONES)],
                        "type": "kwok",
                    },
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                },
                "status": {"capacity": resources, "allocatable": resources},
            }
            for i, name in enumerate(self.node_names())
        ]
        return {"apiVersion": "v1", "kind": "List", "items": items}

    def _nodes_ready(self) -> bool:
        try:
            nodes = self.get_json("/api/v1/nodes")["items"]
        except (urllib.error.URLError, OSError, ValueError):
            return False
        # Ready, and the node lifecycle controller has lifted the not-ready taint pods would trip on.
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
            and not any(
                t["key"].startswith("node.kubernetes.io/") for t in n.get("spec", {}).get("taints", [])
            )
        ]
        return len(ready) >= self.nodes

    def describe(self) -> dict[str, Any]:
        """What `make down` and `make status` need to find this control plane again."""
        return {
            "workdir": str(self.workdir),
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "pod_cidr": self.pod_cidr,
            "bind_address": self.bind_address,
            "procs": [p.to_dict() for p in self.procs],
        }

    @classmethod
    def from_description(cls, state: dict[str, Any]) -> ControlPlane:
        """A handle on a running control plane from `describe()` (no processes of its own)."""
        plane = cls(workdir=Path(state["workdir"]), pod_cidr=str(state.get("pod_cidr", POD_CIDR)))
        plane.api_port = int(str(state["server"]).rsplit(":", 1)[1])
        plane.bind_address = str(state.get("bind_address", "127.0.0.1"))
        return plane


def _https_ok(url: str) -> bool:
    """/healthz of a component serving its own self-signed certificate (on loopback)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False
