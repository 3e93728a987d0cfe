"""The user's path from source to a running app: compile, `shoal push`, `shoal scaffold | kubectl apply`.

Everything is run as a user would run it: clang on a C file the test just wrote, the installed `shoal`
console script, kubectl reading the scaffolded manifest from stdin, then plain HTTP to an address of
the app's EndpointSlices, served by the real operator and the real agents on the test network.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness.agentproc import AgentProcess
from harness.kubehttp import KubeHttp
from harness.netcluster import APPS, eventually, http_get, is_ready, slice_addresses
from harness.operatorproc import OperatorProcess
from localcluster.registry import Registry
from localcluster.tools import tool

from .conftest import NET_NODES

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SHOAL = str(Path(sys.executable).with_name("shoal"))

HANDLER_C = r"""
/* A WAGI handler: CGI headers, a blank line, then the body, on stdout. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *path = getenv("PATH_INFO");
    printf("Content-Type: text/plain\n\n");
    printf("built just now: %s, path %s\n", NONCE, path ? path : "/");
    return 0;
}
"""


def compile_handler(workdir: Path, nonce: str) -> Path:
    """The handler compiled the way the README tells users to, with `nonce` baked into its output."""
    if shutil.which("clang") is None:
        pytest.fail("clang is needed (hack/setup.sh installs clang, lld and wasi-libc)")
    source = workdir / "handler.c"
    source.write_text(HANDLER_C)
    wasm = workdir / "handler.wasm"
    done = subprocess.run(
        [
            "clang",
            "--target=wasm32-wasi",
            "--sysroot=/usr",
            "-O2",
            f'-DNONCE="{nonce}"',
            "-o",
            str(wasm),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return wasm


def shoal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHOAL, *args], capture_output=True, text=True, timeout=60)


def test_push_scaffold_apply_runs_the_module_the_user_just_compiled(
    tmp_path: Path,
    oci_registry: Registry,
    shoal_crds: Path,
    net_kube: KubeHttp,
    net_operator: OperatorProcess,
    net_agents: dict[str, AgentProcess],
    net_namespace: str,
) -> None:
    nonce = uuid.uuid4().hex[:12]
    wasm = compile_handler(tmp_path, nonce)
    ref = f"{oci_registry.address}/users/handler-{nonce}:v1"

    pushed = shoal("push", str(wasm), ref)
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.strip()
    assert digest.startswith("sha256:") and len(digest) == 71, pushed.stdout

    scaffold = shoal(
        "scaffold", ref, "--name", "handler", "--http-path", "/handler", "--namespace", net_namespace
    )
    assert scaffold.returncode == 0, scaffold.stderr
    assert f"@{digest}" in scaffold.stdout, scaffold.stdout  # pinned to what was pushed

    applied = subprocess.run(
        [tool("kubectl"), f"--kubeconfig={shoal_crds}", "apply", "-f", "-"],
        input=scaffold.stdout,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert applied.returncode == 0, applied.stderr
    assert "wasmapp.shoal.dev/handler created" in applied.stdout

    eventually(lambda: is_ready(net_kube, net_namespace, "handler"), within=90, what="handler Ready")
    app = net_kube.get(f"{APPS}/namespaces/{net_namespace}/wasmapps/handler")
    assert app["status"]["resolvedDigest"] == digest
    nodes = {p["node"] for p in app["status"]["placements"]}
    assert nodes <= set(NET_NODES), f"placed outside the test network's agents: {nodes}"

    addresses = eventually(
        lambda: slice_addresses(net_kube, net_namespace, "handler"), within=30, what="handler's endpoints"
    )
    status, body = http_get(addresses[0], "/handler/hi")
    assert status == 200, (addresses, body)
    assert body == f"built just now: {nonce}, path /hi\n"


def test_pushing_a_file_that_is_not_wasm_fails_in_one_line(tmp_path: Path, oci_registry: Registry) -> None:
    not_wasm = tmp_path / "handler.c"
    not_wasm.write_text(HANDLER_C)
    done = shoal("push", str(not_wasm), f"{oci_registry.address}/users/not-wasm:v1")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("shoal: ") and "not a WebAssembly module" in lines[0]
