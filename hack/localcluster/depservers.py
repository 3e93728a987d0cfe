"""Real servers behind the operator's dependency pods, on the pod IPs the cluster assigned.

This stands in for kubelet + containerd only, for the pods the operator creates for dependencies
(label `shoal.dev/dependency`): kwok marks them Running with a pod IP and runs nothing, so this
controller starts `redis-server` / `mariadbd` inside the test network's namespace bound to
`podIP:containerPort`, configured from the pod spec the way the images would be (MariaDB from
MARIADB_* env, Secret references resolved; Redis with AOF in its volume). A pod's volume is the
bound PersistentVolume's hostPath if it has one, so a retained claim really keeps its data.
Product code is unaware of it: the operator and agents only see the API and the addresses in it.

Every server is started and stopped by PID; `stop()` stops all and removes their pod IPs.

Two ways to run it: in-process (`DependencyServers(...).start()/stop()`, a thread: the e2e tests),
or as a long-running process of its own for a cluster that outlives its caller (`make demo`):

    python -m localcluster.depservers --state ~/.cache/shoal/clusters/default/state.json

which reads the control plane and test network from `make up`'s state file and, on SIGTERM or
SIGINT, stops every server it started (by PID) before it exits.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import urllib.error
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import dbservers
from .controlplane import ControlPlane
from .processes import Proc, log_tail, spawn, stop, wait_until
from .testnet import TestNet

log = logging.getLogger(__name__)

LABEL_DEPENDENCY = "shoal.dev/dependency"
LABEL_NAME = "app.kubernetes.io/name"
KINDS = ("redis", "mariadb")


@dataclass
class DependencyServer:
    """One server standing in for one pod's container."""

    namespace: str
    pod: str
    uid: str
    kind: str
    ip: str
    port: int
    data_dir: Path
    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: Proc | None = None
    socket_dir: Path | None = None
    """mariadbd's socket directory while it runs (`dbservers.make_socket_dir`)."""

    @property
    def address(self) -> tuple[str, int]:
        return self.ip, self.port

    def log_tail(self) -> str:
        return log_tail(self.proc) if self.proc else ""


class DependencyServers:
    """Polls dependency pods and keeps one real server per Running pod with a pod IP."""

    def __init__(
        self, *, plane: ControlPlane, testnet: TestNet, workdir: Path, interval_s: float = 0.3
    ) -> None:
        self.plane = plane
        self.testnet = testnet
        self.workdir = workdir
        self.interval_s = interval_s
        self.servers: dict[tuple[str, str], DependencyServer] = {}
        self.errors: list[str] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dependency-servers", daemon=True)

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        if reason := dbservers.available():
            raise RuntimeError(reason)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling, then every server (by PID), and release their pod IPs."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=120)
        with self._lock:
            for key in list(self.servers):
                self._remove(key)

    # --- what tests use -----------------------------------------------------------------------------

    def wait_serving(self, *, namespace: str, pod: str, timeout: float = 90) -> DependencyServer:
        """Wait until the pod's server accepts connections; raise with what went wrong."""

        def serving() -> bool:
            if self.errors:
                raise RuntimeError("dependency servers failed: " + "; ".join(self.errors))
            server = self.servers.get((namespace, pod))
            return server is not None and server.proc is not None and _accepts(server.address)

        try:
            wait_until(serving, what=f"a server for pod {namespace}/{pod}", timeout=timeout, interval=0.2)
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.describe_pod(namespace, pod)}") from None
        return self.servers[(namespace, pod)]

    def describe_pod(self, namespace: str, pod: str) -> str:
        """Why a pod has no server yet, as the API and kube-scheduler see it: its phase, node and
        conditions, its claims' phases, and the scheduler's log lines about it."""
        lines = []
        try:
            body = self.plane.get_json(f"/api/v1/namespaces/{namespace}/pods/{pod}")
        except (urllib.error.URLError, OSError) as e:
            return f"pod {namespace}/{pod}: cannot read it: {e}"
        status = body.get("status") or {}
        conditions = ", ".join(
            f"{c.get('type')}={c.get('status')}"
            + (f" ({c.get('reason')}: {c.get('message')})" if c.get("reason") else "")
            for c in status.get("conditions") or []
        )
        node = (body.get("spec") or {}).get("nodeName")
        lines.append(
            f"pod {namespace}/{pod}: {status.get('phase')} on {node} ip={status.get('podIP')}; {conditions}"
        )
        for volume in (body.get("spec") or {}).get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                try:
                    pvc = self.plane.get_json(
                        f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}"
                    )
                    phase = (pvc.get("status") or {}).get("phase")
                    lines.append(f"claim {claim}: {phase} volume={(pvc.get('spec') or {}).get('volumeName')}")
                except (urllib.error.URLError, OSError) as e:
                    lines.append(f"claim {claim}: cannot read it: {e}")
        lines += ["kube-scheduler:", *self.plane.scheduler_said(f"{namespace}/{pod}")[-10:]]
        return "\n".join(lines)

    def stop_server(self, *, namespace: str, pod: str) -> DependencyServer:
        """Stop the pod's server (the pod stays Running, as when a container is killed); the loop
        does not restart it: start_server() does."""
        with self._lock:
            server = self.servers[(namespace, pod)]
            _stop_server(server)
            return server

    def start_server(self, *, namespace: str, pod: str) -> DependencyServer:
        """Start a stopped server again on the same IP, port and data directory."""
        with self._lock:
            server = self.servers[(namespace, pod)]
            if server.proc is None:
                self._launch(server)
        return self.wait_serving(namespace=namespace, pod=pod)

    # --- the loop -----------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except (urllib.error.URLError, OSError) as e:
                log.debug("listing dependency pods: %s", e)  # apiserver restarting: next round
            except Exception as e:
                log.exception("dependency servers")
                self.errors.append(f"{type(e).__name__}: {e}")
            self._stop.wait(self.interval_s)

    def sync(self) -> None:
        """One reconciliation: a server for every live dependency pod, none for the others."""
        selector = urllib.parse.quote(LABEL_DEPENDENCY)
        pods = self.plane.get_json(f"/api/v1/pods?labelSelector={selector}")["items"]
        live: dict[tuple[str, str], dict[str, Any]] = {}
        for pod in pods:
            meta, status = pod["metadata"], pod.get("status") or {}
            if meta.get("deletionTimestamp") or status.get("phase") != "Running" or not status.get("podIP"):
                continue
            if (meta.get("labels") or {}).get(LABEL_NAME) not in KINDS:
                continue
            live[(meta["namespace"], meta["name"])] = pod
        with self._lock:
            for key, server in list(self.servers.items()):
                pod = live.get(key)
                if pod is None or pod["metadata"]["uid"] != server.uid:
                    self._remove(key)
            for key, pod in live.items():
                if self._stop.is_set():
                    return
                if key not in self.servers:
                    self.servers[key] = server = self._describe(pod)
                    self.testnet.add_pod_ip(server.ip)
                    self._launch(server)

    # --- one server ---------------------------------------------------------------------------------

    def _describe(self, pod: dict[str, Any]) -> DependencyServer:
        meta = pod["metadata"]
        ns, name = meta["namespace"], meta["name"]
        kind = meta["labels"][LABEL_NAME]
        container = pod["spec"]["containers"][0]
        ports = container.get("ports") or []
        port = int(ports[0]["containerPort"]) if ports else (6379 if kind == "redis" else 3306)
        run_dir = self.workdir / "pods" / ns / name
        return DependencyServer(
            namespace=ns,
            pod=name,
            uid=meta["uid"],
            kind=kind,
            ip=pod["status"]["podIP"],
            port=port,
            data_dir=self._volume_dir(pod, container),
            run_dir=run_dir,
            env=self._env(ns, container),
        )

    def _volume_dir(self, pod: dict[str, Any], container: dict[str, Any]) -> Path:
        """The mounted claim's PV hostPath (what a kubelet would mount), else a dir per claim."""
        ns = str(pod["metadata"]["namespace"])
        mounts = {m["name"] for m in container.get("volumeMounts") or []}
        for volume in pod["spec"].get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim or volume["name"] not in mounts:
                continue
            pvc = self.plane.get_json(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}")
            pv_name = (pvc.get("spec") or {}).get("volumeName")
            if pv_name:
                pv = self.plane.get_json(f"/api/v1/persistentvolumes/{pv_name}")
                host_path = ((pv.get("spec") or {}).get("hostPath") or {}).get("path")
                if host_path:
                    return Path(host_path)
            return self.workdir / "volumes" / ns / str(claim)
        return self.workdir / "volumes" / ns / str(pod["metadata"]["name"])

    def _env(self, namespace: str, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = str(var["value"])
                continue
            ref = (var.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                secret = self.plane.get_json(f"/api/v1/namespaces/{namespace}/secrets/{ref['name']}")
                env[var["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        return env

    def _launch(self, server: DependencyServer) -> None:
        server.run_dir.mkdir(parents=True, exist_ok=True)
        server.data_dir.mkdir(parents=True, exist_ok=True)
        if server.kind == "redis":
            argv = dbservers.redis_argv(
                bind=server.ip, port=server.port, data_dir=server.data_dir, appendonly=True
            )
        else:
            argv = self._mariadb_argv(server)
        proc = spawn(
            f"{server.kind}-{server.namespace}-{server.pod}",
            self.testnet.netns_argv(argv),
            log_dir=server.run_dir,
        )
        server.proc = proc
        log.info("started %s for pod %s/%s on %s:%d (pid %d)", server.kind, server.namespace,
                 server.pod, server.ip, server.port, proc.pid)  # fmt: skip

    def _mariadb_argv(self, server: DependencyServer) -> list[str]:
        dbservers.remove_socket_dir(server.socket_dir)
        server.socket_dir = dbservers.make_socket_dir()
        init_file = None
        # Like the image: MARIADB_* env only matters when the data directory is empty.
        if dbservers.mariadb_install(server.data_dir):
            env = server.env
            init_file = server.run_dir / "init.sql"
            init_file.write_text(
                dbservers.image_init_sql(
                    root_password=env.get("MARIADB_ROOT_PASSWORD", ""),
                    database=env.get("MARIADB_DATABASE", ""),
                    user=env.get("MARIADB_USER", ""),
                    password=env.get("MARIADB_PASSWORD", ""),
                )
            )
            init_file.chmod(0o600)
        return dbservers.mariadbd_argv(
            datadir=server.data_dir, run_dir=server.run_dir, socket_dir=server.socket_dir,
            bind=server.ip, port=server.port, init_file=init_file,
        )  # fmt: skip

    def _remove(self, key: tuple[str, str]) -> None:
        server = self.servers.pop(key)
        _stop_server(server)
        with contextlib.suppress(Exception):
            self.testnet.remove_pod_ip(server.ip)
        log.info("stopped %s for pod %s/%s", server.kind, server.namespace, server.pod)


def _stop_server(server: DependencyServer) -> None:
    """Stop its process (by PID) and remove what lives only while it runs."""
    if server.proc is not None:
        stop(server.proc, timeout=20)
        server.proc = None
    dbservers.remove_socket_dir(server.socket_dir)
    server.socket_dir = None


def _accepts(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=0.3):
            return True
    except OSError:
        return False


# --- as a process of its own ----------------------------------------------------------------------------

STOP_TIMEOUT_S = 90.0
"""How long a caller should give this process after SIGTERM: it stops each server (up to 20 s) first."""


def spawn_controller(state_path: Path, workdir: Path) -> Proc:
    """Start `python -m localcluster.depservers` detached (own session, log under `workdir`)."""
    return spawn(
        "dependency-servers",
        [sys.executable, "-m", "localcluster.depservers", f"--state={state_path}", f"--workdir={workdir}"],
        log_dir=workdir,
        env={"PYTHONUNBUFFERED": "1"},
        stop_timeout=STOP_TIMEOUT_S,
    )


def from_state(state: dict[str, Any], workdir: Path) -> DependencyServers:
    """The controller for the cluster `make up` described in its state file."""
    net = state.get("testnet")
    if not isinstance(net, dict):
        raise SystemExit("this cluster has no test network (it was started with --no-testnet)")
    return DependencyServers(
        plane=ControlPlane.from_description(state), testnet=TestNet.from_description(net), workdir=workdir
    )


def run_until_signalled(servers: DependencyServers) -> None:
    """Run the controller until SIGTERM/SIGINT, then stop every server it started."""
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    servers.start()
    log.info("watching dependency pods (pid %d)", os.getpid())
    try:
        while not done.wait(1.0):
            pass
    finally:
        log.info("stopping %d server(s)", len(servers.servers))
        servers.stop()
        log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster.depservers", description=__doc__)
    parser.add_argument("--state", type=Path, required=True, help="the state file `make up` wrote")
    parser.add_argument(
        "--workdir", type=Path, help="pods' run dirs and volumes (default: <cluster>/depservers)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    state = json.loads(args.state.read_text())
    workdir = args.workdir or Path(state["workdir"]) / "depservers"
    run_until_signalled(from_state(state, workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
