"""The chart as a platform team installs it, on the real node of `make up REAL_NODES=1`: the images
`make images` built, pushed to the registry the node pulls from, and helm values that put the operator
and the agent DaemonSet on the real node (the kwok Nodes would only pretend to run them)."""

from __future__ import annotations

from collections.abc import Mapping

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
