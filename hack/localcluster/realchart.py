"""The chart as a platform team installs it, on the real node of `make up REAL_NODES=1`: the images
`make images` built, pushed to the registry the node pulls from, and helm values that put the operator
and the agent DaemonSet on the real node (the kwok Nodes would only pretend to run them)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from shoal_api import GROUP, VERSION

from .chart import Release
from .controlplane import ControlPlane
from .images import Built, push
from .realnode import REAL_LABEL


def node_refs(built: list[Built], node_registry: str) -> dict[str, str]:
    """name -> the reference the node pulls (<node registry>/shoal/<name>:<tag>)."""
    return {b.name: f"{node_registry}/shoal/{b.ref.rsplit('/', 1)[1]}" for b in built}


def push_to_node(built: list[Built], node_registry: str) -> dict[str, str]:
    refs = node_refs(built, node_registry)
    for b in built:
        push(b.ref, refs[b.name])
    return refs


def helm_values(refs: Mapping[str, str], node_registry: str, operator_replicas: int = 1) -> list[str]:
    """`--set` arguments: the built images, the real node only, and the node registry as plain http
    for the operator's digest lookups and the agent's pulls (SHOAL_INSECURE_REGISTRIES)."""
    label = REAL_LABEL.replace(".", "\\.")  # helm's --set path escapes the dots of a key
    out: list[str] = []
    for component, name in (("operator", "shoal-operator"), ("agent", "shoal-agent")):
        repo, tag = refs[name].rsplit(":", 1)
        out += [
            f"--set={component}.image.repository={repo}",
            f"--set={component}.image.tag={tag}",
            f"--set-string={component}.nodeSelector.{label}=true",
            f"--set={component}.extraEnv[0].name=SHOAL_INSECURE_REGISTRIES",
            f"--set={component}.extraEnv[0].value={node_registry}",
        ]
    return [*out, f"--set=operator.replicas={operator_replicas}"]


def pod_if_ready(plane: ControlPlane, namespace: str, selector: str) -> dict[str, Any]:
    """The first pod matching `selector` once it is Ready, else {} (falsy, for polling)."""
    q = urllib.parse.quote(selector)
    items = plane.get_json(f"/api/v1/namespaces/{namespace}/pods?labelSelector={q}")["items"]
    pod: dict[str, Any] = items[0] if items else {}
    conditions = (pod.get("status") or {}).get("conditions") or []
    return pod if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else {}


def selector(release: Release, component: str) -> str:
    return f"app.kubernetes.io/instance={release.name},app.kubernetes.io/component={component}"


def install(plane: ControlPlane, refs: Mapping[str, str], node_registry: str) -> Release:
    """`helm install` the chart onto the real node with the pushed images (`push_to_node`), without
    --wait: the caller times the pods."""
    release = Release(plane, values=helm_values(refs, node_registry))
    release.install(wait=False)
    return release


def hello_app(namespace: str, image: str) -> dict[str, Any]:
    """A one-replica HTTP WasmApp: the real node's agent is the only one the chart runs here."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WasmApp",
        "metadata": {"name": "hello", "namespace": namespace},
        "spec": {
            "module": {"image": image},
            "replicas": 1,
            "trigger": {"http": {"path": "/hello"}},
        },
    }
