"""The generated CRDs on a real kube-apiserver: accepted as structural, CEL rules enforced with their
messages, printer columns and the /scale subresource working as `kubectl` users expect."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from localcluster.tools import tool

pytestmark = pytest.mark.integration


def kubectl(kubeconfig: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("kubectl"), f"--kubeconfig={kubeconfig}", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )


def wasmapp(name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "shoal.dev/v1alpha1",
        "kind": "WasmApp",
        "metadata": {"name": name},
        "spec": {"module": {"image": "127.0.0.1:5000/demo/hello:v1"}, "trigger": {"http": {"path": "/hi"}}}
        | spec,
    }
    return json.dumps(body)


def test_crds_are_established_with_columns(shoal_crds: Path, namespace: str) -> None:
    applied = kubectl(shoal_crds, "-n", namespace, "apply", "-f", "-", input=wasmapp("hello", replicas=2))
    assert applied.returncode == 0, applied.stderr
    got = kubectl(shoal_crds, "-n", namespace, "get", "wasm", "hello")
    assert got.returncode == 0, got.stderr
    header = got.stdout.splitlines()[0].split()
    for column in ("NAME", "READY", "IMAGE", "TRIGGER", "AGE"):
        assert column in header


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"trigger": {"http": {"path": "/a"}, "job": {}}}, "exactly one"),
        ({"replicas": -1}, "spec.replicas"),
        ({"trigger": {"redis": {"dependency": "cache", "channel": "c"}}}, "trigger.redis.dependency"),
        ({"dependencies": [{"name": "db"}]}, "exactly one dependency kind"),
        ({"env": [{"name": "A"}]}, "exactly one of value or valueFrom"),
        ({"files": {"mounts": [{"path": "data", "artifact": {}}]}}, "spec.files.mounts[0].path"),
        ({"files": {"mounts": [{"path": "/a/../b", "artifact": {}}]}}, "spec.files.mounts[0].path"),
        (
            {
                "files": {
                    "mounts": [{"path": "/d", "artifact": {}}, {"path": "/d/e", "configMap": {"name": "c"}}]
                }
            },
            "two mount paths clash",
        ),
        (
            {"files": {"mounts": [{"path": "/", "artifact": {}}], "scratch": {"path": "/tmp"}}},
            "scratch path clashes",
        ),
        ({"files": {"scratch": {"path": "/tmp", "size": "2Gi"}}}, "at most 1Gi"),
        ({"files": {"mounts": [{"path": "/d"}]}}, "exactly one of artifact or configMap"),
    ],
)
def test_invalid_wasmapps_are_rejected_with_readable_messages(
    shoal_crds: Path, namespace: str, spec: dict[str, Any], message: str
) -> None:
    done = kubectl(shoal_crds, "-n", namespace, "apply", "-f", "-", input=wasmapp("bad", **spec))
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


def test_kubectl_scale_sets_spec_replicas(shoal_crds: Path, namespace: str) -> None:
    assert kubectl(shoal_crds, "-n", namespace, "apply", "-f", "-", input=wasmapp("scaled")).returncode == 0
    scaled = kubectl(shoal_crds, "-n", namespace, "scale", "wasmapp/scaled", "--replicas=5")
    assert scaled.returncode == 0, scaled.stderr
    replicas = kubectl(
        shoal_crds, "-n", namespace, "get", "wasmapp", "scaled", "-o", "jsonpath={.spec.replicas}"
    )
    assert replicas.stdout == "5"
