"""A real kubelet Node in the local cluster (`make up REAL_NODES=1`): containerd from Debian, kubelet and
kube-proxy from the project's Go tools module, a CNI bridge, all inside one network namespace.

Layout (index i is the test network's, so two sessions never collide):

    root netns                                node netns shoal-<cluster>-node
    apiserver, registry on 10.213.i.1 ──veth── sh<i>k 10.215.i.1 <-> sh<i>m 10.215.i.2 (default route)
    route 10.214.i.0/24 via 10.215.i.2                 cni0 10.214.i.1/24 ── pod veths (pods 10.214.i.x)
                                                       containerd, kubelet, kube-proxy (iptables here)

containerd, kubelet and kube-proxy are entered into the netns with `nsenter --net` (not `ip netns
exec`, which would give them a mount namespace of their own: kubelet's volume mounts must be seen by
containerd). kube-proxy's chains, the bridge, the pod veths and the routes all live in the node netns,
so deleting it removes them. What lives outside it and `stop()` removes: the containers (runc, under a
runc root of our own), containerd's shims (found by our socket path in their command line), the mounts
under our directories, and the pods' netns (`/run/netns/cni-*` whose eth0 is in our pod CIDR).

Needs root, nsenter, containerd, runc, the CNI plugins (/usr/lib/cni) and podman (to build the pause
image): `missing_facilities()` names what is absent, for a test to skip with that reason.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import pki
from .processes import Proc, spawn, stop, wait_until
from .tools import cache_dir, ensure_tools

CNI_BIN = Path("/usr/lib/cni")
PAUSE_C = r"""
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void done(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGINT, done); signal(SIGTERM, done); signal(SIGCHLD, reap);
  for (;;) pause();
}
"""
REAL_LABEL = "shoal.dev/real-node"


class RealNodeError(RuntimeError):
    """The real node could not be started; the message names the missing host facility."""


def missing_facilities() -> list[str]:
    """What this host lacks for a real node, in words a test can skip with."""
    out = []
    if os.geteuid() != 0:
        out.append(f"root (running as uid {os.geteuid()}): kubelet, containerd and netns need it")
    for tool in ("containerd", "containerd-shim-runc-v2", "runc", "nsenter", "podman", "iptables", "gcc"):
        if shutil.which(tool) is None:
            out.append(
                f"the `{tool}` command (Debian packages containerd, runc, util-linux, podman, iptables, gcc)"
            )
    for plugin in ("bridge", "host-local", "loopback"):
        if not (CNI_BIN / plugin).exists():
            out.append(f"the CNI plugin {CNI_BIN / plugin} (Debian package containernetworking-plugins)")
    if not Path("/sys/fs/cgroup/memory").is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        out.append("a memory cgroup controller under /sys/fs/cgroup")
    if not Path("/proc/filesystems").read_text().count("overlay"):
        out.append("the overlay filesystem (containerd's overlayfs snapshotter)")
    return out


# --- pure: configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeAddresses:
    index: int

    @property
    def root_ip(self) -> str:
        return f"10.215.{self.index}.1"

    @property
    def node_ip(self) -> str:
        return f"10.215.{self.index}.2"

    @property
    def pod_cidr(self) -> str:
        return f"10.214.{self.index}.0/24"

    @property
    def gateway(self) -> str:
        return f"10.214.{self.index}.1"

    @property
    def root_link(self) -> str:
        return f"sh{self.index}k"

    @property
    def node_link(self) -> str:
        return f"sh{self.index}m"


def containerd_config(*, root: Path, state: Path, cni_conf: Path, certs_d: Path, sandbox_image: str) -> str:
    """containerd 1.6 (version 2 config): cgroupfs + runc under our own runc root, our own sockets and
    directories, OOM score adjustments clamped (no CAP_SYS_RESOURCE here), plain-http registries
    through certs.d/<host>/hosts.toml."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{state}/containerd.sock"
[ttrpc]
  address = "{state}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
[{cri}]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  enable_cdi = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{state}/runc"
  [{cri}.cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{cni_conf}"
  [{cri}.registry]
    config_path = "{certs_d}"
"""


def hosts_toml(registry: str) -> str:
    return f'server = "http://{registry}"\n[host."http://{registry}"]\n  capabilities = ["pull", "resolve"]\n'


def cni_config(addrs: NodeAddresses, ipam_dir: Path) -> dict[str, Any]:
    """A bridge whose gateway is the pods' default route (what the first attempt lacked)."""
    return {
        "cniVersion": "0.4.0",
        "name": "shoal",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": addrs.pod_cidr, "gateway": addrs.gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            }
        ],
    }


def kubelet_config(
    *, ca: Path, socket: Path, node_ip: str, cgroup_root: str, pod_logs: Path
) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        # Our own cgroup subtree: another session's node never shares kubepods with this one.
        "cgroupRoot": cgroup_root,
        "containerRuntimeEndpoint": f"unix://{socket}",
        "address": node_ip,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca)},
        },
        # Only the apiserver (a client certificate of the cluster CA) reaches this port, in our netns.
        "authorization": {"mode": "AlwaysAllow"},
        "failSwapOn": False,
        "podLogsDir": str(pod_logs),
        "resolvConf": "/etc/resolv.conf",
        "serializeImagePulls": False,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "maxPods": 30,
    }


def kube_proxy_config(*, kubeconfig: Path, cluster_cidr: str, node_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": cluster_cidr,
        "hostnameOverride": node_name,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # In a netns kube-proxy must not touch the host's conntrack sysctls.
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        # Every Service connection is masqueraded to the node: the reply of a pod on the same bridge
        # then comes back through kube-proxy's NAT without depending on br_netfilter.
        "iptables": {"masqueradeAll": True},
    }


def kubeconfig(server: str, ca: Path, cert: pki.CertFiles, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "shoal", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [
            {"name": user, "user": {"client-certificate": str(cert.cert), "client-key": str(cert.key)}}
        ],
        "contexts": [{"name": "shoal", "context": {"cluster": "shoal", "user": user}}],
        "current-context": "shoal",
    }


def mounts_under(mountinfo: str, roots: Sequence[Path]) -> list[str]:
    """Mount points (from /proc/self/mountinfo) at or under any of `roots`, deepest first."""
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        if any(point == str(r) or point.startswith(str(r).rstrip("/") + "/") for r in roots):
            points.append(point)
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


# --- shell -----------------------------------------------------------------------------------------


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RealNodeError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done


def build_pause_image(registry: str) -> str:
    """A pause image (a static C `pause()` loop, FROM scratch), pushed to `registry`; cached by podman."""
    from .images import podman_env, push

    ref = f"{registry}/shoal/pause:3.10"
    env = podman_env()
    ctx = cache_dir() / "images" / "pause"
    ctx.mkdir(parents=True, exist_ok=True)
    if not (ctx / "pause").exists():
        (ctx / "pause.c").write_text(PAUSE_C)
        _run(["gcc", "-static", "-O2", "-o", str(ctx / "pause"), str(ctx / "pause.c")])
        (ctx / "Containerfile").write_text('FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n')
    local = "localhost/shoal-pause:3.10"
    if subprocess.run(["podman", "image", "exists", local], env=env, check=False).returncode != 0:
        done = subprocess.run(
            ["podman", "build", "--quiet", "-t", local, str(ctx)], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RealNodeError(f"building the pause image failed: {done.stderr.strip()}")
    push(local, ref, env)
    return ref


@dataclass
class RealNode:
    """One kubelet Node. `start()` / `stop()`; `describe()` / `from_description()` for `make down`."""

    cluster: str
    workdir: Path
    index: int
    server: str
    """The apiserver's URL on the test network (https://10.213.i.1:port)."""
    registry: str
    """A plain-http registry reachable from the node and its pods (host:port on the test network)."""
    pki_dir: Path
    name: str = "real-1"
    procs: list[Proc] = field(default_factory=list)

    @property
    def addrs(self) -> NodeAddresses:
        return NodeAddresses(self.index)

    @property
    def netns(self) -> str:
        return f"shoal-{self.cluster}-node"

    @property
    def state_dir(self) -> Path:
        """Short (socket paths are limited to 108 bytes) and on tmpfs, like containerd's own /run."""
        return Path(f"/run/shoal-{self.cluster}-node")

    def nsenter(self, argv: Sequence[str]) -> list[str]:
        """`argv` in the node's network namespace only (same mount namespace as the host)."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--", *argv]

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        missing = missing_facilities()
        if missing:
            raise RealNodeError("cannot run a real node here: missing " + "; ".join(missing))
        try:
            self._network()
            self._configure()
            self._start_processes()
            wait_until(self.node_ready, what=f"Node {self.name} Ready", timeout=timeout, proc=self.procs[-2])
        except BaseException:
            self.stop()
            raise

    def _network(self) -> None:
        a = self.addrs
        _run(["ip", "netns", "add", self.netns])
        _run(["ip", "link", "add", a.root_link, "type", "veth", "peer", "name", a.node_link])
        _run(["ip", "link", "set", a.node_link, "netns", self.netns])
        _run(["ip", "addr", "add", f"{a.root_ip}/24", "dev", a.root_link])
        _run(["ip", "link", "set", a.root_link, "up"])
        n = ["ip", "-n", self.netns]
        _run([*n, "addr", "add", f"{a.node_ip}/24", "dev", a.node_link])
        _run([*n, "link", "set", a.node_link, "up"])
        _run([*n, "link", "set", "lo", "up"])
        _run([*n, "route", "add", "default", "via", a.root_ip])
        _run(["ip", "route", "add", a.pod_cidr, "via", a.node_ip, "dev", a.root_link])
        _run(self.nsenter(["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
        # A ClusterIP answered by a pod on the same bridge goes through the node's iptables too.
        _run(self.nsenter(["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"]), check=False)

    def _configure(self) -> None:
        w, a = self.workdir, self.addrs
        for d in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "pod-logs", "pki", "logs"):
            (w / d).mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        certs_d = w / "containerd" / "certs.d"
        (certs_d / self.registry).mkdir(parents=True, exist_ok=True)
        (certs_d / self.registry / "hosts.toml").write_text(hosts_toml(self.registry))
        (w / "cni/net.d/10-shoal.conflist").write_text(json.dumps(cni_config(a, w / "cni/ipam"), indent=2))
        sandbox = build_pause_image(self.registry)
        (w / "containerd/config.toml").write_text(
            containerd_config(
                root=w / "containerd/root",
                state=self.state_dir,
                cni_conf=w / "cni/net.d",
                certs_d=certs_d,
                sandbox_image=sandbox,
            )
        )
        ca = pki.CertFiles(self.pki_dir / "ca.crt", self.pki_dir / "ca.key")
        node_cert = pki.issue(ca, w / "pki", "kubelet", cn=f"system:node:{self.name}", orgs=("system:nodes",))
        proxy_cert = pki.issue(ca, w / "pki", "kube-proxy", cn="system:kube-proxy")
        for stem, cert, user in (("kubelet", node_cert, self.name), ("kube-proxy", proxy_cert, "kube-proxy")):
            path = w / f"{stem}.kubeconfig"
            path.write_text(json.dumps(kubeconfig(self.server, ca.cert, cert, user), indent=2))
            path.chmod(0o600)
        (w / "kubelet.yaml").write_text(
            yaml.safe_dump(
                kubelet_config(
                    ca=ca.cert,
                    socket=self.state_dir / "containerd.sock",
                    node_ip=a.node_ip,
                    cgroup_root=f"/shoal-{self.cluster}",
                    pod_logs=w / "pod-logs",
                )
            )
        )
        (w / "kube-proxy.yaml").write_text(
            yaml.safe_dump(
                kube_proxy_config(
                    kubeconfig=w / "kube-proxy.kubeconfig", cluster_cidr=a.pod_cidr, node_name=self.name
                )
            )
        )

    def _make_cgroups(self) -> None:
        """kubelet's cgroupRoot must exist in every controller (cgroup v1 here); cpuset's needs its
        parent's cpus and mems before anything can join it."""
        base = Path("/sys/fs/cgroup")
        for controller in (p for p in base.iterdir() if p.is_dir() and p.name != "unified"):
            root = controller / f"shoal-{self.cluster}"
            root.mkdir(exist_ok=True)
            if controller.name == "cpuset":
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (root / f).write_text((controller / f).read_text())

    def _start_processes(self) -> None:
        self._make_cgroups()
        w, bins, logs = self.workdir, ensure_tools(), self.workdir / "logs"
        containerd = spawn(
            "containerd",
            self.nsenter(["containerd", f"--config={w / 'containerd/config.toml'}"]),
            log_dir=logs,
            stop_timeout=15,
        )
        self.procs.append(containerd)
        sock = self.state_dir / "containerd.sock"
        wait_until(sock.exists, what="containerd's socket", timeout=30, proc=containerd)
        kubelet = spawn(
            "kubelet",
            self.nsenter(
                [
                    str(bins / "kubelet"),
                    f"--config={w / 'kubelet.yaml'}",
                    f"--kubeconfig={w / 'kubelet.kubeconfig'}",
                    f"--root-dir={w / 'kubelet'}",
                    f"--cert-dir={w / 'kubelet/pki'}",
                    f"--hostname-override={self.name}",
                    f"--node-ip={self.addrs.node_ip}",
                    f"--node-labels=type=real,{REAL_LABEL}=true",
                    "--v=1",
                ]
            ),
            log_dir=logs,
            stop_timeout=15,
        )
        self.procs.append(kubelet)
        proxy = spawn(
            "kube-proxy",
            self.nsenter([str(bins / "kube-proxy"), f"--config={w / 'kube-proxy.yaml'}", "--v=1"]),
            log_dir=logs,
        )
        self.procs.append(proxy)

    def node_ready(self) -> bool:
        kubectl = [str(ensure_tools() / "kubectl"), f"--kubeconfig={self.workdir / 'kubelet.kubeconfig'}"]
        done = subprocess.run(
            [
                *kubectl,
                "get",
                "node",
                self.name,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        return done.stdout.strip() == "True"

    def stop(self) -> None:
        """Stop kubelet and kube-proxy, every container and shim, containerd; unmount, delete the pods'
        netns and the node netns (bridge, veths, iptables chains go with it). Idempotent."""
        by_name = {p.name: p for p in self.procs}
        for name in ("kube-proxy", "kubelet"):
            if name in by_name:
                stop(by_name[name])
        self._kill_containers()
        if "containerd" in by_name:
            stop(by_name["containerd"])
        self._kill_shims()
        self._unmount()
        self._delete_pod_netns()
        a = self.addrs
        if _run(["ip", "link", "show", "dev", a.root_link], check=False).returncode == 0:
            _run(["ip", "link", "del", a.root_link], check=False)
        if self.netns in _run(["ip", "netns", "list"], check=False).stdout.split():
            _run(["ip", "netns", "del", self.netns], check=False)
        self._remove_cgroups()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.procs.clear()

    def _kill_containers(self) -> None:
        root = self.state_dir / "runc"
        if not root.is_dir():
            return
        for ns_root in [root, *[p for p in root.iterdir() if p.is_dir()]]:
            listed = _run(["runc", "--root", str(ns_root), "list", "-q"], check=False).stdout.split()
            for cid in listed:
                _run(["runc", "--root", str(ns_root), "delete", "--force", cid], check=False)

    def _kill_shims(self) -> None:
        """containerd-shim-runc-v2 processes outlive containerd: ours carry our socket path."""
        marker = str(self.state_dir / "containerd.sock").encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and marker in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def _unmount(self) -> None:
        for _ in range(3):
            points = mounts_under(Path("/proc/self/mountinfo").read_text(), [self.workdir, self.state_dir])
            if not points:
                return
            for point in points:
                _run(["umount", "-l", point], check=False)
            time.sleep(0.2)

    def _delete_pod_netns(self) -> None:
        """containerd's pod netns are bind mounts in /run/netns: ours have an eth0 in our pod CIDR."""
        cidr = ipaddress.ip_network(self.addrs.pod_cidr)
        netns_dir = Path("/run/netns")
        if not netns_dir.is_dir():
            return
        for ns in netns_dir.glob("cni-*"):
            out = _run(["ip", "-n", ns.name, "-j", "-4", "addr", "show"], check=False).stdout
            try:
                links = json.loads(out or "[]")
            except json.JSONDecodeError:
                continue
            ours = any(
                ipaddress.ip_address(info["local"]) in cidr
                for link in links
                for info in link.get("addr_info", [])
                if "local" in info
            )
            # An emptied netns (its veth gone with the node netns) whose name containerd recorded.
            if ours:
                _run(["ip", "netns", "del", ns.name], check=False)

    def _remove_cgroups(self) -> None:
        base = Path("/sys/fs/cgroup")
        top = f"shoal-{self.cluster}"
        for controller in [base, *[p for p in base.iterdir() if p.is_dir()]]:
            root = controller / top
            if not root.is_dir():
                continue
            for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()

    # --- persistence --------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "workdir": str(self.workdir),
            "index": self.index,
            "server": self.server,
            "registry": self.registry,
            "pki_dir": str(self.pki_dir),
            "name": self.name,
            "procs": [p.to_dict() for p in self.procs],
        }

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> RealNode:
        return cls(
            cluster=str(d["cluster"]),
            workdir=Path(d["workdir"]),
            index=int(d["index"]),
            server=str(d["server"]),
            registry=str(d["registry"]),
            pki_dir=Path(d["pki_dir"]),
            name=str(d["name"]),
            procs=[Proc.from_dict(p) for p in d.get("procs", [])],
        )
