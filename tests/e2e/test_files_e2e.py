"""`spec.files` end to end: a WAGI module (hack/examples/cat-file) packaged as a Spin app with a data
layer, placed by the operator and served by a real agent, reads a file from that layer and one from a
ConfigMap, writes to its scratch directory, and cannot read anything else of the node; packaged as a
Docker+Wasm image, it reads its image's filesystem as the layers leave it. A ConfigMap that does not
exist is a condition and an Event on the WasmApp."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.agentproc import AgentProcess
from harness.artifacts import image_with_files, spin_with_files
from harness.kubehttp import KubeHttp
from harness.netcluster import apply_app, condition, eventually, http_get, is_ready, slice_addresses
from harness.operatorproc import OperatorProcess
from localcluster.registry import Registry
from localcluster.testnet import TestNet
from shoal_oci import push

from .conftest import NET_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DATA = b"hello from a Spin data layer\n"
CONFIG = "hello from a ConfigMap\n"


def files_app(image: str, testnet: TestNet, config_map: str | None) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [{"path": "/static", "artifact": {"path": "/static"}}]
    if config_map is not None:
        mounts.append({"path": "/config", "configMap": {"name": config_map}})
    return {
        "module": {"image": image},
        "replicas": 1,
        "trigger": {"http": {"path": "/files"}},
        "placement": {"nodeSelector": {NET_LABEL: testnet.name}},
        "files": {"mounts": mounts, "scratch": {"path": "/tmp", "size": "64Ki"}},
    }


@pytest.fixture
def image(
    net_operator: OperatorProcess,
    net_agents: dict[str, AgentProcess],
    example_guests: Path,
    oci_registry: Registry,
) -> str:
    """cat-file as a Spin app with two files, one outside the folder the apps mount; with the
    operator and agents running."""
    image = f"{oci_registry.address}/net-e2e/cat-file-spin:v1"
    wasm = (example_guests / "cat-file.wasm").read_bytes()
    push(image, spin_with_files(wasm, {"static/data.txt": DATA, "private/hidden.txt": b"not mounted\n"}))
    return image


def test_a_guest_reads_its_data_layer_and_config_map_and_nothing_else(
    net_kube: KubeHttp, net_agents: dict[str, AgentProcess], image: str, net_namespace: str, testnet: TestNet
) -> None:
    ns = net_namespace
    net_kube.request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {"metadata": {"name": "greeting"}, "data": {"message.txt": CONFIG}},
    )
    apply_app(net_kube, ns, "files", files_app(image, testnet, "greeting"))
    eventually(lambda: is_ready(net_kube, ns, "files"), within=120, what="files Ready")
    (address,) = eventually(
        lambda: slice_addresses(net_kube, ns, "files"), within=30, what="an endpoint in the slices"
    )

    def cat(*args: str) -> tuple[int, str]:
        return http_get(address, "/files?" + "+".join(args))

    assert cat("/static/data.txt") == (200, DATA.decode())
    assert cat("/config/message.txt") == (200, CONFIG)
    assert cat("write", "/tmp/note.txt", "100") == (200, "wrote 100 bytes to /tmp/note.txt\n")
    # Outside the mounts: the artifact's other folders, `..`, the node's files, absolute host paths.
    agent_cache = next(iter(net_agents.values())).cache_dir
    for outside in (
        "/private/hidden.txt",
        "/static/../private/hidden.txt",
        "/config/../../etc/passwd",
        "/etc/passwd",
        str(agent_cache / "serving.json"),
    ):
        status, body = cat(outside)
        assert status == 404 and body.startswith(f"cannot open {outside}:"), (outside, status, body)
    status, body = cat("write", "/tmp/big.bin", str(1 << 20))
    assert status >= 500, (status, body)
    # Read-only mounts.
    status, body = cat("write", "/config/new.txt", "1")
    assert status == 404 and body.startswith("cannot create /config/new.txt:"), body


def test_a_guest_reads_the_files_of_its_docker_wasm_image(
    net_kube: KubeHttp,
    net_operator: OperatorProcess,
    net_agents: dict[str, AgentProcess],
    example_guests: Path,
    oci_registry: Registry,
    net_namespace: str,
    testnet: TestNet,
) -> None:
    """Two file layers over the module's: the upper one replaces a file and whites out another, and
    the guest sees the result, within the folder the app mounts only."""
    ns = net_namespace
    image = f"{oci_registry.address}/net-e2e/cat-file-image:v1"
    wasm = (example_guests / "cat-file.wasm").read_bytes()
    lower = {
        "/static/data.txt": b"from the lower layer\n",
        "/static/kept.txt": b"kept from the lower layer\n",
        "/static/gone.txt": b"removed by the upper layer\n",
        "/private/hidden.txt": b"not mounted\n",
    }
    upper = {"/static/data.txt": b"from the upper layer\n", "/static/gone.txt": None}
    push(image, image_with_files(wasm, lower, upper))
    apply_app(net_kube, ns, "imgfiles", files_app(image, testnet, None))
    eventually(lambda: is_ready(net_kube, ns, "imgfiles"), within=120, what="imgfiles Ready")
    (address,) = eventually(
        lambda: slice_addresses(net_kube, ns, "imgfiles"), within=30, what="an endpoint in the slices"
    )

    def cat(*args: str) -> tuple[int, str]:
        return http_get(address, "/files?" + "+".join(args))

    assert cat("/static/data.txt") == (200, "from the upper layer\n")
    assert cat("/static/kept.txt") == (200, "kept from the lower layer\n")
    assert sorted(cat("ls", "/static")[1].split()) == ["data.txt", "kept.txt"]
    for absent in ("/static/gone.txt", "/private/hidden.txt", "/static/../private/hidden.txt", "/app.wasm"):
        status, body = cat(absent)
        assert status == 404 and body.startswith(f"cannot open {absent}:"), (absent, status, body)


def test_a_missing_config_map_is_a_condition_and_an_event(
    net_kube: KubeHttp, image: str, net_namespace: str, testnet: TestNet
) -> None:
    ns = net_namespace
    apply_app(net_kube, ns, "nocm", files_app(image, testnet, "absent"))

    def degraded() -> dict[str, Any] | None:
        c = condition(net_kube, ns, "nocm", "Degraded")
        return c if c is not None and c["reason"] == "ConfigMapNotFound" else None

    cond = eventually(degraded, within=60, what="Degraded=ConfigMapNotFound")
    assert cond is not None and "absent" in cond["message"], cond
    events = eventually(
        lambda: [
            e
            for e in net_kube.get(f"/api/v1/namespaces/{ns}/events")["items"]
            if e.get("reason") == "ConfigMapNotFound"
        ],
        within=30,
        what="a ConfigMapNotFound Event",
    )
    assert "files /config" in events[0]["message"], events[0]
    # Once it exists, the app loads.
    net_kube.request(
        "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "absent"}, "data": {"a": "b"}}
    )
    eventually(
        lambda: is_ready(net_kube, ns, "nocm"), within=120, what="nocm Ready once the ConfigMap exists"
    )
