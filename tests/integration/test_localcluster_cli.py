"""`make up` / `make status` / `make down` as a user runs them: the CLI leaves servers running between
commands, prints where they are, and `down` stops every PID it started."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
import uuid

import pytest

from localcluster.processes import pid_alive
from localcluster.tools import tool

pytestmark = pytest.mark.integration


def localcluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localcluster", *args], capture_output=True, text=True, timeout=300
    )


def test_up_status_down_leaves_nothing_running() -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    up = localcluster("up", "--name", name, "--nodes", "2")
    try:
        assert up.returncode == 0, up.stderr
        lines = dict(line.split("=", 1) for line in up.stdout.splitlines() if "=" in line)
        kubeconfig, registry = lines["KUBECONFIG"], lines["REGISTRY"]
        assert registry.startswith("127.0.0.1:")
        netns = lines["TESTNET"]
        assert netns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout

        nodes = subprocess.run(
            [tool("kubectl"), f"--kubeconfig={kubeconfig}", "get", "nodes", "--no-headers"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        assert len(nodes) == 2 and all(" Ready " in n for n in nodes), nodes

        with urllib.request.urlopen(f"http://{registry}/v2/", timeout=5) as resp:
            assert resp.status == 200

        status = localcluster("status", "--name", name)
        assert status.returncode == 0, status.stdout
        pids = [
            int(line.split("pid")[1].split()[0]) for line in status.stdout.splitlines() if " pid " in line
        ]
        assert len(pids) == 6 and all(pid_alive(p) for p in pids)
    finally:
        down = localcluster("down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(p) for p in pids), "a server outlived `down`"
    assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert localcluster("status", "--name", name).returncode == 1
