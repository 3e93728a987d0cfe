"""A private test network: one network namespace and one veth pair per session, nothing else.

Why: the apiserver rejects loopback addresses in EndpointSlices, and kwok pods get pod IPs that
nothing answers on. Here the root side of the veth carries addresses agents bind and advertise
(`host_address()`, valid in IPv4 EndpointSlices, traffic stays on this host), and the cluster's
pod CIDR is routed into the namespace, where `DependencyServers` binds real servers to the pod IPs
kwok assigned. Only namespaces and links this object created are ever touched; `stop()` removes
them (the veth's routes and addresses go with it) and is safe to call twice or from another
process via `describe()`/`from_description()`.

Needs root (CAP_NET_ADMIN): creation fails loudly otherwise, it never skips.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .controlplane import POD_CIDR

IP = "ip"
SUBNET = "10.213"
MAX_INDEX = 250
FIRST_HOST = 10


class TestNetError(RuntimeError):
    """The test network could not be set up (not root, no netns support, a name in use)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise TestNetError("the `ip` command (iproute2) is not installed") from None
    if check and done.returncode != 0:
        raise TestNetError(f"ip {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done


def _link_exists(name: str) -> bool:
    return _ip("link", "show", "dev", name, check=False).returncode == 0


def routed_elsewhere(cidr: str) -> str | None:
    """The root-namespace route for exactly `cidr`, if one exists (another session's test net)."""
    try:
        out = _ip("-4", "route", "show", "exact", cidr, check=False).stdout.strip()
    except TestNetError:  # no iproute2: then there is no test network either
        return None
    return out or None


def pick_pod_cidr(seed: int | None = None) -> str:
    """A /20 inside POD_CIDR that no test network on this host routes yet.

    kwok hands out pod IPs sequentially from its CIDR, so two clusters with the same CIDR would
    give the same IPs to different pods; a control plane that will use a test network should be
    started with its own pod CIDR (ControlPlane(pod_cidr=...)).
    """
    base = ipaddress.ip_network(POD_CIDR)
    subnets = list(base.subnets(new_prefix=20))
    start = (os.getpid() if seed is None else seed) % len(subnets)
    for i in range(len(subnets)):
        cidr = str(subnets[(start + i) % len(subnets)])
        if routed_elsewhere(cidr) is None:
            return cidr
    raise TestNetError(f"every /20 of {POD_CIDR} is routed by another test network")


@dataclass(kw_only=True)
class TestNet:
    """`shoal-<name>` netns joined to the root namespace by `sh<index>r` <-> `sh<index>n`."""

    __test__ = False  # not a pytest test class

    name: str
    index: int
    pod_cidr: str = POD_CIDR
    host_addresses: list[str] = field(default_factory=list)
    pod_ips: set[str] = field(default_factory=set)

    @property
    def netns(self) -> str:
        return f"shoal-{self.name}"

    @property
    def root_link(self) -> str:
        return f"sh{self.index}r"

    @property
    def ns_link(self) -> str:
        return f"sh{self.index}n"

    @property
    def root_ip(self) -> str:
        return f"{SUBNET}.{self.index}.1"

    @property
    def ns_ip(self) -> str:
        return f"{SUBNET}.{self.index}.2"

    # --- lifecycle ----------------------------------------------------------------------------------

    @classmethod
    def create(cls, *, name: str, pod_cidr: str = POD_CIDR) -> TestNet:
        """Start a test network on the first free index (from one derived from the PID): the veth
        name is the lock, since creating a link that exists fails atomically."""
        start = os.getpid() % MAX_INDEX
        for i in range(MAX_INDEX):
            index = (start + i) % MAX_INDEX + 1
            if _link_exists(f"sh{index}r") or _link_exists(f"sh{index}n"):
                continue
            net = cls(name=name, index=index, pod_cidr=pod_cidr)
            try:
                net.start()
            except _IndexTaken:
                continue
            return net
        raise TestNetError("no free test network index (sh1r..sh250r all exist)")

    def start(self) -> None:
        """Create everything; on any failure remove what was made and raise TestNetError."""
        if (other := routed_elsewhere(self.pod_cidr)) is not None:
            raise TestNetError(
                f"the pod CIDR {self.pod_cidr} is already routed ({other}): another session's test "
                "network; start this cluster with its own pod CIDR (localcluster.testnet.pick_pod_cidr)"
            )
        added = _ip("netns", "add", self.netns, check=False)
        if added.returncode != 0:
            raise TestNetError(
                f"cannot create network namespace {self.netns}: {added.stderr.strip()} "
                f"(the test network needs root / CAP_NET_ADMIN; running as uid {os.geteuid()})"
            )
        link = _ip("link", "add", self.root_link, "type", "veth", "peer", "name", self.ns_link, check=False)
        if link.returncode != 0:
            # The veth is not ours (another session may own this index): remove only the netns.
            _ip("netns", "del", self.netns, check=False)
            if "exists" in link.stderr:
                raise _IndexTaken(link.stderr)
            raise TestNetError(f"cannot create veth {self.root_link}: {link.stderr.strip()}")
        try:
            _ip("link", "set", self.ns_link, "netns", self.netns)
            _ip("addr", "add", f"{self.root_ip}/24", "dev", self.root_link)
            _ip("link", "set", self.root_link, "up")
            self._in_ns("addr", "add", f"{self.ns_ip}/24", "dev", self.ns_link)
            self._in_ns("link", "set", self.ns_link, "up")
            self._in_ns("link", "set", "lo", "up")
            _ip("route", "add", self.pod_cidr, "via", self.ns_ip, "dev", self.root_link)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Delete the veth (its addresses and routes go with it) and the netns; idempotent."""
        if _link_exists(self.root_link):
            _ip("link", "del", self.root_link, check=False)
        if self.netns in _ip("netns", "list", check=False).stdout.split():
            _ip("netns", "del", self.netns, check=False)
        self.host_addresses.clear()
        self.pod_ips.clear()

    # --- addresses ----------------------------------------------------------------------------------

    def host_address(self) -> str:
        """Another root-side address (10.213.<index>.10+i) for an agent to bind and advertise."""
        address = f"{SUBNET}.{self.index}.{FIRST_HOST + len(self.host_addresses)}"
        if FIRST_HOST + len(self.host_addresses) > 254:
            raise TestNetError("out of host addresses")
        _ip("addr", "add", f"{address}/32", "dev", self.root_link)
        self.host_addresses.append(address)
        return address

    def add_pod_ip(self, ip: str) -> None:
        """Make `ip` (a pod IP the cluster assigned) bindable inside the netns."""
        if ipaddress.ip_address(ip) not in ipaddress.ip_network(self.pod_cidr):
            raise TestNetError(f"pod IP {ip} is outside {self.pod_cidr}, which is all this net routes")
        if ip in self.pod_ips:
            return
        added = self._in_ns("addr", "add", f"{ip}/32", "dev", self.ns_link, check=False)
        # "File exists": left by a controller that was killed before it could clean up; ours anyway.
        if added.returncode != 0 and "exists" not in added.stderr:
            raise TestNetError(f"cannot add pod IP {ip} in {self.netns}: {added.stderr.strip()}")
        self.pod_ips.add(ip)

    def remove_pod_ip(self, ip: str) -> None:
        if ip in self.pod_ips:
            self._in_ns("addr", "del", f"{ip}/32", "dev", self.ns_link, check=False)
            self.pod_ips.discard(ip)

    def netns_argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside the netns (`ip netns exec` execs it: the PID is the server's)."""
        return [IP, "netns", "exec", self.netns, *argv]

    def _in_ns(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _ip("-n", self.netns, *args, check=check)

    # --- persistence --------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "index": self.index, "pod_cidr": self.pod_cidr}

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> TestNet:
        return cls(
            name=str(description["name"]),
            index=int(description["index"]),
            pod_cidr=str(description.get("pod_cidr", POD_CIDR)),
        )


class _IndexTaken(TestNetError):
    """Another session created this index's veth between our check and our create."""
