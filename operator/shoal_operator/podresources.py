"""What a pod requests from its node, the way kube-scheduler counts it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shoal_api.quantity import parse_cpu_millicores, parse_memory_bytes
from shoal_operator.scheduling import Resources

AGENT_POD_LABELS = {"app.kubernetes.io/name": "shoal", "app.kubernetes.io/component": "node-agent"}


def _requests(containers: Iterable[Mapping[str, Any]] | None) -> list[Resources]:
    out = []
    for container in containers or ():
        req = (container.get("resources") or {}).get("requests") or {}
        out.append(
            Resources(
                cpu_millis=parse_cpu_millicores(str(req["cpu"])) if "cpu" in req else 0,
                memory_bytes=parse_memory_bytes(str(req["memory"])) if "memory" in req else 0,
            )
        )
    return out


def pod_requests(spec: Mapping[str, Any]) -> Resources:
    """max(sum of containers, largest init container) + overhead, as kube-scheduler does."""
    main = _requests(spec.get("containers"))
    total = Resources(sum(r.cpu_millis for r in main), sum(r.memory_bytes for r in main))
    for init in _requests(spec.get("initContainers")):
        total = Resources(max(total.cpu_millis, init.cpu_millis), max(total.memory_bytes, init.memory_bytes))
    overhead = spec.get("overhead") or {}
    if overhead:
        total = total + _requests([{"resources": {"requests": overhead}}])[0]
    return total


def counts_against_node(pod: Mapping[str, Any]) -> bool:
    """Bound, not finished, and not a Shoal agent: the agent's pod *is* the Wasm budget, which the
    scheduler already counts placement by placement."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return False
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return not all(labels.get(k) == v for k, v in AGENT_POD_LABELS.items())
