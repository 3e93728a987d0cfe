"""Shared fixtures: one real control plane per test session, a namespace per test.

Every server a fixture starts is stopped by PID when the fixture ends, passing or failing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config

from harness.clusters import control_plane_at
from localcluster.controlplane import ControlPlane
from localcluster.processes import Proc, free_port, spawn, stop, wait_until
from localcluster.registry import Registry
from localcluster.tools import tool

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def example_guests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hack/examples' guests (hello, echo, bad ones), built once per session with clang and wat2wasm."""
    if shutil.which("clang") is None or shutil.which("wat2wasm") is None:
        pytest.skip("clang and wat2wasm are needed to build the example guests (hack/setup.sh installs them)")
    out = tmp_path_factory.mktemp("examples")
    build = subprocess.run(
        [str(REPO / "hack/examples/build.sh"), str(out)], capture_output=True, text=True, timeout=300
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return out


@pytest.fixture(scope="session")
def component_guests() -> Path:
    """hack/examples' component guests (componentize-py), built once and cached outside the clone."""
    build = subprocess.run(
        [str(REPO / "hack/examples/build-components.sh")], capture_output=True, text=True, timeout=900
    )
    assert build.returncode == 0, build.stdout + build.stderr
    cache = Path(os.environ.get("SHOAL_CACHE") or Path.home() / ".cache" / "shoal")
    return cache / "examples"


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + controller-manager + scheduler + kwok with 3 Ready Nodes.

    Its own pod CIDR, so a test network (tests/e2e) can route it without meeting another
    session's pods on the same IPs."""
    with control_plane_at(tmp_path_factory.mktemp("cluster")) as plane:
        yield plane


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.kubeconfig


@pytest.fixture
async def api(kubeconfig: Path) -> AsyncIterator[client.ApiClient]:
    """An admin API client for the test's own event loop."""
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    async with client.ApiClient(cfg) as api_client:
        yield api_client


@pytest.fixture
async def namespace(api: client.ApiClient, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh namespace per test, deleted afterwards (its objects go with it)."""
    stem = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        await core.delete_namespace(name)


CRDS = Path(__file__).resolve().parents[1] / "crds"


@pytest.fixture(scope="session")
def shoal_crds(control_plane: ControlPlane) -> Path:
    """Install crds/ exactly as a user would (kubectl apply), and wait until they are served.
    Returns the admin kubeconfig."""
    kubectl = [tool("kubectl"), f"--kubeconfig={control_plane.kubeconfig}"]
    done = subprocess.run(
        [*kubectl, "apply", "--server-side", "-f", str(CRDS)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    waited = subprocess.run(
        [*kubectl, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS)],
        capture_output=True,
        text=True,
    )
    assert waited.returncode == 0, waited.stderr
    # Established comes a moment before the storage: lists answer 429 until it is initialised.
    deadline = time.monotonic() + 60
    for plural in ("wasmapps", "wasmplacements", "wasmnodes"):
        while subprocess.run([*kubectl, "get", plural, "-A"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, f"{plural} never became listable"
            time.sleep(0.2)
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One real OCI registry (Debian's docker-registry) on loopback for the session."""
    registry = Registry(workdir=tmp_path_factory.mktemp("oci-registry"))
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


@dataclass
class Upstream:
    """A plain HTTP server on loopback (Python's http.server over a directory), an outbound target."""

    proc: Proc
    port: int

    def paths(self) -> list[str]:
        """The paths it was asked for, from its access log (`"GET /x HTTP/1.1" 200 -`)."""
        return re.findall(r'"[A-Z]+ (\S+) HTTP/1\.[01]"', Path(self.proc.log).read_text(errors="replace"))


@pytest.fixture
def upstream_http(tmp_path: Path) -> Iterator[Callable[[str], Upstream]]:
    """Start loopback HTTP servers serving `hello.txt` (`hello from <name>`); all stopped by PID."""
    started: list[Upstream] = []

    def start(name: str) -> Upstream:
        root = tmp_path / f"upstream-{name}"
        root.mkdir()
        (root / "hello.txt").write_text(f"hello from {name}")
        port = free_port()
        argv = [sys.executable, "-u", "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(root)]
        proc = spawn(f"upstream-{name}", argv, log_dir=tmp_path)
        up = Upstream(proc, port)
        started.append(up)

        def answers() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
            return False

        wait_until(answers, what=f"upstream {name} on port {port}", timeout=15, proc=proc)
        return up

    try:
        yield start
    finally:
        for up in started:
            stop(up.proc)
