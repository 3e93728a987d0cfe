"""Control planes and a locally run Shoal for fixtures: started, and stopped by PID on leaving the
`with`, passing or failing, so a fixture's teardown is the `with`'s end."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from localcluster.chart import Release
from localcluster.controlplane import ControlPlane
from localcluster.shoalprocs import LocalShoal
from localcluster.testnet import TestNet, pick_pod_cidr


@contextlib.contextmanager
def control_plane_at(workdir: Path) -> Iterator[ControlPlane]:
    """3 kwok Nodes on a pod CIDR no other session uses, so a test network can route it alone."""
    plane = ControlPlane(workdir=workdir, nodes=3, pod_cidr=pick_pod_cidr())
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@contextlib.contextmanager
def local_shoal(release: Release, net: TestNet, workdir: Path) -> Iterator[LocalShoal]:
    """The release's operator and an agent per Node run here, each agent on an address of `net`, so
    the EndpointSlices the operator writes hold addresses that answer."""
    nodes = release.plane.node_names()
    shoal = LocalShoal(release, workdir, nodes, agent_hosts={n: net.host_address() for n in nodes})
    shoal.start()
    try:
        yield shoal
    finally:
        shoal.stop()
